"""Sentiment benchmark on Twitter US Airline Sentiment (``make bench-sentiment``).

Protocol (fixed, documented):
- data: ``<DATA>/twitter_airline_sentiment/Tweets.csv``; rows with a duplicate ``tweet_id`` are
  dropped (first kept) -> 14,485 tweets; labels = ``airline_sentiment``; text used raw.
- split: ``sklearn.model_selection.train_test_split(test_size=0.2, stratify=label,
  random_state=42)`` over the rows in file order -> 80% train / 20% test.
- ours: the same architecture as the shipped model (bot.ml.sentiment.SentimentModel, MiniLM +
  mean pooling + linear head, head warm start then full fine-tune), trained on the train part.
  The frozen-encoder head (stage 1 of the same training) is measured too, to justify the choice.
- baselines in the same run: VADER (compound >= 0.05 positive, <= -0.05 negative, else
  neutral) and TF-IDF (word 1-2 grams + char 2-5 grams) + logistic regression.
- shipped: the model trained on data/sentiment (var/models/sentiment; trained here if
  missing), evaluated zero-shot on the same test part (cross-domain).
- latency: ``predict_one`` on 300 test tweets one at a time, 1 torch thread (as in serving), after
  warm-up.
Last stdout line: one JSON object with all figures.

Usage: python bench/sentiment.py [--data ../shared/data] [--epochs 2] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, default_data_dir, emit, limit_threads, percentile_ms, say  # noqa: E402


def load_tweets(data_dir: Path) -> tuple[list[str], list[str]]:
    path = data_dir / "twitter_airline_sentiment" / "Tweets.csv"
    seen: set[str] = set()
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["tweet_id"] in seen:
                continue
            seen.add(row["tweet_id"])
            texts.append(row["text"])
            labels.append(row["airline_sentiment"])
    return texts, labels


def scores(y_true: list[str], y_pred: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro")), 4),
    }


def vader(test_x: list[str]) -> list[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    sia = SentimentIntensityAnalyzer()
    out = []
    for t in test_x:
        c = sia.polarity_scores(t)["compound"]
        out.append("positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral")
    return out


def tfidf_lr(train_x, train_y, test_x) -> list[str]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    feats = make_union(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
    )
    clf = make_pipeline(feats, LogisticRegression(C=4.0, max_iter=2000))
    clf.fit(train_x, train_y)
    return list(clf.predict(test_x))


def latency(model, texts: list[str]) -> dict:
    import torch

    torch.set_num_threads(1)  # as in serving (bot.ml.serving): one message per call, one thread
    for t in texts[:20]:
        model.predict_one(t)
    samples = []
    for t in texts:
        t0 = time.perf_counter()
        model.predict_one(t)
        samples.append(time.perf_counter() - t0)
    torch.set_num_threads(2)
    return {"p50_ms": percentile_ms(samples, 50), "p95_ms": percentile_ms(samples, 95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--limit", type=int, default=0, help="use only N train tweets (smoke test)")
    ap.add_argument("--head-samples", type=int, default=3000, help="warm-start head on N tweets (0 = all)")
    ap.add_argument("--skip-head", action="store_true", help="skip the frozen-encoder comparison")
    args = ap.parse_args()
    limit_threads(2)
    from sklearn.model_selection import train_test_split

    from bot.ml.sentiment import LABELS, SentimentModel

    texts, labels = load_tweets(args.data)
    train_x, test_x, train_y, test_y = train_test_split(texts, labels, test_size=0.2, stratify=labels, random_state=42)
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
        test_x, test_y = test_x[: max(300, args.limit // 4)], test_y[: max(300, args.limit // 4)]
    say(f"airline: {len(train_x)} train / {len(test_x)} test tweets")
    result: dict = {
        "benchmark": "sentiment",
        "dataset": "twitter_us_airline",
        "split": "stratified 80/20 seed 42",
        "n_train": len(train_x),
        "n_test": len(test_x),
    }

    result["vader"] = scores(test_y, vader(test_x))
    say(f"VADER {result['vader']}")
    t0 = time.perf_counter()
    result["tfidf_lr"] = scores(test_y, tfidf_lr(train_x, train_y, test_x))
    result["tfidf_lr"]["train_s"] = round(time.perf_counter() - t0, 1)
    say(f"TF-IDF+LR {result['tfidf_lr']}")

    def measure_head(m) -> None:
        pred = [LABELS[i] for i in m.predict_proba(test_x).argmax(1)]
        result["ours_frozen_head"] = scores(test_y, pred)
        say(f"frozen MiniLM + head (stage 1 of the same training) {result['ours_frozen_head']}")

    t0 = time.perf_counter()
    model = SentimentModel(mode="finetune").fit(
        train_x,
        train_y,
        epochs=args.epochs,
        lr=args.lr,
        progress=say,
        on_head_ready=None if args.skip_head else measure_head,
        head_max_samples=args.head_samples or None,
    )
    train_s = time.perf_counter() - t0
    pred = [LABELS[i] for i in model.predict_proba(test_x).argmax(1)]
    result["ours_finetuned"] = {**scores(test_y, pred), "train_s": round(train_s, 1), "epochs": args.epochs}
    say(f"fine-tuned MiniLM {result['ours_finetuned']}")
    result["ours_finetuned"]["latency"] = latency(model, test_x[:300])
    del model

    from bot.ml.train import sentiment_model_dir, train_sentiment

    shipped_dir = sentiment_model_dir()
    if not (shipped_dir / "meta.json").is_file():
        say("shipped model missing: training it on data/sentiment")
        train_sentiment(progress=say)
    shipped = SentimentModel.load(shipped_dir)
    pred = [LABELS[i] for i in shipped.predict_proba(test_x).argmax(1)]
    result["shipped_cross_domain"] = scores(test_y, pred)
    result["shipped_cross_domain"]["latency"] = latency(shipped, test_x[:300])
    say(f"shipped model on airline test {result['shipped_cross_domain']}")
    result["targets"] = {"accuracy": 0.85, "macro_f1": 0.80, "shipped_accuracy": 0.75, "p95_ms": 15}
    if args.limit:  # a development run on a subset: its figures are not the benchmark's
        result["meets_targets"] = None
        result["no_verdict_reason"] = f"--limit {args.limit}: development run on a subset"
    else:
        result["meets_targets"] = bool(
            result["ours_finetuned"]["accuracy"] >= 0.85
            and result["ours_finetuned"]["macro_f1"] >= 0.80
            and result["shipped_cross_domain"]["accuracy"] >= 0.75
            and result["shipped_cross_domain"]["latency"]["p95_ms"] <= 15
        )
    result["root"] = str(ROOT)
    emit(result)


if __name__ == "__main__":
    main()
