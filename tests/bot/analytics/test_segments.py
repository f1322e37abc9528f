"""Segments: k by elbow + silhouette, deterministic assignment, names from centroids."""

import numpy as np

from bot.analytics import features
from bot.analytics.segments import SEGMENT_FEATURES, SegmentModel, elbow_point, segment_matrix
from bot.db.base import utcnow


def test_elbow_point():
    assert elbow_point([2, 3, 4, 5, 6, 7], [100, 30, 25, 22, 20, 19]) == 3
    assert elbow_point([2, 3, 4, 5, 6, 7], [100, 60, 25, 22, 20, 19]) == 4
    assert elbow_point([2, 3, 4, 5], [10, 9, 8, 7]) in (2, 3, 4, 5)


def test_three_clear_groups_give_three_segments_with_telling_names():
    rng = np.random.default_rng(3)
    n = 60

    def group(recency, freq, money, complaints, csat, neg):
        return np.column_stack([
            rng.normal(recency, recency * 0.1, n).clip(1), rng.normal(freq, freq * 0.1, n).clip(1),
            rng.normal(money, money * 0.1, n).clip(1), np.full(n, money / max(freq, 1)),
            np.full(n, 0.02), np.full(n, complaints), rng.normal(csat, 0.05, n), np.full(n, neg),
        ])

    x = np.vstack([group(10, 40, 20000, 0, 4.8, 0.0), group(300, 3, 300, 0, 4.0, 0.1), group(40, 6, 900, 6, 1.5, 0.9)])
    model = SegmentModel().fit(x)
    assert model.k_choice.chosen == 3
    labels = model.predict(x)
    assert len(set(labels[:n])) == len(set(labels[n:2 * n])) == len(set(labels[2 * n:])) == 1
    names = {model.names[labels[0]], model.names[labels[n]], model.names[labels[2 * n]]}
    assert model.names[labels[0]] == "loyal big spenders"
    assert model.names[labels[n]].startswith("lapsed")
    assert model.names[labels[2 * n]].startswith("unhappy")
    assert len(names) == 3


def test_deterministic_on_the_seeded_shop(session, tmp_path):
    x = segment_matrix(features.compute(session, utcnow()))
    a, b = SegmentModel().fit(x), SegmentModel().fit(x)
    assert a.names == b.names
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    loaded = SegmentModel.load(a.save(tmp_path / "seg"))
    np.testing.assert_array_equal(loaded.predict(x), a.predict(x))
    assert loaded.names == a.names and len(set(a.names)) == len(a.names)
    assert 3 <= a.k_choice.chosen <= 8 and abs(a.k_choice.chosen - a.k_choice.elbow) <= 1
    assert x.shape[1] == len(SEGMENT_FEATURES)


def test_stored_segments_and_plots(analyzed, analyzed_session):
    from bot.analytics.reports import segment_summary

    rows = segment_summary(analyzed_session)
    assert sum(r.customers for r in rows) == analyzed.report.customers
    assert abs(sum(r.share for r in rows) - 1) < 1e-9
    assert [r.mean_expected_value_12m for r in rows] == sorted((r.mean_expected_value_12m for r in rows), reverse=True)
    for png in ("segments.png", "segments_k.png"):
        assert (analyzed.var_dir / "analytics" / png).stat().st_size > 10_000
