"""Feedback topics: spaCy aspects, grouped by the sentence encoder, queried for a date range."""

from datetime import timedelta

from sqlalchemy import select

from bot.analytics import topics
from bot.db import models as m


def _aspects(text, products=frozenset()):
    return topics.aspects(topics.nlp()(text), products)


def test_aspects_from_the_parse():
    assert [a.phrase for a in _aspects("My parcel is 5 days late and nobody answers.")] == ["late parcel"]
    assert "crushed box" in [a.phrase for a in _aspects("The lens arrived fine but the box was crushed.")]
    assert [a.phrase for a in _aspects("Received a damaged tripod.", frozenset({"tripod"}))] == ["damaged item"]
    assert [a.phrase for a in _aspects("Slow refund, still nothing on my card.")][0] == "slow refund"
    assert _aspects("") == [] and _aspects("!!!") == []


def test_encoder_groups_by_meaning():
    phrases = ["late delivery", "late parcel", "late package", "damaged item", "broken item", "crushed box"]
    labels = topics.cluster(phrases)
    assert labels[0] == labels[1] == labels[2]
    assert labels[3] != labels[0] and labels[5] != labels[0]


def test_extract_names_topics_and_keeps_sources(session):
    now = max(session.scalars(select(m.SupportTicket.created_at))) + timedelta(seconds=1)
    texts = topics.collect(session, now - timedelta(days=800), now)
    assert {t.source for t in texts} >= {"ticket", "csat"}
    assert len({(t.sender_id, t.text) for t in texts}) == len(texts)
    result = topics.extract(texts, now, products=topics.product_words(session))
    assert result.mentions and sum(result.topics.values()) == len(result.mentions)
    names = set(result.topics)
    assert any("late" in n for n in names) and any("refund" in n for n in names)


def test_huge_and_hostile_text_is_bounded(session):
    now = max(session.scalars(select(m.SupportTicket.created_at))) + timedelta(seconds=1)
    src = topics.SourceText("ticket", 1, "c", None, None, "<script>alert(1)</script> late parcel " * 5000, now)
    result = topics.extract([src], now)
    assert all(len(r["quote"]) <= topics.QUOTE_CHARS for r in result.mentions)


def test_top_topics_for_a_date_range(analyzed, analyzed_session):
    s = analyzed_session
    end = analyzed.report.computed_at
    top = topics.top_topics(s, end - timedelta(days=365), end, limit=5, examples=2)
    assert top and [t.mentions for t in top] == sorted((t.mentions for t in top), reverse=True)
    conversations = set(s.scalars(select(m.SupportTicket.sender_id))) | set(
        s.scalars(select(m.Feedback.sender_id))
    ) | set(s.scalars(select(m.Interaction.sender_id)))
    for t in top:
        assert sum(t.weekly) == t.mentions and 1 <= len(t.examples) <= 2
        assert set(t.sender_ids) <= conversations  # a topic links to real conversations
        assert t.trend_pct is None or t.previous > 0
    assert (analyzed.var_dir / "analytics" / "topics.png").stat().st_size > 5_000
