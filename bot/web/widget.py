"""The chat widget: rasa-webchat's bundle served locally, its settings, and the customer token endpoint.

A logged-in customer's page fetches ``GET /api/chat-token`` (a short-lived token signed with the
identity secret, see ``bot.services.identity``) and the widget sends it with every message as
``customData.customer_token``; the bot then knows the customer without asking.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from bot.services import identity
from bot.settings import Settings
from bot.web.deps import db_session, web_settings
from bot.web.security import chat_id, session_customer_id

router = APIRouter()

WEBCHAT_BUNDLE = "node_modules/rasa-webchat/lib/index.js"  # UMD bundle defining window.WebChat (npm ci)


def widget_context(request: Request, settings: Settings, logged_in: bool, language: str = "en") -> dict[str, Any]:
    """What the page's widget loader (static/chat.js) needs, rendered as data-* attributes."""
    return {
        "language": language,
        "socket_url": settings.rasa_public_url,
        "socket_path": settings.socket_path,
        "chat_id": chat_id(request),
        "logged_in": logged_in,
        "token_ttl_s": settings.chat_token_ttl_s,
    }


# The bundle's CSS modules each start with `@import url(https://fonts.googleapis.com/...Inter...)`
# (11 copies, no option turns them off). The page's CSP (style-src 'self') blocks them, which cost
# 11 console errors on every page, and the shop must not call a font service anyway: they are cut
# when the bundle is served, and the widget's own CSS falls back to `font-family: Inter, sans-serif`.
REMOTE_CSS_IMPORT = re.compile(rb"@import url\(https?://[^)]*\);?")


@lru_cache(maxsize=2)
def _bundle_without_remote_imports(path: Path, mtime_ns: int, size: int) -> bytes:
    """The bundle's bytes with remote CSS imports removed (cached per file version)."""
    return REMOTE_CSS_IMPORT.sub(b"", path.read_bytes())


@router.get("/widget/webchat.js", name="webchat_bundle")
def webchat_bundle(settings: Settings = Depends(web_settings)) -> Response:
    """rasa-webchat 1.0.1 from the project's node_modules (installed by `npm ci`; no CDN, no font service)."""
    path = settings.project_root / WEBCHAT_BUNDLE
    if not path.is_file():
        raise HTTPException(status_code=503, detail="The chat widget is not installed: run `make web` (npm ci).")
    st = path.stat()
    return Response(
        _bundle_without_remote_imports(path, st.st_mtime_ns, st.st_size),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/api/chat-token", name="chat_token")
def chat_token(
    request: Request, settings: Settings = Depends(web_settings), session: Session = Depends(db_session)
) -> JSONResponse:
    """A token for the logged-in customer (401 for anonymous visitors; never cached)."""
    customer_id = session_customer_id(request)
    if customer_id is None or identity.get_customer(session, customer_id) is None:
        return JSONResponse({"detail": "Not logged in"}, status_code=401, headers={"Cache-Control": "no-store"})
    ttl = settings.chat_token_ttl_s
    token = identity.sign_token(customer_id, ttl_s=ttl, secret=settings.identity_secret)
    return JSONResponse(
        {"token": token, "expires_at": int(time.time()) + ttl, "expires_in": ttl},
        headers={"Cache-Control": "no-store"},
    )
