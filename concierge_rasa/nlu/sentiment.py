"""Sentiment of every customer message, computed during NLU, calibrated, in the parse data.

Why here: sentiment used to come from a torch model in the action server, reached by an HTTP
call from the channel before NLU even started, and its score was 1.0 for nearly every message.
Now it is a small softmax head on the frozen MiniLM features the pipeline's
``OnnxSentenceFeaturizer`` already computes for the message (no second encoder pass), with a
temperature fitted on a validation set, so ``p(negative) >= 0.7`` means about seven in ten.
The result goes into the parse data, where the dialogue policies (``upset_policy``), the
actions (``tracker.latest_message["sentiment"]``), the tracker store and the event broker see it::

    "sentiment": {"label": "negative", "confidence": 0.91,
                  "probabilities": {"negative": 0.91, "neutral": 0.07, "positive": 0.02}}

Messages with no text (empty, only spaces) get no ``sentiment`` key.

The head trains during ``rasa train`` (a few seconds: the project's own labelled messages,
``data/sentiment/*.csv``, through the encoder once, then logistic regression), is calibrated
on ``data/sentiment/eval/validation.csv`` and is stored in the Rasa model. Accuracy, macro-F1,
calibration and latency beside the old model: ``bench/sentiment_nlu.py``.

Usage in config.yml, after ``OnnxSentenceFeaturizer``::

    - name: concierge_rasa.nlu.sentiment.SentimentClassifier
      training_files: [data/sentiment/messages.csv]
      validation_file: data/sentiment/eval/validation.csv
      sentence_layers: [4, 5, 6]
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
from concierge_rasa.nlu.sentiment_head import LABELS, SentimentHead

logger = logging.getLogger(__name__)

SENTIMENT = "sentiment"  # key in Message.data and in the parse data


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


def sentiment_features(encoding: FrozenEncoding, layers: Sequence[int]) -> np.ndarray:
    """[1, dim] head input from one message's frozen encoding (same recipe as training)."""
    if not layers:
        return encoding.sentence.reshape(1, -1)
    if encoding.layers is None:
        raise ValueError("the encoding has no per-layer means")
    return layer_sentence_features(encoding.layers[None, :, :], layers)


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
            # folder of the exported encoder; null = $CONCIERGE_ONNX_MODEL_DIR or var/models/minilm-onnx
            "model_path": None,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        head: Optional[SentimentHead] = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.head = head
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
        head = None
        try:
            with model_storage.read_from(resource) as folder:
                head, _ = SentimentHead.load(Path(folder))
        except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
            logger.warning("SentimentClassifier: no trained head (%s); messages get no sentiment.", exc)
        return cls(config, model_storage, resource, head)

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
        digest = hashlib.md5(usedforsecurity=False)
        files = [*(config.get("training_files") or []), config.get("validation_file") or ""]
        for name in files:
            path = project_path(str(name)) if name else None
            digest.update(str(name).encode())
            if path is not None and path.is_file():
                digest.update(path.read_bytes())
        try:
            digest.update(str(read_export_config(resolve_model_dir(config.get("model_path"))).get("fingerprint")).encode())
        except (EncoderMissingError, OSError, ValueError):
            pass
        return digest.hexdigest()

    @property
    def encoder(self):  # noqa: ANN201 - OnnxSentenceEncoder
        """The process's shared encoder (the featurizer's, with the same default settings)."""
        return get_encoder(resolve_model_dir(self.config.get("model_path")), num_threads=1)

    def featurize_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Head inputs [n, dim] for texts, encoded one by one exactly as at parse time."""
        encoded = self.encoder.encode(list(texts), with_tokens=False, with_layers=bool(self._layers))
        if not self._layers:
            return encoded.sentence
        return layer_sentence_features(encoded.layers, self._layers)

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the head on the labelled files and its temperature on the validation file."""
        started = time.perf_counter()
        texts, labels = read_labelled_csv([project_path(str(f)) for f in self.config["training_files"]])
        if not texts:
            raise InvalidConfigException("SentimentClassifier: the training files hold no labelled messages.")
        head = SentimentHead.fit(self.featurize_texts(texts), labels, c=float(self.config["c"]))
        report: dict[str, Any] = {}
        validation = self.config.get("validation_file")
        if validation and project_path(str(validation)).is_file():
            val_texts, val_labels = read_labelled_csv([project_path(str(validation))])
            if val_texts:
                report = head.calibrate(self.featurize_texts(val_texts), val_labels)
        else:
            logger.warning("SentimentClassifier: no validation file; probabilities stay uncalibrated.")
        self.head = head
        with self._model_storage.write_to(self._resource) as folder:
            head.save(Path(folder), {"sentence_layers": self._layers})
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
            if not isinstance(encoding, FrozenEncoding) or (self._layers and encoding.layers is None):
                encoding = self._encode_one(text)  # the featurizer did not leave its encoding
            probs = self.head.probabilities(sentiment_features(encoding, self._layers))[0]
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
        return messages

    def _encode_one(self, text: str) -> FrozenEncoding:
        encoded = self.encoder.encode([text], with_tokens=False, with_layers=bool(self._layers))
        return FrozenEncoding(encoded.sentence[0], None if encoded.layers is None else encoded.layers[0])
