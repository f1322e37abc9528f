"""Fast intent classifier: softmax over dense (sentence encoder) + sparse (n-gram) features.

Why: with MiniLM sentence embeddings from ``OnnxSentenceFeaturizer`` a linear softmax is as
accurate as DIET, trains in seconds on 2 cores and parses in well under a millisecond. It
sets Rasa's ``intent`` and ``intent_ranking`` so ``FallbackClassifier`` works unchanged.
Weights go to Rasa's model storage as ``.npz`` + ``.json`` (no pickle).

Usage in ``config.yml`` (after the featurizers)::

    - name: concierge_rasa.nlu.softmax_classifier.SoftmaxIntentClassifier
      epochs: 30
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, FEATURE_TYPE_SEQUENCE, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.softmax_model import KnnMemory, SoftmaxConfig, SoftmaxModel, sparse_rows_l2_log

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
META_FILE = "meta.json"
FORMAT_VERSION = 1


def _knn_memory(config: dict[str, Any], keys: np.ndarray, labels: np.ndarray, num_classes: int) -> Optional[KnnMemory]:
    """The kNN vote the config asks for (None when knn_weight is 0)."""
    if float(config["knn_weight"]) <= 0.0:
        return None
    null = config.get("knn_null_similarity")
    return KnnMemory(
        keys,
        labels,
        num_classes,
        k=int(config["knn_k"]),
        temperature=float(config["knn_temperature"]),
        null_similarity=None if null is None else float(null),
    )


def _l2_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SoftmaxIntentClassifier(IntentClassifier, GraphComponent):
    """Linear (optionally one hidden layer) softmax intent classifier."""

    @classmethod
    def required_components(cls) -> list[type]:
        """Needs at least one featurizer before it."""
        return [Featurizer]

    @staticmethod
    def required_packages() -> list[str]:
        """Python packages the component needs."""
        return ["tensorflow", "scipy"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults; every key can be set in config.yml."""
        return {
            "epochs": 30,
            # small data sets (the assistant's own ~3k examples) need more passes to become
            # confident: train at least this many optimizer steps (epochs are raised to match)
            "min_steps": 1500,
            "batch_size": 64,
            "learning_rate": 0.003,
            "dropout": 0.2,
            "hidden_units": 0,
            "label_smoothing": 0.0,
            "weight_decay": 0.0,
            "random_seed": 42,
            # names/aliases of the featurizers to use; empty = every featurizer
            "featurizers": [],
            # use sparse (CountVectors/Regex/...) sentence features beside the dense ones
            "use_sparse": True,
            # scale of the (unit length) sparse block relative to the dense block
            "sparse_weight": 1.0,
            # learn an attention pool over the dense per-token (sequence) features, when a
            # featurizer provides them (OnnxSentenceFeaturizer with sequence_features: true)
            "attention_pooling": True,
            "ranking_length": LABEL_RANKING_LENGTH,
            # blend in a cosine kNN vote over the training sentences' dense features:
            # p = (1 - knn_weight) * softmax + knn_weight * vote; 0 turns it off. A virtual
            # neighbour at knn_null_similarity votes for all intents alike, so out-of-scope
            # messages (far from every training sentence) stay unconfident. The values were
            # chosen on validation data only (bench/knn_tuning.py: 5-fold cross-validation on
            # BANKING77's train split and CLINC150's val + oos_val), never on a test split.
            "knn_weight": 0.4,
            "knn_k": 20,
            "knn_temperature": 0.02,
            "knn_null_similarity": 0.8,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Optional[SoftmaxModel] = None,
        meta: Optional[dict[str, Any]] = None,
        knn: Optional[KnnMemory] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.model = model
        self.meta: dict[str, Any] = meta or {}
        self.knn = knn

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SoftmaxIntentClassifier:
        """Creates an untrained component."""
        return cls(config, model_storage, resource)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Rejects nonsensical values early."""
        merged = {**cls.get_default_config(), **config}
        if int(merged["epochs"]) < 1 or int(merged["batch_size"]) < 1:
            raise InvalidConfigException("SoftmaxIntentClassifier: epochs and batch_size must be >= 1.")
        if not 0.0 <= float(merged["dropout"]) < 1.0:
            raise InvalidConfigException("SoftmaxIntentClassifier: dropout must be in [0, 1).")
        if not 0.0 <= float(merged["knn_weight"]) <= 1.0:
            raise InvalidConfigException("SoftmaxIntentClassifier: knn_weight must be in [0, 1].")
        null = merged.get("knn_null_similarity")
        if null is not None and not -1.0 <= float(null) <= 1.0:
            raise InvalidConfigException("SoftmaxIntentClassifier: knn_null_similarity must be in [-1, 1] or null.")
        if int(merged["knn_k"]) < 1 or float(merged["knn_temperature"]) <= 0.0:
            raise InvalidConfigException("SoftmaxIntentClassifier: knn_k must be >= 1 and knn_temperature > 0.")

    # ------------------------------------------------------------------ features
    def _text_features(self, message: Message, feature_type: str) -> Iterator[tuple[str, Features]]:
        """TEXT features of one type (sentence or sequence) from the configured featurizers,
        each with its key: the featurizer origin(s)."""
        wanted = set(self.config.get("featurizers") or [])
        for feat in message.features:
            if feat.attribute != TEXT or feat.type != feature_type:
                continue
            origins = feat.origin if isinstance(feat.origin, list) else [feat.origin]
            if wanted and not wanted.intersection(origins):
                continue
            yield "+".join(str(o) for o in origins), feat

    def _blocks(self, message: Message) -> tuple[dict[str, np.ndarray], dict[str, scipy.sparse.spmatrix]]:
        """Sentence features of TEXT per featurizer (origin), dense and sparse apart."""
        dense: dict[str, np.ndarray] = {}
        sparse: dict[str, scipy.sparse.spmatrix] = {}
        for key, feat in self._text_features(message, FEATURE_TYPE_SENTENCE):
            if feat.is_sparse():
                if self.config["use_sparse"]:
                    sparse[key] = feat.features
            else:
                dense[key] = np.asarray(feat.features, dtype=np.float32).reshape(1, -1)
        return dense, sparse

    def _sequence_blocks(self, message: Message) -> dict[str, np.ndarray]:
        """Dense per-token features of TEXT per featurizer (origin), [tokens, dim] each."""
        return {
            key: np.asarray(feat.features, dtype=np.float32)
            for key, feat in self._text_features(message, FEATURE_TYPE_SEQUENCE)
            if not feat.is_sparse()
        }

    def _sequence(self, message: Message, layout: dict[str, int]) -> np.ndarray:
        """Dense per-token features of TEXT, the layout's blocks side by side ([tokens, dim])."""
        blocks = self._sequence_blocks(message)
        length = max([0, *(len(b) for b in blocks.values() if b.ndim == 2)])
        parts = []
        for key, size in layout.items():
            block = blocks.get(key)
            if block is None or block.ndim != 2 or block.shape != (length, size):
                block = np.zeros((length, size), dtype=np.float32)
            parts.append(block)
        return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), dtype=np.float32)

    def _matrices(
        self, messages: list[Message], layout: dict[str, dict[str, int]]
    ) -> tuple[Optional[np.ndarray], Optional[scipy.sparse.csr_matrix], np.ndarray]:
        """Stacks features into [n, dense_dim] and [n, sparse_dim]; also a has-features mask."""
        n = len(messages)
        dense_layout, sparse_layout = layout["dense"], layout["sparse"]
        d_dim, s_dim = sum(dense_layout.values()), sum(sparse_layout.values())
        dense = np.zeros((n, d_dim), dtype=np.float32) if d_dim else None
        sparse_rows: dict[str, list[scipy.sparse.spmatrix]] = {k: [] for k in sparse_layout}
        present = np.zeros(n, dtype=bool)
        for i, message in enumerate(messages):
            d, s = self._blocks(message)
            present[i] = bool(d) or any(m.nnz for m in s.values())
            offset = 0
            for key, size in dense_layout.items():
                if key in d and d[key].shape[1] == size:
                    dense[i, offset : offset + size] = _l2_rows(d[key])[0]
                offset += size
            for key, size in sparse_layout.items():
                row = s.get(key)
                if row is None or row.shape[1] != size:
                    row = scipy.sparse.csr_matrix((1, size), dtype=np.float32)
                sparse_rows[key].append(row)
        sparse = None
        if s_dim:
            weight = float(self.config["sparse_weight"])
            blocks = [
                sparse_rows_l2_log(rows[0] if len(rows) == 1 else scipy.sparse.vstack(rows))
                for rows in sparse_rows.values()
            ]
            sparse = (scipy.sparse.hstack(blocks).tocsr() * weight).astype(np.float32)
        return dense, sparse, present

    # ------------------------------------------------------------------ training
    def train(self, training_data: TrainingData) -> Resource:
        """Trains on the intent examples and persists the weights."""
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        labels = sorted({e.get(INTENT) for e in examples})
        if len(labels) < 2:
            logger.warning("SoftmaxIntentClassifier needs at least two intents; skipping training.")
            return self._resource
        layout: dict[str, dict[str, int]] = {"dense": {}, "sparse": {}, "sequence": {}}
        for e in examples:
            d, s = self._blocks(e)
            for key, value in d.items():
                layout["dense"].setdefault(key, value.shape[1])
            for key, value in s.items():
                layout["sparse"].setdefault(key, value.shape[1])
            if self.config["attention_pooling"]:
                for key, value in self._sequence_blocks(e).items():
                    layout["sequence"].setdefault(key, int(value.shape[-1]))
        layout = {kind: dict(sorted(blocks.items())) for kind, blocks in layout.items()}
        if not layout["dense"] and not layout["sparse"]:
            raise InvalidConfigException("SoftmaxIntentClassifier found no sentence features; add a featurizer.")
        dense, sparse, _ = self._matrices(examples, layout)
        index = {name: i for i, name in enumerate(labels)}
        y = np.array([index[e.get(INTENT)] for e in examples], dtype=np.int32)
        steps_per_epoch = max(1, -(-len(examples) // int(self.config["batch_size"])))
        epochs = max(int(self.config["epochs"]), -(-int(self.config.get("min_steps") or 0) // steps_per_epoch))
        cfg = SoftmaxConfig(
            epochs=epochs,
            batch_size=int(self.config["batch_size"]),
            learning_rate=float(self.config["learning_rate"]),
            dropout=float(self.config["dropout"]),
            hidden_units=int(self.config["hidden_units"]),
            label_smoothing=float(self.config["label_smoothing"]),
            weight_decay=float(self.config["weight_decay"]),
            random_seed=int(self.config["random_seed"]),
        )
        every = max(1, cfg.epochs // 5)

        def progress(epoch: int, loss: float) -> None:
            if epoch % every == 0 or epoch == cfg.epochs:
                logger.info(f"SoftmaxIntentClassifier epoch {epoch}/{cfg.epochs}: loss {loss:.4f}")

        pooled = sum(layout["sequence"].values())
        logger.info(
            f"SoftmaxIntentClassifier: {len(examples)} examples, {len(labels)} intents, "
            f"dense {sum(layout['dense'].values())} + sparse {sum(layout['sparse'].values())} features"
            + (f", attention pool over {pooled}-d token features" if pooled else "")
        )
        sequences = [self._sequence(e, layout["sequence"]) for e in examples] if layout["sequence"] else None
        self.model = SoftmaxModel.fit(dense, sparse, y, len(labels), cfg, progress=progress, sequences=sequences)
        self.knn = None if dense is None else _knn_memory(self.config, KnnMemory.normalise(dense), y, len(labels))
        self.meta = {"format_version": FORMAT_VERSION, "labels": labels, "layout": layout}
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Writes weights (npz, no pickle) and metadata (json) to Rasa's model storage."""
        if self.model is None:
            return
        with self._model_storage.write_to(self._resource) as model_dir:
            arrays = dict(self.model.weights)
            if self.knn is not None:
                arrays.update(self.knn.weights())
            np.savez(model_dir / WEIGHTS_FILE, **arrays)
            (model_dir / META_FILE).write_text(json.dumps(self.meta))

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> SoftmaxIntentClassifier:
        """Loads the trained weights; an untrained component when there are none."""
        try:
            with model_storage.read_from(resource) as model_dir:
                meta = json.loads((model_dir / META_FILE).read_text())
                with np.load(model_dir / WEIGHTS_FILE, allow_pickle=False) as data:
                    weights = {k: data[k] for k in data.files}
        except (ValueError, FileNotFoundError, OSError):
            logger.debug(f"No trained weights for '{resource.name}'; intent classification is skipped.")
            return cls(config, model_storage, resource)
        knn = None
        if "knn_keys" in weights:
            merged = {**cls.get_default_config(), **config}
            knn = _knn_memory(merged, weights["knn_keys"], weights["knn_labels"], len(meta["labels"]))
        weights = {k: v for k, v in weights.items() if not k.startswith("knn_")}
        return cls(config, model_storage, resource, SoftmaxModel(weights), meta, knn)

    # ------------------------------------------------------------------ inference
    def process(self, messages: list[Message]) -> list[Message]:
        """Sets ``intent`` and ``intent_ranking`` on each message."""
        if not messages:
            return messages
        if self.model is None or not self.meta:
            for message in messages:
                message.set(INTENT, {"name": None, "confidence": 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
            return messages
        labels: list[str] = self.meta["labels"]
        layout = self.meta["layout"]
        dense, sparse, present = self._matrices(messages, layout)
        sequences = None
        if self.model.uses_sequences and layout.get("sequence"):
            sequences = [self._sequence(m, layout["sequence"]) for m in messages]
        probs = self.model.predict_proba(dense, sparse, sequences)
        if self.knn is not None and dense is not None:
            w = float(self.config["knn_weight"])
            probs = (1.0 - w) * probs + w * self.knn.vote(dense)
        length = int(self.config["ranking_length"] or 0)
        for i, message in enumerate(messages):
            if not present[i]:
                message.set(INTENT, {"name": None, "confidence": 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
                continue
            order = np.argsort(-probs[i])
            if length > 0:
                order = order[:length]
            ranking = [{"name": labels[j], "confidence": float(probs[i, j])} for j in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
