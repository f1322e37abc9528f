"""The one text cleaner of both runtimes: customer messages (channels), agent replies (handoff),
ticket fields (tickets, feedback) and the sentiment model's input (bot/ml/serving.py).

Why one: each of those turned "whatever arrived" into bounded printable text with its own copy of
the same loop, and the copies had drifted (one kept DEL and lone surrogates, which a database
refuses to encode). Standard library only, so the Rasa runtime and ``bot`` both import it.

What differs between callers is a parameter, not a copy: the length rule (cut, cut with an
ellipsis, or none when the caller refuses long text itself), and for the model, format
characters counted as invisible and all whitespace folded to single spaces.
"""

from __future__ import annotations

import re
import unicodedata

#: Han (Chinese) characters, for character classes: CJK unified ideographs, extension A, compatibility ideographs
HAN_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
HAN = re.compile(f"[{HAN_CHARS}]")

CONTROL = frozenset({"Cc", "Cs", "Co", "Cn"})
"""Unicode categories dropped by default: controls, lone surrogates, private use, unassigned."""
INVISIBLE = CONTROL | {"Cf"}
"""Plus format characters (zero-width joiners, direction marks): for text read by a model."""
KEEP = "\n\t"


def clean_text(
    value: object,
    max_chars: int | None = None,
    *,
    ellipsis: str = "",
    drop: frozenset[str] = CONTROL,
    fold_whitespace: bool = False,
) -> str:
    """``value`` as printable text: characters of the ``drop`` categories removed (newline and tab
    kept), trimmed, at most ``max_chars`` characters.

    * None is ""; bytes are read as UTF-8 (bad bytes become U+FFFD); anything else is ``str()``.
    * With ``max_chars`` only the first ``2 * max_chars`` characters are read, so a huge input costs
      no more than a long one; longer text is cut, ending in ``ellipsis`` when one is given (also
      when only what was not read is missing).
    * ``fold_whitespace``: dropped characters become spaces and every run of whitespace (newlines
      too) one space, for text that is read word by word rather than shown.
    """
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", errors="replace")
    text = value if isinstance(value, str) else str(value)
    cut = max_chars is not None and len(text) > max_chars * 2
    if cut:
        text = text[: max_chars * 2]
    if fold_whitespace:
        text = " ".join("".join(" " if unicodedata.category(ch) in drop else ch for ch in text).split())
    else:
        text = "".join(ch for ch in text if ch in KEEP or unicodedata.category(ch) not in drop).strip()
    if max_chars is None or (len(text) <= max_chars and not (cut and ellipsis)):
        return text
    if ellipsis:
        return text[: max_chars - len(ellipsis)].rstrip() + ellipsis
    return text[:max_chars]
