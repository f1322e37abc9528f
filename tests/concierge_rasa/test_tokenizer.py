"""HashedWhitespaceTokenizer: Rasa's tokens, with a one-hash fingerprint."""

from __future__ import annotations

from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.tokenizer import HashedToken, HashedWhitespaceTokenizer, ScriptTokenizer, has_han

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


def test_script_tokenizer_keeps_english_tokens_and_cuts_chinese_into_words():
    """English text is tokenized exactly as before (the English model must not change); Chinese
    text is cut into words with offsets into the original text, punctuation dropped, and Latin
    words or order numbers inside Chinese stay whole."""
    ours = ScriptTokenizer(ScriptTokenizer.get_default_config())
    rasa = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    for text in TEXTS:
        assert _spans(ours.process([Message(data={TEXT: text})])[0], "text_tokens") == _spans(
            rasa.process([Message(data={TEXT: text})])[0], "text_tokens"
        )
    text = "我的订单190003到哪了？快递一直没更新，能退款吗"
    tokens = ours.process([Message(data={TEXT: text})])[0].get("text_tokens")
    words = [t.text for t in tokens]
    assert "190003" in words and "订单" in words and "退款" in words
    assert "？" not in words and "，" not in words
    assert all(text[t.start : t.end] == t.text for t in tokens)
    assert all(type(t) is HashedToken for t in tokens)
    mixed = [t.text for t in ours.process([Message(data={TEXT: "opera浏览器打不开了"})])[0].get("text_tokens")]
    assert mixed[0] == "opera" and "浏览器" in mixed
    assert [t.text for t in ours.process([Message(data={TEXT: "？？！"})])[0].get("text_tokens")] == ["？？！"]


def test_has_han_tells_chinese_from_other_scripts():
    assert has_han("退款") and has_han("order 退款 pls")
    assert not has_han("refund please") and not has_han("Geld zurück") and not has_han("ありがとう") and not has_han("")
