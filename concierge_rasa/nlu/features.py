"""Rasa ``Features`` whose fingerprint hashes the feature matrix's raw arrays.

Why: Rasa fingerprints every feature after each node of ``rasa train`` (its training cache).
``Features.fingerprint`` formats a sparse matrix entry by entry as text and a dense one as the
``repr`` of its bytes, so on BANKING77's 10,003 examples this bookkeeping cost more than
training the intent classifier. Hashing the arrays' bytes (with shape and dtype) keeps what a
fingerprint promises, the same content gives the same fingerprint and any change another, at
a fraction of the cost. The project's featurizers add their features through
``HashedFeaturesMixin``.
"""

from __future__ import annotations

import hashlib
from typing import Optional, Union

import numpy as np
import scipy.sparse
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.io import deep_container_fingerprint

Matrix = Union[np.ndarray, scipy.sparse.spmatrix]


def array_digest(matrix: Matrix) -> str:
    """md5 of a dense or sparse matrix's shape, dtype and values (and positions, if sparse)."""
    digest = hashlib.md5(usedforsecurity=False)
    if scipy.sparse.issparse(matrix):
        coo = matrix.tocoo()
        digest.update(repr(("sparse", coo.shape, str(coo.data.dtype))).encode())
        arrays = (coo.row, coo.col, coo.data)
    else:
        dense = np.asarray(matrix)
        digest.update(repr(("dense", dense.shape, str(dense.dtype))).encode())
        arrays = (dense,)
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class HashedFeatures(Features):
    """``Features`` with a fingerprint over the matrix's arrays (see the module docstring)."""

    def fingerprint(self) -> str:
        """Stable hash of type, origin, attribute and the matrix's content."""
        if self._cached_fingerprint is None:
            self._cached_fingerprint = deep_container_fingerprint(
                [self.type, self.origin, self.attribute, array_digest(self.features)]
            )
        return self._cached_fingerprint


class HashedFeaturesMixin:
    """For a Rasa featurizer: adds its features as ``HashedFeatures`` (put it first in the bases)."""

    _identifier: str

    def add_features_to_message(
        self,
        sequence: Optional[Matrix],
        sentence: Optional[Matrix],
        attribute: str,
        message: Message,
    ) -> None:
        """As Rasa's ``Featurizer.add_features_to_message``, with ``HashedFeatures``."""
        for kind, matrix in ((FEATURE_TYPE_SEQUENCE, sequence), (FEATURE_TYPE_SENTENCE, sentence)):
            if matrix is not None:
                message.add_features(HashedFeatures(matrix, kind, attribute, self._identifier))
