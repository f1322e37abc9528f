"""FAQ answers from ``bot/content/faq.yml`` (the one editable source)."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from bot.settings import get_settings

GENERIC_ANSWER = (
    "I'm not sure about that one, but our customer service team can help: write to "
    "support@concierge-shop.example or ask me to connect you with a human agent."
)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must map topics to answers")
    answers = data.get("answers", data)
    return {str(k): " ".join(str(v).split()) for k, v in answers.items() if v}


def load_faq(path: str | Path | None = None) -> dict[str, str]:
    """Topic -> answer (cached per path; whitespace normalised)."""
    if path is None:
        path = get_settings().faq_path
    return dict(_load(str(Path(path).resolve())))


def answer(topic: str | None) -> str:
    """The answer for ``topic``; a generic helpful answer for unknown topics (never KeyError)."""
    if not isinstance(topic, str):
        return GENERIC_ANSWER
    return load_faq().get(topic.strip(), GENERIC_ANSWER)


load_faq.cache_clear = _load.cache_clear  # type: ignore[attr-defined]
