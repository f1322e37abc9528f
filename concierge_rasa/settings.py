"""Configuration of the Rasa runtime from environment variables, read once per process.

Why a second settings object: the Rasa runtime (Python 3.10, ``.venv-rasa``) must never import
``bot``, so ``bot.settings`` is out of reach; this is its counterpart for the channels and the
NLU components, standard library only. It is the one place of ``concierge_rasa`` that reads
``os.environ``; the functions it feeds (``security.keyring_from_env``, ``RequestLimits.from_env``)
take the values as a mapping. Secrets never appear in ``repr()``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from concierge_rasa import security
from concierge_rasa.limits import RequestLimits

RATE_PREFIX = "CONCIERGE_RATE_"
#: the messaging channels' options (SLACK_BOT_TOKEN, TWILIO_AUTH_TOKEN, ...) as environment fallbacks of credentials.yml
CHANNEL_PREFIXES = ("SLACK_", "TELEGRAM_", "TWILIO_", "FACEBOOK_")


@dataclass(frozen=True)
class RasaSettings:
    """Everything the Rasa-side code configures; build it with :func:`get_rasa_settings`."""

    var_dir: Path  # CONCIERGE_VAR_DIR, default ./var (where identity.key lives)
    identity_secret: str = field(default="", repr=False)  # "" = the key in var_dir/identity.key
    identity_secret_previous: str = field(default="", repr=False)  # still accepted while rotating
    onnx_model_dir: str = ""  # CONCIERGE_ONNX_MODEL_DIR; "" = var/models/minilm-onnx
    rate_limits: Mapping[str, str] = field(default_factory=dict)  # the CONCIERGE_RATE_* values as given
    # CONCIERGE_SOCKETIO_REDIS_URL: replicas share socket.io rooms through Redis ("" = one process only)
    socketio_redis_url: str = field(default="", repr=False)  # may hold a password
    socketio_redis_channel: str = "concierge-socketio"  # CONCIERGE_SOCKETIO_REDIS_CHANNEL, same on every replica
    # CONCIERGE_SHARED_REDIS_URL: rate limits, replay cache, numbered options shared by replicas ("" = in memory)
    shared_redis_url: str = field(default="", repr=False)
    shared_redis_prefix: str = "concierge:shared:"  # CONCIERGE_SHARED_REDIS_PREFIX
    # the messaging channels' options given in the environment (CHANNEL_PREFIXES); they hold secrets
    channel_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    bench_stats_path: str = ""  # CONCIERGE_BENCH_STATS: make bench-latency only (counts action calls)

    def keyring(self) -> security.Keyring:
        """The identity keyring (creates var/identity.key on first use; refuses short secrets)."""
        return security.keyring_from_env(
            {
                "CONCIERGE_IDENTITY_SECRET": self.identity_secret,
                "CONCIERGE_IDENTITY_SECRET_PREVIOUS": self.identity_secret_previous,
                "CONCIERGE_VAR_DIR": str(self.var_dir),
            }
        )

    def request_limits(self) -> RequestLimits:
        """Rate limits of the public endpoints (CONCIERGE_RATE_SENDER_*/CLIENT_*), in Redis when shared."""
        limits = RequestLimits.from_env(env=dict(self.rate_limits))
        if not self.shared_redis_url:
            return limits
        from concierge_rasa.shared_state import SharedStore, shared_limits  # needs redis: only when asked

        return shared_limits(limits, SharedStore(self.shared_redis_url, self.shared_redis_prefix))


def load_rasa_settings(env: Optional[Mapping[str, str]] = None) -> RasaSettings:
    """Fresh settings from ``env`` (default: the process environment), uncached.

    Reads values only: nothing is created and nothing raises here, so an NLU component that
    needs only the model folder never touches key files (the keyring is built on demand).
    """
    env = os.environ if env is None else env
    return RasaSettings(
        var_dir=Path(env.get("CONCIERGE_VAR_DIR") or Path.cwd() / "var"),
        identity_secret=(env.get("CONCIERGE_IDENTITY_SECRET") or "").strip(),
        identity_secret_previous=(env.get("CONCIERGE_IDENTITY_SECRET_PREVIOUS") or "").strip(),
        onnx_model_dir=(env.get("CONCIERGE_ONNX_MODEL_DIR") or "").strip(),
        rate_limits={k: v for k, v in env.items() if k.startswith(RATE_PREFIX)},
        socketio_redis_url=(env.get("CONCIERGE_SOCKETIO_REDIS_URL") or "").strip(),
        socketio_redis_channel=(env.get("CONCIERGE_SOCKETIO_REDIS_CHANNEL") or "").strip() or "concierge-socketio",
        shared_redis_url=(env.get("CONCIERGE_SHARED_REDIS_URL") or "").strip(),
        shared_redis_prefix=(env.get("CONCIERGE_SHARED_REDIS_PREFIX") or "").strip() or "concierge:shared:",
        channel_env={k: v for k, v in env.items() if k.startswith(CHANNEL_PREFIXES)},
        bench_stats_path=(env.get("CONCIERGE_BENCH_STATS") or "").strip(),
    )


@functools.lru_cache(maxsize=1)
def get_rasa_settings() -> RasaSettings:
    """The process-wide settings (cached; ``get_rasa_settings.cache_clear()`` re-reads env vars)."""
    return load_rasa_settings()
