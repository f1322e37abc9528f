"""Is a customer message junk (empty, gibberish, oversized, an injection probe)?

Why: a ticket promises a human reply, so it must come from something a person meant to say.
Before this check, an empty message followed by 20,000 "a"s, or an SQL-injection string, opened
a support ticket. The rules are deliberately conservative: a real complaint, however angry,
misspelt, short or full of punctuation, is not junk (tests/bot/services/test_junk.py holds a
labelled list both ways). Pure functions, no model: cheap enough to run on every escalation.
"""

from __future__ import annotations

import re
import unicodedata

#: longer than any message a person types into a chat box (a pasted email still fits)
MAX_GENUINE_CHARS = 3000

_RASA_PAYLOAD = re.compile(r"^/[a-z_]+(\{.*\})?$", re.S)  # a button's payload ("/contact_human_agent")
_INJECTION = [
    # SQL
    re.compile(r"('|\")\s*(or|and)\s+'?(\w+)'?\s*=\s*'?\3\b", re.I),  # ' OR 1=1 / ' or 'a'='a
    re.compile(r"\b(union\s+(all\s+)?select|select\s+[\w*,\s]+\s+from|insert\s+into|delete\s+from)\b", re.I),
    re.compile(r"\b(drop|truncate|alter)\s+(table|database|schema)\b", re.I),
    re.compile(r"(;|')\s*(--|#|/\*)|\bexec(\s|\()+(xp_|sp_)|\bsleep\s*\(\s*\d+\s*\)|\bwaitfor\s+delay\b", re.I),
    # HTML / script
    re.compile(r"<\s*/?\s*(script|iframe|object|embed|svg|img|body|style|link|meta|base|form)\b", re.I),
    re.compile(r"\bjavascript\s*:|\bon(error|load|click|mouseover|focus)\s*=|\bdocument\.(cookie|location)", re.I),
    # template / expression / lookup injection, path traversal, format strings, shell
    re.compile(r"\{\{.*\}\}|\$\{[^}]*\}|<%.*%>|#\{[^}]*\}", re.S),
    re.compile(r"(\.\./|\.\.\\){2,}|/etc/passwd|\bc:\\windows\b", re.I),
    re.compile(r"(%[0-9]*[snxp]){3,}", re.I),
    re.compile(r"(;|\||&&|`|\$\()\s*(rm|cat|curl|wget|nc|bash|sh|powershell)\b", re.I),
]
_WORD = re.compile(r"[^\W\d_]+", re.U)
_VOWELS = set("aeiouyàáâäãåèéêëìíîïòóôöõùúûüæœø")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{6,}", re.I)


def _control_ratio(text: str) -> float:
    controls = sum(1 for c in text if unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn") and c not in "\n\t\r")
    return controls / len(text)


def _plausible_word(word: str) -> bool:
    """A word a person might type: has a vowel, no six-consonant run, no five identical letters."""
    lower = word.lower()
    if not lower.isascii():
        return True  # other scripts: no vowel rules; judged by the other checks
    if len(lower) > 25:
        return False
    if len(lower) >= 4 and not any(c in _VOWELS for c in lower):
        return lower in {"hmm", "shh", "pfft", "brr", "grr", "nth", "html", "pdfs", "mrs", "tv", "dvds"}
    return not _CONSONANT_RUN.search(lower) and not re.search(r"(.)\1{4,}", lower)


def junk_reason(text: object) -> str | None:
    """Why ``text`` is junk ("empty", "oversized", "binary", "injection", "repetition", "gibberish"), or None."""
    if text is None:
        return "empty"
    value = str(text)
    stripped = value.strip()
    if not stripped:
        return "empty"
    if len(value) > MAX_GENUINE_CHARS:
        return "oversized"
    if _RASA_PAYLOAD.match(stripped):
        return None
    if "\x00" in value or _control_ratio(value) > 0.05:
        return "binary"
    if any(p.search(value) for p in _INJECTION):
        return "injection"
    compact = re.sub(r"\s+", "", stripped)
    if len(compact) >= 12 and len(set(compact.lower())) <= 2:
        return "repetition"  # "aaaaaaaaaaaa", "!?!?!?!?!?!?"
    if re.search(r"(.{1,8}?)\1{7,}", compact) and len(set(compact.lower())) <= 8:
        return "repetition"  # "lolololololol...", "asdasdasdasdasdasdasdasd"
    words = _WORD.findall(stripped)
    letters = sum(len(w) for w in words)
    if letters == 0:
        # digits alone can be an order or phone number; symbols and emoji alone are not a request
        return None if re.search(r"\d", stripped) else "gibberish"
    if letters / len(compact) < 0.35 and not re.search(r"\d{3,}", compact):
        return "gibberish"  # mostly symbols: "#$%^&*(!@ a"
    plausible = sum(len(w) for w in words if _plausible_word(w))
    if plausible / letters < 0.5:
        return "gibberish"  # keyboard mash: "asdkjfh qwrtzp lkjhgf"
    return None


def is_junk(text: object) -> bool:
    """True when ``text`` must never by itself open a ticket or reach an agent as a request."""
    return junk_reason(text) is not None
