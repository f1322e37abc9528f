"""Is the NLU at its encoder's ceiling? A validation-only probe for issue 4 (not a test).

    .venv/bin/python bench/ceiling_probe.py [--data ../shared/data] [--folds 5] [--epochs 3]

config.yml's classifier is a linear softmax (plus attention pool and kNN vote) on a frozen
all-MiniLM-L6-v2. This script scores, beside that baseline and on the same validation data
as bench/knn_tuning.py (BANKING77 5-fold CV on the train split, seed 0; CLINC150 val +
oos_val at bench/nlu.py's threshold rule), the two usual ways past a frozen encoder that fit
on 2 CPU cores:

* ``ensemble``: three softmax models (seeds 42, 43, 44), probabilities averaged, then the
  same kNN blend.
* ``finetune_top``: MiniLM's last transformer layer is trained on the fold's train part with
  a mean-pool softmax head (AdamW, 1e-4 for the layer and 3e-3 for the head, dropout 0.2,
  batch 32, ``--epochs`` passes); its mean replaces the last-layer block of the sentence
  feature, and the same softmax and kNN blend are trained on top.

Each variant is printed beside the baseline measured in the same run (difference in points);
the last stdout line is JSON. Test splits are never read.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import knn_tuning as kt  # noqa: E402 - the same features, softmax and vote as bench-knn
from _common import default_data_dir, emit, limit_threads, say  # noqa: E402
from nlu import choose_threshold, clinc_scores  # noqa: E402

SEEDS = (42, 43, 44)


def lower_states(texts: list[str], layer: int) -> list[np.ndarray]:
    """Per-sentence word-piece states after ``layer`` transformer layers ([tokens, dim] each)."""
    import torch

    tok, model = kt._encoder()
    out: list[np.ndarray] = []
    for s in range(0, len(texts), 128):
        enc = tok(texts[s : s + 128], padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states[layer]
        lengths = enc["attention_mask"].sum(1).tolist()
        out.extend(hidden[r, : int(n)].numpy().copy() for r, n in enumerate(lengths))
    return out


def finetuned_means(
    states: list[np.ndarray], y: np.ndarray, train: np.ndarray, classes: int, epochs: int
) -> np.ndarray:
    """Trains a copy of the last layer on ``train`` rows; returns every row's mean output."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from concierge_rasa.nlu.softmax_model import pad_sequences

    _, model = kt._encoder()
    torch.manual_seed(42)
    top = copy.deepcopy(model.encoder.layer[-1])
    head = torch.nn.Linear(model.config.hidden_size, classes)
    opt = torch.optim.AdamW([{"params": top.parameters(), "lr": 1e-4}, {"params": head.parameters(), "lr": 3e-3}])
    dim = model.config.hidden_size

    def pooled(rows: np.ndarray, training: bool) -> torch.Tensor:
        x, m = (torch.tensor(a) for a in pad_sequences([states[i] for i in rows], dim))
        top.train(training)
        out = top(x, attention_mask=(1.0 - m[:, None, None, :]) * -1e4)
        out = out[0] if isinstance(out, tuple) else out
        return (out * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)

    labels = torch.tensor(y)
    for epoch in range(epochs):
        started, order = time.perf_counter(), np.random.default_rng(epoch).permutation(train)
        for i in range(0, len(order), 32):
            b = order[i : i + 32]
            logits = head(5.0 * F.dropout(F.normalize(pooled(b, True), dim=1), 0.2, True))
            loss = F.cross_entropy(logits, labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        say(f"    fine-tuning epoch {epoch + 1}/{epochs}: {time.perf_counter() - started:.0f}s")
    with torch.no_grad():
        return np.concatenate(
            [pooled(np.arange(i, min(i + 256, len(states))), False).numpy() for i in range(0, len(states), 256)]
        )


def replace_last(means: np.ndarray, layers: list[int] | None, tuned: np.ndarray) -> np.ndarray:
    """The featurizer's sentence feature with the last layer's mean swapped for ``tuned``
    (as OnnxSentenceFeaturizer does with its trained layer)."""
    swapped = means.copy()
    swapped[:, -1] = tuned
    return kt.sentence_features(swapped, layers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--config", default=str(kt.ROOT / "config.yml"))
    parser.add_argument("--folds", type=int, default=5, help="how many of the 5 BANKING77 folds to score")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning passes")
    args = parser.parse_args(argv)
    limit_threads(2)
    started = time.perf_counter()
    settings = kt.pipeline_settings(Path(args.config))
    layers, counts, knn = settings["sentence_layers"], settings["counts"], settings["knn"]
    say(f"mirroring {args.config}: {settings}")
    data = Path(args.data)

    import csv

    with open(data / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    folds = np.array_split(np.random.default_rng(0).permutation(len(rows)), 5)[: max(1, min(5, args.folds))]
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    c_rows = [tuple(x) for x in clinc["train"] + clinc["oos_train"]]
    c_val = [tuple(x) for x in clinc["val"] + clinc["oos_val"]]

    def blend(
        probs: np.ndarray, keys: np.ndarray, key_labels: np.ndarray, queries: np.ndarray, classes: int
    ) -> np.ndarray:
        w = float(knn["knn_weight"])
        if w <= 0:
            return probs
        vote = kt.vote(
            queries, keys, key_labels, classes, 20, float(knn["knn_temperature"]), knn["knn_null_similarity"]
        )
        return (1 - w) * probs + w * vote

    def encoded(name: str, texts: list[str]) -> tuple:
        """Layer means, per-word vectors and the states below the last layer, once per data set."""
        say(f"{name}: encoding {len(texts)} sentences")
        means, words = kt.encode(texts)
        return means, words, lower_states(texts, means.shape[1] - 2)

    def run_split(
        name: str, enc: tuple, texts: list[str], cats: list[str], train: np.ndarray, held: np.ndarray
    ) -> dict:
        """Blended probabilities of the held rows for each variant."""
        labels = sorted(set(cats[i] for i in train))
        ix = {lab: i for i, lab in enumerate(labels)}
        y = np.array([ix.get(c, -1) for c in cats])
        means, words, states = enc
        dense = kt.sentence_features(means, layers)
        sp_tr, sp_q = kt.sparse([texts[i] for i in train], [texts[i] for i in held], counts)

        def softmax(feature: np.ndarray, seed: int) -> np.ndarray:
            return kt.softmax_probs(
                feature[train],
                [words[i] for i in train],
                sp_tr,
                y[train],
                feature[held],
                [words[i] for i in held],
                sp_q,
                len(labels),
                seed=seed,
            )

        out: dict[str, np.ndarray] = {}
        say(f"{name}: baseline and seed ensemble ({len(train)} train / {len(held)} held)")
        seeds = [softmax(dense, s) for s in SEEDS]
        out["baseline"] = blend(seeds[0], dense[train], y[train], dense[held], len(labels))
        out["ensemble"] = blend(np.mean(seeds, 0), dense[train], y[train], dense[held], len(labels))
        say(f"{name}: fine-tuning the top layer")
        tuned = replace_last(means, layers, finetuned_means(states, y, train, len(labels), args.epochs))
        out["finetune_top"] = blend(softmax(tuned, 42), tuned[train], y[train], tuned[held], len(labels))
        return {"probs": out, "gold": y[held], "labels": labels}

    variants = ("baseline", "ensemble", "finetune_top")
    bank: dict[str, list[float]] = {v: [] for v in variants}
    texts, cats = [t for t, _ in rows], [c for _, c in rows]
    enc = encoded("banking77", texts)
    for k, held in enumerate(folds):
        train = np.setdiff1d(np.arange(len(rows)), held)
        res = run_split(f"banking77 fold {k + 1}/{len(folds)}", enc, texts, cats, train, held)
        for v in variants:
            bank[v].append(round(100 * float((res["probs"][v].argmax(1) == res["gold"]).mean()), 2))
        say(f"  fold {k + 1}: " + ", ".join(f"{v} {bank[v][-1]}" for v in variants))

    all_rows = c_rows + c_val
    c_texts = [t for t, _ in all_rows]
    res = run_split(
        "clinc150",
        encoded("clinc150", c_texts),
        c_texts,
        [c for _, c in all_rows],
        np.arange(len(c_rows)),
        np.arange(len(c_rows), len(all_rows)),
    )
    gold = [res["labels"][i] for i in res["gold"]]
    results = {}
    for v in variants:
        preds = kt.as_predictions(res["probs"][v], res["labels"])
        th = choose_threshold(preds, gold, 0.0)
        ins, rec = clinc_scores(preds, gold, th, 0.0)
        results[v] = {
            "banking77_folds": bank[v],
            "banking77_val_accuracy": round(float(np.mean(bank[v])), 2),
            "clinc150_val_in_scope": round(100 * ins, 2),
            "clinc150_val_oos_recall": round(100 * rec, 2),
            "clinc150_threshold": th,
        }
    base = results["baseline"]
    for v in variants:
        r = results[v]
        r["delta_vs_baseline"] = {
            k: round(r[k] - base[k], 2)
            for k in ("banking77_val_accuracy", "clinc150_val_in_scope", "clinc150_val_oos_recall")
        }
        say(
            f"{v:13s} BANKING77 CV {r['banking77_val_accuracy']:6.2f}  "
            f"CLINC150 val {r['clinc150_val_in_scope']:6.2f} / "
            f"{r['clinc150_val_oos_recall']:6.2f}  vs baseline {r['delta_vs_baseline']}"
        )
    emit(
        {
            "benchmark": "ceiling_probe",
            "epochs": args.epochs,
            "folds": len(folds),
            "variants": results,
            "total_s": round(time.perf_counter() - started, 1),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
