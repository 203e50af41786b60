"""The one exception hierarchy for expected user errors.

The CLI prints a `SeekdeployError` as one message and exits with `exit_code` (1), without a
traceback unless `--debug` is given. Any other exception is a bug and keeps its traceback.
Exit code 3 is reserved for budget violations (`BudgetViolation`).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Sequence
from types import ModuleType


class SeekdeployError(Exception):
    """An expected error caused by user input or the environment; the message names the fix."""

    exit_code = 1
    # The CLI leaves with os._exit after the message, skipping interpreter teardown (a process
    # whose native threads cannot shut down cleanly, such as a gloo group with a dead peer).
    exit_immediately = False


class ProfileError(SeekdeployError):
    """A hardware profile is missing, unreadable or invalid.

    `problems` holds every problem of an invalid file, one line each in file order (its key path,
    the bad value and what is allowed); the message lists them. Empty for any other profile error.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class DatasetError(SeekdeployError):
    """A dataset is missing, malformed or unknown."""


class SpecError(SeekdeployError):
    """A model family or subnet spec is unknown, malformed or not nested where it must be."""


class ConfigError(SeekdeployError):
    """A training/export option or config file is invalid."""


class CheckpointError(SeekdeployError):
    """A run folder or checkpoint is missing, corrupt or untrusted."""


class ExportError(SeekdeployError):
    """An export could not be produced or failed its parity proof."""


class RuntimeBackendError(SeekdeployError):
    """An inference runtime could not load or run a model."""


class RemoteError(SeekdeployError):
    """A remote device could not be reached or used over SSH."""


class TrainingDiverged(SeekdeployError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class MissingDependencyError(SeekdeployError):
    """An optional dependency is not installed; the message says what to install."""


class BudgetViolation(SeekdeployError):
    """At least one model failed a budget of its hardware profile (exit code 3)."""

    exit_code = 3


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def require(module: str, extra: str | None = None, purpose: str = "") -> ModuleType:
    """Import an optional dependency or raise `MissingDependencyError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = f"pip install 'seekdeploy[{extra}]'" if extra else f"pip install {module}"
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module} is needed{why} but cannot be imported ({exc}); install it with: {hint}"
        ) from exc
