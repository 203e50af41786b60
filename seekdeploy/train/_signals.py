"""Ctrl-C / SIGTERM handling: finish the current step, save a checkpoint, then stop."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from seekdeploy.errors import SeekdeployError


class TrainingInterrupted(SeekdeployError):
    """Training was stopped by a signal after saving a checkpoint; `--resume` continues it."""

    exit_code = 130


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between steps. A second signal stops at once."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signal_name is not None

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt  # second signal: the user insists, stop without saving
        self.signal_name = signal.Signals(signum).name


_active: StopFlag | None = None  # the flag of the outermost stop_on_signals() still open


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Install SIGINT/SIGTERM handlers that set a `StopFlag` (main thread only), then restore.

    Nested uses share the outermost flag: `train_pair` opens one around setting up the run and
    the up-front estimate, so a signal there is seen by the training loop's first check (it saves
    and stops) instead of killing the process before its handlers exist."""
    global _active
    if _active is not None:
        yield _active
        return
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signal handlers can only be installed from the main thread
        return
    previous = {sig: signal.signal(sig, flag._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    _active = flag
    try:
        yield flag
    finally:
        _active = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)
