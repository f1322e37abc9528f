"""bench/heldout/messages.yml, the held-out single-message set of issue 25: its shape, so it cannot rot.

Why: the set is only a test set while none of its messages is trained on and its labels are
intents the assistant has. The benchmark (bench/nlu_heldout.py, Rasa runtime) reports the
figures; these checks run in the action-server runtime without a model: at least 300 messages,
every domain intent covered, labels and styles known, no duplicates, no leak into nlu_data/.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parents[2]
MIN_MESSAGES = 300
MIN_PER_INTENT = 6


def load_bench() -> ModuleType:
    """bench/ is not a package: load the script by path (it imports neither Rasa nor TensorFlow at the top)."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location("nlu_heldout", ROOT / "bench" / "nlu_heldout.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


BENCH = load_bench()
HELDOUT = BENCH.load_set()
INTENTS = set(yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["intents"])


def test_at_least_300_messages_covering_every_domain_intent() -> None:
    counts = Counter(m.intent for m in HELDOUT.messages)
    assert len(HELDOUT.messages) >= MIN_MESSAGES
    assert set(counts) - INTENTS == set(), "labels that are not intents of domain.yml"
    thin = {i: counts.get(i, 0) for i in sorted(INTENTS) if counts.get(i, 0) < MIN_PER_INTENT}
    assert thin == {}, f"intents with fewer than {MIN_PER_INTENT} held-out messages"
    also = {i for m in HELDOUT.messages for i in m.also}
    assert also <= INTENTS, f"'also' names unknown intents: {sorted(also - INTENTS)}"
    assert all(m.multi for m in HELDOUT.messages if m.also), "'also' on a message not marked multi"
    flow = set(HELDOUT.same_flow) | {i for v in HELDOUT.same_flow.values() for i in v}
    assert flow <= INTENTS, f"same_flow names unknown intents: {sorted(flow - INTENTS)}"


def test_the_header_says_who_wrote_it_and_when() -> None:
    assert {"version", "written_by", "written_on"} <= set(HELDOUT.meta)
    header = (ROOT / "bench" / "heldout" / "messages.yml").read_text(encoding="utf-8").split("\nversion:")[0]
    assert "never used for training" in header


def test_no_message_repeats_within_the_set() -> None:
    seen = Counter(BENCH.normalise(m.text) for m in HELDOUT.messages)
    assert [text for text, n in seen.items() if n > 1] == []


def test_no_held_out_message_is_in_the_training_data() -> None:
    training = BENCH.training_examples(ROOT / "nlu_data")
    assert len(training) > 1000, "nlu_data was not read"
    assert BENCH.leaks(HELDOUT.messages, training) == [], (
        "held-out messages found in nlu_data: take them out of the training data (or retire them here)"
    )


def test_the_leak_check_finds_a_copy_whatever_its_case_spacing_punctuation_or_markup(tmp_path: Path) -> None:
    message = next(m for m in HELDOUT.messages if "190012" in m.text)
    copied = message.text.upper().replace(" ", "  ").replace("190012", "[#190012](order_number)") + "!"
    (tmp_path / "nlu").mkdir()
    (tmp_path / "nlu" / "x.yml").write_text(
        f'version: "3.1"\nnlu:\n- intent: {message.intent}\n  examples: |\n    - {copied}\n    - something else\n',
        encoding="utf-8",
    )
    assert BENCH.leaks(HELDOUT.messages, BENCH.training_examples(tmp_path)) == [message.text]


def test_styles_are_known_and_the_hard_cases_stay_in_the_set() -> None:
    unknown = {s for m in HELDOUT.messages for s in m.styles} - BENCH.HAND_STYLES
    assert unknown == set()
    styles = Counter(s for m in HELDOUT.messages for s in BENCH.all_styles(m))
    for style in ("slang", "typos", "short", "angry", "polite", "multi"):
        assert styles[style] >= 20, f"only {styles[style]} {style} messages"
    assert styles["run_on"] >= 10
    assert styles["order_number"] >= 30 and styles["email"] >= 5
