"""What the channels do to every message before Rasa stores it: allow-list, token check, claims.

Why in the channel: the tracker and the event stream keep whatever metadata a message arrives
with, and the action server trusts what the tracker says. So the channel keeps only the keys it
defines, checks the website token itself and replaces it by a signed claim (customer id and
expiry, never the token), and adds what only the server knows: the client address (as a
one-way key), the session it issued to that client and the channel. Actions read the claims
(``concierge`` key) and verify their signature with the same identity secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
from typing import Any, Optional

from concierge_rasa import security
from concierge_rasa.limits import RequestLimits
from concierge_rasa.settings import load_rasa_settings  # read once: these two functions are the caches

logger = logging.getLogger(__name__)

#: the only metadata keys a client may send, with their maximum length (values must be strings)
ALLOWED_METADATA = {"customer_token": security.MAX_TOKEN_CHARS, "language": 16}
#: entities a "/intent{...}" message (quick-reply buttons) may carry; never a slot like verified_customer_id
PUBLIC_ENTITIES = frozenset({"order_number", "email", "product", "category", "amount", "language"})
#: the languages a "/greet{"language": ...}" payload may choose (the widget's first message)
PAYLOAD_LANGUAGES = frozenset({"en", "zh"})
SESSION_HEADER = "X-Concierge-Session"
_INTENT_WITH_ENTITIES = re.compile(r"^(/[A-Za-z0-9_.\-]+(?:@[0-9.]+)?)\s*(\{.*\})\s*$", re.S)


@functools.lru_cache(maxsize=1)
def channel_keyring() -> security.Keyring:
    """The identity keyring of this Rasa process (env or var/identity.key; refuses short secrets)."""
    return load_rasa_settings().keyring()


@functools.lru_cache(maxsize=1)
def request_limits() -> RequestLimits:
    """Rate limits of the public endpoints (CONCIERGE_RATE_* env vars), one set per process."""
    return load_rasa_settings().request_limits()


def allowed_metadata(metadata: Any) -> dict[str, Any]:
    """Only the keys the channels define, as bounded strings; anything else is dropped."""
    if not isinstance(metadata, dict):
        return {}
    out: dict[str, Any] = {}
    for key, limit in ALLOWED_METADATA.items():
        value = metadata.get(key)
        if isinstance(value, str) and 0 < len(value) <= limit:
            out[key] = value
    return out


def secure_metadata(
    metadata: Any, channel: str, sender: str, client: Optional[str], session: Optional[str]
) -> dict[str, Any]:
    """Allow-listed metadata with the token replaced by signed server claims."""
    out = allowed_metadata(metadata)
    token = out.pop("customer_token", None)
    claims: dict[str, Any] = {
        "channel": channel,
        "client": security.client_key(client),
        "session": session or f"{channel}:{sender}",
    }
    if token is not None:
        checked = security.verify_token(token, channel_keyring())
        if checked is not None:
            claims["cid"], claims["exp"] = checked
        else:
            claims["token_rejected"] = True  # the customer is asked to verify; the token itself is not kept
    out[security.CLAIMS_KEY] = security.sign_claims(claims, channel_keyring())
    return out


def strip_private_entities(text: str) -> str:
    """``/intent{...}`` keeps only public entities, so a message can never fill an internal slot."""
    if not text.startswith("/") or "{" not in text:
        return text
    match = _INTENT_WITH_ENTITIES.match(text)
    if not match:
        return text[: text.index("{")].rstrip()  # unreadable entities: keep the intent only
    intent, raw = match.groups()
    try:
        entities = json.loads(raw)
    except (ValueError, RecursionError):
        return intent
    if not isinstance(entities, dict):
        return intent
    kept = {
        k: v
        for k, v in entities.items()
        if k in PUBLIC_ENTITIES and isinstance(v, (str, int, float)) and len(str(v)) <= 254
        and (k != "language" or v in PAYLOAD_LANGUAGES)
    }
    return f"{intent}{json.dumps(kept)}" if kept else intent


def client_address(request: Any) -> Optional[str]:
    """The client's address as Sanic sees it (behind a proxy: configure Sanic's PROXIES_COUNT / REAL_IP_HEADER)."""
    if request is None:
        return None
    try:
        return str(request.remote_addr or request.ip or "") or None
    except Exception:  # noqa: BLE001 - a missing transport must not fail the request
        return None


def rest_session(credential: Any, sender: str) -> tuple[str, str]:
    """(session id, credential) of a REST client: the one it sent back when genuine, else a new one."""
    sid = security.check_session(credential, channel_keyring(), "rest", sender)
    if sid is not None:
        return sid, credential.strip()
    return security.issue_session(channel_keyring(), "rest", sender)


def new_socket_session() -> str:
    """A socket.io session id the server issued: 16 random hex + 16 hex of MAC (32 characters, as before)."""
    ident = secrets.token_hex(8)
    return ident + _socket_mac(ident)


def _socket_mac(ident: str) -> str:
    return hmac.new(channel_keyring().derived("socketio"), ident.encode(), hashlib.sha256).hexdigest()[:16]


def is_issued_socket_session(value: Any) -> bool:
    """True for session ids this server issued (a chosen or guessed id is not)."""
    if not isinstance(value, str) or len(value) != 32 or not all(c in "0123456789abcdef" for c in value):
        return False
    return hmac.compare_digest(_socket_mac(value[:16]), value[16:])


def new_connection_session() -> str:
    """A per-connection session for sockets on a client-chosen id: verification lasts while it is connected."""
    return "conn:" + secrets.token_urlsafe(12)
