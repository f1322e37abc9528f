"""One BLAS thread per serving Rasa process.

Why (issue 24): numpy's OpenBLAS ran every matrix product of a parse on two threads. The products
of one message are small (a 1,536-wide sentence vector against the classifier's weights and the
7,056 nearest-neighbour keys), so the second thread's start and hand-over cost more than it saved:
0.94 ms of CPU for the classifier's 1 x 1536 @ 1536 x 41 product against 0.01 ms on one thread,
4.0 against 2.4 ms for the neighbour search (a 2-core machine). A serving process answers many
conversations at once, so the cores are better used by them. Training (``rasa train``) keeps every
thread: only the channels, which exist when Rasa serves, call ``serve_on_one_blas_thread``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)
_limited = False


def serve_on_one_blas_thread() -> bool:
    """Limits BLAS (OpenBLAS/MKL, whichever numpy loaded) to one thread, once per process."""
    global _limited
    if _limited:
        return True
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the limit is a saving, not a requirement
        logger.warning("threadpoolctl is missing: BLAS keeps its threads")
        return False
    threadpool_limits(limits=1, user_api="blas")
    _limited = True
    return True
