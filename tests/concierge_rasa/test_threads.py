"""A serving Rasa process multiplies matrices on one BLAS thread (concierge_rasa/threads.py)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from concierge_rasa.threads import serve_on_one_blas_thread


def test_blas_runs_on_one_thread_after_the_channels_ask_for_it() -> None:
    np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "numpy's BLAS not found"
    assert serve_on_one_blas_thread() and serve_on_one_blas_thread()  # idempotent
    assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
