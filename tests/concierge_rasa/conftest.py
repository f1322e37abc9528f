"""Shared fixtures: a real Rasa model storage and real components (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer

from concierge_rasa.nlu.onnx_runtime import EXPORT_HINT, read_export_config, resolve_model_dir


@pytest.fixture(scope="session")
def encoder_dir() -> Path:
    """The exported ONNX encoder; the tests need it (``make export-onnx`` creates it)."""
    path = resolve_model_dir(None)
    try:
        read_export_config(path)
    except Exception as exc:  # noqa: BLE001 - turned into a readable skip
        pytest.skip(f"ONNX encoder not exported: {exc}. {EXPORT_HINT}")
    return path


@pytest.fixture()
def model_storage(tmp_path: Path) -> LocalModelStorage:
    path = tmp_path / "storage"
    path.mkdir()
    return LocalModelStorage(path)


@pytest.fixture()
def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), "test-model")


@pytest.fixture()
def tokenizer() -> WhitespaceTokenizer:
    return WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
