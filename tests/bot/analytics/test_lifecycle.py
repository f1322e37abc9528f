"""Lifecycle: the rules in one place, and the counts over time."""

import pytest

from bot.analytics import lifecycle
from bot.analytics.config import CONFIG
from bot.db import models as m


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((None, 0, None, 30, None), "new"),  # signed up, nothing bought yet
        ((None, 0, None, 400, None), "lapsed"),  # signed up long ago, never bought
        ((5, 1, 5, 5, None), "new"),  # first purchase this month
        ((10, 8, 500, 500, 20), "active"),
        ((10, 8, 500, 500, 20, 0.9), "at_risk"),  # recent, but the model expects them to leave
        ((120, 8, 500, 500, 20), "at_risk"),  # quieter than usual
        ((200, 8, 500, 500, 20), "lapsed"),
        ((10, 5, 600, 600, 250), "won_back"),  # back after a long gap
    ],
)
def test_rules(args, expected):
    assert lifecycle.stage(*args) == expected


def test_thresholds_come_from_config():
    c = CONFIG.lifecycle
    assert lifecycle.stage(c.lapsed_days - 1, 3, 400, 400, 10) == "at_risk"
    assert lifecycle.stage(c.lapsed_days, 3, 400, 400, 10) == "lapsed"


def test_counts_over_time_cover_every_customer(analyzed, analyzed_session):
    history = lifecycle.stage_counts_over_time(analyzed_session, analyzed.report.computed_at, periods=6)
    assert len(history) == 6 and history[0].at < history[-1].at
    active = analyzed_session.query(m.Customer).filter_by(status="active").count()
    assert sum(history[-1].counts.values()) == active
    assert set(history[-1].counts) == set(m.LIFECYCLE_STAGES)
    stored = {s: 0 for s in m.LIFECYCLE_STAGES}
    for row in analyzed_session.query(m.CustomerAnalytics):
        stored[row.lifecycle_stage] += 1
    assert stored == analyzed.report.lifecycle
    assert (analyzed.var_dir / "analytics" / "lifecycle.png").stat().st_size > 10_000
