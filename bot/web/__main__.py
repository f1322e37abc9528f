"""``python -m bot.web [--host H] [--port P]``: serve the web app with uvicorn and print its URL."""

from __future__ import annotations

import argparse

import uvicorn

from bot.settings import get_settings
from bot.web.app import create_app


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Concierge web app: demo shop + chat widget")
    parser.add_argument("--host", default=settings.web_host)
    parser.add_argument("--port", type=int, default=settings.web_port)
    args = parser.parse_args(argv)
    app = create_app(settings)
    print(f"Concierge shop: http://{args.host}:{args.port}/  (chat server {settings.rasa_public_url})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)


if __name__ == "__main__":
    main()
