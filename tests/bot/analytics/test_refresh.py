"""The refresh command and what the assistant and the 360 panel read from it."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.analytics import reports, serving
from bot.analytics.__main__ import main
from bot.db import models as m
from bot.db.base import utcnow
from bot.services import recommendations


def test_one_row_per_active_customer_and_a_summary(analyzed, analyzed_session, analytics_env):
    s = analyzed_session
    active = s.scalar(select(func.count()).select_from(m.Customer).where(m.Customer.status == "active"))
    assert s.scalar(select(func.count()).select_from(m.CustomerAnalytics)) == active == analyzed.report.customers
    summary = json.loads((analyzed.var_dir / "analytics" / "summary.json").read_text())
    assert summary["segments"]["k"] >= 3 and 0 <= summary["churn"]["auc"] <= 1
    assert all(p.endswith(".png") for p in summary["plots"])
    for name in ("churn", "clv", "segments"):
        assert (analyzed.var_dir / "models" / "analytics" / name / "meta.json").is_file()
    assert not list((analyzed.var_dir / "models").rglob("*.pkl"))
    assert reports.run_summary()["customers"] == active


def test_customer_view_stored_and_scored_on_the_spot(analyzed_session, analytics_env):
    s = analyzed_session
    view = reports.customer_view(s, 1)
    assert view is not None and view.stored and view.segment and view.lifecycle_label
    assert reports.customer_view(s, -1) is None and reports.customer_view(s, 10**9) is None
    new = m.Customer(name="Nora New", email="nora.new@example.com", tier="gold", status="active",
                     created_at=utcnow() - timedelta(days=3))
    s.add(new)
    s.flush()
    s.add(m.Order(number="999999", customer_id=new.id, status="delivered", total=Decimal("80.00"),
                  created_at=utcnow() - timedelta(days=2)))
    s.flush()
    fresh = reports.customer_view(s, new.id)
    assert fresh is not None and not fresh.stored
    assert fresh.lifecycle_stage == "new" and 0 <= fresh.churn_risk <= 1 and fresh.expected_value_12m >= 0
    assert fresh.segment in serving.segment_model().names


def test_little_history_gets_the_segment_s_best_sellers(analyzed_session, analytics_env):
    s = analyzed_session
    light = s.scalars(
        select(m.CustomerAnalytics.customer_id).where(m.CustomerAnalytics.frequency.between(1, 2))
    ).first()
    heavy = s.scalars(select(m.CustomerAnalytics.customer_id).where(m.CustomerAnalytics.frequency >= 8)).first()
    assert light is not None and heavy is not None
    segment = s.get(m.CustomerAnalytics, light).segment
    recs = recommendations.recommend_for_customer(s, light, k=5)
    assert recs and recs[0].reason == f"popular with {segment}"
    owned = set(s.scalars(select(m.OrderItem.product_id).join(m.Order).where(m.Order.customer_id == light)))
    consumable = {p.id for p in s.scalars(select(m.Product).where(m.Product.consumable.is_(True)))}
    assert not ({r.product_id for r in recs} & (owned - consumable))  # business rules still apply
    assert all(not r.reason.startswith("popular with") for r in recommendations.recommend_for_customer(s, heavy, k=5))


def test_cli_if_missing_and_clear_errors(analyzed, analytics_env, capsys, tmp_path):
    assert main(["--url", analyzed.url, "--if-missing"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    for extra, status in (([], 1), (["--if-missing"], 0)):  # make run goes on without analytics
        assert main(["--url", empty, *extra]) == status
        err = capsys.readouterr().err
        assert "make migrate" in err and "Traceback" not in err


@pytest.mark.parametrize("periods", [1, 3])
def test_lifecycle_history_report(analyzed_session, periods):
    out = reports.lifecycle_history(analyzed_session, periods=periods)
    assert len(out) == periods
