"""Action server entry point: `python -m bot.action_server [--port 5055] [--host 127.0.0.1]`.

Why not `python -m rasa_sdk`: this binds to localhost by default, prepares the database
engine at start-up, and adds the CRM routes the Rasa side calls for every message:

    POST /concierge/user-message  {"sender", "text", "metadata"} -> {"sentiment", "upset_streak", "offer_human"}
    POST /concierge/bot-messages  {"sender", "texts": [...]}      -> {"logged": n}
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from functools import partial
from typing import Any

logger = logging.getLogger(__name__)
MAX_TEXT = 4000


def _customer_from_metadata(metadata: Any) -> int | None:
    from bot.services.identity import verify_token

    if isinstance(metadata, dict) and metadata.get("customer_token"):
        return verify_token(metadata["customer_token"])
    return None


def _user_message(sender: str, text: str, metadata: Any) -> dict:
    from bot.db.session import session_scope
    from bot.services import conversation

    label = score = None
    try:
        from bot.ml.serving import analyze_sentiment

        result = analyze_sentiment(text)
        if result is not None:
            label, score = result.label, round(float(result.score), 4)
    except Exception:  # noqa: BLE001 - a model problem must never break the conversation
        logger.exception("sentiment analysis failed")
    with session_scope() as session:
        mood = conversation.record_user_message(
            session, sender, text, label, score, _customer_from_metadata(metadata)
        )
    return {
        "sentiment": {"label": mood.label, "score": mood.score} if mood.label else None,
        "upset_streak": mood.upset_streak,
        "offer_human": mood.offer_human,
        "ticket": mood.ticket_number,
    }


def _bot_messages(sender: str, texts: list[str]) -> dict:
    from bot.db.session import session_scope
    from bot.services import conversation

    with session_scope() as session:
        return {"logged": conversation.record_bot_messages(session, sender, texts)}


def create_concierge_app(action_executor: Any, **kwargs: Any) -> Any:
    """rasa_sdk's app plus the CRM routes (module-level so Sanic's AppLoader can use it)."""
    from rasa_sdk.endpoint import create_app_for_serve
    from sanic import response

    from bot.internal_auth import install_guard
    from bot.settings import get_settings

    app = create_app_for_serve(action_executor, **kwargs)
    install_guard(app, get_settings().action_token)  # closed to callers without the shared token

    def _body(request: Any) -> dict | None:
        try:
            body = request.json
        except Exception:  # noqa: BLE001
            return None
        if not isinstance(body, dict) or not isinstance(body.get("sender"), str) or not body["sender"]:
            return None
        return body

    @app.post("/concierge/user-message")
    async def user_message(request: Any) -> Any:
        body = _body(request)
        if body is None:
            return response.json({"error": "expected {'sender': str, 'text': str}"}, status=400)
        text = str(body.get("text") or "")[:MAX_TEXT]
        try:
            result = await asyncio.to_thread(_user_message, body["sender"][:128], text, body.get("metadata"))
        except Exception:  # noqa: BLE001
            logger.exception("recording a user message failed")
            return response.json({"error": "internal error"}, status=500)
        return response.json(result)

    @app.post("/concierge/bot-messages")
    async def bot_messages(request: Any) -> Any:
        body = _body(request)
        texts = body.get("texts") if body else None
        if body is None or not isinstance(texts, list):
            return response.json({"error": "expected {'sender': str, 'texts': [str]}"}, status=400)
        try:
            result = await asyncio.to_thread(_bot_messages, body["sender"][:128], [str(t) for t in texts])
        except Exception:  # noqa: BLE001
            logger.exception("recording bot messages failed")
            return response.json({"error": "internal error"}, status=500)
        return response.json(result)

    return app


def warm_up_models() -> None:
    """Loads the embedded models before serving, so the first customer does not wait for them."""
    try:
        from bot.ml import serving

        serving.analyze_sentiment("hello")
        serving.get_recommender()
    except Exception:  # noqa: BLE001 - missing models mean fallbacks, not a dead server
        logger.exception("Could not load the embedded models; answering with fallbacks")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Concierge action server")
    parser.add_argument("--port", type=int, default=int(os.environ.get("ACTION_PORT", "5055")))
    parser.add_argument("--host", default=os.environ.get("ACTION_HOST", "127.0.0.1"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    from rasa_sdk.executor import ActionExecutor
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from bot.db.session import get_engine

    get_engine()  # fail fast on a bad DATABASE_URL, before the first customer message
    warm_up_models()
    executor = ActionExecutor()
    executor.register_package("actions")
    loader = AppLoader(factory=partial(create_concierge_app, executor, cors_origins=[], endpoints=os.devnull))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=1, single_process=True)
    logger.info("Action server on http://%s:%s", args.host, args.port)
    Sanic.serve_single(primary=app)


if __name__ == "__main__":
    main()
