"""A fork server for the kill tests: one interpreter imports torch, onnx and seekdeploy once, then
forks a child per `seekdeploy` command. Each child is a real process (killed by a real SIGKILL);
forking saves the seconds a fresh interpreter spends importing torch before doing any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FORK_SERVER = r"""
import json, os, sys, traceback
import torch, sklearn.datasets  # the slow imports, done once
import seekdeploy.cli.main as cli_main
import seekdeploy.train.run, seekdeploy.data, seekdeploy.nn, seekdeploy.nn.families._resnet_model
import onnx, onnxruntime, onnxscript, seekdeploy.export.export_run
for line in sys.stdin:
    request = json.loads(line)
    if "wait" in request:
        _, status = os.waitpid(request["wait"], 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if request.get("fsize_bytes"):
            # A full disk: ignore SIGXFSZ so an oversized write fails with EFBIG instead.
            import resource, signal
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize_bytes"],) * 2)
        try:
            code = cli_main.main(request["argv"])
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
"""


class ForkServer:
    """Starts `seekdeploy` commands as forked children of one warm interpreter."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", FORK_SERVER], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def start(self, argv: list[str], log: Path, fsize_bytes: int | None = None) -> int:
        """Fork a child running `seekdeploy ARGV` (output into `log`), its files limited to
        `fsize_bytes` when given; return its pid."""
        return self._ask({"argv": argv, "log": str(log), "fsize_bytes": fsize_bytes})["pid"]

    def wait(self, pid: int) -> int:
        """Reap the child; its exit code (negative signal number when killed)."""
        return self._ask({"wait": pid})["code"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


# One thread per child: the kill tests run many short trainings/exports side by side on 2 cores.
SINGLE_THREAD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def fork_server():
    """A warm fork server for the module's tests (single-threaded children)."""
    server = ForkServer(SINGLE_THREAD_ENV)
    yield server
    server.close()
