"""``driftd run`` as a real subprocess, for the tests and benchmarks that need one.

:class:`DriftdProcess` starts ``python -m daemon.cli run --config FILE`` from the repository
root (so the checkout's code runs, installed or not), sends each run's output to its own
log file, reads the HTTP port from the log's "metrics on port N" line (configurations use
port 0) and talks to the daemon over HTTP and signals only, as an operator would.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class DriftdProcess:
    """One ``driftd run`` subprocess; run ``k`` logs to ``log_dir / f"{name}-{k}.log"``.

    ``env`` adds to (or overrides) this process's environment.
    """

    def __init__(self, config_path: Path, log_dir: Path, name: str = "driftd", env: dict | None = None):
        self.name = name
        self.config_path = config_path
        self.log_dir = log_dir
        self.env = dict(env or {})
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_path: Path | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, run {self.runs}, pid {self.proc.pid if self.proc else None})"

    def launch(self) -> "DriftdProcess":
        """Start the process without waiting for its HTTP port (see :meth:`wait_port`)."""
        self.runs += 1
        self.port = None
        self.log_path = self.log_dir / f"{self.name}-{self.runs}.log"
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **self.env, "PYTHONPATH": pythonpath}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "run", "--config", str(self.config_path)],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_port(self, timeout: float = 60) -> "DriftdProcess":
        """Wait for the "metrics on port N" log line; AssertionError with the log's tail if
        the process exits or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"metrics on port (\d+)", self.log())
            if match:
                self.port = int(match.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start (exit {self.proc.poll()}); log:\n{self.log()[-5000:]}")

    def start(self, timeout: float = 60) -> "DriftdProcess":
        return self.launch().wait_port(timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        """(HTTP status, body) of ``GET path``; OSError if nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def fresh_status(self, timeout: float = 10) -> dict | None:
        """/status, or None if it does not answer or serves a stale copy (loop busy)."""
        try:
            code, body = self.get("/status", timeout)
        except OSError:
            return None
        found = json.loads(body) if code == 200 else None
        return None if found is None or found.get("stale") else found

    def restored(self, partition: int) -> list[tuple[dict, str]]:
        """(offsets, source) of every "partition N restored at offsets {...} from ..." line
        of this run's log, in order."""
        return [(ast.literal_eval(m.group(1)), m.group(2).strip())
                for m in re.finditer(rf"partition {partition} restored at offsets (\{{.*?\}}) from (.*)", self.log())]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)  # our own child, by pid

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the exit status."""
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds."""
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Clean-up: SIGCONT (a stopped process cannot die of SIGTERM) then SIGKILL."""
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
