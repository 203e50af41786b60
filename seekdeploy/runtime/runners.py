"""Inference runners with one life cycle, so every backend is timed the same way.

A runner is a context manager: `activate()` loads the model (all one-time cost lives there),
`infer(feed)` runs one batch and returns the outputs as numpy arrays, `sync()` waits for queued
device work, `deactivate()` frees everything. Each backend's runner lives in its module in
`seekdeploy/backends/` and imports its runtime inside `activate()`; `seekdeploy.backends.create_runner`
builds one by runtime name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seekdeploy.errors import RuntimeBackendError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for a dynamic axis) and numpy dtype of a model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


class Runner:
    """Base life cycle: `with runner:` activates on entry and deactivates on exit."""

    name = "runner"

    def __init__(self) -> None:
        self._active = False

    @property
    def is_active(self) -> bool:
        """Whether `activate()` has run and `deactivate()` has not."""
        return self._active

    def activate(self) -> None:
        """Load the model; idempotent."""
        if not self._active:
            self._activate()
            self._active = True

    def deactivate(self) -> None:
        """Free the model; idempotent."""
        if self._active:
            self._deactivate()
            self._active = False

    def infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference on `feed` (input name -> array) and return the outputs."""
        if not self._active:
            raise RuntimeBackendError(f"{self.name} runner used before activate(); use `with runner:`")
        return self._infer(feed)

    def sync(self) -> None:
        """Wait until queued device work is done (a no-op for synchronous CPU runtimes)."""

    def input_infos(self) -> list[TensorInfo]:
        """The model inputs (only valid while active)."""
        raise NotImplementedError

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _infer(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError
