"""HashedWhitespaceTokenizer: Rasa's tokens, with a one-hash fingerprint."""

from __future__ import annotations

from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.tokenizer import HashedToken, HashedWhitespaceTokenizer

TEXTS = ["where is my order #104233?", "Ich möchte mein Geld zurück 🙂", "  ", "refund_please now", "a" * 5000]


def _spans(message: Message, name: str) -> list[tuple[str, int, int, str]]:
    return [(t.text, t.start, t.end, t.lemma) for t in message.get(name) or []]


def test_same_tokens_as_rasa_at_training_and_parse_time():
    ours = HashedWhitespaceTokenizer(HashedWhitespaceTokenizer.get_default_config())
    rasa = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    a = TrainingData([Message(data={TEXT: t, INTENT: "track_order"}) for t in TEXTS])
    b = TrainingData([Message(data={TEXT: t, INTENT: "track_order"}) for t in TEXTS])
    ours.process_training_data(a)
    rasa.process_training_data(b)
    assert _spans(a.training_examples[0], "text_tokens")
    for x, y in zip(a.training_examples, b.training_examples, strict=True):
        for name in ("text_tokens", "intent_tokens"):
            assert _spans(x, name) == _spans(y, name)
            assert all(type(t) is HashedToken for t in x.get(name) or [])
    parsed = ours.process([Message(data={TEXT: t}) for t in TEXTS])
    expected = rasa.process([Message(data={TEXT: t}) for t in TEXTS])
    for x, y in zip(parsed, expected, strict=True):
        assert _spans(x, "text_tokens") == _spans(y, "text_tokens")
        assert all(type(t) is HashedToken for t in x.get("text_tokens") or [])


def test_fingerprint_follows_content():
    base = HashedToken("order", 12, 17)
    assert base.fingerprint() == HashedToken("order", 12, 17).fingerprint()
    assert HashedToken("order", 13, 18).fingerprint() != base.fingerprint()
    assert HashedToken("Order", 12, 17).fingerprint() != base.fingerprint()
    assert HashedToken("order", 12, 17, lemma="ord").fingerprint() != base.fingerprint()
    with_data = HashedToken("order", 12, 17, data={"pattern": {"x": 1}})
    assert with_data.fingerprint() == Token("order", 12, 17, data={"pattern": {"x": 1}}).fingerprint()
    assert with_data.fingerprint() != HashedToken("order", 12, 17, data={"pattern": {"x": 2}}).fingerprint()
