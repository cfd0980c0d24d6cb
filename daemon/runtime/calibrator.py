"""Threshold calibration off the consumer loop.

Data-drift tests are built without thresholds (``defer_calibration=True``): they run as
values come and hold their decisions. :class:`Calibrator` computes the thresholds in a
background thread (the simulation is numpy work, which releases the GIL) while the loop
keeps consuming, joining and counting. The loop hands the results to the models at a
batch boundary; held tests are then decided in order, so what driftd concludes does not
depend on how long calibration took (``delay_seconds`` slows it down on purpose, for
tests).

Thresholds are part of the detectors' state: checkpointed with the partition, a restart
or another replica does not compute them again. A restored model whose tests were still
waiting asks again.

Whoever asks (the daemon for a partition, a benchmark, the dry run of ``check-config``)
speaks one small interface: ``calibration_jobs(new_only)`` lists ``(owner, job)`` pairs
and ``apply_calibration(owner, job, thresholds, error)`` takes a result back.
:func:`calibrate_now` does both at once, in the caller's thread.

>>> worker = Calibrator(compute=lambda job: [(job * 2.0, None)])
>>> worker.start()
>>> worker.submit(("p0", "fraud", 1), 21)
True
>>> worker.submit(("p0", "fraud", 1), 21)          # already asked: not twice
False
>>> import time
>>> while not (done := worker.done()):
...     time.sleep(0.01)
>>> done
[(('p0', 'fraud', 1), 21, [(42.0, None)], None)]
>>> worker.close()
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from daemon.stream.calibration_jobs import calibrate_jobs_now, thresholds_of

log = logging.getLogger("driftd.runtime.calibrator")


class Calibrator:
    """A worker thread computing ``compute(job)`` for submitted jobs, in order of
    submission; results are collected with :meth:`done`.

    ``compute`` defaults to :func:`daemon.stream.calibration_jobs.thresholds_of`; an exception it
    raises becomes the result's ``error`` (the job's tests are then left out, with the
    reason, rather than retried for ever).
    """

    def __init__(self, compute=thresholds_of, delay_seconds: float = 0.0):
        self.compute = compute
        #: Test hook: each job takes at least this long (wall clock).
        self.delay_seconds = delay_seconds
        self._jobs: queue.Queue = queue.Queue()
        self._done: list = []
        self._lock = threading.Lock()
        self._in_flight: set = set()  # keys submitted and not yet collected
        self._thread: threading.Thread | None = None
        self.cpu_seconds = 0.0  # thread CPU time spent computing

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="driftd-calibration", daemon=True)
            self._thread.start()

    def submit(self, key, job) -> bool:
        """Queue ``job``, named by ``key`` (hashable, one per job); False if a job of that
        key is already queued, running or done but not collected."""
        with self._lock:
            if key in self._in_flight:
                return False
            self._in_flight.add(key)
        self._jobs.put((key, job))
        return True

    def done(self) -> list[tuple]:
        """Finished ``(key, job, thresholds, error)`` since the last call (non-blocking)."""
        with self._lock:
            out, self._done = self._done, []
            for key, _, _, _ in out:
                self._in_flight.discard(key)
        return out

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet collected."""
        with self._lock:
            return len(self._in_flight)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the worker (a job running now is abandoned with the thread)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            key, job = item
            started, cpu = time.monotonic(), time.thread_time()
            thresholds, error = None, None
            try:
                thresholds = self.compute(job)
            except Exception as e:  # noqa: BLE001 - reported with the result, never fatal
                log.error("calibration of %r failed: %s", job, e)
                error = f"{type(e).__name__}: {e}"
            self.cpu_seconds += time.thread_time() - cpu
            rest = self.delay_seconds - (time.monotonic() - started)
            if rest > 0:
                time.sleep(rest)
            with self._lock:
                self._done.append((key, job, thresholds, error))


def calibrate_now(target, compute=thresholds_of) -> int:
    """Compute and apply every threshold ``target`` waits for, in this thread (benchmarks,
    the dry run, library use); returns how many jobs ran."""
    return calibrate_jobs_now(target.calibration_jobs(), compute=lambda pair: compute(pair[1]),
                              apply=lambda pair, thresholds, error: target.apply_calibration(*pair, thresholds, error))
