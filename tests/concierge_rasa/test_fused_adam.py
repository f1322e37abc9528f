"""FusedAdam follows Keras' Adam and AdamW step for step."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf  # Rasa 3.6's own dependency: never missing in .venv-rasa, so never a skip

from concierge_rasa.nlu.fused_adam import FusedAdam


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_matches_keras(weight_decay):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((30, 7)).astype(np.float32), rng.standard_normal(7).astype(np.float32)]
    x = tf.constant(rng.standard_normal((16, 30)).astype(np.float32))
    y = tf.constant(rng.integers(0, 7, 16).astype(np.int32))

    def run(make):  # noqa: ANN001, ANN202
        w, b = (tf.Variable(a) for a in start)
        opt = make([w, b])

        @tf.function
        def step():  # noqa: ANN202
            with tf.GradientTape() as tape:
                logits = tf.matmul(x, w) + b
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            opt.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))  # noqa: B905
            return loss

        losses = [float(step()) for _ in range(25)]
        return [w.numpy(), b.numpy()], losses

    if weight_decay:
        keras, k_losses = run(lambda _: tf.keras.optimizers.AdamW(0.05, weight_decay=weight_decay))
    else:
        keras, k_losses = run(lambda _: tf.keras.optimizers.Adam(0.05))
    fused, f_losses = run(lambda v: FusedAdam(v, 0.05, weight_decay=weight_decay))
    assert f_losses[-1] < f_losses[0] - 0.5  # it trains
    np.testing.assert_allclose(f_losses, k_losses, rtol=1e-4, atol=1e-5)
    for a, b in zip(fused, keras, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(fused[0], start[0])
