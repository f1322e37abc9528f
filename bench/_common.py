"""Shared helpers for benchmark scripts (not tests): paths, progress, percentiles, JSON line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def default_data_dir() -> Path:
    return Path(os.environ.get("DATA") or ROOT.parent / "shared" / "data")


def say(msg: str) -> None:
    """Progress line on stderr (stdout ends with the one JSON line)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile_ms(samples_s: list[float], q: float) -> float:
    import numpy as np

    return round(float(np.percentile(np.asarray(samples_s) * 1000.0, q)), 3)


def limit_threads(n: int = 2) -> None:
    """Benchmarks run on the 2-core target machine: pin BLAS/torch threads."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def emit(result: dict) -> None:
    """Print the final JSON object as the last line of stdout."""
    print(json.dumps(result, sort_keys=False), flush=True)
