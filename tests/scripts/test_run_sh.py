"""scripts/run.sh (what `make run` starts): a SIGTERM or Ctrl-C is a clean stop with exit status 0.

Before, a SIGTERM left the script with the signal's status (143) and make printed
"make: *** [Makefile: run] Error 143" after "Stopped.". Real servers, free ports, a temporary var dir.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.stack import MODEL, PORT_ATTEMPTS, ROOT, free_port, listens_on

pytestmark = pytest.mark.e2e


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def kill_group(proc: subprocess.Popen) -> None:
    """Kills what is left of run.sh's process group (a failed start, a test that failed midway)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=30)


@pytest.mark.parametrize("how", ["SIGTERM to run.sh", "SIGINT to the process group (Ctrl-C)"])
def test_a_signal_stops_every_server_and_exits_0(tmp_path: Path, how: str) -> None:
    var = tmp_path / "var"
    env = {
        **os.environ,
        "CONCIERGE_VAR_DIR": str(var),
        "CONCIERGE_MODELS_DIR": str(ROOT / "var" / "models"),
        "MODEL": str(Path(os.environ.get("CONCIERGE_TEST_MODEL") or MODEL)),
    }
    env.pop("RASA_API_TOKEN", None)
    for step in (["-m", "bot.db.migrate"], ["-m", "bot.seed", "--if-empty"]):
        subprocess.run([sys.executable, *step], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    out = tmp_path / "run.out"
    proc = None
    try:
        for _ in range(PORT_ATTEMPTS):  # a candidate port another process took first: again on new ones
            ports = {"RASA_PORT": free_port(), "ACTION_PORT": free_port(), "WEB_PORT": free_port()}
            env.update({k: str(v) for k, v in ports.items()})
            with out.open("w") as sink:
                proc = subprocess.Popen(["scripts/run.sh"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            deadline = time.monotonic() + 300
            while "Concierge is running" not in out.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, "not up in 300 s"
                time.sleep(1)
            if proc.poll() is None or "address already in use" not in out.read_text().lower():
                break
            kill_group(proc)
        assert proc.poll() is None, out.read_text()[-3000:]
        assert all(listens_on(proc.pid, p) for p in ports.values())  # run.sh's servers hold them
        if how.startswith("SIGTERM"):
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        if proc is not None and proc.poll() is None:  # failed midway (a clean stop is checked below)
            kill_group(proc)
    text = out.read_text()
    assert rc == 0, text[-2000:]
    assert text.rstrip().endswith("Stopped."), text[-2000:]
    assert not any(listening(p) for p in ports.values())
    with pytest.raises(ProcessLookupError):  # nothing of the group is left
        os.killpg(proc.pid, 0)
