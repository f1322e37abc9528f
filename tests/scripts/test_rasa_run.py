"""scripts/rasa_run.py: Rasa's HTTP API token reaches Rasa without appearing in the process list."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.stack import ROOT, free_port

RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"
# starts with "-" as 1 in 64 generated tokens do (scripts/action_token.sh): given as two arguments,
# "--auth-token -...", Rasa's argument parser took it for an option and refused to start
TOKEN = "-rasa-run-test-token-0123456789abcdef"


def load():  # noqa: ANN201 - scripts/ is not a package
    spec = importlib.util.spec_from_file_location("rasa_run", ROOT / "scripts" / "rasa_run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_token_is_added_only_with_the_api_and_never_taken_from_argv() -> None:
    rasa_argv = load().rasa_argv
    assert rasa_argv(["run", "--port", "5005"], {"RASA_API_TOKEN": TOKEN}) == ["run", "--port", "5005"]
    assert rasa_argv(["run", "--enable-api"], {"RASA_API_TOKEN": f" {TOKEN}\n"}) == [
        "run",
        "--enable-api",
        f"--auth-token={TOKEN}",
    ]
    for bad_env in ({}, {"RASA_API_TOKEN": "  "}):
        with pytest.raises(SystemExit, match="needs RASA_API_TOKEN"):
            rasa_argv(["run", "--enable-api"], bad_env)
    for argv in (["run", "--auth-token", "x"], ["run", "-t", "x"], ["run", "--auth-token=x"]):
        with pytest.raises(SystemExit, match="not on the command line"):
            rasa_argv(argv, {"RASA_API_TOKEN": TOKEN})


def test_a_real_rasa_server_takes_the_token_that_ps_does_not_show(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RASA_API_TOKEN": TOKEN, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "rasa.log"
    with log.open("w") as out:
        # no model (the API still starts): this is about the token, not the bot
        proc = subprocess.Popen(
            [
                str(RASA_PY),
                str(ROOT / "scripts" / "rasa_run.py"),
                "run",
                "--enable-api",
                "-i",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "Rasa did not start in 180 s"
            try:
                if requests.get(f"{base}/version", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert b"--enable-api" in cmdline and TOKEN.encode() not in cmdline
        assert requests.get(f"{base}/status", timeout=10).status_code == 401
        assert requests.get(f"{base}/status", params={"token": TOKEN[:-1]}, timeout=10).status_code == 401
        # the right token passes the auth check: Rasa then answers that no model is loaded (409), not a
        # refusal and not an error
        authorised = requests.get(f"{base}/status", params={"token": TOKEN}, timeout=10)
        assert authorised.status_code == 409, (authorised.status_code, authorised.text)
        assert "no agent loaded" in authorised.json()["message"].lower(), authorised.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
