import os
import stat
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT, get_settings, load_settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (
        "DATABASE_URL",
        "CONCIERGE_IDENTITY_SECRET",
        "CONCIERGE_ENCODER",
        "CONCIERGE_FAQ_PATH",
        "CONCIERGE_MODELS_DIR",
        "CONCIERGE_REFUND_WINDOW_DAYS",
        "CONCIERGE_TOKEN_TTL_S",
        "CONCIERGE_IDENTITY_SECRET_PREVIOUS",
        "CONCIERGE_ACTION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONCIERGE_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


def test_defaults(clean_env):
    s = get_settings()
    assert s.project_root == PROJECT_ROOT == Path(__file__).resolve().parents[2]
    assert s.var_dir == clean_env.resolve()
    assert s.database_url == f"sqlite:///{clean_env.resolve() / 'concierge.db'}"
    assert s.faq_path == PROJECT_ROOT / "bot" / "content" / "faq.yml"
    assert s.models_dir == clean_env.resolve() / "models"
    assert s.encoder == ""
    assert s.refund_window_days == 30
    assert s.token_ttl_s > 0


def test_cached_until_cleared(clean_env, monkeypatch):
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("CONCIERGE_ENCODER", "/models/encoder")
    assert get_settings().encoder == ""
    get_settings.cache_clear()
    assert get_settings().encoder == "/models/encoder"


def test_identity_key_created_once_with_0600(clean_env):
    s1 = load_settings()
    key = clean_env / "identity.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert len(s1.identity_secret) >= 32
    assert load_settings().identity_secret == s1.identity_secret


def test_identity_secret_from_env(clean_env, monkeypatch):
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", "s3cr3t-value-long-enough-for-hmac-sha256")
    assert load_settings().identity_secret == "s3cr3t-value-long-enough-for-hmac-sha256"
    assert not (clean_env / "identity.key").exists()


def test_repr_hides_secrets(clean_env, monkeypatch):
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", "s3cr3t-value-long-enough-for-hmac-sha256")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://app:hunter2@db.example:5432/shop")
    s = load_settings()
    text = repr(s) + str(s)
    assert "s3cr3t-value-long-enough-for-hmac-sha256" not in text
    assert "hunter2" not in text
    assert "db.example" in text


def test_frozen(clean_env):
    with pytest.raises(AttributeError):
        get_settings().refund_window_days = 1


def test_bad_int_env(clean_env, monkeypatch):
    monkeypatch.setenv("CONCIERGE_REFUND_WINDOW_DAYS", "thirty")
    with pytest.raises(ValueError, match="CONCIERGE_REFUND_WINDOW_DAYS"):
        load_settings()
    monkeypatch.setenv("CONCIERGE_REFUND_WINDOW_DAYS", "14")
    assert load_settings().refund_window_days == 14


def test_short_secrets_refused(clean_env, monkeypatch):
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", "short")
    with pytest.raises(ValueError, match="CONCIERGE_IDENTITY_SECRET is 5 characters long; it must have at least 32"):
        load_settings()
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET", "x" * 40)
    monkeypatch.setenv("CONCIERGE_ACTION_TOKEN", "y" * 31)
    with pytest.raises(ValueError, match="CONCIERGE_ACTION_TOKEN"):
        load_settings()


def test_action_token_generated_once_and_masked(clean_env, monkeypatch):
    monkeypatch.setenv("CONCIERGE_IDENTITY_SECRET_PREVIOUS", "p" * 40)
    s1 = load_settings()
    assert len(s1.action_token) >= 32
    assert stat.S_IMODE(os.stat(clean_env / "action.key").st_mode) == 0o600
    assert load_settings().action_token == s1.action_token
    assert s1.action_token not in repr(s1) and "p" * 40 not in repr(s1)
    assert s1.token_ttl_s == 3600


PROCESS_ENV = ("LOG_LEVEL", "ACTION_HOST", "ACTION_PORT", "CONCIERGE_INFERENCE_THREADS", "CONCIERGE_TORCH_THREADS")


def test_process_fields_default(clean_env, monkeypatch):
    """The action server, ingestor and model code read these here instead of os.environ."""
    for name in PROCESS_ENV:
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.log_level, s.action_host, s.action_port) == ("INFO", "127.0.0.1", 5055)
    assert (s.inference_threads, s.train_threads) == (1, 2)
    assert "action_port=5055" in repr(s) and "inference_threads=1" in repr(s)


def test_process_fields_from_env(clean_env, monkeypatch):
    for name, value in zip(PROCESS_ENV, ("debug", "127.0.0.2", "6055", "3", "4"), strict=True):
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.log_level, s.action_host, s.action_port) == ("DEBUG", "127.0.0.2", 6055)
    assert (s.inference_threads, s.train_threads) == (3, 4)
    monkeypatch.setenv("ACTION_PORT", "http")
    with pytest.raises(ValueError, match="ACTION_PORT"):
        load_settings()


def test_model_code_reads_settings_not_env(clean_env, monkeypatch):
    """bot.ml's encoder and model folders follow the cached settings (cache_clear re-reads them)."""
    from bot.ml import encoder, train

    monkeypatch.setenv("CONCIERGE_ENCODER", "/models/mine")
    monkeypatch.setenv("CONCIERGE_MODELS_DIR", str(clean_env / "m"))
    get_settings.cache_clear()
    assert encoder.configured_encoder() == "/models/mine" == encoder.resolve_encoder()
    assert train.sentiment_model_dir() == (clean_env / "m").resolve() / "sentiment"


def test_action_server_defaults_come_from_settings(clean_env, monkeypatch):
    from bot import action_server

    monkeypatch.setenv("ACTION_PORT", "6123")
    get_settings.cache_clear()
    args = action_server.build_parser(get_settings()).parse_args([])
    assert (args.port, args.host) == (6123, "127.0.0.1")
    assert action_server.build_parser(get_settings()).parse_args(["--port", "7000"]).port == 7000
