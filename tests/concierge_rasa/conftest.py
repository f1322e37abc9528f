"""Shared fixtures: a real Rasa model storage and real components (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer

from concierge_rasa.nlu.onnx_runtime import CONFIG_NAME, EXPORT_HINT, read_export_config, resolve_model_dir
from tests.requirements import require_files


@pytest.fixture(scope="session")
def encoder_dir() -> Path:
    """The exported ONNX encoder; the tests need it (``make test-rasa`` exports it first).

    Not exported at all: a listed skip on a developer's machine, a failure under CI. An export that
    is incomplete or unreadable (a corrupt config) fails every test that needs it: it is broken, not
    absent, and used to be skipped like a missing one."""
    path = require_files(resolve_model_dir(None), ("model.onnx", "tokenizer.json", CONFIG_NAME), "The ONNX encoder",
                         EXPORT_HINT)
    read_export_config(path)
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
