"""Held-out single-message benchmark (not a test): the trained assistant's NLU on messages nobody tuned for.

    PYTHONPATH=. .venv-rasa/bin/python bench/nlu_heldout.py [--model models/concierge.tar.gz]

Why: bench/nlu.py measures the assistant on an 80/20 split of its own data and on Bitext, a
development set (its misses were read to write training data). ``bench/heldout/messages.yml``
is a hand-written set of single customer messages (slang, typos, run-ons, several requests in one)
that is never used for training (issue 25, target >= 97% intent accuracy). This script parses
every message through the trained model with Rasa's Agent (bench/nlu.py's ``parse_all``) and
prints accuracy overall, per intent, per style, and the confusions and misses.

Baseline, measured in the same run with the same model: a seeded sample of the model's own
training examples (``--baseline-per-intent`` per intent), i.e. how well it does on text it has
seen; the gap to the held-out figure is what new wording costs. The issue's target line is
printed beside the figure.

Figures: ``accuracy`` is Rasa's final intent (after FallbackClassifier, so ``nlu_fallback`` is a
miss), what the customer gets; ``accuracy_without_fallback`` the classifier's top intent;
``accuracy_same_flow`` also accepts the intents the dialogue handles with the same flow
(``same_flow`` in the set's file). A held-out message that also appears in the training data is
reported as a leak (tests/bench/test_heldout_set.py fails on it).

Progress goes to stderr; the last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, emit, say  # noqa: E402

HELDOUT_SET = ROOT / "bench" / "heldout" / "messages.yml"
DEFAULT_MODEL = ROOT / "models" / "concierge.tar.gz"
TRAINING_DIR = ROOT / "nlu_data"
TARGET = 97.0
# hand-tagged styles (messages.yml); the computed ones are added by auto_styles()
HAND_STYLES = frozenset({"plain", "slang", "typos", "run_on", "polite", "formal", "angry", "caps", "short"})
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")
_ORDER_NUMBER = re.compile(r"(?<![\d-])#?\d{6}(?!\d)")  # not RF-/TK-/INV- numbers
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class HeldOut:
    """One labelled message of the held-out set."""

    text: str
    intent: str
    styles: tuple[str, ...]
    multi: bool = False
    also: tuple[str, ...] = ()  # a multi message's other requests (intents)


@dataclass(frozen=True)
class HeldOutSet:
    """The set's messages and its same-flow table (gold intent -> other intents that are accepted)."""

    messages: list[HeldOut]
    same_flow: dict[str, list[str]]
    meta: dict[str, Any]


# ---------------------------------------------------------------------------- the set (no Rasa needed)
def load_set(path: Path = HELDOUT_SET) -> HeldOutSet:
    """Reads messages.yml (intent -> list of {text, styles, multi}); raises on a malformed entry."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    messages = []
    for intent, entries in (raw.get("messages") or {}).items():
        for entry in entries or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
                raise ValueError(f"{path}: malformed entry under {intent!r}: {entry!r}")
            styles = tuple(entry.get("styles") or ("plain",))
            also = tuple(entry.get("also") or ())
            messages.append(HeldOut(entry["text"], str(intent), styles, bool(entry.get("multi", False)), also))
    meta = {k: v for k, v in raw.items() if k not in ("messages", "same_flow")}
    return HeldOutSet(messages, {k: list(v) for k, v in (raw.get("same_flow") or {}).items()}, meta)


def normalise(text: str) -> str:
    """What counts as the same message: entity markup dropped, case, punctuation and spacing ignored."""
    plain = _ANNOTATION.sub(r"\1", text).lower()
    return " ".join(re.sub(r"[^\w\s]", "", plain).split())


def _example_lines(block: str) -> Iterable[str]:
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("- "):
            yield line[2:]


def training_examples(folder: Path = TRAINING_DIR) -> list[tuple[str, str]]:
    """(text, intent) of every example in the training data (all YAML under ``folder``: NLU examples,
    lookup/regex/synonym entries, and any ``user:`` text of stories and rules); intent "" where none."""
    out: list[tuple[str, str]] = []
    for path in sorted(folder.rglob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu") or []:
            if isinstance(item, dict) and isinstance(item.get("examples"), str):
                out += [(text, str(item.get("intent") or "")) for text in _example_lines(item["examples"])]
        for key in ("stories", "rules"):
            for story in data.get(key) or []:
                for step in (story or {}).get("steps") or []:
                    if isinstance(step, dict) and isinstance(step.get("user"), str):
                        out.append((step["user"], str(step.get("intent") or "")))
    return out


def leaks(messages: Sequence[HeldOut], training: Iterable[tuple[str, str]]) -> list[str]:
    """Held-out texts that also occur (normalised) in the training data: they would measure memory."""
    seen = {normalise(text) for text, _ in training}
    return [m.text for m in messages if normalise(m.text) in seen]


def auto_styles(text: str) -> list[str]:
    """Style tags computed from the text itself (so nobody has to keep them in step by hand)."""
    tags = []
    letters = [c for c in text if c.isalpha()]
    if letters and all(c.islower() for c in letters):
        tags.append("lowercase")
    if not re.search(r"[^\w\s]", _EMAIL.sub("", text)):
        tags.append("no_punct")
    if _ORDER_NUMBER.search(text):
        tags.append("order_number")
    if _EMAIL.search(text):
        tags.append("email")
    return tags


def all_styles(message: HeldOut) -> list[str]:
    """Hand-tagged styles, computed ones, and "multi"."""
    return list(message.styles) + auto_styles(message.text) + (["multi"] if message.multi else [])


def baseline_sample(
    training: Sequence[tuple[str, str]], intents: Iterable[str], per_intent: int, seed: int = 0
) -> list[tuple[str, str]]:
    """Up to ``per_intent`` training examples of each intent (seeded), entity markup removed."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, intent in training:
        if intent:
            by_intent[intent].append(_ANNOTATION.sub(r"\1", text))
    rng = random.Random(seed)
    sample = []
    for intent in sorted(set(intents)):
        texts = sorted(set(by_intent.get(intent, [])))
        sample += [(t, intent) for t in rng.sample(texts, min(per_intent, len(texts)))]
    return sample


# ---------------------------------------------------------------------------- scoring
def score(
    gold: Sequence[str], results: Sequence[dict[str, Any]], same_flow: Optional[dict[str, list[str]]] = None
) -> dict[str, Any]:
    """Accuracy (final intent), without fallback (top intent), same-flow accuracy, per-intent rows."""
    from nlu import FALLBACK, pct, top_intent

    same_flow = same_flow or {}
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    ok = ok_nofb = ok_flow = fallbacks = 0
    confusions: Counter = Counter()
    for g, res in zip(gold, results, strict=True):
        answer = (res.get("intent") or {}).get("name")
        hit = answer == g
        ok += hit
        ok_nofb += top_intent(res)[0] == g
        ok_flow += hit or answer in same_flow.get(g, [])
        fallbacks += answer == FALLBACK
        rows[g][0] += 1
        rows[g][1] += hit
        if not hit:
            confusions[(g, answer or "None")] += 1
    n = max(1, len(gold))
    return {
        "n": len(gold),
        "accuracy": pct(ok / n),
        "accuracy_without_fallback": pct(ok_nofb / n),
        "accuracy_same_flow": pct(ok_flow / n),
        "fallback_rate": pct(fallbacks / n),
        "per_intent": {k: {"n": v[0], "correct": v[1], "accuracy": pct(v[1] / v[0])} for k, v in sorted(rows.items())},
        "confusions": [f"{g} -> {p}: {c}" for (g, p), c in confusions.most_common()],
    }


def per_style(messages: Sequence[HeldOut], results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    from nlu import pct

    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for m, res in zip(messages, results, strict=True):
        hit = (res.get("intent") or {}).get("name") == m.intent
        for style in all_styles(m):
            rows[style][0] += 1
            rows[style][1] += hit
    return {k: {"n": v[0], "correct": v[1], "accuracy": pct(v[1] / v[0])} for k, v in sorted(rows.items())}


def share(hits: list[bool]) -> Optional[float]:
    """Percentage of True, two decimals; None for no messages."""
    return round(100.0 * sum(hits) / len(hits), 2) if hits else None


def request_figures(messages: Sequence[HeldOut], results: Sequence[dict[str, Any]]) -> dict[str, Optional[float]]:
    """Messages with one request vs several: the first request, or any of its requests (``also``)."""
    single, first, any_of = [], [], []
    for m, res in zip(messages, results, strict=True):
        answer = (res.get("intent") or {}).get("name")
        if m.multi:
            first.append(answer == m.intent)
            any_of.append(answer in (m.intent, *m.also))
        else:
            single.append(answer == m.intent)

    return {
        "accuracy_single_request": share(single),
        "accuracy_multi_request": share(first),
        "accuracy_multi_any_of_its_requests": share(any_of),
    }


def split_figures(
    messages: Sequence[HeldOut], results: Sequence[dict[str, Any]], part_results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What the channels make of a message (``concierge_rasa/channels/requests.py``): split into two
    requests when ``multi_request`` says so. ``part_results``: the parse of every candidate part.

    For a message of several requests: both of the turns it becomes name two of its requests, in its
    order (the first part its first request). For a message of one request: it was not split, or the
    first turn still names its request (a wrong split costs the second turn only)."""
    from concierge_rasa.multi_request import separate_requests, split_points

    both, single_ok, wrong_splits, first_turn = [], [], 0, []
    for m, res in zip(messages, results, strict=True):
        parts = next((pair for pair in split_points(m.text)
                      if separate_requests(part_results[pair[0]], part_results[pair[1]])), None)
        if parts is None:
            answer = (res.get("intent") or {}).get("name")
            if m.multi:
                both.append(False)
            else:
                single_ok.append(answer == m.intent)
            first_turn.append(answer == m.intent)
            continue
        first, second = ((part_results[p].get("intent") or {}).get("name") for p in parts)
        first_turn.append(first == m.intent)
        if m.multi:
            both.append(first == m.intent and second in m.also)
        else:
            wrong_splits += 1
            single_ok.append(first == m.intent)

    return {
        "multi_both_requests_after_split": share(both),
        "single_request_after_split": share(single_ok),
        "single_requests_split": wrong_splits,
        "first_turn_accuracy_after_split": share(first_turn),
    }


def model_intents(model: Path) -> set[str]:
    """The intents of the model's domain (read from the archive's metadata, without loading it)."""
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    return set(LocalModelStorage.metadata_from_archive(model).domain.intents)


# ---------------------------------------------------------------------------- report
def quiet_logs() -> None:
    """Rasa and TensorFlow warnings would bury the figures (as in bench/nlu.py)."""
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    for noisy in ("rasa", "tensorflow", "absl", "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    warnings.filterwarnings("ignore")  # importing Rasa resets the filters


def print_table(
    title: str, rows: dict[str, dict[str, Any]], baseline: Optional[dict[str, dict[str, Any]]] = None
) -> None:
    say(title)
    head = f"  {'':28} {'n':>4} {'ok':>4} {'acc %':>7}" + (f" {'seen %':>7}" if baseline is not None else "")
    say(head)
    for key, row in sorted(rows.items(), key=lambda kv: (kv[1]["accuracy"], kv[0])):
        line = f"  {key:28} {row['n']:>4} {row['correct']:>4} {row['accuracy']:>7.2f}"
        if baseline is not None:
            seen = baseline.get(key)
            line += f" {seen['accuracy']:>7.2f}" if seen else f" {'-':>7}"
        say(line)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="held-out single-message NLU benchmark (see module docstring)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="trained Rasa model (.tar.gz)")
    parser.add_argument("--set", default=str(HELDOUT_SET), help="the held-out messages (YAML)")
    parser.add_argument(
        "--baseline-per-intent",
        type=int,
        default=10,
        help="training examples per intent parsed as the baseline (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the baseline sample")
    args = parser.parse_args(argv)

    model = Path(args.model).resolve()
    if not model.is_file():
        raise SystemExit(f"no trained model at {model} (make train, or --model PATH)")
    heldout = load_set(Path(args.set))
    training = training_examples()
    leaked = leaks(heldout.messages, training)
    if leaked:
        say(f"WARNING: {len(leaked)} held-out messages also occur in nlu_data (they measure memory): {leaked}")
    quiet_logs()
    from nlu import latency, parse_all, top_intent

    has = model_intents(model)
    lacking = sorted({m.intent for m in heldout.messages} - has)
    if lacking:
        say(f"WARNING: the model has no intent {lacking} (trained before they were added?): those messages are misses")
    # the baseline reads today's nlu_data: intents the model lacks are left out of it
    intents = {m.intent for m in heldout.messages} & has
    baseline = baseline_sample(training, intents, args.baseline_per_intent, args.seed)
    model_age = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(model.stat().st_mtime))
    say(
        f"model {model} (written {model_age}); {len(heldout.messages)} held-out messages, "
        f"{len(baseline)} training examples as the baseline"
    )

    from concierge_rasa.multi_request import split_points

    parts = sorted({p for m in heldout.messages for pair in split_points(m.text) for p in pair})
    texts = [m.text for m in heldout.messages] + [t for t, _ in baseline] + parts
    results, times = parse_all(str(model), texts, "held-out + baseline + the parts the channels may split off")
    n, b = len(heldout.messages), len(baseline)
    held_res, base_res = results[:n], results[n : n + b]
    part_results = dict(zip(parts, results[n + b :], strict=True))

    gold = [m.intent for m in heldout.messages]
    held = score(gold, held_res, heldout.same_flow)
    seen = score([g for _, g in baseline], base_res) if baseline else None
    held["per_style"] = per_style(heldout.messages, held_res)
    misses = [
        {
            "text": m.text,
            "gold": m.intent,
            "answer": (r.get("intent") or {}).get("name"),
            "confidence": round(float((r.get("intent") or {}).get("confidence") or 0.0), 3),
            "top": top_intent(r)[0],
            "top_confidence": round(top_intent(r)[1], 3),
            "multi": m.multi,
        }
        for m, r in zip(heldout.messages, held_res, strict=True)
        if (r.get("intent") or {}).get("name") != m.intent
    ]

    print_table(
        "per intent (held-out; 'seen %' = the same model on its own training examples):",
        held["per_intent"],
        seen["per_intent"] if seen else None,
    )
    print_table("per style (held-out):", held["per_style"])
    say("confusions (gold -> answer: count):")
    for line in held["confusions"]:
        say(f"  {line}")
    say("misses:")
    for miss in misses:
        top = f" (top {miss['top']} {miss['top_confidence']:.2f})" if miss["answer"] != miss["top"] else ""
        say(
            f"  [{miss['gold']} -> {miss['answer']} {miss['confidence']:.2f}{top}{' multi' if miss['multi'] else ''}] "
            f"{miss['text']}"
        )
    requests = request_figures(heldout.messages, held_res)
    verdict = "meets" if held["accuracy"] >= TARGET else "below"
    say(
        f"held-out accuracy {held['accuracy']}% ({held['n']} messages; target >= {TARGET}%: {verdict}); "
        f"without fallback {held['accuracy_without_fallback']}%, same flow {held['accuracy_same_flow']}%, "
        f"fallback {held['fallback_rate']}%"
    )
    say(
        f"one request a message: {requests['accuracy_single_request']}%; several in one: first request "
        f"{requests['accuracy_multi_request']}%, one of its requests {requests['accuracy_multi_any_of_its_requests']}%"
    )
    split = split_figures(heldout.messages, held_res, part_results)
    say(
        f"as the channels handle it (two requests split into two turns): both requests of a multi message "
        f"{split['multi_both_requests_after_split']}%; single-request messages split by mistake "
        f"{split['single_requests_split']}, still right {split['single_request_after_split']}%; the first turn "
        f"names the message's (first) request {split['first_turn_accuracy_after_split']}%"
    )
    known = [(m, r) for m, r in zip(heldout.messages, held_res, strict=True) if m.intent not in lacking]
    known_accuracy = round(
        100.0 * sum((r.get("intent") or {}).get("name") == m.intent for m, r in known) / len(known), 2
    )
    if lacking:
        say(f"on the {len(known)} messages whose intent the model has: {known_accuracy}%")
    if seen:
        say(f"baseline, same model on {seen['n']} of its own training examples: {seen['accuracy']}%")
    result: dict[str, Any] = {
        "benchmark": "nlu_heldout",
        "model": os.path.relpath(model, ROOT) if ROOT in model.parents else str(model),
        "model_written": model_age,
        "set": os.path.relpath(Path(args.set).resolve(), ROOT),
        "leaked_into_training": len(leaked),
        "intents_the_model_lacks": lacking,
        "heldout": {
            **{
                k: held[k]
                for k in ("n", "accuracy", "accuracy_without_fallback", "accuracy_same_flow", "fallback_rate")
            },
            **requests,
            "after_the_channels_split": split,
            "accuracy_on_intents_the_model_has": known_accuracy,
            **latency(times[: len(heldout.messages)]),
            "per_intent": held["per_intent"],
            "per_style": held["per_style"],
            "confusions": held["confusions"],
            "misses": misses,
        },
        "baseline_training_examples": (
            {k: seen[k] for k in ("n", "accuracy", "accuracy_without_fallback", "fallback_rate")} if seen else None
        ),
        "target": {"heldout_accuracy>=97": held["accuracy"] >= TARGET and not leaked and not lacking},
    }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
