"""Action server entry point: `python -m bot.action_server [--port 5055] [--host 127.0.0.1]`.

Why not `python -m rasa_sdk`: this binds to localhost by default, prepares the database
engine once at start-up, and is the one place to add routes the Rasa side may need.
"""

from __future__ import annotations

import argparse
import logging
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Concierge action server")
    parser.add_argument("--port", type=int, default=int(os.environ.get("ACTION_PORT", "5055")))
    parser.add_argument("--host", default=os.environ.get("ACTION_HOST", "127.0.0.1"))
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    os.environ["SANIC_HOST"] = args.host
    os.environ.setdefault("ACTION_SERVER_SANIC_WORKERS", str(args.workers))
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    from rasa_sdk import endpoint
    from rasa_sdk.executor import ActionExecutor

    from bot.db.session import get_engine

    get_engine()  # fail fast on a bad DATABASE_URL, before the first customer message
    executor = ActionExecutor()
    executor.register_package("actions")
    endpoint.run(executor, port=args.port, cors_origins=[], endpoints=os.devnull)


if __name__ == "__main__":
    main()
