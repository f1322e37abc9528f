"""HashedFeatures: a fingerprint over the matrix's content, cheap and content-true."""

from __future__ import annotations

import numpy as np
import scipy.sparse
from rasa.shared.nlu.constants import TEXT

from concierge_rasa.nlu.features import HashedFeatures


def _fp(matrix, kind: str = "sequence", origin: str = "cvf") -> str:
    return HashedFeatures(matrix, kind, TEXT, origin).fingerprint()


def test_sparse_fingerprint_follows_content():
    m = scipy.sparse.coo_matrix(np.array([[0, 2, 0], [1, 0, 0]]))
    assert _fp(m) == _fp(m.copy()) == _fp(m.tocsr())
    assert _fp(scipy.sparse.coo_matrix(np.array([[0, 3, 0], [1, 0, 0]]))) != _fp(m)  # value
    assert _fp(scipy.sparse.coo_matrix(np.array([[2, 0, 0], [1, 0, 0]]))) != _fp(m)  # position
    assert _fp(scipy.sparse.coo_matrix(np.array([[0, 2, 0, 0], [1, 0, 0, 0]]))) != _fp(m)  # shape
    assert _fp(m, kind="sentence") != _fp(m)
    assert _fp(m, origin="other") != _fp(m)


def test_dense_fingerprint_follows_content():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert _fp(a) == _fp(a.copy()) == _fp(np.asfortranarray(a))
    b = a.copy()
    b[2, 3] += 1e-6
    assert _fp(b) != _fp(a)
    assert _fp(a.reshape(4, 3)) != _fp(a)
    assert _fp(a.astype(np.float64)) != _fp(a)
    assert _fp(np.zeros((0, 4), dtype=np.float32)) != _fp(np.zeros((0, 3), dtype=np.float32))
