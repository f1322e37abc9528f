"""MiniLM's last transformer layer(s), in numpy for parsing and in TensorFlow for training.

Why: a frozen encoder plus a linear classifier was the ceiling of every other change tried
(seed ensembles, hyper-parameters: within noise). Training a copy of the encoder's *last*
layer on the assistant's intents moves that ceiling (bench/ceiling_probe.py, validation
only: BANKING77 5-fold CV +0.21, 4 of 5 folds up; CLINC150 val in-scope +0.34 at +2 points
OOS recall), and costs only one layer's forward and backward pass: the layers below stay
frozen, so their output (the export's ``pre_top_states``) is computed once per sentence.

Training the last *two* layers, on length-pooled batches (``bucketed_batches``), raised
CLINC150 val in-scope accuracy further (ceiling_probe, same validation data: 96.27 -> 96.73,
OOS recall 91 -> 89, BANKING77 CV 93.76 -> 93.72), so a ``TopLayer`` is a stack of one or
more layers, the last ones of the encoder.

The weights come from ``scripts/export_onnx.py`` (``top_layer.npz``, [in, out] matrices) and
are saved after training as ``.npz`` again (no pickle): a single layer under the bare names,
a stack with ``l0_``, ``l1_``... prefixes. Standard BERT layer: 12-head self-attention,
residual + LayerNorm, GELU (exact, erf) feed-forward, residual + LayerNorm.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from concierge_rasa.nlu.ort import ort_session
from concierge_rasa.nlu.softmax_model import pad_sequences

logger = logging.getLogger(__name__)

NAMES = (
    "q_w", "q_b", "k_w", "k_b", "v_w", "v_b", "ao_w", "ao_b",
    "ln1_g", "ln1_b", "i_w", "i_b", "o_w", "o_b", "ln2_g", "ln2_b",
)  # fmt: skip


# Eigen's float32 erf (what TensorFlow's exact GELU computes on CPU): an odd/even rational
# polynomial on [-4, 4], max error 4e-7 against float64 erf. Why not scipy.special.erf: it
# computes in float64, one element at a time; on a [1152, 1536] batch it took 64 ms against
# 13 ms here, and it was a third of the top layers' numpy time.
_ERF_ALPHA = tuple(np.float32(a) for a in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
))  # fmt: skip
_ERF_BETA = tuple(np.float32(b) for b in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02,
))  # fmt: skip


def erf(x: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    """float32 erf, in chunks that stay in the CPU cache."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    src, dst = x.reshape(-1), out.reshape(-1)
    for start in range(0, src.size, chunk):
        t = np.clip(src[start : start + chunk], -4.0, 4.0)
        t2 = t * t
        p = t2 * _ERF_ALPHA[0]
        p += _ERF_ALPHA[1]
        for a in _ERF_ALPHA[2:]:
            p *= t2
            p += a
        p *= t
        q = t2 * _ERF_BETA[0]
        q += _ERF_BETA[1]
        for b in _ERF_BETA[2:]:
            q *= t2
            q += b
        np.divide(p, q, out=dst[start : start + chunk])
    return out


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, pool: int = 50
) -> list[np.ndarray]:
    """One epoch's batches: shuffled, then sorted by length within pools of ``pool`` batches,
    then the batches shuffled. Why: random batches of BANKING77 pad to 2.9 times the real
    word pieces (a few long sentences set every batch's width); pooled batches pad to 1.06
    times, and the layers' cost is in those padded positions. Every row is still seen once
    per epoch, in a new random batch each time."""
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    step = batch_size * pool
    for start in range(0, len(order), step):
        chunk = order[start : start + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _tf_stack(stack, x, m, num_heads: int, eps: float, dropout: float = 0.0) -> list:  # noqa: ANN001
    """The BERT layers in TensorFlow (training with ``dropout``, featurizing without): each
    layer's [n, len, dim] output for [n, len, dim] states ``x`` and [n, len] mask ``m``."""
    import tensorflow as tf  # heavy: tensorflow, only when training or featurizing in TF

    shape = tf.shape(x)
    n, length = shape[0], shape[1]
    dim = int(stack[0]["q_w"].shape[0])
    h = num_heads

    def heads(t):  # noqa: ANN001, ANN202
        return tf.transpose(tf.reshape(t, [n, length, h, dim // h]), [0, 2, 1, 3])

    def lin(t, w, b):  # noqa: ANN001, ANN202
        # one 2-D matmul over all word pieces: a [n, length, d] x [d, e] matmul's weight
        # gradient is a per-sentence batch summed afterwards, 4x slower per step here
        flat = tf.matmul(tf.reshape(t, [-1, w.shape[0]]), w)
        return tf.reshape(flat, [n, length, w.shape[1]]) + b

    def norm(t, var, g, b):  # noqa: ANN001, ANN202
        mu, variance = tf.nn.moments(t, axes=[-1], keepdims=True)
        return (t - mu) * tf.math.rsqrt(variance + eps) * var[g] + var[b]

    def drop(t):  # noqa: ANN001, ANN202
        return tf.nn.dropout(t, rate=dropout) if dropout else t

    outs, out = [], x
    for var in stack:
        q, k, v = (heads(lin(out, var[f"{p}_w"], var[f"{p}_b"])) for p in ("q", "k", "v"))
        scores = tf.matmul(q, k, transpose_b=True) / float(np.sqrt(dim // h))
        att = drop(tf.nn.softmax(scores + (m[:, None, None, :] - 1.0) * 1e4, axis=-1))
        ctx = tf.reshape(tf.transpose(tf.matmul(att, v), [0, 2, 1, 3]), [n, length, dim])
        x1 = norm(out + drop(lin(ctx, var["ao_w"], var["ao_b"])), var, "ln1_g", "ln1_b")
        inner = tf.nn.gelu(lin(x1, var["i_w"], var["i_b"]), approximate=False)
        out = norm(x1 + drop(lin(inner, var["o_w"], var["o_b"])), var, "ln2_g", "ln2_b")
        outs.append(out)
    return outs


# outputs() on this many sentences or more (training data) runs the layers in TensorFlow
TF_MIN_SENTENCES = 256


class TopLayer:
    """The encoder's last BERT layer(s) (weights as numpy arrays) and the means of their outputs."""

    def __init__(
        self, weights: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]], num_heads: int, eps: float = 1e-12
    ) -> None:
        stack = [weights] if isinstance(weights, dict) else list(weights)
        if not stack:
            raise ValueError("top layer weights: no layer given")
        self.layers: list[dict[str, np.ndarray]] = []
        for i, layer in enumerate(stack):
            missing = [n for n in NAMES if n not in layer]
            if missing:
                raise ValueError(f"top layer weights lack {', '.join(missing)}" + (f" (layer {i})" if i else ""))
            self.layers.append({n: np.asarray(layer[n], dtype=np.float32) for n in NAMES})
        self.num_heads = int(num_heads)
        self.eps = float(eps)
        self.dim = int(self.layers[0]["q_w"].shape[0])
        self._tf_forward = None  # built on first use by a large outputs() call
        self._graph: Optional[Path] = None  # use_graph(): forward() through onnxruntime
        self._graph_sessions: dict[str, list] = {}
        self._graph_lock = threading.Lock()

    @property
    def depth(self) -> int:
        """How many layers the stack holds."""
        return len(self.layers)

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """The last (top) layer's weights."""
        return self.layers[-1]

    def last(self, depth: int) -> TopLayer:
        """The stack's top ``depth`` layers (the same arrays, not copies)."""
        if not 1 <= int(depth) <= self.depth:
            raise ValueError(f"a stack of {self.depth} layer(s) has no top {depth}")
        stack = TopLayer(self.layers[-int(depth) :], self.num_heads, self.eps)
        stack._graph = self._graph
        return stack

    def use_graph(self, path: Optional[os.PathLike]) -> TopLayer:
        """Runs ``forward`` through onnxruntime: ``path`` is one BERT layer as an ONNX graph
        (the export's ``top_layer.onnx``), and each layer of the stack gets a session of it
        with its own weights in place of the graph's. ``None`` = numpy again.

        Why: this is the per-message parse path. numpy (OpenBLAS) re-packs each weight matrix
        on every skinny [words x 384] x [384 x 1536] product; onnxruntime packs them once, at
        load: the two tuned layers took 1.2 ms instead of 2.8 ms for an 18-piece message. Both
        compute the same function (~3e-6 apart); the first session checks that against numpy
        and falls back to numpy, with a warning, if the graph does not match."""
        with self._graph_lock:
            self._graph = Path(path) if path is not None else None
            self._graph_sessions = {}
        return self

    @classmethod
    def load(cls, path: os.PathLike, num_heads: int, eps: float = 1e-12) -> TopLayer:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if "q_w" in arrays:
            return cls(arrays, num_heads, eps)
        depth = sum(1 for k in arrays if k.endswith("_q_w") and k.startswith("l"))
        return cls(
            [{n: arrays[f"l{i}_{n}"] for n in NAMES if f"l{i}_{n}" in arrays} for i in range(depth)], num_heads, eps
        )

    def save(self, path: os.PathLike) -> None:
        if self.depth == 1:
            np.savez(path, **self.layers[0])
        else:
            np.savez(path, **{f"l{i}_{n}": a for i, layer in enumerate(self.layers) for n, a in layer.items()})

    def _norm(self, x: np.ndarray, w: dict[str, np.ndarray], g: str, b: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * w[g] + w[b]

    def forward(self, x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """[n, len, dim] states and [n, len] mask -> each layer's output states, bottom first."""
        sessions = self._sessions("single" if len(x) <= 4 else "batch") if self._graph is not None else None
        if sessions is not None:
            x, mask = np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(mask, dtype=np.float32)
        outs = []
        for i, w in enumerate(self.layers):
            if sessions is not None:
                x = sessions[i].run(None, {"states": x, "mask": mask})[0]
            else:
                x = self._layer(w, x, mask)
            outs.append(x)
        return outs

    def _sessions(self, kind: str) -> Optional[list]:
        """One onnxruntime session per layer ("single": one thread, for a parsed message;
        "batch": all cores), made on first use; None when the graph cannot serve."""
        with self._graph_lock:
            if kind in self._graph_sessions:
                return self._graph_sessions[kind][0]
            graph = self._graph
            if graph is None:
                return None
            try:
                sessions, values = self.graph_sessions(graph, single=kind == "single")
                self.check_graph(sessions)
            except Exception as exc:  # noqa: BLE001 - any failure leaves numpy's path, which is exact
                logger.warning(f"top layers: the ONNX graph {graph} cannot run them ({exc}); using numpy instead")
                self._graph = None
                self._graph_sessions = {}
                return None
            self._graph_sessions[kind] = [sessions, values]
            return sessions

    def graph_sessions(self, graph: os.PathLike, single: bool = False) -> tuple[list, list]:
        """One onnxruntime session of the one-layer ``graph`` per layer, each with that layer's
        weights in place of the graph's, and the OrtValues holding them: onnxruntime only
        points at them, so they must be kept as long as the sessions."""
        import onnxruntime as ort  # heavy: onnxruntime, loaded with the first graph session

        values = [{n: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(w[n])) for n in NAMES} for w in self.layers]
        threads = 1 if single else 0
        return [ort_session(graph, threads, spinning=not single, initializers=v) for v in values], values

    def check_graph(self, sessions: list) -> float:
        """The largest difference between the sessions' outputs and numpy's on a small padded
        batch; raises over 1e-3 (a graph whose weights were not all replaced, or a different
        layer, would be that far off)."""
        rng = np.random.default_rng(0)
        x = rng.normal(0.0, 1.0, (2, 7, self.dim)).astype(np.float32)
        mask = np.ones((2, 7), dtype=np.float32)
        mask[1, 4:] = 0.0
        worst = 0.0
        for session, w in zip(sessions, self.layers):  # noqa: B905
            got = session.run(None, {"states": x, "mask": mask})[0]
            want = self._layer(w, x, mask)
            worst = max(worst, float(np.abs((got - want) * mask[..., None]).max()))
            if not worst < 1e-3:
                raise ValueError(f"its output differs from numpy's by {worst:.2g}")
            x = want
        return worst

    def _layer(self, w: dict[str, np.ndarray], x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        h = self.num_heads
        n, length, dim = x.shape

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(n, length, h, dim // h).transpose(0, 2, 1, 3)

        def lin(t: np.ndarray, name: str) -> np.ndarray:  # one 2-D matmul: 3x faster than 3-D here
            weight = w[f"{name}_w"]
            return (t.reshape(-1, weight.shape[0]) @ weight).reshape(n, length, -1) + w[f"{name}_b"]

        q, k, v = (heads(lin(x, p)) for p in ("q", "k", "v"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dim // h) + (mask[:, None, None, :] - 1.0) * 1e4
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        att = scores / scores.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, dim)
        x1 = self._norm(x + lin(ctx, "ao"), w, "ln1_g", "ln1_b")
        inner = lin(x1, "i")
        inner = 0.5 * inner * (1.0 + erf(inner * np.float32(1.0 / np.sqrt(2.0))))
        return self._norm(x1 + lin(inner, "o"), w, "ln2_g", "ln2_b").astype(np.float32)

    def _forward_tf(self, x: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
        """``forward`` in TensorFlow: 1.5x faster on training batches (multi-threaded, fused
        kernels), not on one message (numpy's is as fast without TensorFlow's call overhead).
        Both compute the same function; they differ by float rounding (~1e-6)."""
        if self._tf_forward is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import tensorflow as tf  # heavy: tensorflow, only when training or featurizing in TF

            stack = [{n: tf.constant(w[n]) for n in NAMES} for w in self.layers]
            spec = [tf.TensorSpec([None, None, self.dim], tf.float32), tf.TensorSpec([None, None], tf.float32)]
            self._tf_forward = tf.function(
                lambda states, m: _tf_stack(stack, states, m, self.num_heads, self.eps), input_signature=spec
            )
        return [y.numpy() for y in self._tf_forward(x, mask)]

    def means(self, states: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """[n, dim] masked mean of the top layer's output per sentence (zeros for no word pieces)."""
        return self.outputs(states, batch_size, with_pieces=False)[0][:, -1]

    def outputs(
        self, states: Sequence[np.ndarray], batch_size: int = 64, with_pieces: bool = True
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """[n, depth, dim] per-sentence means of each layer's output (bottom first) and, with
        ``with_pieces``, each sentence's word-piece outputs of the top layer ([pieces, dim],
        in the input's order; an empty list without)."""
        out = np.zeros((len(states), self.depth, self.dim), dtype=np.float32)
        pieces: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)] * len(states) if with_pieces else []
        order = sorted(range(len(states)), key=lambda i: len(states[i]))
        forward = self.forward if len(states) < TF_MIN_SENTENCES else self._forward_tf
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x, m = pad_sequences([states[i] for i in idx], self.dim)
            ys = forward(x, m)
            count = np.maximum(m.sum(1, keepdims=True), 1.0)
            out[idx] = np.stack([(y * m[..., None]).sum(1) / count for y in ys], axis=1)
            if with_pieces:
                for row, i in enumerate(idx):
                    pieces[i] = ys[-1][row, : len(states[i])].copy()
        return out, pieces

    def fit(
        self,
        states: Sequence[np.ndarray],
        labels: np.ndarray,
        num_classes: int,
        epochs: int = 3,
        learning_rate: float = 1e-4,
        head_learning_rate: float = 3e-3,
        batch_size: int = 32,
        dropout: float = 0.1,
        seed: int = 42,
        progress: Optional[Callable[[int, float, float], None]] = None,
    ) -> TopLayer:
        """A copy of this stack trained with a softmax head on the mean of its top layer's output.

        The head (on the unit-length mean times 5, dropout 0.2) exists only to train the
        layers and is thrown away; BERT's own dropout (0.1) is kept inside each layer."""
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf  # heavy: tensorflow, only when training or featurizing in TF

        tf.random.set_seed(seed)
        rng = np.random.default_rng(seed)
        h, dim, eps = self.num_heads, self.dim, self.eps
        stack = [{n: tf.Variable(w[n], name=f"l{i}_{n}") for n in NAMES} for i, w in enumerate(self.layers)]
        head_w = tf.Variable(tf.keras.initializers.GlorotUniform(seed=seed)([dim, num_classes]), name="head_w")
        head_b = tf.Variable(tf.zeros([num_classes]), name="head_b")
        layer_vars, head_vars = [v[n] for v in stack for n in NAMES], [head_w, head_b]
        from concierge_rasa.nlu.fused_adam import FusedAdam  # heavy: imports tensorflow

        opt_layer = FusedAdam(layer_vars, learning_rate, weight_decay=0.01)  # Keras AdamW's rule, fused
        opt_head = FusedAdam(head_vars, head_learning_rate, weight_decay=0.01)

        # one trace for every batch shape (the pooled batches differ in length)
        spec = [tf.TensorSpec([None, None, dim], tf.float32), tf.TensorSpec([None, None], tf.float32)]

        @tf.function(input_signature=[*spec, tf.TensorSpec([None], tf.int32)])
        def step(x, m, y):  # noqa: ANN001, ANN202
            with tf.GradientTape() as tape:
                out = _tf_stack(stack, x, m, h, eps, dropout)[-1]
                pooled = tf.reduce_sum(out * m[..., None], 1) / tf.maximum(tf.reduce_sum(m, 1, keepdims=True), 1.0)
                feats = tf.nn.dropout(5.0 * tf.math.l2_normalize(pooled, axis=1, epsilon=1e-12), rate=0.2)
                logits = tf.matmul(feats, head_w) + head_b
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            grads = tape.gradient(loss, layer_vars + head_vars)
            opt_layer.apply_gradients(zip(grads[: len(layer_vars)], layer_vars))  # noqa: B905
            opt_head.apply_gradients(zip(grads[len(layer_vars) :], head_vars))  # noqa: B905
            return loss

        labels = np.asarray(labels, dtype=np.int32)
        lengths = [len(st) for st in states]
        started = time.perf_counter()
        for epoch in range(int(epochs)):
            total = 0.0
            for idx in bucketed_batches(lengths, batch_size, rng):
                x, m = pad_sequences([states[j] for j in idx], dim)
                total += float(step(x, m, labels[idx])) * len(idx)
            if progress is not None:
                progress(epoch + 1, total / max(1, len(labels)), time.perf_counter() - started)
        return TopLayer([{n: v[n].numpy() for n in NAMES} for v in stack], h, eps)
