"""Checks on the Rasa training and test data that `rasa data validate` does not make."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

from tests.requirements import require_file

ROOT = Path(__file__).resolve().parents[1]
BITEXT = (
    ROOT.parent / "shared" / "data" / "bitext_customer_support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
)


def plain(text: str) -> str:
    return " ".join(re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text).lower().split())


def training_examples() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "nlu_data" / "nlu").glob("*.yml")):
        for item in yaml.safe_load(path.read_text()).get("nlu", []):
            if "intent" in item:
                out += [(item["intent"], line.strip()[2:]) for line in item["examples"].splitlines()
                        if line.strip().startswith("- ")]
    return out


def test_every_domain_intent_has_at_least_40_varied_examples() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    counts = Counter(intent for intent, _ in training_examples())
    thin = {i: counts.get(i, 0) for i in domain["intents"] if counts.get(i, 0) < 40}
    assert not thin, f"intents with fewer than 40 examples: {thin}"


def test_training_examples_are_unique() -> None:
    seen = Counter(plain(text) for _, text in training_examples())
    assert [t for t, n in seen.items() if n > 1] == []


def test_test_stories_do_not_leak_into_training_data() -> None:
    train = {plain(text) for _, text in training_examples()}
    leaked = []
    for path in (ROOT / "tests" / "stories").glob("*.yml"):
        for story in yaml.safe_load(path.read_text())["stories"]:
            leaked += [s["user"] for s in story["steps"] if "user" in s and plain(s["user"]) in train]
    assert leaked == []


def test_no_bitext_sentence_in_training_data() -> None:
    require_file(BITEXT, "the Bitext evaluation set", "It lives in ../shared/data beside the clone")
    with BITEXT.open(newline="", encoding="utf-8") as fh:
        bitext = {plain(row["instruction"]) for row in csv.DictReader(fh)}
    overlap = [text for _, text in training_examples() if plain(text) in bitext]
    assert overlap == [], f"{len(overlap)} training examples are Bitext sentences"


def test_digression_rules_are_generated_from_the_script() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_digression_rules.py"), "--check"])
    assert result.returncode == 0, "run: python scripts/gen_digression_rules.py"


def test_generated_variants_are_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_nlu_variants.py"), "--check"])
    assert result.returncode == 0, "run: python scripts/gen_nlu_variants.py"


def test_order_number_regex_skips_refund_and_ticket_numbers() -> None:
    regexes = {item["regex"]: item["examples"] for item in
               yaml.safe_load((ROOT / "nlu_data" / "nlu" / "regex.yml").read_text())["nlu"] if "regex" in item}
    pattern = re.compile(regexes["order_number"].strip()[2:])
    assert [m.group() for m in pattern.finditer("order #104233 and 190001, refund RF-104398, TK-700001")] == [
        "#104233", "190001"]
