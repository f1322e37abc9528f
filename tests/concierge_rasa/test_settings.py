"""The Rasa runtime's settings: the one reader of os.environ in concierge_rasa."""

import pytest

from concierge_rasa import security
from concierge_rasa.nlu import onnx_runtime
from concierge_rasa.settings import get_rasa_settings, load_rasa_settings

SECRET = "rasa-settings-secret-0123456789abcdef"


def test_defaults_read_nothing_and_create_nothing(tmp_path):
    s = load_rasa_settings({"CONCIERGE_VAR_DIR": str(tmp_path)})
    assert s.var_dir == tmp_path and s.identity_secret == "" and s.onnx_model_dir == ""
    assert s.rate_limits == {}
    assert not (tmp_path / "identity.key").exists()  # the keyring is built on demand only


def test_keyring_and_limits_from_values(tmp_path):
    s = load_rasa_settings({
        "CONCIERGE_IDENTITY_SECRET": SECRET,
        "CONCIERGE_RATE_SENDER_PER_MIN": "6", "CONCIERGE_RATE_SENDER_BURST": "2",
        "PATH": "/usr/bin",
    })
    assert s.keyring() == security.Keyring.of(SECRET)
    assert SECRET not in repr(s)
    assert set(s.rate_limits) == {"CONCIERGE_RATE_SENDER_PER_MIN", "CONCIERGE_RATE_SENDER_BURST"}
    limits = s.request_limits()
    assert (limits.sender.rate.per_minute, limits.sender.rate.burst) == (6, 2)
    generated = load_rasa_settings({"CONCIERGE_VAR_DIR": str(tmp_path)}).keyring()
    assert (tmp_path / "identity.key").is_file()
    assert load_rasa_settings({"CONCIERGE_VAR_DIR": str(tmp_path)}).keyring() == generated


def test_onnx_model_dir_follows_the_cached_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("CONCIERGE_ONNX_MODEL_DIR", str(tmp_path))
    get_rasa_settings.cache_clear()
    try:
        assert onnx_runtime.resolve_model_dir(None) == tmp_path
        assert onnx_runtime.resolve_model_dir(str(tmp_path / "x")) == tmp_path / "x"
    finally:
        get_rasa_settings.cache_clear()



def test_channel_options_and_bench_stats_come_from_the_settings(monkeypatch):
    """The messaging channels' environment fallbacks and the bench's call counter are read here, not
    by the channel modules: only the platforms' own prefixes are kept, and their secrets stay out of repr."""
    from concierge_rasa.channels.webhooks import setting

    env = {"TWILIO_AUTH_TOKEN": "tw-secret-value", "PATH": "/usr/bin", "CONCIERGE_BENCH_STATS": " /x "}
    s = load_rasa_settings(env)
    assert s.channel_env == {"TWILIO_AUTH_TOKEN": "tw-secret-value"}
    assert "tw-secret-value" not in repr(s) and s.bench_stats_path == "/x"
    monkeypatch.setenv("TELEGRAM_TOKEN", "from-env")
    assert setting({}, "access_token", "TELEGRAM_TOKEN") == "from-env"
    assert setting({"access_token": "from-credentials"}, "access_token", "TELEGRAM_TOKEN") == "from-credentials"
    with pytest.raises(ValueError):
        setting({}, "x", "PATH")  # not a channel option: a programming error, refused
