"""The whole website stack for browser tests and the widget benchmark.

The real Rasa and action servers (``tests.stack.start_servers``, seeded SQLite database)
plus the web app (``python -m bot.web``) on free ports, with the Rasa server allowing the shop's
origin (CORS) and the action server linking product cards to the shop.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.stack import PORT_ATTEMPTS, ROOT, PortTaken, Servers, free_port, start_servers, start_web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = ROOT / "var" / "test-artifacts"
IDENTITY_SECRET = "browser-test-identity-secret-0123456789abcdef"  # signs the shop's customer tokens


@dataclass
class Shop:
    url: str
    servers: Servers
    proc: subprocess.Popen


def start_shop(tmp: Path, **server_kwargs: object) -> Iterator[Shop]:
    """Rasa + action server + web app; stops all three afterwards.

    Rasa (CORS) and the action server (product links) are told the shop's URL before the web app
    starts, so when another process takes the shop's port first the whole stack starts again."""
    extra_env_arg = dict(server_kwargs.pop("extra_env", None) or {})
    rasa_args_arg = list(server_kwargs.pop("rasa_args", None) or [])
    for attempt in range(PORT_ATTEMPTS):
        web_port = free_port()
        web_url = f"http://127.0.0.1:{web_port}"
        extra_env = {"CONCIERGE_SHOP_URL": web_url, "CONCIERGE_IDENTITY_SECRET": IDENTITY_SECRET, **extra_env_arg}
        run = tmp / f"run{attempt}" if attempt else tmp
        run.mkdir(exist_ok=True)
        servers_gen = start_servers(run, extra_env=extra_env, rasa_args=["--cors", web_url, *rasa_args_arg],
                                    **server_kwargs)
        try:
            servers = next(servers_gen)
            env = {
                **servers.env,
                "CONCIERGE_RASA_PUBLIC_URL": servers.rasa_url,
                "CONCIERGE_RASA_API_URL": servers.rasa_url,  # the console's server-side calls (RASA_API_TOKEN)
                "CONCIERGE_SESSION_SECRET": "browser-test-session-secret-0123456789",
                "CONCIERGE_VAR_DIR": str(run / "var"),
            }
            try:
                web_gen = start_web(env, run / "web.log", port=web_port)
                web = next(web_gen)
            except PortTaken:
                continue
            try:
                yield Shop(web.url, servers, web.proc)
            finally:
                web_gen.close()
            return
        finally:
            servers_gen.close()
    raise RuntimeError(f"the shop's port was taken {PORT_ATTEMPTS} times in a row")
