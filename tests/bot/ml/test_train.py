"""bot/ml/train.py's command line: what `make run` shows when the models are already there."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.ml.base import META_FILE
from bot.ml.train import ROOT


def test_if_missing_with_every_model_present_says_nothing_to_train(tmp_path: Path) -> None:
    for name in ("sentiment", "recommender"):
        (tmp_path / name).mkdir()
        (tmp_path / name / META_FILE).write_text("{}")
    env = {**os.environ, "CONCIERGE_MODELS_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.ml.train", "--if-missing"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "nothing to train: every requested model is already present (--if-missing)"
    assert "sentiment: present at" in proc.stderr and "recommender: present at" in proc.stderr
    # nothing was written next to the markers
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["sentiment", "recommender", META_FILE, META_FILE])
