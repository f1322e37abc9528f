"""Action-server results checked by a JSON-schema validator built once, not on every action call.

Why: Rasa 3.6's ``RemoteAction._validate_action_result`` calls ``jsonschema.validate(result,
schema)``, which checks the schema itself against its meta-schema and builds a new validator on
every call of the action server: about a quarter of the Rasa process's CPU in ``make
bench-latency`` (issue 24). The schema is a constant, so it is checked once, and one validator
per schema is kept. Behaviour is Rasa's: the same validator class (``validator_for`` the schema),
the same error (``best_match`` of the errors, as ``jsonschema.validate`` raises) with Rasa's note
appended, and an invalid result is still rejected.

``install()`` runs when the Rasa server imports ``concierge_rasa`` (its NLU components, channels or
stores); it is a no-op outside the Rasa runtime.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from concierge_rasa.settings import load_rasa_settings

_validators: dict[Callable[[], dict[str, Any]], Any] = {}
_lock = threading.Lock()
_installed = False


def validator_for_spec(spec: Callable[[], dict[str, Any]]) -> Any:
    """The validator of the schema ``spec()`` returns, built (and the schema checked) on first use."""
    validator = _validators.get(spec)
    if validator is None:
        from jsonschema.validators import validator_for

        schema = spec()
        cls = validator_for(schema)
        cls.check_schema(schema)  # what jsonschema.validate does on every call, once
        validator = cls(schema)
        with _lock:
            validator = _validators.setdefault(spec, validator)
    return validator


def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
    """Drop-in for ``RemoteAction._validate_action_result`` with a cached validator."""
    from jsonschema.exceptions import best_match
    from rasa.core.actions.action import DOCS_BASE_URL

    # the function, not the class: a subclass overriding the spec gets its own validator
    error = best_match(validator_for_spec(type(self).action_response_format_spec).iter_errors(result))
    if error is None:
        return True
    error.message += (
        f". Failed to validate Action server response from API, "
        f"make sure your response from the Action endpoint is valid. "
        f"For more information about the format visit "
        f"{DOCS_BASE_URL}/custom-actions"
    )
    raise error


def install() -> bool:
    """Replaces Rasa's per-call validation by the cached one; False where Rasa is not installed."""
    global _installed
    if _installed:
        return True
    try:
        from rasa.core.actions.action import RemoteAction
    except ImportError:  # the action server's runtime (Python 3.11) has no Rasa
        return False
    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]
    stats_path = load_rasa_settings().bench_stats_path
    if stats_path:
        _count_calls(RemoteAction, stats_path)
    _installed = True
    return True


def _count_calls(remote_action: Any, path: str) -> None:
    """``make bench-latency`` only (env CONCIERGE_BENCH_STATS): counts the action server's calls and
    their wall time into a JSON file, rewritten after each call, so the bench can say how many round
    trips a turn costs. Off by default: nothing is counted or written in service."""
    run = remote_action.run
    stats = {"action_calls": 0, "action_wall_ms": 0.0, "failed_calls": 0}

    async def counted_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await run(self, *args, **kwargs)
        except Exception:
            stats["failed_calls"] += 1
            raise
        finally:
            stats["action_calls"] += 1
            stats["action_wall_ms"] += (time.perf_counter() - t0) * 1000
            tmp = f"{path}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(stats, fh)
            os.replace(tmp, path)

    remote_action.run = counted_run
