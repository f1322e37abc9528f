"""Fixtures for the ML tests: small, fast, and never touching var/models."""

from __future__ import annotations

import pytest

NOUNS = {
    "negative": ["banana", "pineapple", "mango"],
    "neutral": ["bicycle", "scooter", "skateboard"],
    "positive": ["umbrella", "raincoat", "wellington boots"],
}
FRAMES = [
    "I have a question about the {n}",
    "my order had a {n} in it",
    "tell me more about the {n}",
    "the {n} arrived this morning",
    "is the {n} available in blue",
    "I saw a {n} on your website",
    "can I return the {n}",
    "where is my {n}",
]


@pytest.fixture(scope="session")
def planted_sentiment_data() -> tuple[list[str], list[str], list[str], list[str]]:
    """Labels planted on an arbitrary feature (the product noun), unrelated to real sentiment:
    only a model that learns from the data can get it right. Last two frames are held out."""
    train_x, train_y, test_x, test_y = [], [], [], []
    for label, nouns in NOUNS.items():
        for n in nouns:
            for k, frame in enumerate(FRAMES):
                (test_x if k >= 6 else train_x).append(frame.format(n=n))
                (test_y if k >= 6 else train_y).append(label)
    return train_x, train_y, test_x, test_y


@pytest.fixture(scope="session")
def head_model(planted_sentiment_data):  # noqa: ANN001, ANN201
    from bot.ml.sentiment import SentimentModel

    train_x, train_y, _, _ = planted_sentiment_data
    return SentimentModel(mode="head").fit(train_x, train_y, epochs=0, progress=None, head_epochs=20)
