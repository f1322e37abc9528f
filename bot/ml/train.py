"""Train the shipped models: ``python -m bot.ml.train [--only sentiment|recommender] [--if-missing]``.

- sentiment: data/sentiment/*.csv -> <models_dir>/sentiment
- recommender: purchase history of the shop database (settings.database_url) -> <models_dir>/recommender,
  with hit-rate@10 on a held-out last purchase per customer printed before the final fit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.ml.base import META_FILE
from bot.ml.recommender import HybridRecommender, evaluate_hit_rate, load_shop_data
from bot.ml.sentiment import SentimentModel, load_labelled_csv
from bot.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
SENTIMENT_DATA_DIR = ROOT / "data" / "sentiment"
SHIPPED_SENTIMENT = {"epochs": 3, "lr": 8e-5, "batch_size": 32, "mode": "finetune", "max_length": 64}

log = logging.getLogger(__name__)


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def models_dir() -> Path:
    """Where trained models live (settings' models_dir, ``CONCIERGE_MODELS_DIR``)."""
    return Path(get_settings().models_dir)


def sentiment_model_dir() -> Path:
    return models_dir() / "sentiment"


def recommender_model_dir() -> Path:
    return models_dir() / "recommender"


def _threads() -> None:
    import torch  # heavy: torch, only when training

    torch.set_num_threads(get_settings().train_threads)


def train_sentiment(
    out: Path | None = None, progress: Callable[[str], None] = _say, data_dir: Path = SENTIMENT_DATA_DIR
) -> dict:
    """Train the shipped sentiment model from scratch and save it; returns a summary."""
    _threads()
    files = sorted(data_dir.glob("*.csv"))
    texts, labels = load_labelled_csv(files)
    if not texts:
        raise SystemExit(f"no labelled messages in {data_dir}")
    progress(f"sentiment: {len(texts)} messages from {', '.join(f.name for f in files)}")
    t0 = time.perf_counter()
    cfg = SHIPPED_SENTIMENT
    model = SentimentModel(mode=cfg["mode"], max_length=cfg["max_length"])
    model.fit(texts, labels, epochs=cfg["epochs"], lr=cfg["lr"], batch_size=cfg["batch_size"], progress=progress)
    out = out or sentiment_model_dir()
    model.save(out)
    secs = time.perf_counter() - t0
    progress(f"sentiment: saved to {out} ({secs:.0f}s)")
    return {"model": "sentiment", "n": len(texts), "seconds": round(secs, 1), "path": str(out)}


def train_recommender(
    out: Path | None = None, progress: Callable[[str], None] = _say, database_url: str | None = None
) -> dict:
    """Train the hybrid recommender on the shop DB; evaluate hit-rate@10 first, then fit on all."""
    _threads()
    t0 = time.perf_counter()
    data = load_shop_data(database_url)
    progress(
        f"recommender: {len(data.products)} products, {len(data.customer_ids)} customers, "
        f"{len(data.interactions)} purchase lines"
    )
    if not data.products:
        raise SystemExit("recommender: the shop database has no products (run `python -m bot.seed`)")
    hr = evaluate_hit_rate(data, k=10, progress=progress)
    progress(
        f"recommender: hit-rate@10 on held-out last purchase: {hr['hit_rate@10']:.3f} "
        f"(popularity baseline {hr['popularity_hit_rate@10']:.3f}, {hr['n_customers']} customers)"
    )
    model = HybridRecommender().fit(data, progress=progress)
    out = out or recommender_model_dir()
    model.save(out)
    secs = time.perf_counter() - t0
    progress(f"recommender: saved to {out} ({secs:.0f}s)")
    return {"model": "recommender", **hr, "seconds": round(secs, 1), "path": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train Concierge's embedded models.")
    ap.add_argument("--only", choices=["sentiment", "recommender"])
    ap.add_argument("--if-missing", action="store_true", help="skip models whose artifacts already exist")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    jobs = {
        "sentiment": (sentiment_model_dir, train_sentiment),
        "recommender": (recommender_model_dir, train_recommender),
    }
    results = []
    for name, (where, train) in jobs.items():
        if args.only and args.only != name:
            continue
        if args.if_missing and (where() / META_FILE).is_file():
            _say(f"{name}: present at {where()}, skipped (--if-missing)")
            continue
        results.append(train())
    if results:
        print(json.dumps(results))
    else:  # a bare "[]" read like an error in make run's output
        print("nothing to train: every requested model is already present (--if-missing)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
