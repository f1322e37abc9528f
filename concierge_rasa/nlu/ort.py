"""onnxruntime sessions as the encoder and the tuned top layers use them (one recipe for both).

Why a module of its own: ``onnx_runtime`` (the encoder) and ``top_layer`` (the tuned layers run as
one-layer graphs) both open sessions; with the recipe here neither has to import the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def ort_session(path: Path, threads: int, spinning: bool = True, initializers: Optional[dict] = None):  # noqa: ANN201
    """An onnxruntime CPU session with all graph optimisations.

    ``threads`` 0 = all cores. Without ``spinning`` idle threads sleep instead of spinning:
    the lowest latency for one message on a busy 2-core box. ``initializers`` (name -> array)
    replace the graph's initializers of those names: the arrays are kept alive by the caller
    (onnxruntime does not copy them) and pre-packed like the graph's own weights."""
    import onnxruntime as ort  # heavy: onnxruntime, loaded with the first session

    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = int(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for name, value in (initializers or {}).items():
        options.add_initializer(name, value)
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
