"""Loads and runs the exported MiniLM sentence encoder with onnxruntime + tokenizers.

Why a separate module: the Rasa components stay thin, tests can use the encoder directly,
and one encoder per model folder is loaded once per process (lazily, never at import time).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from concierge_rasa.nlu.ort import ort_session
from concierge_rasa.settings import get_rasa_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = PROJECT_ROOT / "var" / "models" / "minilm-onnx"
MODEL_DIR_ENV = "CONCIERGE_ONNX_MODEL_DIR"
CONFIG_NAME = "concierge_onnx.json"
EXPORT_HINT = (
    "Run the export once from the Python 3.11 runtime: "
    "`.venv/bin/python scripts/export_onnx.py` (or `make export-onnx`)."
)


class EncoderMissingError(RuntimeError):
    """The exported ONNX encoder is not where the configuration says."""


def resolve_model_dir(configured: Optional[str] = None) -> Path:
    """Config value, else env ``CONCIERGE_ONNX_MODEL_DIR``, else ``var/models/minilm-onnx``.

    Relative paths are taken from the project root when they exist there, else from the
    current directory.
    """
    raw = configured or get_rasa_settings().onnx_model_dir
    if not raw:
        return DEFAULT_MODEL_DIR
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path
    from_root = PROJECT_ROOT / path
    return from_root if from_root.exists() else (Path.cwd() / path).resolve()


def read_export_config(model_dir: Path) -> dict:
    """The small JSON config written by ``scripts/export_onnx.py`` (or raise a clear error)."""
    missing = [n for n in ("model.onnx", "tokenizer.json", CONFIG_NAME) if not (model_dir / n).is_file()]
    if missing:
        raise EncoderMissingError(
            f"The ONNX sentence encoder is missing in {model_dir} (no {', '.join(missing)}). {EXPORT_HINT}"
        )
    return json.loads((model_dir / CONFIG_NAME).read_text())


@dataclass
class EncodedBatch:
    """Encoder outputs for a batch of texts, in input order."""

    sentence: np.ndarray  # [batch, dim], L2-normalised
    tokens: list[np.ndarray]  # per text: [n_wordpieces, dim] (without padding)
    offsets: list[list[tuple[int, int]]]  # per text: char offsets of each word piece
    layers: Optional[np.ndarray] = None  # [batch, num_layers + 1, dim] per-layer means (asked for)
    # per text: [n_wordpieces, dim] states below the top layer(s) asked for (with_pre_top)
    pre_top: Optional[list[np.ndarray]] = None


# Message.data key under which OnnxSentenceFeaturizer leaves a parsed message's frozen encoding
# for later components (the sentiment head); not part of the parse output, and taken by its user.
FROZEN_ENCODING = "concierge_frozen_encoding"


@dataclass
class FrozenEncoding:
    """One message's frozen encoder outputs: the sentence embedding and, when the featurizer
    asked for them, the per-layer means (before any tuned layer replaces some)."""

    sentence: np.ndarray  # [dim], L2-normalised
    layers: Optional[np.ndarray] = None  # [num_layers + 1, dim]
    pre_top: Optional[np.ndarray] = None  # [pieces, dim]: word-piece states below the last pre_top_depth layers
    pre_top_depth: int = 0


class OnnxSentenceEncoder:
    """all-MiniLM-L6-v2 as exported by ``scripts/export_onnx.py``."""

    def __init__(self, model_dir: Path, num_threads: int = 0, max_length: Optional[int] = None) -> None:
        from tokenizers import Tokenizer  # heavy: tokenizers, loaded with the first encoder

        self.model_dir = Path(model_dir)
        self.config = read_export_config(self.model_dir)
        self.dimension = int(self.config["dimension"])
        self.max_length = int(max_length or self.config.get("max_length", 128))
        self.fingerprint = str(self.config.get("fingerprint", ""))
        # hidden states whose means the export provides: 0 = embedding output, 1..n = layers
        self.num_layers = int(self.config.get("num_layers", 0))
        self.has_layer_means = "layer_means" in self.config.get("outputs", [])
        self.has_top_layer = "pre_top_states" in self.config.get("outputs", []) and bool(self.config.get("top_layer"))
        # how many of the last layers the export gives weights and input states for (v3: 1)
        top_cfg = self.config.get("top_layer") or {}
        self.top_depth = int(top_cfg.get("depth", 1)) if self.has_top_layer else 0
        self._top_inputs = list(top_cfg.get("inputs") or ["pre_top_states"])
        # one BERT layer as an ONNX graph whose weights each session replaces (export v5)
        graph = top_cfg.get("graph") if self.has_top_layer else None
        self.top_layer_graph: Optional[Path] = (
            self.model_dir / graph if graph and (self.model_dir / graph).is_file() else None
        )

        self._tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_length)
        self._tokenizer.no_padding()

        self._num_threads = int(num_threads)
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self._input_names = {i.name for i in self._session("single").get_inputs()}
        # quantised models: encode one message per call (see encode); fp32: length-sorted batches
        self.per_message = bool(self.config.get("quantized", False))
        self.parallel = max(1, min(2, os.cpu_count() or 1))

    def _session(self, kind: str):  # noqa: ANN202 - onnxruntime is imported lazily
        """Two sessions: "single" (1 thread, no spinning: lowest latency on a busy 2-core box)
        and "batch" (all cores, for featurizing training data)."""
        with self._lock:
            return self._session_locked(kind)

    def _session_locked(self, kind: str):  # noqa: ANN202
        session = self._sessions.get(kind)
        if session is None:
            threads = (self._num_threads or 1) if kind == "single" else 0
            session = ort_session(self.model_dir / "model.onnx", threads, spinning=kind != "single")
            self._sessions[kind] = session
        return session

    def check_layers(self, layers: Sequence[int]) -> None:
        """Raises a clear error when the export cannot give these layers' means."""
        if not self.has_layer_means:
            raise EncoderMissingError(
                f"The ONNX encoder in {self.model_dir} was exported without per-layer means "
                f"(needed for sentence_layers {list(layers)}). Export it again: "
                "`.venv/bin/python scripts/export_onnx.py --force` (or `make train`)."
            )
        bad = [layer for layer in layers if not 0 <= int(layer) <= self.num_layers]
        if bad:
            raise ValueError(f"sentence_layers {bad} out of range: this encoder has layers 0..{self.num_layers}.")

    def check_top_layer(self, depth: int = 1) -> None:
        """Raises a clear error when the export lacks what tune_top_layers needs."""
        if not self.has_top_layer or not (self.model_dir / self.config["top_layer"]["file"]).is_file():
            raise EncoderMissingError(
                f"The ONNX encoder in {self.model_dir} was exported without its top layer "
                "(needed for tune_top_layer_epochs). Export it again: "
                "`.venv/bin/python scripts/export_onnx.py --force` (or `make train`)."
            )
        if not 1 <= int(depth) <= self.top_depth:
            raise EncoderMissingError(
                f"The ONNX encoder in {self.model_dir} gives {self.top_depth} top layer(s) to tune, not {depth}. "
                "Export it again: `.venv/bin/python scripts/export_onnx.py --force` (or `make train`), "
                "or lower tune_top_layers."
            )

    def top_layer(self, depth: int = 1):  # noqa: ANN201 - TopLayer (imported lazily: scipy)
        """The exported (untrained) last ``depth`` layers, as ``TopLayer``."""
        from concierge_rasa.nlu.top_layer import TopLayer  # heavy: scipy (softmax_model), only when tuning

        self.check_top_layer(depth)
        cfg = self.config["top_layer"]
        stack = TopLayer.load(self.model_dir / cfg["file"], int(cfg["num_heads"]), float(cfg["layer_norm_eps"]))
        return stack.last(depth).use_graph(self.top_layer_graph)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        with_tokens: bool = True,
        with_layers: bool = False,
        with_pre_top: int = 0,
    ) -> EncodedBatch:
        """Embeds texts in length-sorted batches (less padding, faster on CPU).

        ``with_pre_top`` = d (True = 1) adds the word-piece states below the last d layers."""
        n = len(texts)
        sentence = np.zeros((n, self.dimension), dtype=np.float32)
        tokens: list[np.ndarray] = [np.zeros((0, self.dimension), dtype=np.float32)] * n
        offsets: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        layers = np.zeros((n, self.num_layers + 1, self.dimension), dtype=np.float32) if with_layers else None
        pre_top: Optional[list[np.ndarray]] = [tokens[0]] * n if with_pre_top else None
        if with_layers:
            self.check_layers([])
        if with_pre_top:
            self.check_top_layer(int(with_pre_top))
        if n == 0:
            return EncodedBatch(sentence, tokens, offsets, layers, pre_top)

        encodings = self._tokenizer.encode_batch([t if isinstance(t, str) else str(t) for t in texts])
        if self.per_message and n > 1:
            # int8 dynamic quantisation scales activations per call, so a message encoded in a
            # batch differs a little (cosine ~0.99) from the same message parsed alone. Encoding
            # training data one message at a time (2 calls in parallel) keeps the classifier's
            # training features identical to what it sees at parse time.
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                parts = list(
                    pool.map(
                        lambda t: self.encode(
                            [t], with_tokens=with_tokens, with_layers=with_layers, with_pre_top=with_pre_top
                        ),
                        texts,
                    )
                )
            for i, part in enumerate(parts):
                sentence[i] = part.sentence[0]
                tokens[i], offsets[i] = part.tokens[0], part.offsets[0]
                if layers is not None:
                    layers[i] = part.layers[0]
                if pre_top is not None:
                    pre_top[i] = part.pre_top[0]
            return EncodedBatch(sentence, tokens, offsets, layers, pre_top)

        order = sorted(range(n), key=lambda i: len(encodings[i].ids))
        outputs = ["sentence_embedding", "token_embeddings"] if with_tokens else ["sentence_embedding"]
        if with_layers:
            outputs.append("layer_means")
        if with_pre_top:
            outputs.append(self._top_inputs[-int(with_pre_top)])
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                seq = encodings[i].ids
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            result = self._session("single" if n <= 4 else "batch").run(outputs, feeds)
            for row, i in enumerate(idx):
                sentence[i] = result[0][row]
                if layers is not None:
                    layers[i] = result[outputs.index("layer_means")][row]
                if pre_top is not None:
                    pre_top[i] = result[-1][row, : len(encodings[i].ids)].astype(np.float32, copy=True)
                if with_tokens:
                    length = len(encodings[i].ids)
                    tokens[i] = result[1][row, :length].astype(np.float32, copy=True)
                    offsets[i] = list(encodings[i].offsets)
        return EncodedBatch(sentence, tokens, offsets, layers, pre_top)


def layer_sentence_features(layer_means: np.ndarray, layers: Sequence[int]) -> np.ndarray:
    """[n, len(layers) * dim]: each chosen layer's mean made unit length, side by side, the
    whole scaled to unit length (every layer weighs the same, whatever its raw scale)."""
    parts = [layer_means[:, int(layer)] for layer in layers]
    parts = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts]
    return (np.concatenate(parts, axis=1) / np.sqrt(max(1, len(parts)))).astype(np.float32)


_ENCODERS: dict[tuple[str, int, int], OnnxSentenceEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(model_dir: Path, num_threads: int = 0, max_length: Optional[int] = None) -> OnnxSentenceEncoder:
    """One encoder per (folder, threads, length) and process; loaded on first use."""
    key = (str(Path(model_dir).resolve()), int(num_threads), int(max_length or 0))
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = OnnxSentenceEncoder(Path(model_dir), num_threads=num_threads, max_length=max_length)
            _ENCODERS[key] = encoder
        return encoder


def align_to_tokens(
    wordpiece_vectors: np.ndarray,
    wordpiece_offsets: Sequence[tuple[int, int]],
    token_spans: Sequence[tuple[int, int]],
) -> np.ndarray:
    """Mean of the word-piece vectors overlapping each Rasa token's character span.

    Tokens with no overlapping word piece (e.g. cut off by truncation) get zeros, which
    Rasa treats as "no information".
    """
    dim = wordpiece_vectors.shape[1] if wordpiece_vectors.ndim == 2 else 0
    out = np.zeros((len(token_spans), dim), dtype=np.float32)
    if not len(token_spans) or not len(wordpiece_offsets):
        return out
    offs = np.asarray(wordpiece_offsets, dtype=np.int64).reshape(-1, 2)
    real = offs[:, 1] > offs[:, 0]  # special tokens have (0, 0)
    spans = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    overlap = (offs[None, :, 0] < spans[:, None, 1]) & (offs[None, :, 1] > spans[:, None, 0]) & real[None, :]
    counts = overlap.sum(axis=1, keepdims=True)
    weights = overlap.astype(np.float32) / np.maximum(counts, 1)
    return weights @ wordpiece_vectors
