"""Signed website tokens, server claims and session credentials (standard library only).

Why here: the Rasa server must check a customer's token before the message is stored or
published (so the bearer token never reaches the tracker or the event stream), and the Rasa
runtime cannot import ``bot``. This module has no third-party imports, so the action server
(``bot.services.identity``) uses the very same code: one definition of every format.

Formats (base64url without padding):

- website token: ``b64(payload) "." b64(HMAC-SHA256(secret, payload))``, payload
  ``{"cid": <customer id>, "exp": <unix s>, "kid": <key id>}``; ``kid`` names the secret
  (current or previous, for rotation); tokens without ``kid`` are checked with the current one.
- server claims: what the channel learned about a message (client address, session, verified
  customer), put into metadata under ``CLAIMS_KEY`` and signed with a key derived from the
  current secret, so an action server never trusts a client-made claim.
- session credential: ``<session id> "." b64(HMAC(secret, "session|" + channel + "|" + sender + "|" + sid))``,
  issued by the channel, kept by the client and sent back with each message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets as _secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

MIN_SECRET_CHARS = 32
MAX_TOKEN_CHARS = 1024
CLAIMS_KEY = "concierge"
CLAIMS_VERSION = 1


class SecretTooShort(ValueError):
    """A configured secret is too short to sign anything safely."""


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(secret: bytes) -> str:
    """Short public name of a secret (a hash: says which key signed, reveals nothing of it)."""
    return hashlib.sha256(b"concierge-kid|" + secret).hexdigest()[:8]


def check_secret(secret: str, name: str) -> str:
    """The secret, or SecretTooShort with a message that says what to do."""
    if len(secret) < MIN_SECRET_CHARS:
        raise SecretTooShort(
            f"{name} is {len(secret)} characters long; it must have at least {MIN_SECRET_CHARS} "
            "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return secret


def read_or_create_key(path: Path) -> str:
    """The key stored in ``path``, created (random, mode 0600) on first use by whichever process comes first."""
    try:
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = _secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it in the meantime
        for _ in range(50):
            existing = path.read_text(encoding="utf-8").strip()
            if existing:
                return existing
            time.sleep(0.02)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


@dataclass(frozen=True)
class Keyring:
    """The current signing secret and, during a rotation, the previous one (still accepted)."""

    current: bytes
    previous: Optional[bytes] = None

    def __repr__(self) -> str:  # never print secrets
        return f"Keyring(kid={key_id(self.current)!r}, previous={'yes' if self.previous else 'no'})"

    @classmethod
    def of(cls, current: str | bytes, previous: str | bytes | None = None) -> Keyring:
        def raw(value: str | bytes) -> bytes:
            return value.encode("utf-8") if isinstance(value, str) else value

        return cls(raw(current), raw(previous) if previous else None)

    def by_kid(self, kid: Any) -> Optional[bytes]:
        if kid is None:
            return self.current
        for secret in (self.current, self.previous):
            if secret is not None and isinstance(kid, str) and hmac.compare_digest(key_id(secret), kid):
                return secret
        return None

    def derived(self, purpose: str) -> bytes:
        """A separate key per purpose (claims, sessions), so one use can never stand in for another."""
        return hmac.new(self.current, b"concierge|" + purpose.encode(), hashlib.sha256).digest()


def keyring_from_env(env: Mapping[str, str]) -> Keyring:
    """The identity keyring from these settings values: CONCIERGE_IDENTITY_SECRET[_PREVIOUS], else
    var/identity.key. The values come from ``concierge_rasa.settings`` (the one reader of os.environ)."""
    current = (env.get("CONCIERGE_IDENTITY_SECRET") or "").strip()
    if not current:
        var_dir = Path(env.get("CONCIERGE_VAR_DIR") or Path.cwd() / "var")
        current = read_or_create_key(var_dir / "identity.key")
    previous = (env.get("CONCIERGE_IDENTITY_SECRET_PREVIOUS") or "").strip() or None
    check_secret(current, "CONCIERGE_IDENTITY_SECRET")
    if previous:
        check_secret(previous, "CONCIERGE_IDENTITY_SECRET_PREVIOUS")
    return Keyring.of(current, previous)


# ------------------------------------------------------------------ website tokens
def sign_token(customer_id: int, ttl_s: int, secret: bytes, now: Optional[float] = None) -> str:
    """A website token for ``customer_id`` signed with ``secret`` (its kid inside)."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        raise ValueError("customer_id must be a positive integer")
    issued = int(time.time() if now is None else now)
    payload = json.dumps(
        {"cid": customer_id, "exp": issued + int(ttl_s), "kid": key_id(secret)}, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    return f"{b64encode(payload)}.{b64encode(hmac.new(secret, payload, hashlib.sha256).digest())}"


def verify_token(token: Any, keyring: Keyring, now: Optional[float] = None) -> Optional[tuple[int, int]]:
    """(customer id, expiry) of a valid, unexpired token signed by a key of the ring; None otherwise."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    parts = token.strip().split(".")
    if len(parts) != 2:
        return None
    try:
        payload, signature = b64decode(parts[0]), b64decode(parts[1])
        data = json.loads(payload.decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    secret = keyring.by_kid(data.get("kid"))
    if secret is None:
        return None
    if not hmac.compare_digest(hmac.new(secret, payload, hashlib.sha256).digest(), signature):
        return None
    cid, exp = data.get("cid"), data.get("exp")
    if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
        return None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    if (time.time() if now is None else now) >= exp:
        return None
    return cid, int(exp)


# ------------------------------------------------------------------ server claims
def _canonical(claims: dict[str, Any]) -> bytes:
    body = {k: v for k, v in claims.items() if k != "sig"}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def sign_claims(claims: dict[str, Any], keyring: Keyring) -> dict[str, Any]:
    """``claims`` plus ``v`` and a ``sig`` only holders of the identity secret can make."""
    body = {**claims, "v": CLAIMS_VERSION}
    body.pop("sig", None)
    body["sig"] = b64encode(hmac.new(keyring.derived("claims"), _canonical(body), hashlib.sha256).digest())
    return body


def verify_claims(metadata: Any, keyring: Keyring) -> Optional[dict[str, Any]]:
    """The channel's signed claims from message metadata; None when absent or not genuine."""
    if not isinstance(metadata, dict):
        return None
    claims = metadata.get(CLAIMS_KEY)
    if not isinstance(claims, dict) or not isinstance(claims.get("sig"), str):
        return None
    try:
        expected = hmac.new(keyring.derived("claims"), _canonical(claims), hashlib.sha256).digest()
        given = b64decode(claims["sig"])
    except (ValueError, TypeError, binascii.Error, RecursionError):
        return None
    if not hmac.compare_digest(expected, given):
        return None
    return {k: v for k, v in claims.items() if k != "sig"}


def client_key(address: Any) -> Optional[str]:
    """A stable, non-reversible name for a client address (addresses are personal data)."""
    if not isinstance(address, str) or not address:
        return None
    return "ip:" + hashlib.sha256(b"concierge-client|" + address.encode("utf-8", "replace")).hexdigest()[:32]


# ------------------------------------------------------------------ session credentials
def _session_mac(keyring: Keyring, channel: str, sender: str, sid: str) -> str:
    msg = f"session|{channel}|{sender}|{sid}".encode()
    return b64encode(hmac.new(keyring.derived("session"), msg, hashlib.sha256).digest()[:24])


def issue_session(keyring: Keyring, channel: str, sender: str) -> tuple[str, str]:
    """(session id, credential) for a new client of ``sender`` on ``channel``."""
    sid = _secrets.token_urlsafe(12)
    return sid, f"{sid}.{_session_mac(keyring, channel, sender, sid)}"


def check_session(credential: Any, keyring: Keyring, channel: str, sender: str) -> Optional[str]:
    """The session id when ``credential`` was issued by this server for this sender and channel."""
    if not isinstance(credential, str) or not 3 <= len(credential) <= 128:
        return None
    sid, _, mac = credential.strip().partition(".")
    if not sid or not mac or not all(c.isalnum() or c in "-_" for c in sid):
        return None
    if not hmac.compare_digest(_session_mac(keyring, channel, sender, sid).encode(), mac.encode()):
        return None
    return sid
