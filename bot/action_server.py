"""Action server entry point: `python -m bot.action_server [--port 5055] [--host 127.0.0.1]`.

Why not `python -m rasa_sdk`: this binds to localhost by default and prepares the database
engine and models at start-up. Conversations reach the CRM through Rasa's event broker and the
CRM ingestor (`python -m bot.crm.ingestor`), never through a call from the Rasa side.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic
from sanic.worker.loader import AppLoader

from bot.db.session import get_engine
from bot.internal_auth import install_guard
from bot.ml import serving
from bot.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DOMAIN_FILE = Path(__file__).resolve().parents[1] / "domain.yml"


def create_concierge_app(action_executor: Any, **kwargs: Any) -> Any:
    """rasa_sdk's app (module-level so Sanic's AppLoader can use it), closed to callers without
    the shared token (bot/internal_auth.py; GET /health stays open)."""
    app = create_app_for_serve(action_executor, **kwargs)
    install_guard(app, get_settings().action_token)
    return app


def warm_up_models() -> None:
    """Loads the embedded models before serving, so the first customer does not wait for them."""
    try:
        serving.get_recommender()
    except Exception:  # noqa: BLE001 - missing models mean fallbacks, not a dead server
        logger.exception("Could not load the embedded models; answering with fallbacks")


class ShippedDomainExecutor(ActionExecutor):
    """rasa_sdk's executor, answering a call without a domain with the shipped one.

    Why (issue 24): Rasa sent its whole domain (73 KB of JSON) with every action call, encoded on
    the Rasa side and parsed here each time. endpoints.yml now turns on Rasa's selective domain, so a
    call carries none; rasa_sdk would then refuse it (449: it expects a digest that Rasa 3.6 never
    sends). The Rasa server and the actions ship the same domain.yml. A call that carries a domain
    gets it for that call only: rasa_sdk would keep it for every later call without one, so one
    stray caller (an old replica during a rolling update, a caller with the token) would change the
    replies of every conversation until a restart.
    """

    def __init__(self, shipped: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.shipped = shipped
        self.domain = shipped

    def update_and_return_domain(self, payload: dict[str, Any], action_name: str) -> Any:
        own = payload.get("domain")
        if isinstance(own, dict) and own:
            return own
        if self.shipped is not None:
            return self.shipped
        return super().update_and_return_domain(payload, action_name)


def build_executor(domain_file: Path = DOMAIN_FILE, actions: Iterable[type] | None = None) -> ActionExecutor:
    """The actions, with the shipped domain for every call that carries none.

    rasa_sdk alone hands ``None`` to the actions when the first call after a start carries no domain
    (a caller with the token sending ``"domain": {}``): every form validator then crashes. The Rasa
    server ships the same domain.yml, so it is the right default, and the one every call gets now
    that Rasa sends none (``ShippedDomainExecutor``).
    """
    shipped = yaml.safe_load(domain_file.read_text(encoding="utf-8")) if domain_file.is_file() else None
    executor = ShippedDomainExecutor(shipped)
    if actions is None:
        executor.register_package("actions")
    else:  # tests: register_package would also pick up every Action subclass a test module defined
        for action in actions:
            executor.register_action(action)
    if shipped is None:
        logger.warning("No %s beside the actions: calls without a domain will fail", domain_file)
    return executor


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The command line; its defaults are the settings' ACTION_PORT / ACTION_HOST."""
    parser = argparse.ArgumentParser(description="Concierge action server")
    parser.add_argument("--port", type=int, default=settings.action_port)
    parser.add_argument("--host", default=settings.action_host)
    return parser


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    args = build_parser(settings).parse_args(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    get_engine()  # fail fast on a bad DATABASE_URL, before the first customer message
    warm_up_models()
    executor = build_executor()
    loader = AppLoader(factory=partial(create_concierge_app, executor, cors_origins=[], endpoints=os.devnull))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=1, single_process=True)
    logger.info("Action server on http://%s:%s", args.host, args.port)
    Sanic.serve_single(primary=app)


if __name__ == "__main__":
    main()
