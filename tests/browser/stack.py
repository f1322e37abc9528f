"""The whole website stack for browser tests and the widget benchmark.

The real Rasa and action servers (``tests.e2e.conftest.start_servers``, seeded SQLite database)
plus the web app (``python -m bot.web``) on free ports, with the Rasa server allowing the shop's
origin (CORS) and the action server linking product cards to the shop.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import ROOT, Servers, free_port, start_servers, wait_for

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
    """Rasa + action server + web app; stops all three afterwards."""
    web_port = free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    extra_env = {
        "CONCIERGE_SHOP_URL": web_url,
        "CONCIERGE_IDENTITY_SECRET": IDENTITY_SECRET,
        **dict(server_kwargs.pop("extra_env", None) or {}),
    }
    rasa_args = ["--cors", web_url, *list(server_kwargs.pop("rasa_args", None) or [])]
    for servers in start_servers(tmp, extra_env=extra_env, rasa_args=rasa_args, **server_kwargs):
        env = {
            **servers.env,
            "WEB_PORT": str(web_port),
            "CONCIERGE_RASA_PUBLIC_URL": servers.rasa_url,
            "CONCIERGE_RASA_API_URL": servers.rasa_url,  # the console's server-side calls (RASA_API_TOKEN)
            "CONCIERGE_SESSION_SECRET": "browser-test-session-secret-0123456789",
            "CONCIERGE_VAR_DIR": str(tmp / "var"),
        }
        log = tmp / "web.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.web", "--port", str(web_port)],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(f"{web_url}/healthz", proc, log, 60)
            yield Shop(web_url, servers, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
