"""Chinese feedback aspects, named in the words of the English topics."""

from datetime import datetime

from bot.analytics import topics, topics_zh


def phrases(text: str, products: frozenset[str] = frozenset()) -> list[str]:
    return [a.phrase for a in topics_zh.aspects(text, products)]


def test_opinions_attach_to_the_nearest_noun_of_their_clause():
    assert phrases("快递太慢了，等了一个星期") == ["slow delivery"]
    assert phrases("包装盒子压坏了") == ["damaged box"]
    assert phrases("退款迟迟不到账，客服也不回") == ["late refund", "unresponsive support"]
    assert phrases("耳机坏了", frozenset({"耳机"})) == ["damaged item"]  # a product word stands for "item"


def test_plain_nouns_without_opinions_and_nothing_without_nouns():
    assert phrases("想问一下发票的事") == ["invoice"]
    assert phrases("气死了！！！") == [] and phrases("") == []
    assert topics_zh.is_chinese("快递") and not topics_zh.is_chinese("late parcel")


def test_the_lookup_table_gives_the_product_words():
    words = topics.chinese_product_words()
    assert {"耳机", "咖啡机"} <= words


def test_chinese_and_english_feedback_share_the_topics():
    now = datetime(2026, 12, 1)
    texts = [
        topics.SourceText("ticket", i, f"s{i}", None, None, text, now)
        for i, text in enumerate(["快递太慢了", "物流好慢啊，一周了", "the delivery is so slow", "very slow delivery"])
    ]
    result = topics.extract(texts, now, embed=lambda ps: [[1.0, 0.0]] * len(ps))  # one group, whatever the words
    assert result.topics == {"slow delivery": 4}
    assert {m["quote"] for m in result.mentions} >= {"快递太慢了", "物流好慢啊，一周了"}
