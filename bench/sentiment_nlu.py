"""Sentiment inside Rasa NLU vs the old model, one run (``make bench-sentiment-nlu``).

Options measured (issue 17 section 3), all trained on the project's own messages only
(``data/sentiment/messages.csv``), temperatures fitted on ``data/sentiment/eval/validation.csv``:

- (a) ``frozen_head`` (shipped, config.yml): ``SentimentClassifier``
  (concierge_rasa/nlu/sentiment.py), a softmax head on the frozen MiniLM layer means the NLU
  featurizer's encoder pass already made, trained here exactly as ``rasa train`` does. Its
  layers and ``c``: the grid on the validation file is printed again (accuracy ties; the
  featurizer's layers 4-6 kept).
- (d) ``tuned_head``: the same component with ``tune_top_layers: 2``: a copy of MiniLM's last
  two layers trained on the sentiment labels runs on the states below them (also left by the
  featurizer's pass) and feeds the head.
- (b) ``onnx_finetuned``: the old fine-tuned model (var/models/sentiment, trained if missing)
  exported to int8 ONNX and run with onnxruntime, as the Rasa runtime would have to.
- ``old``: that same model in torch, as the action server ran it (behind an HTTP hop not counted here).

Test sets: ``data/sentiment/eval/test.csv`` (hand-written customer messages, never used for
training or choosing anything) and Twitter US Airline Sentiment's test part (same split as
bench/sentiment.py: duplicates dropped, stratified 80/20, seed 42; zero-shot, cross-domain).
Figures: accuracy, macro-F1, expected calibration error (10 bins) before and after temperature
scaling, the upset rule's precision/recall at calibrated p(negative) >= 0.7, and the latency
each option adds to a parse (one message at a time, one thread, all options in one loop).
The reliability diagram goes to ``var/bench/sentiment_reliability.png``; the last stdout line is JSON.

Runs in the Rasa runtime (``.venv-rasa``); the torch parts run in ``.venv`` through ``--worker``.
Usage: PYTHONPATH=. .venv-rasa/bin/python bench/sentiment_nlu.py [--data ../shared/data] [--air-limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, default_data_dir, emit, percentile_ms, say  # noqa: E402

LATENCY_MESSAGES = 300
UPSET = 0.7  # UpsetPolicy's threshold in config.yml


# ---------------------------------------------------------------- the torch worker (.venv)
def worker(request_path: Path, reply_path: Path) -> None:
    """Old model: probabilities for the texts, torch latency, and an int8 ONNX export (option b)."""
    import numpy as np
    import torch

    from bot.ml.sentiment import SentimentModel
    from bot.ml.train import sentiment_model_dir, train_sentiment

    request = json.loads(request_path.read_text())
    folder = sentiment_model_dir()
    if not (folder / "meta.json").is_file():
        say("old model missing: training it on data/sentiment (a few minutes)")
        train_sentiment(progress=say)
    torch.set_num_threads(2)
    model = SentimentModel.load(folder)
    reply: dict = {"probabilities": {}}
    for name, texts in request["sets"].items():
        t0 = time.perf_counter()
        reply["probabilities"][name] = model.predict_proba(texts).tolist()
        say(f"old model: {name} ({len(texts)} texts) in {time.perf_counter() - t0:.0f}s")
    torch.set_num_threads(1)  # as the action server served it
    texts = request["latency"]
    for t in texts[:20]:
        model.predict_one(t)
    samples = []
    for t in texts:
        t0 = time.perf_counter()
        model.predict_one(t)
        samples.append(time.perf_counter() - t0)
    reply["latency"] = {"p50_ms": percentile_ms(samples, 50), "p95_ms": percentile_ms(samples, 95)}
    reply["onnx"] = export_onnx(model, Path(request["onnx_dir"]), np)
    reply_path.write_text(json.dumps(reply))


def export_onnx(model, out: Path, np) -> dict:  # noqa: ANN001
    """The fine-tuned encoder + mean pooling + head as one int8 ONNX graph (logits out)."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Logits(torch.nn.Module):
        def __init__(self, enc: torch.nn.Module, head: torch.nn.Module) -> None:
            super().__init__()
            self.enc, self.head = enc, head

        def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN202
            hidden = self.enc(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))

    out.mkdir(parents=True, exist_ok=True)
    wrapped = Logits(model._enc, model._head).eval()  # noqa: SLF001 - the benchmark exports the old model as it is
    dummy = model._tok(["a short example", "another one that is longer"], padding=True, return_tensors="pt")  # noqa: SLF001
    fp32 = out / "fp32.onnx"
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (dummy["input_ids"], dummy["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "logits": {0: "b"}},
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    quantize_dynamic(
        str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=True,
    )
    fp32.unlink()
    model._tok.save_pretrained(out)  # noqa: SLF001 - tokenizer.json for the tokenizers package
    return {"dir": str(out), "max_length": model.max_length, "export_s": round(time.perf_counter() - t0, 1)}


# ---------------------------------------------------------------- the Rasa-runtime side
def load_csv(path: Path) -> tuple[list[str], list[str]]:
    from concierge_rasa.nlu.sentiment import read_labelled_csv

    return read_labelled_csv([path])


def load_airline_test(data_dir: Path, limit: int) -> tuple[list[str], list[str]]:
    from sentiment import load_tweets  # bench/sentiment.py: the same protocol
    from sklearn.model_selection import train_test_split

    texts, labels = load_tweets(data_dir)
    _, test_x, _, test_y = train_test_split(texts, labels, test_size=0.2, stratify=labels, random_state=42)
    if limit:
        test_x, test_y = test_x[:limit], test_y[:limit]
    return test_x, test_y


def scores(probs, y_names: list[str], temperature: float = 1.0) -> dict:  # noqa: ANN001
    """Accuracy, macro-F1, ECE before and after the temperature (same predictions)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from concierge_rasa.nlu.sentiment_head import expected_calibration_error, label_indices, softmax

    y = label_indices(y_names)
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    raw, cal = softmax(logits), softmax(logits / temperature)
    pred = raw.argmax(1)
    return {
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
        "ece_before": round(expected_calibration_error(raw, y), 4),
        "ece_after": round(expected_calibration_error(cal, y), 4),
        "mean_confidence_before": round(float(raw.max(1).mean()), 4),
        "mean_confidence_after": round(float(cal.max(1).mean()), 4),
        # the upset rule's test (config.yml threshold) on calibrated p(negative)
        "upset_precision": round(float((y[flagged] == 0).mean()), 4) if (flagged := cal[:, 0] >= UPSET).any() else 0.0,
        "upset_recall": round(float(flagged[y == 0].mean()), 4) if (y == 0).any() else 0.0,
    }


def fitted_temperature(probs, y_names: list[str]) -> float:  # noqa: ANN001
    import numpy as np

    from concierge_rasa.nlu.sentiment_head import fit_temperature, label_indices

    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    return fit_temperature(logits, label_indices(y_names))


def grid_on_validation(encoder, train, val) -> list[dict]:  # noqa: ANN001
    """The choice of layers and c for the head, on the validation file only."""
    from concierge_rasa.nlu.onnx_runtime import layer_sentence_features
    from concierge_rasa.nlu.sentiment_head import SentimentHead, label_indices, negative_log_likelihood

    enc_train = encoder.encode(train[0], with_tokens=False, with_layers=True)
    enc_val = encoder.encode(val[0], with_tokens=False, with_layers=True)
    y_val = label_indices(val[1])
    rows = []
    for layers in ([6], [4, 5, 6], [1, 2, 3, 4, 5, 6]):
        x_train = layer_sentence_features(enc_train.layers, layers)
        x_val = layer_sentence_features(enc_val.layers, layers)
        for c in (0.3, 1.0, 3.0, 10.0, 30.0):
            head = SentimentHead.fit(x_train, train[1], c=c)
            report = head.calibrate(x_val, val[1])
            logits = head.logits(x_val)
            rows.append(
                {
                    "layers": layers,
                    "c": c,
                    "val_accuracy": round(float((logits.argmax(1) == y_val).mean()), 4),
                    "val_nll_calibrated": round(negative_log_likelihood(logits, y_val, head.temperature), 4),
                    "temperature": report["temperature"],
                }
            )
    return rows


def head_option(sets: dict, overrides: dict, label: str) -> tuple[dict, object, dict]:
    """The component trained as in `rasa train` (config overrides); probabilities on every set,
    and the latency it adds to a parse."""
    import numpy as np
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from concierge_rasa.nlu.sentiment import SentimentClassifier

    context = ExecutionContext(GraphSchema({}), "bench")
    config = {**SentimentClassifier.get_default_config(), **overrides}
    with tempfile.TemporaryDirectory(prefix="sentiment-bench-") as tmp:
        storage = LocalModelStorage(Path(tmp))
        t0 = time.perf_counter()
        SentimentClassifier.create(config, storage, Resource("s"), context).train(TrainingData([]))
        train_s = time.perf_counter() - t0
        component = SentimentClassifier.load(config, storage, Resource("s"), context)
    head = component.head
    say(f"{label}: trained as in rasa train in {train_s:.1f}s, temperature {head.temperature:.3f}")
    probs = {}
    for name, (texts, _) in sets.items():
        t0 = time.perf_counter()
        probs[name] = head.probabilities(component.featurize_texts(texts), calibrated=False)
        say(f"{label} {name}: {len(texts)} texts in {time.perf_counter() - t0:.0f}s")

    return {k: np.asarray(v) for k, v in probs.items()}, component, {"train_s": round(train_s, 1)}


def onnx_option(export: dict, sets: dict) -> tuple[dict, dict]:
    """Option (b): the exported fine-tuned model through onnxruntime + tokenizers, one thread."""
    import numpy as np
    from tokenizers import Tokenizer

    from concierge_rasa.nlu.onnx_runtime import ort_session
    from concierge_rasa.nlu.sentiment_head import softmax

    folder = Path(export["dir"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=int(export["max_length"]))
    tokenizer.no_padding()
    session = ort_session(folder / "model.onnx", 1, spinning=False)

    def logits(text: str) -> np.ndarray:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        return session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]

    probs = {}
    for name, (texts, _) in sets.items():
        t0 = time.perf_counter()
        probs[name] = softmax(np.stack([logits(t) for t in texts]))
        say(f"(b) {name}: {len(texts)} texts in {time.perf_counter() - t0:.0f}s")
    return probs, logits


def parse_latency(texts: list[str], components: dict, onnx_logits) -> dict:  # noqa: ANN001
    """Milliseconds each option adds to a parse, measured message by message in one loop (so a
    busy machine weighs on all alike): the featurizer as in config.yml (two tuned top layers;
    untrained copies take the same time), then each sentiment component on what it left, and the
    exported fine-tuned model on the text (its own encoder pass)."""
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message

    from concierge_rasa.nlu.onnx_featurizer import OnnxSentenceFeaturizer
    from concierge_rasa.nlu.onnx_runtime import FROZEN_ENCODING

    tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
    first = next(iter(components.values()))
    featurizer = OnnxSentenceFeaturizer(
        {**OnnxSentenceFeaturizer.get_default_config(), "sentence_layers": [4, 5, 6]},
        ExecutionContext(GraphSchema({}), "bench"),
        tuned=first.encoder.top_layer(2),
    )
    samples: dict[str, list[float]] = {"featurizer": [], **{name: [] for name in components}, "onnx_finetuned": []}
    for i, text in enumerate([*texts[:20], *texts]):
        message = Message(data={TEXT: text})
        tokenizer.process([message])
        t0 = time.perf_counter()
        featurizer.process([message])
        timings = {"featurizer": time.perf_counter() - t0}
        encoding = message.data[FROZEN_ENCODING]
        for name, component in components.items():
            copy = Message(data={TEXT: text, FROZEN_ENCODING: encoding})
            t0 = time.perf_counter()
            component.process([copy])
            timings[name] = time.perf_counter() - t0
        t0 = time.perf_counter()
        onnx_logits(text)
        timings["onnx_finetuned"] = time.perf_counter() - t0
        if i >= 20:
            for name, value in timings.items():
                samples[name].append(value)
    return {
        name: {"added_p50_ms": percentile_ms(values, 50), "added_p95_ms": percentile_ms(values, 95)}
        for name, values in samples.items()
    }


def draw(path: Path, panels: list[tuple[str, object, list[str], float]]) -> None:
    """Reliability diagrams: accuracy per confidence bin, before and after temperature scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from concierge_rasa.nlu.sentiment_head import expected_calibration_error, label_indices, reliability, softmax

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, probs, y_names, temperature) in zip(axes[0], panels, strict=True):
        y = label_indices(y_names)
        logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        for label, p, color in (
            ("before", softmax(logits), "tab:red"),
            (f"after (T={temperature:.2f})", softmax(logits / temperature), "tab:blue"),
        ):
            bins = [b for b in reliability(p, y) if b["count"]]
            ece = expected_calibration_error(p, y)
            ax.plot(
                [b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", color=color,
                label=f"{label}: ECE {ece:.3f}",
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0.3, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Sentiment calibration on held-out test sets (temperature fitted on validation only)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--air-limit", type=int, default=0, help="use only N airline test tweets (smoke run)")
    ap.add_argument("--python311", default=str(ROOT / ".venv" / "bin" / "python"), help="runtime with torch")
    ap.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    import numpy as np

    from concierge_rasa.nlu.onnx_runtime import get_encoder, resolve_model_dir
    from concierge_rasa.nlu.sentiment import SentimentClassifier, project_path

    config = SentimentClassifier.get_default_config()
    train = load_csv(project_path(config["training_files"][0]))
    val = load_csv(project_path(config["validation_file"]))
    sets = {
        "customer_test": load_csv(ROOT / "data" / "sentiment" / "eval" / "test.csv"),
        "airline_test": load_airline_test(args.data, args.air_limit),
    }
    say(
        f"train {len(train[0])} project messages; validation {len(val[0])}; customer test "
        f"{len(sets['customer_test'][0])}; airline test {len(sets['airline_test'][0])} (zero-shot)"
    )
    result: dict = {"benchmark": "sentiment_nlu", "n_train": len(train[0]), "n_validation": len(val[0])}
    result["n_test"] = {name: len(texts) for name, (texts, _) in sets.items()}

    # the old model (and its ONNX export) in the torch runtime, while nothing else runs
    with tempfile.TemporaryDirectory(prefix="sentiment-old-") as tmp:
        tmp_dir = Path(tmp)
        request = {
            "sets": {"validation": val[0], **{name: texts for name, (texts, _) in sets.items()}},
            "latency": sets["airline_test"][0][:LATENCY_MESSAGES],
            "onnx_dir": str(tmp_dir / "onnx"),
        }
        (tmp_dir / "request.json").write_text(json.dumps(request))
        say("old model (torch, .venv): predictions, latency, ONNX export")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [args.python311, __file__, "--worker", str(tmp_dir / "request.json"), str(tmp_dir / "reply.json")],
            check=True, env=env, cwd=ROOT,
        )
        old = json.loads((tmp_dir / "reply.json").read_text())
        b_probs, b_logits = onnx_option(old["onnx"], {"validation": val, **sets})
        every = {"validation": val, **sets}
        d_probs, d_component, d_info = head_option(every, {"tune_top_layers": 2}, "(d) tuned head")
        a_probs, a_component, a_info = head_option(every, {}, "(a) frozen head (shipped)")
        say("added parse latency, all options in one loop")
        heads = {"frozen_head": a_component, "tuned_head": d_component}
        latency = parse_latency(sets["airline_test"][0][:LATENCY_MESSAGES], heads, b_logits)

    say("(a) choosing layers and c on validation (grid)")
    grid = grid_on_validation(get_encoder(resolve_model_dir(None), num_threads=1), train, val)
    best = max(grid, key=lambda r: (r["val_accuracy"], -r["val_nll_calibrated"]))
    for row in grid:
        say(f"    layers {row['layers']} c {row['c']}: val acc {row['val_accuracy']:.3f} "
            f"NLL {row['val_nll_calibrated']:.3f}")
    result["head_grid_best_on_validation"] = best
    result["head_grid_ties_at_best_accuracy"] = sum(r["val_accuracy"] == best["val_accuracy"] for r in grid)
    result["shipped_config"] = {k: config[k] for k in ("sentence_layers", "c", "tune_top_layers")}
    options = {
        "frozen_head": (a_probs, a_component.head.temperature, {**a_info, **latency["frozen_head"]}),
        "tuned_head": (d_probs, d_component.head.temperature, {**d_info, **latency["tuned_head"]}),
        "onnx_finetuned": (b_probs, fitted_temperature(b_probs["validation"], val[1]), latency["onnx_finetuned"]),
        "old": (
            {k: np.asarray(v) for k, v in old["probabilities"].items()},
            fitted_temperature(old["probabilities"]["validation"], val[1]),
            old["latency"],
        ),
    }
    for name, (probs, temperature, added) in options.items():
        result[name] = {
            "temperature": round(float(temperature), 4),
            **{s: scores(probs[s], sets[s][1], temperature) for s in sets},
            "latency": added,
        }
    result["onnx_finetuned"]["export_s"] = old["onnx"]["export_s"]
    result["featurizer_latency"] = latency["featurizer"]

    print("\noption         set            acc    F1     ECE before -> after  upset P/R  added parse ms p50/p95")
    for name in options:
        lat = result[name]["latency"]
        added = f"{lat.get('added_p50_ms', lat.get('p50_ms'))}/{lat.get('added_p95_ms', lat.get('p95_ms'))}"
        for s in sets:
            r = result[name][s]
            print(
                f"{name:14s} {s:14s} {r['accuracy']:.3f}  {r['macro_f1']:.3f}  {r['ece_before']:.3f} -> "
                f"{r['ece_after']:.3f}      {r['upset_precision']:.2f}/{r['upset_recall']:.2f}  {added}"
            )
    chart = ROOT / "var" / "bench" / "sentiment_reliability.png"
    a_temperature = options["frozen_head"][1]
    draw(
        chart,
        [
            ("shipped (a), customer test", a_probs["customer_test"], sets["customer_test"][1], a_temperature),
            ("shipped (a), airline test", a_probs["airline_test"], sets["airline_test"][1], a_temperature),
            ("old model, customer test", options["old"][0]["customer_test"], sets["customer_test"][1],
             options["old"][1]),
            ("old model, airline test", options["old"][0]["airline_test"], sets["airline_test"][1], options["old"][1]),
        ],
    )
    result["chart"] = str(chart.relative_to(ROOT))
    say(f"reliability diagram: {chart}")
    emit(result)


if __name__ == "__main__":
    main()
