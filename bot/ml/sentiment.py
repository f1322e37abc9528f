"""Sentiment of customer messages: negative / neutral / positive with a score.

Architecture (chosen by measurement, see bench/sentiment.py): the MiniLM sentence encoder
(all-MiniLM-L6-v2), mean pooling, dropout and a linear 3-way head. Training first fits the
head on frozen embeddings for a few cheap epochs (fast, stable start), then fine-tunes
encoder + head together (``mode="finetune"``, the shipped configuration) with a linear LR
schedule. ``mode="head"`` keeps the encoder frozen (seconds to train; used by the tests and as
a fallback configuration).
"""

from __future__ import annotations

import csv
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from bot.ml.base import BaseModel, ModelError
from bot.ml.encoder import load_tokenizer_and_model, offline

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}


@dataclass(frozen=True)
class SentimentResult:
    """``label`` is the most likely class, ``score`` its probability (0..1) and ``polarity``
    P(positive) - P(negative) in [-1, 1], handy for CRM trends."""

    label: str
    score: float
    polarity: float = 0.0


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class SentimentModel(BaseModel):
    """MiniLM encoder + mean pooling + linear head."""

    kind = "sentiment"
    format_version = 1

    def __init__(
        self,
        encoder: str | Path | None = None,
        mode: str = "finetune",
        max_length: int = 64,
        dropout: float = 0.1,
    ) -> None:
        if mode not in {"finetune", "head"}:
            raise ValueError("mode must be 'finetune' or 'head'")
        self.encoder_spec = str(encoder) if encoder else ""
        self.mode = mode
        self.max_length = int(max_length)
        self.dropout = float(dropout)
        self._tok = None
        self._enc = None
        self._head = None
        self.fine_tuned = False
        self.train_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ network
    def _ensure_network(self) -> None:
        import torch  # heavy: torch, loaded on first use

        if self._enc is None:
            self._tok, self._enc = load_tokenizer_and_model(self.encoder_spec or None)
        if self._head is None:
            hidden = self._enc.config.hidden_size
            self._head = torch.nn.Sequential(torch.nn.Dropout(self.dropout), torch.nn.Linear(hidden, len(LABELS)))

    def _encode_batch(self, batch: dict) -> Any:
        hidden = self._enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def _tokenize(self, texts: Sequence[str]) -> dict:
        return self._tok(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    # ------------------------------------------------------------------ training
    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str | int],
        epochs: int = 3,
        batch_size: int = 32,
        lr: float = 5e-5,
        head_lr: float = 2e-3,
        head_epochs: int = 8,
        weight_decay: float = 0.01,
        seed: int = 13,
        progress: Callable[[str], None] | None = _progress,
        max_steps: int | None = None,
        on_head_ready: Callable[[SentimentModel], None] | None = None,
        head_max_samples: int | None = None,
    ) -> Self:
        """Train on ``texts`` with labels (names or indices). ``max_steps`` caps fine-tune steps."""
        import torch  # heavy: torch, loaded on first use

        if len(texts) != len(labels) or not texts:
            raise ValueError("texts and labels must be non-empty and of equal length")
        y = np.array([LABEL_INDEX[lab] if isinstance(lab, str) else int(lab) for lab in labels], dtype=np.int64)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self._ensure_network()
        say = progress or (lambda _m: None)
        t0 = time.perf_counter()

        # 1) head on frozen embeddings (full batch, cheap): a good start for fine-tuning.
        self._enc.eval()
        head_idx = np.arange(len(texts))
        if head_max_samples and len(texts) > head_max_samples:  # warm start on a sample (saves time)
            head_idx = np.random.default_rng(seed).choice(len(texts), head_max_samples, replace=False)
        embs = self._embed([texts[j] for j in head_idx], batch_size=64, progress=say)
        x = torch.from_numpy(embs)
        yt = torch.from_numpy(y[head_idx])
        opt = torch.optim.AdamW(self._head.parameters(), lr=head_lr * 5, weight_decay=weight_decay)
        steps_per_epoch = max(1, math.ceil(len(x) / 64))
        for _ep in range(head_epochs * 5):
            perm = torch.randperm(len(x))
            self._head.train()
            for i in range(steps_per_epoch):
                idx = perm[i * 64 : (i + 1) * 64]
                loss = torch.nn.functional.cross_entropy(self._head(x[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self._head.eval()
        with torch.no_grad():
            acc = float((self._head(x).argmax(-1) == yt).float().mean())
        say(f"sentiment: head on frozen encoder, train acc {acc:.3f} ({time.perf_counter() - t0:.0f}s)")
        if on_head_ready is not None:  # lets the benchmark measure the frozen-encoder variant for free
            on_head_ready(self)

        # 2) fine-tune encoder + head.
        if self.mode == "finetune" and epochs > 0:
            self._finetune(texts, y, epochs, batch_size, lr, head_lr, weight_decay, say, max_steps)
            self.fine_tuned = True
        self._enc.eval()
        self._head.eval()
        self.train_info = {
            "n_train": len(texts),
            "epochs": epochs,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        return self

    def _finetune(
        self,
        texts: Sequence[str],
        y: np.ndarray,
        epochs: int,
        batch_size: int,
        lr: float,
        head_lr: float,
        weight_decay: float,
        say: Callable[[str], None],
        max_steps: int | None,
    ) -> None:
        import torch  # heavy: torch, loaded on first use

        lengths = [len(ids) for ids in self._tok(list(texts), truncation=True, max_length=self.max_length)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        # length-bucketed batches (little padding), shuffled between epochs
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        total = len(batches) * epochs if max_steps is None else min(max_steps, len(batches) * epochs)
        params = [
            {
                "params": [p for n, p in self._enc.named_parameters() if "LayerNorm" not in n and "bias" not in n],
                "lr": lr,
                "weight_decay": weight_decay,
            },
            {
                "params": [p for n, p in self._enc.named_parameters() if "LayerNorm" in n or "bias" in n],
                "lr": lr,
                "weight_decay": 0.0,
            },
            {"params": list(self._head.parameters()), "lr": head_lr / 4, "weight_decay": weight_decay},
        ]
        opt = torch.optim.AdamW(params)
        warm = max(1, int(0.06 * total))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
        )
        t0 = time.perf_counter()
        step = 0
        rng = np.random.default_rng(0)
        for ep in range(epochs):
            self._enc.train()
            self._head.train()
            running = 0.0
            for bi, b in enumerate(rng.permutation(len(batches))):
                idx = batches[b]
                batch = self._tokenize([texts[i] for i in idx])
                logits = self._head(self._encode_batch(batch))
                loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[idx]))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._enc.parameters(), 1.0)
                opt.step()
                sched.step()
                running += loss.item()
                step += 1
                if step % 25 == 0 or step == total:
                    el = time.perf_counter() - t0
                    say(
                        f"sentiment: epoch {ep + 1}/{epochs} step {step}/{total} loss {running / (bi + 1):.3f} "
                        f"({el:.0f}s, ~{el / step * (total - step):.0f}s left)"
                    )
                if step >= total:
                    return

    # ------------------------------------------------------------------ inference
    def _embed(
        self, texts: Sequence[str], batch_size: int = 64, progress: Callable[[str], None] | None = None
    ) -> np.ndarray:
        import torch  # heavy: torch, loaded on first use

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self._enc.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for n, i in enumerate(range(0, len(order), batch_size)):
                idx = order[i : i + batch_size]
                out[idx] = self._encode_batch(self._tokenize([texts[j] for j in idx])).numpy()
                if progress and n % 50 == 49:
                    progress(f"sentiment: embedded {i + len(idx)}/{len(texts)}")
        return out

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape [n, 3] in the order of :data:`LABELS`."""
        import torch  # heavy: torch, loaded on first use

        if self._enc is None or self._head is None:
            raise ModelError("sentiment model is not trained/loaded")
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        embs = torch.from_numpy(self._embed(texts, batch_size=batch_size))
        with torch.inference_mode():
            return torch.softmax(self._head(embs), dim=-1).numpy()

    def predict(self, texts: Sequence[str]) -> list[SentimentResult]:
        """One :class:`SentimentResult` per text."""
        probs = self.predict_proba(texts)
        return [SentimentResult(LABELS[int(p.argmax())], float(p.max()), float(p[2] - p[0])) for p in probs]

    def predict_one(self, text: str) -> SentimentResult:
        """Single message, lowest latency path (no sorting/batching overhead)."""
        import torch  # heavy: torch, loaded on first use

        if self._enc is None or self._head is None:
            raise ModelError("sentiment model is not trained/loaded")
        with torch.inference_mode():
            p = torch.softmax(self._head(self._encode_batch(self._tokenize([text]))), dim=-1)[0].numpy()
        return SentimentResult(LABELS[int(p.argmax())], float(p.max()), float(p[2] - p[0]))

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict[str, Any]:
        return {
            "labels": list(LABELS),
            "mode": self.mode,
            "max_length": self.max_length,
            "dropout": self.dropout,
            "fine_tuned": self.fine_tuned,
            "encoder": "" if self.fine_tuned else self.encoder_spec,
            "train_info": self.train_info,
        }

    def _save_arrays(self, path: Path) -> None:
        from safetensors.torch import save_file  # heavy: imports torch

        if self._head is None:
            raise ModelError("cannot save an untrained sentiment model")
        save_file({k: v.contiguous() for k, v in self._head.state_dict().items()}, str(path / "head.safetensors"))
        if self.fine_tuned:
            self._enc.save_pretrained(path / "encoder", safe_serialization=True)
            self._tok.save_pretrained(path / "encoder")

    @classmethod
    def _from_saved(cls, path: Path, meta: dict[str, Any]) -> Self:
        from safetensors.torch import load_file  # heavy: imports torch

        offline()
        if tuple(meta.get("labels", ())) != LABELS:
            raise ModelError(f"unexpected labels {meta.get('labels')}")
        encoder = str(path / "encoder") if meta.get("fine_tuned") else (meta.get("encoder") or None)
        model = cls(encoder=encoder, mode=meta["mode"], max_length=meta["max_length"], dropout=meta["dropout"])
        model._ensure_network()
        model._head.load_state_dict(load_file(str(path / "head.safetensors")))
        model._enc.eval()
        model._head.eval()
        model.fine_tuned = bool(meta.get("fine_tuned"))
        model.encoder_spec = "" if model.fine_tuned else (meta.get("encoder") or "")
        model.train_info = meta.get("train_info", {})
        return model


def load_labelled_csv(paths: Sequence[str | Path]) -> tuple[list[str], list[str]]:
    """Read ``text,label`` CSV files (labels must be in :data:`LABELS`)."""
    texts: list[str] = []
    labels: list[str] = []
    for p in paths:
        with open(p, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip()
                if text and label in LABEL_INDEX:
                    texts.append(text)
                    labels.append(label)
    return texts, labels
