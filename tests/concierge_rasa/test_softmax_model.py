"""KnnMemory: the nearest-neighbour vote blended into SoftmaxIntentClassifier."""

from __future__ import annotations

import numpy as np
import pytest

from concierge_rasa.nlu.softmax_model import KnnMemory


def _unit(*rows: list[float]) -> np.ndarray:
    return KnnMemory.normalise(np.asarray(rows, dtype=np.float32))


def test_nearest_sentences_decide_the_vote() -> None:
    keys = _unit([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1])
    memory = KnnMemory(keys, np.array([0, 0, 1, 1]), num_classes=3, k=2, temperature=0.05)
    votes = memory.vote(np.array([[1.0, 0.05, 0], [0.05, 1.0, 0]], dtype=np.float32))
    assert votes.shape == (2, 3)
    assert votes.argmax(axis=1).tolist() == [0, 1]
    assert votes.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert votes[0, 0] > 0.99 and votes[0, 2] == 0.0


def test_a_message_far_from_every_sentence_gets_a_flat_vote() -> None:
    keys = _unit([1, 0, 0], [0, 1, 0])
    with_null = KnnMemory(keys, np.array([0, 1]), num_classes=2, k=2, temperature=0.02, null_similarity=0.7)
    without = KnnMemory(keys, np.array([0, 1]), num_classes=2, k=2, temperature=0.02)
    far = np.array([[0.3, 0.1, 1.0]], dtype=np.float32)  # cosine 0.29 / 0.1 to the two keys
    assert without.vote(far)[0, 0] > 0.99  # plain kNN: confident in whatever is nearest
    assert with_null.vote(far)[0] == pytest.approx([0.5, 0.5], abs=0.01)
    near = np.array([[1.0, 0.0, 0.1]], dtype=np.float32)  # cosine 0.995: the null neighbour is irrelevant
    assert with_null.vote(near)[0, 0] > 0.99


def test_no_dense_features_and_more_neighbours_than_sentences() -> None:
    memory = KnnMemory(_unit([1, 0], [0, 1]), np.array([0, 1]), num_classes=4, k=50, temperature=0.1)
    votes = memory.vote(np.zeros((2, 2), dtype=np.float32))
    assert votes == pytest.approx(np.full((2, 4), 0.25))
    assert memory.vote(np.zeros((0, 2), dtype=np.float32)).shape == (0, 4)


def test_weights_are_plain_arrays_for_npz() -> None:
    memory = KnnMemory(_unit([1, 0], [0, 1]), np.array([0, 1]), num_classes=2, k=1, temperature=0.1)
    arrays = memory.weights()
    assert set(arrays) == {"knn_keys", "knn_labels"}
    assert arrays["knn_keys"].dtype == np.float16 and arrays["knn_labels"].dtype == np.int32
