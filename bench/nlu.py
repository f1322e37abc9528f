"""NLU benchmark (not a test): trains and evaluates through Rasa itself (Rasa runtime, Python 3.10).

    PYTHONPATH=. .venv-rasa/bin/python bench/nlu.py [--data ../shared/data]

Sections (each: training time, p50/p95 parse latency per message through ``Agent.parse_message``):

* banking77   train -> test with the pipeline of ``config.yml``: accuracy, macro-F1
* clinc150    full train (150 intents) -> test + oos_test; the fallback threshold is chosen on
              ``val`` + ``oos_val`` only, then applied to test: in-scope accuracy, OOS recall
* bitext      the assistant's NLU (config.yml + nlu_data/nlu, never Bitext) parses all 4,514
              Bitext utterances; accuracy through ``nlu_data/bitext_mapping.yml``; confusions
* assistant   80/20 split of nlu_data/nlu: intent accuracy, entity precision/recall/F1 per type
* stock       ``rasa init``'s pipeline (bench/configs/stock.yml) on BANKING77 as the baseline,
              with --stock-epochs epochs (a 100-epoch run takes hours on 2 cores; says so)

Progress goes to stderr; the last stdout line is one JSON object with every figure.
Datasets are read from --data and written only to a temporary folder, never into the project.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ["RASA_MAX_CACHE_SIZE"] = "0"  # honest training times: no Rasa training cache
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, default_data_dir, emit, percentile_ms, say  # noqa: E402

FALLBACK = "nlu_fallback"
Example = tuple[str, str]


# ---------------------------------------------------------------------------- data
def read_banking(data: Path) -> tuple[list[Example], list[Example]]:
    def rows(name: str) -> list[Example]:
        with open(data / "banking77" / name, newline="", encoding="utf-8") as fh:
            return [(r["text"], r["category"]) for r in csv.DictReader(fh)]

    return rows("train.csv"), rows("test.csv")


def read_clinc(data: Path) -> dict[str, list[Example]]:
    raw = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    return {k: [(t, i) for t, i in v] for k, v in raw.items()}


def read_bitext(data: Path) -> list[Example]:
    folder = data / "bitext_customer_support"
    with open(folder / "Bitext_Sample_Customer_Support_Training_Dataset.csv", newline="", encoding="utf-8") as fh:
        return [(r["instruction"], r["intent"]) for r in csv.DictReader(fh)]


def write_nlu(examples: Sequence[Example], path: Path) -> None:
    """Rasa YAML written by Rasa's own writer (quoting/escaping handled there)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    messages = [Message(data={"text": t, "intent": i}) for t, i in examples]
    RasaYAMLWriter().dump(path, TrainingData(messages))


def subsample(examples: list[Example], limit: Optional[int], seed: int = 0) -> list[Example]:
    """Stratified-ish subset for quick development runs (``--limit``)."""
    if not limit or limit >= len(examples):
        return examples
    import random

    rng = random.Random(seed)
    shuffled = examples[:]
    rng.shuffle(shuffled)
    return shuffled[:limit]


# ---------------------------------------------------------------------------- configs
def load_yaml(path: Path) -> dict[str, Any]:
    from rasa.shared.utils.io import read_yaml_file

    return read_yaml_file(str(path))


def write_config(pipeline: list[dict[str, Any]], path: Path, language: str = "en") -> None:
    from rasa.shared.utils.io import write_yaml

    write_yaml({"recipe": "default.v1", "language": language, "pipeline": pipeline, "policies": []}, path)


def fallback_settings(pipeline: list[dict[str, Any]]) -> tuple[float, float]:
    for comp in pipeline:
        if comp.get("name") == "FallbackClassifier":
            return float(comp.get("threshold", 0.3)), float(comp.get("ambiguity_threshold", 0.1))
    return 0.0, 0.0


def with_epochs(pipeline: list[dict[str, Any]], epochs: int) -> list[dict[str, Any]]:
    out = []
    for comp in pipeline:
        comp = dict(comp)
        if comp.get("name") in {"DIETClassifier", "ResponseSelector"}:
            comp["epochs"] = epochs
        out.append(comp)
    return out


# ---------------------------------------------------------------------------- rasa
def train(config: Path, nlu: Path, out_dir: Path, name: str) -> tuple[str, float]:
    from rasa.model_training import train_nlu

    start = time.perf_counter()
    model = train_nlu(config=str(config), nlu_data=str(nlu), output=str(out_dir), fixed_model_name=name)
    seconds = time.perf_counter() - start
    if not model:
        raise SystemExit(f"Rasa training failed for {name}")
    return str(model), seconds


def parse_all(
    model_path: str, texts: Sequence[str], label: str, warm_up: Sequence[str] = ("warm up",)
) -> tuple[list[dict[str, Any]], list[float]]:
    """Parses every text one by one through Rasa's Agent; returns results and latencies (s).
    ``warm_up`` is parsed first, untimed: lazily-created sessions, jieba's dictionary, the encoders."""
    from rasa.core.agent import Agent

    agent = Agent.load(model_path)

    async def run() -> tuple[list[dict[str, Any]], list[float]]:
        for text in warm_up:
            await agent.parse_message(text)
        results, times = [], []
        step = max(1, len(texts) // 5)
        for k, text in enumerate(texts):
            t0 = time.perf_counter()
            results.append(await agent.parse_message(text))
            times.append(time.perf_counter() - t0)
            if (k + 1) % step == 0:
                say(f"  {label}: parsed {k + 1}/{len(texts)}")
        return results, times

    return asyncio.run(run())


def top_intent(result: dict[str, Any]) -> tuple[Optional[str], float, float]:
    """Classifier's top intent (ignoring nlu_fallback), its confidence and the margin to #2."""
    ranking = [r for r in (result.get("intent_ranking") or []) if r.get("name") != FALLBACK]
    if not ranking:
        intent = result.get("intent") or {}
        if intent.get("name") and intent.get("name") != FALLBACK:
            return intent["name"], float(intent.get("confidence") or 0.0), 1.0
        return None, 0.0, 0.0
    first = ranking[0]
    second = float(ranking[1]["confidence"]) if len(ranking) > 1 else 0.0
    return first["name"], float(first["confidence"]), float(first["confidence"]) - second


def with_fallback(pred: tuple[Optional[str], float, float], threshold: float, ambiguity: float) -> Optional[str]:
    """What Rasa's FallbackClassifier answers for these scores."""
    name, conf, margin = pred
    if name is None or conf < threshold or margin < ambiguity:
        return FALLBACK
    return name


def macro_f1(gold: Sequence[str], pred: Sequence[Optional[str]]) -> float:
    labels = sorted(set(gold))
    tp, fp, fn = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fn[g] += 1
            if p is not None:
                fp[p] += 1
    scores = []
    for lab in labels:
        prec = tp[lab] / (tp[lab] + fp[lab]) if tp[lab] + fp[lab] else 0.0
        rec = tp[lab] / (tp[lab] + fn[lab]) if tp[lab] + fn[lab] else 0.0
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(scores) / len(scores)


def latency(times: Sequence[float]) -> dict[str, float]:
    return {"parse_p50_ms": percentile_ms(list(times), 50), "parse_p95_ms": percentile_ms(list(times), 95)}


def pct(x: float) -> float:
    return round(100.0 * x, 2)


# ---------------------------------------------------------------------------- sections
def bench_banking(ctx: Ctx, pipeline: list[dict[str, Any]], name: str, note: str = "") -> dict[str, Any]:
    train_set, test_set = read_banking(ctx.data)
    train_set = subsample(train_set, ctx.limit)
    test_set = subsample(test_set, ctx.limit_test)
    work = ctx.tmp / name
    work.mkdir()
    write_nlu(train_set, work / "nlu.yml")
    write_config(pipeline, work / "config.yml")
    say(f"{name}: training on {len(train_set)} BANKING77 examples {note}".rstrip())
    model, seconds = train(work / "config.yml", work / "nlu.yml", work, name)
    say(f"{name}: trained in {seconds:.1f}s; parsing {len(test_set)} test messages")
    results, times = parse_all(model, [t for t, _ in test_set], name)
    gold = [g for _, g in test_set]
    pred = [top_intent(r)[0] for r in results]
    out = {
        "accuracy": pct(sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)),
        "macro_f1": pct(macro_f1(gold, pred)),
        "train_s": round(seconds, 1),
        **latency(times),
        "n_train": len(train_set),
        "n_test": len(test_set),
    }
    say(f"{name}: {out}")
    return out


def choose_threshold(preds: list, gold: list[str], ambiguity: float, max_loss: float = 0.01) -> float:
    """Highest threshold whose validation in-scope accuracy stays within ``max_loss`` of the
    accuracy without any threshold (validation data only; the test split never chooses)."""
    base, _ = clinc_scores(preds, gold, 0.0, ambiguity)
    best = 0.0
    for step in range(100):
        t = step / 100.0
        if clinc_scores(preds, gold, t, ambiguity)[0] >= base - max_loss:
            best = t
    return best


def balanced_threshold(preds: list, gold: list[str], ambiguity: float) -> float:
    """Alternative (reported only): maximise mean(in-scope accuracy, OOS recall) on validation."""
    return max((s / 100.0 for s in range(100)), key=lambda t: sum(clinc_scores(preds, gold, t, ambiguity)))


def clinc_scores(preds, gold, threshold: float, ambiguity: float) -> tuple[float, float]:
    """In-scope accuracy and OOS recall; the trained ``oos`` class counts as fallback."""
    answers = [with_fallback(p, threshold, ambiguity) for p in preds]
    answers = [FALLBACK if a == "oos" else a for a in answers]
    ins = [a == g for a, g in zip(answers, gold, strict=True) if g != "oos"]
    oos = [a == FALLBACK for a, g in zip(answers, gold, strict=True) if g == "oos"]
    return sum(ins) / len(ins), sum(oos) / len(oos)


def bench_clinc(ctx: Ctx, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    data = read_clinc(ctx.data)
    # oos_train (100 examples) is trained as one more intent, like the assistant's out_of_scope
    train_set = subsample(data["train"], ctx.limit) + data["oos_train"]
    val = subsample(data["val"], ctx.limit_test) + subsample(data["oos_val"], ctx.limit_test)
    test = subsample(data["test"], ctx.limit_test) + subsample(data["oos_test"], ctx.limit_test)
    work = ctx.tmp / "clinc150"
    work.mkdir()
    write_nlu(train_set, work / "nlu.yml")
    write_config(pipeline, work / "config.yml")
    _, ambiguity = fallback_settings(pipeline)
    say(f"clinc150: training on {len(train_set)} examples (150 intents + oos_train as class 'oos')")
    model, seconds = train(work / "config.yml", work / "nlu.yml", work, "clinc150")
    say(f"clinc150: trained in {seconds:.1f}s; parsing {len(val)} val + {len(test)} test messages")
    val_res, _ = parse_all(model, [t for t, _ in val], "clinc150 val")
    test_res, times = parse_all(model, [t for t, _ in test], "clinc150 test")
    val_pred = [top_intent(r) for r in val_res]
    test_pred = [top_intent(r) for r in test_res]
    val_gold, test_gold = [g for _, g in val], [g for _, g in test]
    threshold = choose_threshold(val_pred, val_gold, ambiguity)
    ins, oos = clinc_scores(test_pred, test_gold, threshold, ambiguity)
    ins_closed = [p[0] == g for p, g in zip(test_pred, test_gold, strict=True) if g != "oos"]
    bal = balanced_threshold(val_pred, val_gold, ambiguity)
    bal_ins, bal_oos = clinc_scores(test_pred, test_gold, bal, ambiguity)
    val_ins, val_oos = clinc_scores(val_pred, val_gold, threshold, ambiguity)
    curve = {}
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        a, b = clinc_scores(test_pred, test_gold, t, ambiguity)
        curve[str(t)] = [pct(a), pct(b)]
    plot_threshold_curve(val_pred, val_gold, test_pred, test_gold, ambiguity, threshold, ctx.plot_dir)
    out = {
        "in_scope_accuracy": pct(ins),
        "oos_recall": pct(oos),
        "threshold": threshold,
        "ambiguity_threshold": ambiguity,
        "val_in_scope_accuracy": pct(val_ins),
        "val_oos_recall": pct(val_oos),
        "in_scope_accuracy_no_threshold": pct(sum(ins_closed) / len(ins_closed)),
        "threshold_rule": "highest threshold keeping val in-scope accuracy within 1 point of no threshold",
        "balanced_rule": {"threshold": bal, "in_scope_accuracy": pct(bal_ins), "oos_recall": pct(bal_oos)},
        "test_curve_in_scope_oos": curve,
        "train_s": round(seconds, 1),
        **latency(times),
        "n_train": len(train_set),
        "n_test": len(test),
    }
    say(f"clinc150: {out}")
    return out


def plot_threshold_curve(val_pred, val_gold, test_pred, test_gold, ambiguity: float, chosen: float, folder) -> None:  # noqa: ANN001
    """In-scope accuracy and OOS recall against the fallback threshold (PNG): the trade-off at a glance."""
    if folder is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [t / 100 for t in range(0, 91, 2)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for preds, gold, split, style in ((val_pred, val_gold, "val", "--"), (test_pred, test_gold, "test", "-")):
        pts = [clinc_scores(preds, gold, t, ambiguity) for t in ts]
        ax.plot(ts, [100 * a for a, _ in pts], style, color="tab:blue", label=f"in-scope accuracy ({split})")
        ax.plot(ts, [100 * b for _, b in pts], style, color="tab:orange", label=f"OOS recall ({split})")
    ax.axvline(chosen, color="grey", lw=1)
    ax.text(chosen + 0.01, 5, f"chosen on val: {chosen:.2f}", color="grey")
    ax.set(xlabel="FallbackClassifier threshold", ylabel="%", ylim=(0, 100), title="CLINC150: in-scope vs out-of-scope")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(folder / "clinc150_threshold.png")
    plt.close(fig)
    say(f"clinc150: plot written to {folder / 'clinc150_threshold.png'}")


def load_mapping(path: Path) -> dict[str, list[str]]:
    raw = load_yaml(path) or {}
    mapping = raw.get("mapping", raw)
    return {k: ([v] if isinstance(v, str) else list(v)) for k, v in mapping.items()}


def bench_assistant(ctx: Ctx, pipeline: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bitext external accuracy (model trained on all nlu_data/nlu) + own 80/20 held-out split."""
    from rasa.shared.nlu.training_data.loading import load_data

    nlu_dir = ROOT / "nlu_data" / "nlu"
    work = ctx.tmp / "assistant"
    work.mkdir()
    write_config(pipeline, work / "config.yml")
    threshold, ambiguity = fallback_settings(pipeline)

    # --- Bitext (external, never trained on)
    bitext = read_bitext(ctx.data)
    mapping = load_mapping(ROOT / "nlu_data" / "bitext_mapping.yml")
    missing = sorted({g for _, g in bitext} - set(mapping))
    if missing:
        raise SystemExit(f"nlu_data/bitext_mapping.yml lacks Bitext intents: {missing}")
    say("bitext: training the assistant's NLU (config.yml pipeline + nlu_data/nlu, no Bitext)")
    model, seconds = train(work / "config.yml", nlu_dir, work, "assistant")
    say(f"bitext: trained in {seconds:.1f}s; parsing {len(bitext)} Bitext utterances")
    results, times = parse_all(model, [t for t, _ in bitext], "bitext")
    correct, correct_nofb, confusions = 0, 0, Counter()
    per_intent: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses = []
    for (text, gold), res in zip(bitext, results, strict=True):
        answer = (res.get("intent") or {}).get("name")
        ok = answer in mapping[gold]
        correct += ok
        correct_nofb += top_intent(res)[0] in mapping[gold]
        per_intent[gold][0] += ok
        per_intent[gold][1] += 1
        if not ok:
            confusions[(gold, answer or "None")] += 1
            misses.append({"gold": gold, "answer": answer, "text": text})
    if ctx.errors:
        # for error analysis only; the file lies outside the project (Bitext is never trained on)
        ctx.errors.write_text("\n".join(json.dumps(m) for m in misses) + "\n")
        say(f"bitext: {len(misses)} misses written to {ctx.errors}")
    bitext_out = {
        "accuracy": pct(correct / len(bitext)),
        "accuracy_without_fallback": pct(correct_nofb / len(bitext)),
        "fallback_rate": pct(sum((r.get("intent") or {}).get("name") == FALLBACK for r in results) / len(results)),
        "train_s": round(seconds, 1),
        **latency(times),
        "n": len(bitext),
        "per_intent_accuracy": {k: pct(v[0] / v[1]) for k, v in sorted(per_intent.items())},
        "top_confusions": [f"{g} -> {p}: {n}" for (g, p), n in confusions.most_common(15)],
    }
    say(f"bitext: accuracy {bitext_out['accuracy']}% (fallback rate {bitext_out['fallback_rate']}%)")
    for line in bitext_out["top_confusions"]:
        say(f"  bitext confusion {line}")

    # --- held-out split of the project's own data (intent accuracy + entity F1)
    full = load_data(str(nlu_dir))
    train_part, test_part = full.train_test_split(train_frac=0.8, random_seed=42)
    train_part.persist_nlu(str(work / "split_train.yml"))
    say(f"assistant: 80/20 split ({len(train_part.intent_examples)} / {len(test_part.intent_examples)} examples)")
    split_model, split_seconds = train(work / "config.yml", work / "split_train.yml", work, "assistant_split")
    examples = [m for m in test_part.intent_examples if m.get("text")]
    res, split_times = parse_all(split_model, [m.get("text") for m in examples], "assistant held-out")
    intent_ok = sum(top_intent(r)[0] == m.get("intent") for r, m in zip(res, examples, strict=True))
    tp, fp, fn = Counter(), Counter(), Counter()
    for r, m in zip(res, examples, strict=True):
        gold_ents = {(e["entity"], e["start"], e["end"]) for e in (m.get("entities") or [])}
        pred_ents = {(e["entity"], e["start"], e["end"]) for e in (r.get("entities") or [])}
        for e in pred_ents & gold_ents:
            tp[e[0]] += 1
        for e in pred_ents - gold_ents:
            fp[e[0]] += 1
        for e in gold_ents - pred_ents:
            fn[e[0]] += 1
        if pred_ents != gold_ents:
            text = m.get("text")
            wrong = sorted(f"{'+' if e in pred_ents else '-'}{e[0]}:{text[e[1]:e[2]]}" for e in pred_ents ^ gold_ents)
            say(f"  entity miss: {text!r}: {' '.join(wrong)}")
    entities = {}
    for ent in sorted(set(tp) | set(fn) | set(fp)):
        p = tp[ent] / (tp[ent] + fp[ent]) if tp[ent] + fp[ent] else 0.0
        r = tp[ent] / (tp[ent] + fn[ent]) if tp[ent] + fn[ent] else 0.0
        entities[ent] = {
            "precision": pct(p),
            "recall": pct(r),
            "f1": pct(2 * p * r / (p + r) if p + r else 0.0),
            "support": tp[ent] + fn[ent],
        }
    T, P, N = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro_p = T / (T + P) if T + P else 0.0
    micro_r = T / (T + N) if T + N else 0.0
    assistant_out = {
        "intent_accuracy": pct(intent_ok / max(1, len(examples))),
        "entity_micro_f1": pct(2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0),
        "entities": entities,
        "train_s_80pct": round(split_seconds, 1),
        **latency(split_times),
        "n_train": len(train_part.intent_examples),
        "n_test": len(examples),
    }
    say(f"assistant held-out: {assistant_out}")
    return bitext_out, assistant_out


# ---------------------------------------------------------------------------- main
class Ctx:
    def __init__(
        self, data: Path, tmp: Path, limit: Optional[int], limit_test: Optional[int], errors: Optional[Path] = None
    ) -> None:
        self.data, self.tmp, self.limit, self.limit_test = data, tmp, limit, limit_test
        self.errors = errors
        self.plot_dir: Optional[Path] = None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="NLU benchmark through Rasa (see module docstring)")
    parser.add_argument("--data", default=str(default_data_dir()), help="datasets folder (../shared/data)")
    parser.add_argument("--config", default=str(ROOT / "config.yml"), help="config whose pipeline is measured")
    parser.add_argument("--stock-config", default=str(ROOT / "bench" / "configs" / "stock.yml"))
    parser.add_argument("--stock-epochs", type=int, default=2, help="DIET/ResponseSelector epochs of the baseline")
    parser.add_argument(
        "--only", default="banking77,clinc150,bitext,stock", help="comma list: banking77,clinc150,bitext,stock"
    )
    parser.add_argument("--limit", type=int, default=None, help="train on at most N examples (development)")
    parser.add_argument("--limit-test", type=int, default=None, help="evaluate on at most N per split (development)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with the models")
    parser.add_argument("--plot-dir", default=str(ROOT / "var" / "bench"), help="where the PNG plots go")
    parser.add_argument("--no-plot", action="store_true", help="write no plots")
    parser.add_argument("--errors", default=None, help="write Bitext misses (JSON lines) here, outside the repo")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    for noisy in ("rasa", "tensorflow", "absl", "py.warnings"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    logging.getLogger("concierge_rasa").setLevel(logging.INFO)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)

    data = Path(args.data).resolve()
    config = load_yaml(Path(args.config))
    pipeline = config.get("pipeline") or []
    stock_pipeline = load_yaml(Path(args.stock_config))["pipeline"]
    sections = {s.strip() for s in args.only.split(",") if s.strip()}
    tmp = Path(tempfile.mkdtemp(prefix="concierge-bench-nlu-"))
    say(f"data {data}; pipeline from {args.config}: {[c['name'].split('.')[-1] for c in pipeline]}")
    say(f"work folder {tmp}")
    errors = Path(args.errors).resolve() if args.errors else None
    if errors and ROOT in errors.parents:
        raise SystemExit("--errors must point outside the project (Bitext sentences are not to be copied into it)")
    ctx = Ctx(data, tmp, args.limit, args.limit_test, errors)
    ctx.plot_dir = None if args.no_plot else Path(args.plot_dir).resolve()
    result: dict[str, Any] = {
        "benchmark": "nlu",
        "config": os.path.relpath(args.config, ROOT),
        "pipeline": [c["name"].split(".")[-1] for c in pipeline],
    }
    if args.limit or args.limit_test:
        result["subset"] = {"limit": args.limit, "limit_test": args.limit_test}
    started = time.perf_counter()
    try:
        if "banking77" in sections:
            result["banking77"] = bench_banking(ctx, pipeline, "banking77")
        if "clinc150" in sections:
            result["clinc150"] = bench_clinc(ctx, pipeline)
        if "bitext" in sections:
            result["bitext"], result["assistant_heldout"] = bench_assistant(ctx, pipeline)
        if "stock" in sections:
            epochs = args.stock_epochs
            note = f"(stock rasa init pipeline, {epochs} of its 100 epochs: a full run takes hours here)"
            stock = bench_banking(ctx, with_epochs(stock_pipeline, epochs), "stock_banking77", note)
            stock["epochs"] = epochs
            stock["s_per_epoch_upper_bound"] = round(stock["train_s"] / epochs, 1)
            stock["note"] = f"reduced to {epochs} epochs (rasa init uses 100); train_s includes featurization"
            result["stock_banking77"] = stock
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    targets = {}
    if "banking77" in result:
        b = result["banking77"]
        targets["banking77_acc>=94.5_and_train<=300s"] = b["accuracy"] >= 94.5 and b["train_s"] <= 300
    if "clinc150" in result:
        c = result["clinc150"]
        targets["clinc_in_scope>=95.5_and_oos>=75"] = c["in_scope_accuracy"] >= 95.5 and c["oos_recall"] >= 75
    if "bitext" in result:
        targets["bitext>=95"] = result["bitext"]["accuracy"] >= 95
    p95s = [
        v["parse_p95_ms"]
        for k, v in result.items()
        if isinstance(v, dict) and "parse_p95_ms" in v and not k.startswith("stock")
    ]
    if p95s:
        targets["p95_parse<=30ms"] = max(p95s) <= 30
    if args.limit or args.limit_test:  # a development subset: no verdict, whatever its figures
        result["targets_met"] = None
        result["no_verdict_reason"] = f"--limit {args.limit} / --limit-test {args.limit_test}: development subset"
    else:
        result["targets_met"] = targets
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
