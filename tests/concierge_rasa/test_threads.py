"""A serving Rasa process multiplies matrices on one BLAS thread (concierge_rasa/threads.py)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from concierge_rasa import threads
from concierge_rasa.threads import serve_on_one_blas_thread


def test_blas_runs_on_one_thread_after_the_channels_ask_for_it(monkeypatch) -> None:
    import scipy.linalg  # noqa: F401 - scipy's own BLAS too, as in the server (sklearn loads it)

    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded
    monkeypatch.setattr(threads, "_limited", False)  # whatever an earlier test's channel did
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy's BLAS not found"
    assert serve_on_one_blas_thread() and serve_on_one_blas_thread()  # idempotent
    assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
