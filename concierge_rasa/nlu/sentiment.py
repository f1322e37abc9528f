"""Sentiment of every customer message, computed during NLU, calibrated, in the parse data.

Why here: sentiment used to come from a torch model in the action server, reached by an HTTP
call from the channel before NLU even started, and its score was 1.0 for nearly every message.
Now it is a softmax head on the frozen MiniLM layer means the pipeline's
``OnnxSentenceFeaturizer`` already computed for the message (the featurizer leaves them in the
message; no second encoder pass: about 0.2 ms a message), with a temperature fitted on a
validation set, so ``p(negative) >= 0.7`` means about seven in ten. With ``tune_top_layers: 2``
a copy of MiniLM's last two layers trained on the sentiment labels runs on the states below them
(which the featurizer's pass also leaves) and feeds the head instead: a little more accurate,
clearly so off-domain, at about two thirds of an encoder pass per message (figures beside
the old model: ``bench/sentiment_nlu.py``). The result goes into the parse data, where the
dialogue policies (``upset_policy``), the actions (``tracker.latest_message["sentiment"]``), the
tracker store and the event broker see it::

    "sentiment": {"label": "negative", "confidence": 0.91,
                  "probabilities": {"negative": 0.91, "neutral": 0.07, "positive": 0.02}}

Messages with no text (empty, only spaces) get no ``sentiment`` key.

Training happens in ``rasa train`` on the project's own labelled messages
(``data/sentiment/messages.csv``: through the encoder once, the tuned layers if asked for, then
logistic regression); the temperature is fitted on ``data/sentiment/eval/validation.csv``;
everything is stored in the Rasa model.

Usage in config.yml, after ``OnnxSentenceFeaturizer``::

    - name: concierge_rasa.nlu.sentiment.SentimentClassifier
      training_files: [data/sentiment/messages.csv]
      validation_file: data/sentiment/eval/validation.csv
      sentence_layers: [4, 5, 6]
      tune_top_layers: 0
      c: 10.0
"""

from __future__ import annotations

import csv
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from concierge_rasa.nlu.onnx_runtime import (
    FROZEN_ENCODING,
    PROJECT_ROOT,
    EncoderMissingError,
    FrozenEncoding,
    get_encoder,
    layer_sentence_features,
    read_export_config,
    resolve_model_dir,
)
from concierge_rasa.nlu.sentiment_head import LABELS, SentimentHead, label_indices
from concierge_rasa.nlu.tokenizer import has_han
from concierge_rasa.nlu.top_layer import TopLayer

logger = logging.getLogger(__name__)

SENTIMENT = "sentiment"  # key in Message.data and in the parse data


def set_sentiment(message: Message, probs: np.ndarray) -> None:
    """The head's probabilities on the message as its ``sentiment`` (label, confidence, all three),
    the same shape from the English and the Chinese head."""
    best = int(probs.argmax())
    message.set(
        SENTIMENT,
        {
            "label": LABELS[best],
            "confidence": round(float(probs[best]), 4),
            "probabilities": {name: round(float(p), 4) for name, p in zip(LABELS, probs, strict=True)},
        },
        add_to_output=True,
    )


def labelled_files_digest(config: dict[str, Any]) -> Any:
    """md5 over the names and contents of a head's labelled files: they live outside Rasa's training
    data, so a component's fingerprint adds this to retrain when they change."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in [*(config.get("training_files") or []), config.get("validation_file") or ""]:
        digest.update(str(name).encode())
        path = project_path(str(name)) if name else None
        if path is not None and path.is_file():
            digest.update(path.read_bytes())
    return digest
TUNED_FILE = "sentiment_top_layers.npz"


def read_labelled_csv(paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """``text,label`` rows of CSV files, labels in :data:`LABELS` (other rows are skipped)."""
    texts: list[str] = []
    labels: list[str] = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip()
                if text and label in LABELS:
                    texts.append(text)
                    labels.append(label)
    return texts, labels


def project_path(value: str) -> Path:
    """Relative paths are taken from the project root (where config.yml lives)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SentimentClassifier(GraphComponent):
    """Adds calibrated negative/neutral/positive probabilities to each message."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Defaults; every key can be set in config.yml."""
        return {
            # labelled ``text,label`` CSV files written for the project (relative to the project root)
            "training_files": ["data/sentiment/messages.csv"],
            # the temperature is fitted on this file (never on the test file the benchmark reports)
            "validation_file": "data/sentiment/eval/validation.csv",
            # frozen encoder layers whose unit-length means, side by side, feed the head
            # (0 = embedding output, 6 = last layer; [] = the sentence embedding);
            # chosen on validation.csv (bench/sentiment_nlu.py)
            "sentence_layers": [4, 5, 6],
            # inverse L2 strength of the logistic regression (chosen on validation.csv)
            "c": 10.0,
            # a copy of the encoder's last layers trained on the sentiment labels (0 = frozen
            # encoder, the default); their means replace those layers' in the head's input. At
            # parse time they run on the states below them, which the featurizer's pass leaves.
            # 2 is more accurate off-domain but costs about 2/3 of an encoder pass per message
            "tune_top_layers": 0,
            "tune_epochs": 2,
            "tune_learning_rate": 0.0001,
            "random_seed": 42,
            # folder of the exported encoder; null = $CONCIERGE_ONNX_MODEL_DIR or var/models/minilm-onnx
            "model_path": None,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        head: Optional[SentimentHead] = None,
        tuned: Optional[TopLayer] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.head = head
        self.tuned = tuned
        self._graph_ready = False
        self._layers = [int(x) for x in self.config.get("sentence_layers") or []]

    @classmethod
    def create(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentimentClassifier:
        """An untrained component."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
        execution_context: ExecutionContext, **kwargs: Any,
    ) -> SentimentClassifier:
        """The trained head; without one the component adds nothing (and says so once)."""
        head = tuned = None
        try:
            with model_storage.read_from(resource) as folder:
                head, meta = SentimentHead.load(Path(folder))
                if meta.get("tuned_depth"):
                    heads, eps = int(meta["num_heads"]), float(meta["layer_norm_eps"])
                    tuned = TopLayer.load(Path(folder) / TUNED_FILE, heads, eps)
        except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
            logger.warning("SentimentClassifier: no trained head (%s); messages get no sentiment.", exc)
            head = tuned = None
        return cls(config, model_storage, resource, head, tuned)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Readable errors for a bad configuration, before any training."""
        layers = config.get("sentence_layers")
        if layers is not None and (
            not isinstance(layers, list) or not all(isinstance(x, int) and 0 <= x <= 12 for x in layers)
        ):
            raise InvalidConfigException(
                f"SentimentClassifier: sentence_layers must be a list of layer numbers, not {layers!r}."
            )
        if float(config.get("c", 1.0)) <= 0:
            raise InvalidConfigException("SentimentClassifier: c must be > 0.")
        files = config.get("training_files")
        if not isinstance(files, list) or not files:
            raise InvalidConfigException("SentimentClassifier: training_files must be a non-empty list of CSV files.")
        missing = [f for f in files if not project_path(str(f)).is_file()]
        if missing:
            raise InvalidConfigException(f"SentimentClassifier: training files not found: {missing}.")

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> Optional[str]:
        """Retrain when the labelled files or the exported encoder change (they live outside Rasa's data)."""
        digest = labelled_files_digest(config)
        try:
            digest.update(str(read_export_config(resolve_model_dir(config.get("model_path"))).get("fingerprint")).encode())
        except (EncoderMissingError, OSError, ValueError):
            pass
        return digest.hexdigest()

    @property
    def encoder(self):  # noqa: ANN201 - OnnxSentenceEncoder
        """The process's shared encoder (the featurizer's, with the same default settings)."""
        return get_encoder(resolve_model_dir(self.config.get("model_path")), num_threads=1)

    @property
    def _depth(self) -> int:
        return int(self.config.get("tune_top_layers") or 0)

    def features(self, layers: np.ndarray, pre_top: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
        """Head inputs [n, dim] from frozen per-layer means [n, L + 1, dim], the tuned layers'
        means (run on ``pre_top``, the states below them) taking the place of the frozen ones."""
        if self.tuned is not None:
            if not self._graph_ready:
                self.tuned.use_graph(self.encoder.top_layer_graph)  # onnxruntime when the export has it
                self._graph_ready = True
            top, _ = self.tuned.outputs(list(pre_top or []), with_pieces=False)
            layers = layers.copy()
            layers[:, layers.shape[1] - self.tuned.depth :] = top
        if not self._layers:
            return layers[:, -1] / np.maximum(np.linalg.norm(layers[:, -1], axis=1, keepdims=True), 1e-12)
        return layer_sentence_features(layers, self._layers)

    def featurize_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Head inputs [n, dim] for texts, encoded one by one exactly as at parse time."""
        encoded = self.encoder.encode(list(texts), with_tokens=False, with_layers=True, with_pre_top=self._depth)
        return self.features(encoded.layers, encoded.pre_top)

    def train(self, training_data: TrainingData) -> Resource:
        """Tunes the top layers and fits the head on the labelled files, then the temperature on
        the validation file."""
        started = time.perf_counter()
        texts, labels = read_labelled_csv([project_path(str(f)) for f in self.config["training_files"]])
        if not texts:
            raise InvalidConfigException("SentimentClassifier: the training files hold no labelled messages.")
        self.tuned, self._graph_ready = None, False
        encoded = self.encoder.encode(texts, with_tokens=False, with_layers=True, with_pre_top=self._depth)
        if self._depth:
            epochs = int(self.config["tune_epochs"])

            def progress(epoch: int, loss: float, seconds: float) -> None:
                logger.info(f"SentimentClassifier top layers epoch {epoch}/{epochs}: loss {loss:.4f} ({seconds:.0f}s)")

            self.tuned = self.encoder.top_layer(self._depth).fit(
                encoded.pre_top,
                label_indices(labels),
                len(LABELS),
                epochs=epochs,
                learning_rate=float(self.config["tune_learning_rate"]),
                seed=int(self.config["random_seed"]),
                progress=progress,
            )
        head = SentimentHead.fit(self.features(encoded.layers, encoded.pre_top), labels, c=float(self.config["c"]))
        report: dict[str, Any] = {}
        validation = self.config.get("validation_file")
        if validation and project_path(str(validation)).is_file():
            val_texts, val_labels = read_labelled_csv([project_path(str(validation))])
            if val_texts:
                report = head.calibrate(self.featurize_texts(val_texts), val_labels)
        else:
            logger.warning("SentimentClassifier: no validation file; probabilities stay uncalibrated.")
        self.head = head
        extra: dict[str, Any] = {"sentence_layers": self._layers, "tuned_depth": self._depth}
        with self._model_storage.write_to(self._resource) as folder:
            if self.tuned is not None:
                self.tuned.save(Path(folder) / TUNED_FILE)
                extra.update(num_heads=self.tuned.num_heads, layer_norm_eps=self.tuned.eps)
            head.save(Path(folder), extra)
        logger.info(
            f"SentimentClassifier: {len(texts)} messages, {time.perf_counter() - started:.1f}s, "
            f"temperature {head.temperature:.3f}, validation {report}"
        )
        return self._resource

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Nothing to add to the intent examples."""
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Sets ``message.data["sentiment"]`` (kept in the parse data) on each message with text."""
        for message in messages:
            encoding = message.data.pop(FROZEN_ENCODING, None)
            text = message.get(TEXT)
            if self.head is None or not isinstance(text, str) or not text.strip():
                continue
            if has_han(text):
                # the head reads an English encoder: on Chinese it would guess, and a guessed "upset"
                # offers a person (UpsetPolicy); Chinese messages carry no sentiment until a head of their own
                continue
            if not self._usable(encoding):
                encoding = self._encode_one(text)  # the featurizer did not leave what the head needs
            pre_top = [encoding.pre_top] if self.tuned is not None else None
            set_sentiment(message, self.head.probabilities(self.features(encoding.layers[None], pre_top))[0])
        return messages

    def _usable(self, encoding: object) -> bool:
        if not isinstance(encoding, FrozenEncoding) or encoding.layers is None:
            return False
        return self.tuned is None or (encoding.pre_top is not None and encoding.pre_top_depth == self.tuned.depth)

    def _encode_one(self, text: str) -> FrozenEncoding:
        depth = 0 if self.tuned is None else self.tuned.depth
        encoded = self.encoder.encode([text], with_tokens=False, with_layers=True, with_pre_top=depth)
        pre_top = encoded.pre_top[0] if encoded.pre_top is not None else None
        return FrozenEncoding(encoded.sentence[0], encoded.layers[0], pre_top, depth)
