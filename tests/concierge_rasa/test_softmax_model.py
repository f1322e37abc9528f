"""SoftmaxModel pieces: the kNN vote and the attention pool blended into SoftmaxIntentClassifier."""

from __future__ import annotations

import numpy as np
import pytest

from concierge_rasa.nlu.softmax_model import KnnMemory, SoftmaxConfig, SoftmaxModel, attention_pool, pad_sequences


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


def test_attention_pool_starts_at_the_mean_and_follows_the_scores() -> None:
    tokens, mask = pad_sequences([np.array([[1, 0], [0, 1]], np.float32), np.zeros((0, 2), np.float32)], 2)
    assert tokens.shape == (2, 2, 2) and mask.tolist() == [[1, 1], [0, 0]]
    flat = attention_pool(tokens, mask, np.zeros(2, np.float32))
    assert flat[0] == pytest.approx(np.array([1, 1]) / np.sqrt(2), abs=1e-6)  # zero scores: the mean
    assert flat[1].tolist() == [0.0, 0.0]  # a message without tokens pools to nothing
    sharp = attention_pool(tokens, mask, np.array([8.0, 0.0], np.float32))
    assert sharp[0, 0] > 0.99  # the high-scoring token dominates


def test_attention_branch_learns_which_token_carries_the_label() -> None:
    """The label is one marker token among ten random filler tokens: the learned scores must
    pick the markers out (attention on them well above the uniform 1/11)."""
    rng = np.random.default_rng(0)
    dim, markers = 16, np.eye(16, dtype=np.float32)[:2] * 3.0
    sequences, labels = [], []
    for i in range(240):
        seq = rng.normal(0, 1, (11, dim)).astype(np.float32)
        seq[rng.integers(11)] = markers[i % 2]
        sequences.append(seq)
        labels.append(i % 2)
    config = SoftmaxConfig(epochs=30, batch_size=16, learning_rate=0.02, dropout=0.0)
    model = SoftmaxModel.fit(None, None, np.array(labels), 2, config, sequences=sequences)
    assert model.uses_sequences and set(model.weights) == {"b", "att_v", "W_a"}
    test = [rng.normal(0, 1, (11, dim)).astype(np.float32) for _ in range(2)]
    for k, seq in enumerate(test):
        seq[5] = markers[k]
    assert model.predict_proba(None, None, test).argmax(axis=1).tolist() == [0, 1]
    tokens, mask = pad_sequences(test, dim)
    scores = tokens @ model.weights["att_v"]
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    assert (weights[:, 5] > 3 / 11).all()


def test_sparse_rows_l2_log_is_unit_log_counts():
    import scipy.sparse

    from concierge_rasa.nlu.softmax_model import sparse_rows_l2_log

    counts = np.array([[0, 2, 0, 1], [0, 0, 0, 0], [5, 0, 0, 0], [1, 1, 1, 1]], dtype=np.int64)
    whole, first = scipy.sparse.csr_matrix(counts), scipy.sparse.csr_matrix(counts[:1])
    for matrix in (scipy.sparse.coo_matrix(counts), whole, first):
        out = sparse_rows_l2_log(matrix)
        assert scipy.sparse.isspmatrix_csr(out) and out.dtype == np.float32
        dense = np.log1p(counts[: matrix.shape[0]].astype(np.float64))
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        expected = dense / np.where(norms == 0, 1.0, norms)
        np.testing.assert_allclose(out.toarray(), expected, rtol=1e-6, atol=1e-7)
    assert matrix.toarray()[0, 1] == 2  # the input is left as it was
