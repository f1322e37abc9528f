"""FAQ answers from ``bot/content/faq.yml`` (the one editable source), and its Chinese variation
``faq.zh.yml`` beside it (the same topics) for conversations in Chinese."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from bot.settings import get_settings

GENERIC_ANSWER = (
    "I'm not sure about that one, but our customer service team can help: write to "
    "support@concierge-shop.example or ask me to connect you with a human agent."
)
GENERIC_ANSWER_ZH = "这个问题我不太确定，可以发邮件到 support@concierge-shop.example 联系客服，或者跟我说“转人工”。"


@functools.lru_cache(maxsize=8)
def _load(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must map topics to answers")
    answers = data.get("answers", data)
    return {str(k): _one_line(str(v)) for k, v in answers.items() if v}


_CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _one_line(text: str) -> str:
    """Whitespace normalised; a line break between two Chinese characters joins without a space."""
    return _CJK_GAP.sub("", " ".join(text.split()))


def load_faq(path: str | Path | None = None) -> dict[str, str]:
    """Topic -> answer (cached per path; whitespace normalised)."""
    if path is None:
        path = get_settings().faq_path
    return dict(_load(str(Path(path).resolve())))


def translated_path(path: Path, language: str) -> Path:
    """``faq.yml`` -> ``faq.zh.yml``: a language's variation lives beside the English file."""
    return path.with_name(f"{path.stem}.{language}{path.suffix}")


def answer(topic: str | None, language: str = "en") -> str:
    """The answer for ``topic`` in ``language`` (English where the variation lacks it); a generic
    helpful answer for unknown topics (never KeyError)."""
    generic = GENERIC_ANSWER_ZH if language == "zh" else GENERIC_ANSWER
    if not isinstance(topic, str):
        return generic
    if language == "zh":
        zh = translated_path(get_settings().faq_path, "zh")
        found = load_faq(zh).get(topic.strip()) if zh.is_file() else None
        if found:
            return found
    return load_faq().get(topic.strip(), generic)


load_faq.cache_clear = _load.cache_clear  # type: ignore[attr-defined]
