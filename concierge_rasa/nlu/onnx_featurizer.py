"""Dense featurizer: all-MiniLM-L6-v2 sentence embeddings computed with onnxruntime.

Why: the Rasa runtime has TensorFlow but no torch; the encoder is exported to ONNX during
set-up (``scripts/export_onnx.py``) and run here. Sentence features are the mean-pooled,
L2-normalised embedding (exactly what sentence-transformers returns); sequence features are
the contextual word-piece vectors averaged per Rasa token, so DIET or any other Rasa
component that wants token features can use them too.

With ``sentence_layers`` the sentence feature is instead the mean of several of the
encoder's layers, each unit length, side by side. Why: the last layer is tuned for sentence
similarity and blurs the wording that tells fine-grained intents apart ("pending top-up" vs
"failed top-up"); the middle layers still carry it. Chosen on validation data (BANKING77
5-fold cross-validation, CLINC150 val) by ``bench/knn_tuning.py --layers``.

With ``tune_top_layer_epochs`` > 0 the featurizer is trained: a copy of the encoder's last
``tune_top_layers`` layers is fitted to the training data's intents (``top_layer.TopLayer``,
TensorFlow; the layers below stay frozen) and their means replace those layers' in the
sentence feature.
Per-word sequence features stay the frozen encoder's unless ``tune_sequence_features`` is
on; then they are the tuned layer's word-piece outputs. Chosen on validation data only by
``bench/ceiling_probe.py``.

Usage in ``config.yml``::

    - name: concierge_rasa.nlu.onnx_featurizer.OnnxSentenceFeaturizer
      model_path: null      # default: $CONCIERGE_ONNX_MODEL_DIR or var/models/minilm-onnx
      sentence_layers: [4, 5, 6]   # null = the last layer's mean (the sentence embedding)
      tune_top_layer_epochs: 3     # 0 = keep the encoder frozen
      tune_top_layers: 2           # how many of the last layers to train (the export gives 2)
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Optional

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.features import HashedFeaturesMixin
from concierge_rasa.nlu.onnx_runtime import (
    FROZEN_ENCODING,
    EncodedBatch,
    EncoderMissingError,
    FrozenEncoding,
    OnnxSentenceEncoder,
    align_to_tokens,
    get_encoder,
    layer_sentence_features,
    read_export_config,
    resolve_model_dir,
)
from concierge_rasa.nlu.top_layer import TopLayer

logger = logging.getLogger(__name__)
TUNED_FILE = "top_layer.npz"
TUNED_META = "top_layer.json"

# What train() encoded, for process_training_data of the same training run (Rasa runs the
# train node, then loads the component and runs the process node, in this process): the
# training texts go through the encoder once, not twice. Keyed by (model storage, resource);
# one entry at most, taken on use.
_TRAINING_ENCODINGS: dict[tuple[int, str], tuple[tuple, dict[str, int], EncodedBatch]] = {}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class OnnxSentenceFeaturizer(HashedFeaturesMixin, DenseFeaturizer, GraphComponent):
    """Adds MiniLM (ONNX) dense sequence + sentence features to messages."""

    @classmethod
    def required_components(cls) -> list[type]:
        """A tokenizer must run first (sequence features are per Rasa token)."""
        return [Tokenizer]

    @staticmethod
    def required_packages() -> list[str]:
        """Python packages the component needs."""
        return ["onnxruntime", "tokenizers", "scipy"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults; every key can be set in config.yml."""
        return {
            **DenseFeaturizer.get_default_config(),
            # folder written by scripts/export_onnx.py; null = env var or var/models/minilm-onnx
            "model_path": None,
            # onnxruntime threads when parsing single messages (training batches use all cores)
            "num_threads": 1,
            # texts per encoder call while training
            "batch_size": 64,
            # word pieces per message (null = value from the export config)
            "max_length": None,
            # also emit per-token sequence features (DIET needs them; the linear classifier does not)
            "sequence_features": True,
            # sentence feature from these layers' means (0 = embedding output, 6 = last layer);
            # null = the last layer's mean alone, i.e. the sentence-transformers embedding
            "sentence_layers": None,
            # train a copy of the encoder's last layer on the intents for this many epochs
            # (0 = frozen encoder); its mean replaces the last layer's in the sentence feature
            "tune_top_layer_epochs": 0,
            # how many of the encoder's last layers are trained (at most what the export gives)
            "tune_top_layers": 1,
            # with a tuned layer, per-word sequence features come from it too (else frozen)
            "tune_sequence_features": False,
            "tune_learning_rate": 0.0001,
            "tune_batch_size": 32,
            "random_seed": 42,
        }

    def __init__(
        self,
        config: dict[str, Any],
        execution_context: ExecutionContext,
        model_storage: Optional[ModelStorage] = None,
        resource: Optional[Resource] = None,
        tuned: Optional[TopLayer] = None,
    ) -> None:
        super().__init__(execution_context.node_name, config)
        self._model_dir = resolve_model_dir(self._config.get("model_path"))
        self._encoder: Optional[OnnxSentenceEncoder] = None
        self._model_storage = model_storage
        self._resource = resource
        self.tuned = tuned
        self._graph_for: Optional[TopLayer] = None  # the tuned stack given the export's layer graph

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> OnnxSentenceFeaturizer:
        """Creates the component; the encoder itself loads on first use."""
        return cls(config, execution_context, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> OnnxSentenceFeaturizer:
        """Loads the trained top layer, if training made one (else the frozen encoder)."""
        tuned = None
        try:
            with model_storage.read_from(resource) as folder:
                meta = json.loads((folder / TUNED_META).read_text())
                tuned = TopLayer.load(folder / TUNED_FILE, int(meta["num_heads"]), float(meta["layer_norm_eps"]))
        except (ValueError, KeyError, FileNotFoundError, OSError):
            tuned = None
        return cls(config, execution_context, model_storage, resource, tuned)

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the copy of the last layer to the intents (nothing to do when epochs is 0)."""
        epochs = int(self._config.get("tune_top_layer_epochs") or 0)
        depth = int(self._config.get("tune_top_layers") or 1)
        if epochs <= 0 or self._model_storage is None or self._resource is None:
            return self._resource
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and str(e.get(TEXT) or "").strip()]
        labels = sorted({e.get(INTENT) for e in examples})
        if len(labels) < 2:
            logger.warning("OnnxSentenceFeaturizer: fewer than two intents; the top layer stays frozen.")
            return self._resource
        index = {name: i for i, name in enumerate(labels)}
        started = time.perf_counter()
        texts = [e.get(TEXT) for e in examples]
        options = self._encode_options(depth)
        encoded = self.encoder.encode(texts, batch_size=int(self._config["batch_size"]), **dict(options))
        logger.info(
            f"OnnxSentenceFeaturizer: tuning the top {depth} layer(s) on {len(examples)} examples, "
            f"{len(labels)} intents "
            f"(states below it in {time.perf_counter() - started:.1f}s)"
        )

        def progress(epoch: int, loss: float, seconds: float) -> None:
            logger.info(f"OnnxSentenceFeaturizer top layers epoch {epoch}/{epochs}: loss {loss:.4f} ({seconds:.0f}s)")

        base = self.encoder.top_layer(depth)
        self.tuned = base.fit(
            encoded.pre_top,
            np.array([index[e.get(INTENT)] for e in examples]),
            len(labels),
            epochs=epochs,
            learning_rate=float(self._config["tune_learning_rate"]),
            batch_size=int(self._config["tune_batch_size"]),
            seed=int(self._config["random_seed"]),
            progress=progress,
        )
        _TRAINING_ENCODINGS.clear()
        if self.tuned.depth == depth:
            _TRAINING_ENCODINGS[self._shared_key()] = (options, {t: i for i, t in enumerate(texts)}, encoded)
        with self._model_storage.write_to(self._resource) as folder:
            self.tuned.save(folder / TUNED_FILE)
            meta = {"num_heads": self.tuned.num_heads, "layer_norm_eps": self.tuned.eps, "labels": labels}
            (folder / TUNED_META).write_text(json.dumps(meta))
        return self._resource

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Rejects nonsensical numbers early, with a readable message."""
        if int(config.get("batch_size") or 1) < 1:
            raise InvalidConfigException("OnnxSentenceFeaturizer: batch_size must be >= 1.")
        if config.get("max_length") is not None and int(config["max_length"]) < 8:
            raise InvalidConfigException("OnnxSentenceFeaturizer: max_length must be >= 8.")
        epochs = config.get("tune_top_layer_epochs", 0)
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise InvalidConfigException(
                f"OnnxSentenceFeaturizer: tune_top_layer_epochs must be a whole number >= 0, not {epochs!r}."
            )
        depth = config.get("tune_top_layers", 1)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise InvalidConfigException(
                f"OnnxSentenceFeaturizer: tune_top_layers must be a whole number >= 1, not {depth!r}."
            )
        if float(config.get("tune_learning_rate", 1e-4)) <= 0 or int(config.get("tune_batch_size", 32)) < 1:
            raise InvalidConfigException(
                "OnnxSentenceFeaturizer: tune_learning_rate must be > 0 and tune_batch_size >= 1."
            )
        layers = config.get("sentence_layers")
        if layers is not None and (
            not isinstance(layers, list) or not layers or not all(isinstance(x, int) and x >= 0 for x in layers)
        ):
            raise InvalidConfigException(
                "OnnxSentenceFeaturizer: sentence_layers must be null or a non-empty list of layer numbers "
                f"(0 = embedding output, 6 = last layer), not {layers!r}."
            )

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> Optional[str]:
        """Retrain when the exported encoder changes (it lives outside the graph)."""
        try:
            return str(read_export_config(resolve_model_dir(config.get("model_path"))).get("fingerprint"))
        except (EncoderMissingError, OSError, ValueError):
            return None

    @property
    def encoder(self) -> OnnxSentenceEncoder:
        """The shared encoder for this model folder (raises a clear error when not exported)."""
        if self._encoder is None:
            encoder = get_encoder(
                self._model_dir,
                num_threads=int(self._config.get("num_threads") or 1),
                max_length=self._config.get("max_length"),
            )
            if self._layers:
                try:
                    encoder.check_layers(self._layers)
                except ValueError as exc:
                    raise InvalidConfigException(f"OnnxSentenceFeaturizer: {exc}") from exc
            self._encoder = encoder
        return self._encoder

    @property
    def _layers(self) -> list[int]:
        return list(self._config.get("sentence_layers") or [])

    def _encode_options(self, depth: int) -> tuple:
        """The encoder outputs featurizing needs, with ``depth`` tuned layers (0 = frozen)."""
        return (
            ("with_tokens", bool(self._config.get("sequence_features", True))),
            ("with_layers", bool(self._layers)),
            ("with_pre_top", depth),
        )

    def _shared_key(self) -> tuple[int, str]:
        return (id(self._model_storage), self._resource.name if self._resource else "")

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Featurizes all training examples in batches (reusing what train() encoded)."""
        shared = _TRAINING_ENCODINGS.pop(self._shared_key(), None)
        self._featurize(training_data.training_examples, shared)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Featurizes messages at inference time (leaving each message's frozen encoding for
        later components, the sentiment head: one encoder pass serves both)."""
        self._featurize(messages, keep_frozen=True)
        return messages

    def _featurize(
        self,
        messages: list[Message],
        shared: Optional[tuple[tuple, dict[str, int], EncodedBatch]] = None,
        keep_frozen: bool = False,
    ) -> None:
        jobs: list[tuple[Message, str, str, list[tuple[int, int]]]] = []
        for message in messages:
            for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
                tokens = message.get(TOKENS_NAMES[attribute])
                text = message.get(attribute)
                if not tokens or not isinstance(text, str) or not text.strip():
                    continue
                jobs.append((message, attribute, text, [(t.start, t.end) for t in tokens]))
        if not jobs:
            return
        options = self._encode_options(0 if self.tuned is None else self.tuned.depth)
        known: dict[str, int] = {}
        batches: list[EncodedBatch] = []
        if shared is not None and shared[0] == options:
            known, batches = shared[1], [shared[2]]
        fresh = list(dict.fromkeys(job[2] for job in jobs if job[2] not in known))
        if known:
            logger.info(f"OnnxSentenceFeaturizer: reusing train()'s encoding; {len(fresh)} more texts to encode")
        if fresh:
            batches.append(self.encoder.encode(fresh, batch_size=int(self._config["batch_size"]), **dict(options)))
        where = {text: (0, row) for text, row in known.items()}
        where.update({text: (len(batches) - 1, row) for row, text in enumerate(fresh)})
        features = [self._batch_features(batch) for batch in batches]
        with_tokens = dict(options)["with_tokens"]
        for message, attribute, text, spans in jobs:
            b, k = where[text]
            sentences, pieces = features[b]
            sequence = align_to_tokens(pieces[k], batches[b].offsets[k], spans) if with_tokens else None
            self.add_features_to_message(
                sequence=sequence, sentence=sentences[k : k + 1], attribute=attribute, message=message
            )
            if keep_frozen and attribute == TEXT:
                layers, pre_top = batches[b].layers, batches[b].pre_top
                frozen = FrozenEncoding(
                    batches[b].sentence[k],
                    None if layers is None else layers[k],
                    None if pre_top is None else pre_top[k],
                    int(dict(options)["with_pre_top"]) if pre_top is not None else 0,
                )
                message.set(FROZEN_ENCODING, frozen)

    def _batch_features(self, encoded: EncodedBatch) -> tuple[np.ndarray, list[np.ndarray]]:
        """Sentence features and per-word-piece vectors of one encoded batch."""
        layers, tuned, pieces = self._layers, self.tuned, encoded.tokens
        if tuned is not None and tuned is not self._graph_for:
            tuned.use_graph(self.encoder.top_layer_graph)  # onnxruntime when the export has the graph
            self._graph_for = tuned
        if tuned is None:
            return (encoded.sentence if not layers else layer_sentence_features(encoded.layers, layers)), pieces
        tuned_pieces = bool(self._config.get("sequence_features", True)) and bool(
            self._config.get("tune_sequence_features")
        )
        top, tuned_out = tuned.outputs(encoded.pre_top, with_pieces=tuned_pieces)
        if tuned_pieces:
            pieces = tuned_out
        if not layers:
            return layer_sentence_features(top[:, -1:], [0]), pieces
        means = encoded.layers.copy()
        means[:, self.encoder.num_layers - tuned.depth + 1 :] = top
        return layer_sentence_features(means, layers), pieces
