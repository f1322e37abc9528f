"""bench/locust_production.py's users, with every request appended to a JSON-lines log (bench/scale.py).

Why: bench/scale.py needs each turn's end time, not only Locust's summary, to count the errors
customers saw during a fault and the seconds until turns succeeded again, and the p50/p95 of turns
alone (Locust's aggregate row mixes in socket.io connections). Each line: [end time (epoch s),
request name, milliseconds, error or null]. The log is CONCIERGE_SCALE_LOG.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from locust import events

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from locust_production import RestCustomer, WidgetCustomer  # noqa: E402, F401 - Locust collects the users here

_LOG = open(os.environ["CONCIERGE_SCALE_LOG"], "a", buffering=1)  # noqa: SIM115 - one file for the whole run


@events.request.add_listener
def log_request(name: str, response_time: float, exception: Exception | None = None, **_: Any) -> None:
    """One line per request, flushed at once (bench/scale.py reads the file while Locust runs)."""
    _LOG.write(json.dumps([round(time.time(), 3), name, round(response_time, 1),
                           None if exception is None else str(exception)[:200]]) + "\n")
