"""The results JSON: one model result per role (schema in `result_schema`) inside profile.json.

`result_schema.py` holds the per-model builder in standard-library-only form, shared with the
remote agent; this module adds the profile.json document that bundles the roles with their
verdicts, and reads/writes it. profile.json::

    {"schema_version": 1, "kind": "seekdeploy.profile", "created_utc": "...",
     "profile": "x86-cpu", "export": "exports/run1", "host": "local",
     "results": [<model result>, ...], "verdicts": [RoleVerdict.to_json(), ...],
     "passed": true | false}
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seekdeploy import layout
from seekdeploy._io import atomic_write_json
from seekdeploy.errors import SeekdeployError
from seekdeploy.runtime.result_schema import (
    MODEL_RESULT_KIND,
    SCHEMA_VERSION,
    build_model_result,
    build_sweep_entry,
    validate_model_result,
)
from seekdeploy.runtime.verdict import RoleVerdict

__all__ = [
    "MODEL_RESULT_KIND",
    "SCHEMA_VERSION",
    "build_model_result",
    "build_profile_document",
    "build_sweep_entry",
    "load_profile_document",
    "validate_model_result",
    "write_profile_document",
]


def build_profile_document(
    *,
    profile_name: str,
    export: str,
    results: Sequence[dict[str, Any]],
    verdicts: Sequence[RoleVerdict],
    host: str = "local",
) -> dict[str, Any]:
    """Bundle the per-role model results and their verdicts into the profile.json document."""
    for result in results:
        problems = validate_model_result(result)
        if problems:
            # A malformed result is a bug (or a mismatched remote agent), not a user error.
            raise ValueError(f"model result does not match schema {SCHEMA_VERSION}: {problems}")
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": layout.PROFILE_DOCUMENT_KIND,
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": profile_name,
        "export": export,
        "host": host,
        "results": list(results),
        "verdicts": [verdict.to_json() for verdict in verdicts],
        "passed": all(verdict.passed for verdict in verdicts),
    }


def write_profile_document(path: str | Path, document: dict[str, Any]) -> Path:
    """Write profile.json atomically and return its path."""
    return atomic_write_json(path, document)


def load_profile_document(path: str | Path) -> dict[str, Any]:
    """Read and check a profile.json; raises `SeekdeployError` naming what is wrong."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeekdeployError(f"cannot read {path}: {exc.strerror or exc}; run `seekdeploy profile` first") from exc
    except json.JSONDecodeError as exc:
        raise SeekdeployError(f"{path} is not valid JSON ({exc}); re-run `seekdeploy profile`") from exc
    if not isinstance(document, dict) or document.get("kind") != layout.PROFILE_DOCUMENT_KIND:
        raise SeekdeployError(f"{path} is not a seekdeploy profile.json; re-run `seekdeploy profile`")
    if document.get("schema_version") != SCHEMA_VERSION:
        raise SeekdeployError(
            f"{path} has schema_version {document.get('schema_version')!r}, this seekdeploy reads "
            f"{SCHEMA_VERSION}; re-run `seekdeploy profile` with this version"
        )
    for index, result in enumerate(document.get("results", [])):
        problems = validate_model_result(result)
        if problems:
            raise SeekdeployError(f"{path}: result {index} is malformed: {'; '.join(problems)}")
    return document
