"""End-to-end throughput, latency and memory of the driftd daemon on a real broker.

Run from the repository root::

    PYTHONPATH=. python bench/daemon.py              # 200,000 predictions + labels (~3 min)
    PYTHONPATH=. python bench/daemon.py --quick      # 20,000 (~1.5 min: group joins dominate)
    PYTHONPATH=. python bench/daemon.py --events N   # any size
    PYTHONPATH=. python bench/daemon.py --profile    # also profile the daemon thread (cProfile)
    PYTHONPATH=. python bench/daemon.py --json out.json

What it does, in one process plus short-lived helper processes (producers and the raw
consumers run in their own interpreters: they neither share the daemon's GIL nor leave
memory behind in the process whose RSS is reported):

1. starts the embedded Tansu broker (topics predictions:1, labels:1, driftd-dead-letters:1)
   and produces N prediction events of model ``bench`` (10 numeric features ``x0..x9``,
   prediction, score) and one label per prediction, ``LABEL_LAG`` predictions later, with
   a batching KafkaProducer: the produce rate. Also the decode time of one event;
2. **raw**: a kafka-python KafkaConsumer with the daemon's own consumer settings (see
   ``daemon/runtime/service.py``: group, max_poll_records, fetch sizes, session timeout, poll
   timeout) reads both topics to the end and does nothing with the records. Run twice
   (before and after driftd); the faster run is the baseline (the conservative choice);
3. **driftd**: ``daemon.runtime.service.Daemon`` in a thread, fresh group, from the beginning:
   PSI and KS on every feature and on the score, ADWIN on the error stream, accuracy
   decay, the label join, checkpoints every 5 s. Wall time runs from the group assignment
   (startup is reported separately) to the end of the batch after which every prediction
   and label has been processed. The one-off reference build (collecting the reference,
   typing features, calibrating the PSI/KS thresholds to ``ert``) is timed separately and
   the rate is also given without it. A table says where the time went;
4. **latency**: while the same (warm) daemon runs, a separate process produces new
   predictions and labels paced at half of driftd's measured steady rate: produce ->
   processed latency, p50/p90/p99/max. For scale, a raw consumer with the same settings
   gets the same paced stream afterwards;
5. memory: VmRSS before the daemon starts, the peak during the run (VmHWM, reset before
   the daemon starts where the kernel allows it), VmRSS after, the checkpoint file size;
6. with ``--profile``: driftd once more under cProfile (steady state: the calibrations
   are cached in the process by then), by step, by package and by function.

The target -- driftd >= 0.8 x raw -- is printed as PASS or BELOW; information only, the
script never fails on it. Rates are records/s (every Kafka record: predictions and labels)
and events/s (a prediction together with its label); the ratio is the same on both.

The machine is shared and noisy: every phase also reports how busy the whole machine was
and how much of that was other processes (``/proc/stat``), and CPU time next to wall time
(per thread from ``/proc/self/task``, 10 ms ticks; inside the daemon's methods from
``time.thread_time``). CPU per record is the steadier number on a busy machine.

How "processed" is observed: the bench wraps the daemon object's ``_process`` (one polled
batch, run under the daemon's lock) and notes the monotonic time, the thread's CPU time
and the processed counts when it returns. That is exact per batch, not sampled: every
event of a batch is processed (and visible to /status and /metrics) when that batch's
``_process`` returns. Other wrappers time ``_assigned``, ``_checkpoint``, the partition
handlers, ``finish_batch`` and the reference build, once per call: a few microseconds per
batch, nothing per event.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import math
import multiprocessing
import os
import platform
import pstats
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    # Allow `python bench/daemon.py` from the repository root without PYTHONPATH.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

MODEL = "bench"
PREDICTIONS, LABELS, DEAD = "predictions", "labels", "driftd-dead-letters"
TOPICS = {PREDICTIONS: 1, LABELS: 1, DEAD: 1}
N_FEATURES = 10
LABEL_LAG = 500  # a label is produced this many predictions after its prediction
START_TS = 1_763_900_000.0
SECONDS_PER_EVENT = 0.01  # event time between predictions
LABEL_DELAY_SECONDS = LABEL_LAG * SECONDS_PER_EVENT
ACCURACY = 0.9
TARGET = 0.8
SEED = 20_251_124

MODEL_CONFIG = {
    "numeric_tests": ["psi", "ks"], "error_detector": "ADWIN", "watch_score": True,
    "reference_size": 5000, "window": 1000, "stride": 100, "ert": 200_000.0,
    "decay_metrics": ["accuracy"],
}


# ---------------------------------------------------------------------------------------
# events


def make_events(start: int, n: int, decimals: int | None = None):
    """Predictions ``start .. start+n-1`` and their labels, JSON-encoded (bytes)."""
    import msgspec

    rng = np.random.default_rng(SEED + start)
    loc = np.arange(N_FEATURES, dtype=np.float64)
    scale = 1.0 + np.arange(N_FEATURES) / 10
    x = rng.normal(size=(n, N_FEATURES)) * scale + loc
    weights = np.linspace(-1, 1, N_FEATURES) / scale
    score = 1 / (1 + np.exp(-((x - loc) @ weights)))
    prediction = (score > 0.5).astype(int)
    label = np.where(rng.random(n) < ACCURACY, prediction, 1 - prediction)
    if decimals is not None:
        x, score = np.round(x, decimals), np.round(score, decimals)
    names = [f"x{k}" for k in range(N_FEATURES)]
    encode = msgspec.json.Encoder().encode
    predictions, labels = [], []
    for i, (row, s, p, y) in enumerate(zip(x.tolist(), score.tolist(), prediction.tolist(), label.tolist())):
        ts = round(START_TS + (start + i) * SECONDS_PER_EVENT, 3)
        pid = f"p-{start + i}"
        predictions.append(encode({
            "model": MODEL, "model_version": "1", "id": pid, "ts": ts,
            "features": dict(zip(names, row)), "prediction": p, "score": s,
        }))
        labels.append(encode({"model": MODEL, "id": pid, "ts": round(ts + LABEL_DELAY_SECONDS, 3), "label": y}))
    return predictions, labels


# ---------------------------------------------------------------------------------------
# helper processes (spawned: a fresh interpreter each)


def _bulk_producer(bootstrap: str, n: int, decimals, queue) -> None:
    from kafka import KafkaProducer

    t = time.perf_counter()
    predictions, labels = make_events(0, n, decimals)
    generate = time.perf_counter() - t
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1 << 20,
        max_request_size=8 << 20, enable_idempotence=False)
    producer.partitions_for(PREDICTIONS)  # metadata before the clock starts
    producer.partitions_for(LABELS)
    key = MODEL.encode()
    send = producer.send
    t = time.perf_counter()
    for i in range(n + LABEL_LAG):
        if i < n:
            send(PREDICTIONS, key=key, value=predictions[i])
        if i >= LABEL_LAG:
            send(LABELS, key=key, value=labels[i - LABEL_LAG])
    producer.flush()
    seconds = time.perf_counter() - t
    producer.close()
    queue.put({
        "generate_seconds": generate, "produce_seconds": seconds, "records": 2 * n,
        "prediction_bytes": sum(map(len, predictions)), "label_bytes": sum(map(len, labels)),
    })


def consumer_settings(kafka) -> dict:
    """The daemon's KafkaConsumer settings (daemon/runtime/service.py), for the raw baseline."""
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    return dict(
        enable_auto_commit=False, auto_offset_reset="earliest",
        partition_assignment_strategy=[RangePartitionAssignor],
        max_poll_records=kafka.poll_max_records, fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        reconnect_backoff_max_ms=int(kafka.reconnect_backoff_max_seconds * 1000),
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=max(100, kafka.session_timeout_ms // 10), request_timeout_ms=30_000)


def _raw_consumer(bootstrap: str, config: dict, expected: int, broker_pid: int, overrides: dict, queue) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    from daemon.config import from_dict

    kafka = from_dict(config).kafka
    assigned = {}

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, partitions):
            assigned.setdefault("t", time.monotonic())
            assigned["n"] = assigned.get("n", 0) + 1

    t_create = time.monotonic()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
                             **{**consumer_settings(kafka), **overrides})
    consumer.subscribe([PREDICTIONS, LABELS], listener=Listener())
    n = polls = 0
    deadline = time.monotonic() + 300
    load = cpu = None
    while n < expected and time.monotonic() < deadline:
        if load is None and "t" in assigned:
            load, cpu = Load([broker_pid]), time.process_time()
        batch = consumer.poll(timeout_ms=kafka.poll_timeout_ms, max_records=kafka.poll_max_records)
        for records in batch.values():
            n += len(records)
        polls += 1
    t_end = time.monotonic()
    cpu = time.process_time() - cpu
    load = load.done()
    consumer.close(autocommit=False)
    queue.put({"records": n, "polls": polls, "startup_seconds": assigned.get("t", t_end) - t_create,
               "seconds": t_end - assigned.get("t", t_create), "cpu_seconds": cpu, "load": load,
               "assignments": assigned.get("n", 0), "complete": n >= expected, "overrides": overrides})


def _raw_latency_consumer(bootstrap: str, config: dict, starts: dict, expected: tuple, ready, queue) -> None:
    """A consumer with the daemon's settings that starts at ``starts`` ({topic: offset}) and
    notes, after every poll, the time and how many records of each topic it has seen."""
    from kafka import ConsumerRebalanceListener, KafkaConsumer

    from daemon.config import from_dict

    kafka = from_dict(config).kafka
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bench-rawlat-{uuid.uuid4().hex[:8]}",
                             **consumer_settings(kafka))

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            pass

        def on_partitions_assigned(self, partitions):
            for tp in partitions:
                consumer.seek(tp, starts[tp.topic])
            ready.set()

    consumer.subscribe([PREDICTIONS, LABELS], listener=Listener())
    seen = {PREDICTIONS: 0, LABELS: 0}
    log = []
    deadline = time.monotonic() + 600
    while (seen[PREDICTIONS] < expected[0] or seen[LABELS] < expected[1]) and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=kafka.poll_timeout_ms, max_records=kafka.poll_max_records)
        if batch:
            for tp, records in batch.items():
                seen[tp.topic] += len(records)
            log.append((time.monotonic(), seen[PREDICTIONS], seen[LABELS]))
    consumer.close(autocommit=False)
    queue.put(log)


def _paced_producer(bootstrap: str, start: int, n: int, rate: float, decimals, ready, go, out: str) -> None:
    """Produce predictions ``start..start+n-1`` at ``rate`` per second (each with its label
    ``LABEL_LAG`` predictions later, so records go out at 2 x rate); save the send times."""
    from kafka import KafkaProducer

    predictions, labels = make_events(start, n, decimals)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1, enable_idempotence=False)
    producer.partitions_for(PREDICTIONS)
    producer.partitions_for(LABELS)
    key = MODEL.encode()
    sent_p = np.zeros(n)
    sent_l = np.zeros(n)
    ready.set()
    go.wait()
    t0 = time.monotonic()
    i = 0
    total = n + LABEL_LAG
    while i < total:
        due = min(total, int((time.monotonic() - t0) * rate) + 1)
        while i < due:
            if i < n:
                sent_p[i] = time.monotonic()
                producer.send(PREDICTIONS, key=key, value=predictions[i])
            if i >= LABEL_LAG:
                sent_l[i - LABEL_LAG] = time.monotonic()
                producer.send(LABELS, key=key, value=labels[i - LABEL_LAG])
            i += 1
        time.sleep(0.0005)
    producer.flush()
    seconds = time.monotonic() - t0
    producer.close()
    np.savez(out, predictions=sent_p, labels=sent_l, seconds=np.array([seconds]))


def run_child(target, *args, timeout: float = 600):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    return result


# ---------------------------------------------------------------------------------------
# measurements in this process


def proc_status(field: str) -> int | None:
    """A ``/proc/self/status`` value in bytes (VmRSS, VmHWM), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(stat_path: str) -> float | None:
    try:
        fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def thread_cpu() -> dict:
    """CPU seconds of each live thread of this process, by name (10 ms resolution)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in Path("/proc/self/task").iterdir():
        cpu = _cpu_of(str(task / "stat"))
        if cpu is not None:
            tid = int(task.name)
            out[tid] = (names.get(tid, f"native-{tid}"), cpu)
    return out


def thread_cpu_delta(before: dict, after: dict) -> list:
    rows = []
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        if used >= 0.01:
            rows.append((name, tid, used))
    return sorted(rows, key=lambda r: -r[2])


def machine_busy() -> float | None:
    """CPU-seconds the whole machine has been busy (all CPUs, from /proc/stat)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICK


class Load:
    """How busy the machine was over a phase, and how much of it was this benchmark."""

    def __init__(self, pids=()):
        self.pids = [os.getpid(), *pids]
        self.t, self.busy, self.cpu = time.monotonic(), machine_busy(), self._cpu()

    def _cpu(self) -> float:
        return sum(_cpu_of(f"/proc/{pid}/stat") or 0.0 for pid in self.pids)

    def done(self) -> dict:
        wall = time.monotonic() - self.t
        busy = None if self.busy is None else machine_busy() - self.busy
        ours = self._cpu() - self.cpu
        return {"wall": wall, "machine_busy": busy, "ours": ours,
                "others": None if busy is None else max(0.0, busy - ours)}


def load_text(load: dict) -> str:
    if load.get("machine_busy") is None:
        return "machine load n/a"
    cap = (os.cpu_count() or 1) * load["wall"]
    return (f"machine busy {load['machine_busy']:.1f} of {cap:.1f} CPU-s, of which other processes "
            f"{load['others']:.1f} CPU-s ({100 * load['others'] / cap:.0f} % of the machine)")


class StepTimer:
    """Wall and CPU (thread) time of a few daemon methods, summed; called once per batch or
    so, never per event. Wrapping classes affects only this process."""

    def __init__(self):
        self.wall: dict = {}
        self.cpu: dict = {}
        self.calls: dict = {}
        self.starts: dict = {}

    def wrap(self, cls, name: str, label: str, generator: bool = False) -> None:
        original = getattr(cls, name)
        timer = self

        def add(t, c):
            timer.wall[label] = timer.wall.get(label, 0.0) + time.monotonic() - t
            timer.cpu[label] = timer.cpu.get(label, 0.0) + time.thread_time() - c
            timer.calls[label] = timer.calls.get(label, 0) + 1

        if generator:
            def timed(*a, **k):
                t, c = time.monotonic(), time.thread_time()
                try:
                    yield from original(*a, **k)
                finally:
                    add(t, c)
        else:
            def timed(*a, **k):
                t, c = time.monotonic(), time.thread_time()
                timer.starts.setdefault(label, []).append(t)
                try:
                    return original(*a, **k)
                finally:
                    add(t, c)
        setattr(cls, name, timed)

    def snapshot(self) -> tuple:
        return dict(self.wall), dict(self.cpu), dict(self.calls)

    @staticmethod
    def delta(a: tuple, b: tuple) -> dict:
        return {k: (b[0][k] - a[0].get(k, 0.0), b[1][k] - a[1].get(k, 0.0), b[2][k] - a[2].get(k, 0))
                for k in b[0]}


class GcTimer:
    """Time spent in the cyclic garbage collector, by generation (gc.callbacks)."""

    def __init__(self):
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self._t = None
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._t = time.perf_counter()
        elif self._t is not None:
            self.seconds[info["generation"]] += time.perf_counter() - self._t
            self.count[info["generation"]] += 1
            self._t = None

    def snapshot(self) -> tuple:
        return list(self.seconds), list(self.count)

    @staticmethod
    def delta(a, b) -> dict:
        return {"seconds": [y - x for x, y in zip(a[0], b[0])], "count": [y - x for x, y in zip(a[1], b[1])]}


def decode_rates(n: int = 20_000) -> dict:
    from daemon.stream import events

    predictions, labels = make_events(10_000_000, n)
    out = {"bytes_per_prediction": sum(map(len, predictions)) / n}
    for name, fn, data in (
        ("decode_prediction", events.decode_prediction, predictions),
        ("json.loads (prediction)", json.loads, predictions),
        ("decode_label", events.decode_label, labels),
    ):
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            for raw in data:
                fn(raw)
            best = min(best, time.perf_counter() - t)
        out[name] = n / best
    return out


class DaemonRun:
    """A driftd Daemon in a thread with timing hooks on the instance."""

    def __init__(self, bootstrap: str, config: dict, profile: bool = False):
        from daemon.config import from_dict
        from daemon.runtime.service import Daemon

        self.daemon = Daemon(from_dict(config))
        self.profile = cProfile.Profile() if profile else None
        self.errors: list = []
        self.batches: list = []  # (start, end, records, predictions done, labels done, thread CPU)
        self.checkpoints: list = []  # seconds
        self.assignments = 0
        self.t_assigned = None
        self.assigned = threading.Event()
        self._targets = None
        self.done = threading.Event()
        d = self.daemon
        process, assigned, checkpoint = d._process, d._assigned, d._checkpoint

        def _process(batch):
            t, c = time.monotonic(), time.thread_time()
            process(batch)
            end, c = time.monotonic(), time.thread_time() - c
            p, l_ = self.counts_unlocked()
            self.batches.append((t, end, sum(len(r) for r in batch.values()), p, l_, c))
            if self._targets and p >= self._targets[0] and l_ >= self._targets[1]:
                self.done.set()

        def _assigned(partitions):
            assigned(partitions)
            self.assignments += 1
            if self.t_assigned is None:
                self.t_assigned = time.monotonic()
            self.assigned.set()

        def _checkpoint(*a, **k):
            t = time.monotonic()
            try:
                return checkpoint(*a, **k)
            finally:
                self.checkpoints.append(time.monotonic() - t)

        d._process, d._assigned, d._checkpoint = _process, _assigned, _checkpoint

    def counts_unlocked(self) -> tuple[int, int]:
        p = l_ = 0
        for state in list(self.daemon.states.values()):
            p += state.processed[(MODEL, "prediction")]
            l_ += state.processed[(MODEL, "label")]
        return p, l_

    def counts(self) -> tuple[int, int]:
        with self.daemon.lock:
            return self.counts_unlocked()

    def expect(self, predictions: int, labels: int) -> None:
        self._targets = (predictions, labels)
        self.done.clear()
        if self.daemon.states:
            p, l_ = self.counts()
            if p >= predictions and l_ >= labels:
                self.done.set()

    def start(self) -> None:
        def run():
            try:
                if self.profile is not None:
                    self.profile.runcall(self.daemon.run)
                else:
                    self.daemon.run()
            except BaseException as e:  # noqa: BLE001 - reported by the bench
                self.errors.append(e)
                self.assigned.set()
                self.done.set()

        self.t_start = time.monotonic()
        self.thread = threading.Thread(target=run, name="driftd-loop", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(60)

    def end_of_batch_reaching(self, predictions: int, labels: int) -> float | None:
        for start, end, _, p, l_, _ in self.batches:
            if p >= predictions and l_ >= labels:
                return end
        return None


def daemon_config(bootstrap: str, state_dir: str, session_timeout_ms: int | None) -> dict:
    kafka = {"bootstrap_servers": bootstrap, "group_id": f"bench-driftd-{uuid.uuid4().hex[:8]}",
             "predictions_topic": PREDICTIONS, "labels_topic": LABELS, "dead_letter_topic": DEAD}
    if session_timeout_ms:
        kafka["session_timeout_ms"] = session_timeout_ms
    return {
        "kafka": kafka,
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": state_dir},
        "models": {MODEL: dict(MODEL_CONFIG)},
        "log_level": "WARNING",
    }


def percentiles(values: np.ndarray) -> dict:
    if values.size == 0:
        return {}
    q = np.percentile(values, [50, 90, 99])
    return {"n": int(values.size), "p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2]),
            "max": float(values.max()), "mean": float(values.mean())}


def latencies(ends: np.ndarray, done: np.ndarray, sent: np.ndarray) -> np.ndarray:
    """Per event: the first time (``ends``) at which the count (``done``, cumulative) took
    in the event, minus the event's send time."""
    k = np.arange(1, sent.size + 1)
    at = np.searchsorted(done, k, side="left")
    ok = at < done.size
    return ends[at[ok]] - sent[ok]


def latency_summary(polls: np.ndarray, sent, rate_pred: float) -> dict:
    """``polls``: rows (time, predictions done, labels done) since the phase started."""
    return {
        "target_records_per_second": 2 * rate_pred, "predictions": int(sent["predictions"].size),
        "achieved_records_per_second": 2 * sent["predictions"].size / float(sent["seconds"][0]),
        "predictions_latency": percentiles(latencies(polls[:, 0], polls[:, 1], sent["predictions"])),
        "labels_latency": percentiles(latencies(polls[:, 0], polls[:, 2], sent["labels"])),
        "batches": int(polls.shape[0]),
    }


def start_paced(bootstrap: str, start: int, n: int, rate: float, decimals, work: str):
    """A paced producer process, connected and waiting for ``go``."""
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    out = os.path.join(work, f"sent-{start}.npz")
    proc = ctx.Process(target=_paced_producer, args=(bootstrap, start, n, rate, decimals, ready, go, out))
    proc.start()
    if not ready.wait(120):
        raise RuntimeError("paced producer did not start")
    return proc, go, out


def finish_paced(proc, out: str, seconds: float):
    proc.join(seconds * 5 + 120)
    if proc.exitcode != 0:
        raise RuntimeError(f"paced producer failed (exit code {proc.exitcode})")
    return np.load(out)


# ---------------------------------------------------------------------------------------
# report


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def mb(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:,.1f} MiB"


PROFILE_STEPS = (
    # (file suffix, function, label): cumulative time of these, in the daemon thread
    ("daemon/runtime/service.py", "_loop", "daemon loop (everything)"),
    ("kafka/consumer/group.py", "poll", "KafkaConsumer.poll: fetch waits + record parsing"),
    ("kafka/consumer/fetcher.py", "_unpack_records", "  of which kafka-python record parsing"),
    ("daemon/runtime/service.py", "_process", "Daemon._process (driftd's own work)"),
    ("daemon/stream/partition.py", "handle_predictions", "  handle_predictions"),
    ("daemon/stream/events.py", "decode_prediction", "    decode (msgspec)"),
    ("daemon/stream/pipeline.py", "check", "    ModelPipeline.check (schema per event)"),
    ("daemon/stream/join.py", "add_prediction", "    LabelJoin.add_prediction"),
    ("daemon/stream/pipeline.py", "observe_predictions", "    detectors on predictions (PSI, KS)"),
    ("daemon/stream/pipeline.py", "_build_data_detectors", "      reference build + calibration"),
    ("daemon/stream/partition.py", "handle_labels", "  handle_labels"),
    ("daemon/stream/events.py", "decode_label", "    decode (msgspec)"),
    ("daemon/stream/join.py", "add_label", "    LabelJoin.add_label"),
    ("daemon/stream/partition.py", "_feed_joins", "  _feed_joins (delay histogram, label detectors)"),
    ("numpy/_core/fromnumeric.py", "searchsorted", "    np.searchsorted (delay bucket, per join)"),
    ("daemon/stream/pipeline.py", "observe_labels", "    ADWIN + accuracy decay"),
    ("daemon/stream/partition.py", "finish_batch", "  finish_batch (decisions, episodes, alerts)"),
    ("detectors/ks.py", "p_value", "    KS p-values (scipy ks_2samp)"),
    ("daemon/runtime/service.py", "_checkpoint", "checkpoints (pickle, fsync, commit)"),
    ("daemon/kafka/checkpoint.py", "save", "  Checkpoints.save"),
    ("daemon/runtime/service.py", "_update_lag", "lag gauges"),
)


def profile_report(prof: cProfile.Profile, records: int, top: int) -> list[str]:
    stats = pstats.Stats(prof)
    own_total = sum(tt for (_, _, tt, _, _) in stats.stats.values())
    lines = [f"  own time in the daemon thread: {own_total:.2f} s over {records:,} records "
             f"({1e6 * own_total / records:.1f} us/record; cProfile inflates small Python functions)"]

    def where(key):
        filename, line, func = key
        path = filename.replace("\\", "/")
        for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        else:
            path = path.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
        return f"{path}:{line}({func})" if path != "~" else func

    lines.append("  by step (cumulative, nested steps indented; the same function may appear under several callers):")
    lines.append(f"    {'%':>5} {'us/rec':>7} {'us/event':>8} {'calls':>9}  step")
    for suffix, func, label in PROFILE_STEPS:
        ct = nc = 0
        for (filename, _, name), (cc, n_calls, tt, c_t, _) in stats.stats.items():
            if name == func and filename.replace("\\", "/").endswith(suffix):
                ct += c_t
                nc += n_calls
        if nc:
            lines.append(f"    {100 * ct / own_total:5.1f} {1e6 * ct / records:7.2f} {2e6 * ct / records:8.2f} {nc:9,}  {label}")

    def group(key):
        path = key[0].replace("\\", "/")
        for name in ("kafka", "daemon", "detectors", "river", "numpy", "scipy", "prometheus_client"):
            if f"/{name}/" in path:
                return name
        if path == "~":
            func = key[2]
            for name, marker in (("numpy (C)", "numpy"), ("msgspec (C)", "msgspec"), ("pickle (C)", "pickle"),
                                 ("waiting on locks (C)", "acquire"), ("scipy (C)", "scipy")):
                if marker in func:
                    return name
            return "builtins (C)"
        return "other python"

    groups: dict = {}
    for key, (_, _, tt, _, _) in stats.stats.items():
        groups[group(key)] = groups.get(group(key), 0.0) + tt
    lines.append("  own time by package:")
    for name, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
        if tt / own_total >= 0.001:
            lines.append(f"    {100 * tt / own_total:5.1f} % {1e6 * tt / records:7.2f} us/record  {name}")
    lines.append(f"  top {top} functions by own time:")
    lines.append(f"    {'%':>5} {'us/rec':>7} {'calls':>10}  function")
    for key, (cc, nc, tt, ct, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(f"    {100 * tt / own_total:5.1f} {1e6 * tt / records:7.2f} {nc:10,}  {where(key)}")
    return lines


def install_timers() -> tuple:
    from daemon.kafka.checkpoint import Checkpoints
    from daemon.stream.partition import PartitionState
    from daemon.stream.pipeline import ModelPipeline
    from daemon.runtime.service import Daemon

    steps = StepTimer()
    steps.wrap(PartitionState, "handle_predictions", "handle_predictions")
    steps.wrap(ModelPipeline, "observe_predictions", "detectors on predictions")
    steps.wrap(ModelPipeline, "_build_data_detectors", "reference build")
    steps.wrap(PartitionState, "handle_labels", "handle_labels")
    steps.wrap(PartitionState, "_feed_joins", "joins -> label detectors")
    steps.wrap(PartitionState, "finish_batch", "finish_batch", generator=True)
    steps.wrap(Daemon, "_checkpoint", "checkpoint")
    steps.wrap(Checkpoints, "save", "checkpoint save")
    return steps, GcTimer()


STEP_ROWS = (
    # (label, indent, description)
    ("handle_predictions", 1, "decode, check, join, feed PSI/KS"),
    ("detectors on predictions", 2, "PSI + KS update_many (incl. the build)"),
    ("reference build", 3, "one-off: reference typed, 22 detectors calibrated"),
    ("handle_labels", 1, "decode, check, join"),
    ("joins -> label detectors", 2, "delay histogram, ADWIN, decay (in both handlers)"),
    ("finish_batch", 1, "join expiry, decisions, episodes, KS p-values"),
)


def step_table(steps: dict, batches: list, wall: float, loop_cpu: float | None, gc_delta: dict, records: int) -> list[str]:
    """Where driftd's wall and CPU time went over a phase (from the timers, not a profiler)."""
    rows = []
    proc_wall = sum(b[1] - b[0] for b in batches)
    proc_cpu = sum(b[5] for b in batches)
    ck_wall, ck_cpu, ck_n = steps.get("checkpoint", (0.0, 0.0, 0))

    def row(label, w, c, note, indent=0):
        cpu = "" if c is None else f"{c:8.2f} {1e6 * c / records:7.1f}"
        rows.append(f"    {'  ' * indent + label:<34} {w:8.2f} {1e6 * w / records:7.1f} {cpu:>16}  {note}")

    rows.append(f"    {'step':<34} {'wall s':>8} {'us/rec':>7} {'CPU s':>8} {'us/rec':>7}  what")
    row("whole phase", wall, loop_cpu, "driftd loop thread (CPU: /proc, 10 ms ticks)")
    row("Daemon._process", proc_wall, proc_cpu, f"{len(batches)} batches, under the daemon lock", 1)
    for label, indent, note in STEP_ROWS:
        if label in steps:
            w, c, n = steps[label]
            row(label, w, c, f"{note} ({n} calls)", indent + 1)
    row("checkpoints", ck_wall, ck_cpu, f"{ck_n} x: confirm dead letters, pickle + fsync, commit", 1)
    if "checkpoint save" in steps:
        w, c, n = steps["checkpoint save"]
        row("Checkpoints.save", w, c, "pickle + write + fsync", 2)
    rest_cpu = None if loop_cpu is None else max(0.0, loop_cpu - proc_cpu - ck_cpu)
    row("the rest: poll, lag", wall - proc_wall - ck_wall, rest_cpu,
        "KafkaConsumer.poll (waiting for fetches, parsing records), lag gauges", 1)
    rows.append(f"    garbage collector (all threads, inside the above): {sum(gc_delta['seconds']):.2f} s "
                f"(gen0/1/2: {', '.join(f'{s:.2f} s x{c}' for s, c in zip(gc_delta['seconds'], gc_delta['count']))})")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="predictions (each with one label)")
    parser.add_argument("--quick", action="store_true", help="20,000 events, short latency phase")
    parser.add_argument("--latency-seconds", type=float, default=None, help="length of the paced phases (default 20, quick 8)")
    parser.add_argument("--decimals", type=int, default=None,
                        help="round features and score to this many decimals (ties: every feature is then calibrated on its own)")
    parser.add_argument("--session-timeout-ms", type=int, default=None,
                        help="consumer session timeout for driftd and raw alike (default: the daemon's default); "
                             "Tansu's group join takes about ceil(this / 2000) s")
    parser.add_argument("--profile", action="store_true", help="also run driftd once more under cProfile and print where its time goes")
    parser.add_argument("--profile-out", help="with --profile: also save the pstats file here")
    parser.add_argument("--top", type=int, default=25, help="rows of the profile's function table")
    parser.add_argument("--json", help="write the results as JSON to this file ('-' for stdout)")
    args = parser.parse_args(argv)
    n = 20_000 if args.quick and args.events == 200_000 else args.events
    latency_seconds = args.latency_seconds or (8.0 if args.quick else 20.0)

    import crc32c  # noqa: F401 - without it kafka-python checks CRCs in pure Python
    import kafka

    from daemon.kafka.embedded_broker import EmbeddedBroker

    t_run = time.monotonic()
    results: dict = {"events": n, "python": platform.python_version(), "kafka_python": kafka.__version__,
                     "cpus": os.cpu_count(), "decimals": args.decimals, "model_config": MODEL_CONFIG}
    print(f"driftd end-to-end benchmark: {n:,} predictions + {n:,} labels, {N_FEATURES} numeric features"
          f"{'' if args.decimals is None else f' rounded to {args.decimals} decimals'}; python {platform.python_version()}, "
          f"kafka-python {kafka.__version__} + crc32c, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"model config: {MODEL_CONFIG}")
    print()

    # Alerts (false alarms on this stationary stream, if any) are counted in the report, not logged.
    logging.getLogger("driftd").setLevel(logging.ERROR)
    steps, gc_timer = install_timers()
    work = tempfile.mkdtemp(prefix="driftd-bench-")
    broker = EmbeddedBroker(topics=TOPICS).start()
    try:
        bootstrap = broker.bootstrap
        base_config = daemon_config(bootstrap, os.path.join(work, "state"), args.session_timeout_ms)

        # -- produce ---------------------------------------------------------------------------
        print("producing ...", flush=True)
        produced = run_child(_bulk_producer, bootstrap, n, args.decimals)
        total = produced["records"]
        data_bytes = produced["prediction_bytes"] + produced["label_bytes"]
        results["produce"] = produced
        results["decode"] = decode = decode_rates(min(n, 20_000))

        # -- raw baseline (1) ------------------------------------------------------------------
        print("raw consumer ...", flush=True)
        raw1 = run_child(_raw_consumer, bootstrap, base_config, total, broker.pid, {})

        # -- driftd throughput -------------------------------------------------------------------
        gc.collect()
        rss_before = proc_status("VmRSS")
        hwm_reset = reset_peak_rss()
        print("driftd ...", flush=True)
        run = DaemonRun(bootstrap, base_config)
        run.expect(n, n)
        steps0, gc0 = steps.snapshot(), gc_timer.snapshot()
        run.start()
        if not run.assigned.wait(120) or run.errors:
            raise RuntimeError(f"daemon did not get its partitions: {run.errors}")
        threads0, load = thread_cpu(), Load([broker.pid])
        finished = run.done.wait(900)
        threads = thread_cpu_delta(threads0, thread_cpu())
        load = load.done()
        if run.errors or not finished:
            raise RuntimeError(f"driftd did not process everything: {run.counts()} of {(n, n)}; {run.errors}")
        t_done = run.end_of_batch_reaching(n, n)
        wall = t_done - run.t_assigned
        step_delta = StepTimer.delta(steps0, steps.snapshot())
        gc_delta = GcTimer.delta(gc0, gc_timer.snapshot())
        build = step_delta.get("reference build", (0.0, 0.0, 0))
        batches = list(run.batches)
        in_process = sum(b[1] - b[0] for b in batches)
        loop_cpu = next((cpu for name, _, cpu in threads if name == "driftd-loop"), None)
        hwm = proc_status("VmHWM")
        gc.collect()
        rss_after = proc_status("VmRSS")
        with run.daemon.lock:
            status = run.daemon._status()
        model_status = status["models"].get(MODEL, {})
        driftd = {
            "startup_seconds": run.t_assigned - run.t_start, "seconds": wall, "records": total,
            "build_seconds": build[0], "builds": build[2], "process_seconds": in_process, "batches": len(batches),
            "loop_cpu_seconds": loop_cpu, "load": load, "steps": step_delta, "gc": gc_delta,
            "assignments": run.assignments, "dead_letters": status["dead_letters"], "join": model_status.get("join"),
            "threads": [(name, cpu) for name, _, cpu in threads],
            "detections": {k: v.get("n_detections") for k, v in model_status.get("detectors", {}).items()
                           if v.get("n_detections")},
        }
        results["driftd"] = driftd
        throughput_steps = step_table(step_delta, batches, wall, loop_cpu, gc_delta, total)

        # -- driftd latency at half its steady rate ------------------------------------------------
        steady_rate = total / max(1e-9, wall - build[0])
        rate_pred = 0.5 * steady_rate / 2  # records/s = 2 x predictions/s
        n_lat = max(1000, int(rate_pred * latency_seconds))
        print(f"driftd latency at {fmt_rate(2 * rate_pred)} records/s for ~{latency_seconds:g} s ...", flush=True)
        producer, go, out = start_paced(bootstrap, n, n_lat, rate_pred, args.decimals, work)
        base_p, base_l = run.counts()
        first_batch = len(run.batches)
        checkpoints_before = len(run.checkpoints)
        run.expect(base_p + n_lat, base_l + n_lat)
        steps0, gc0, threads0 = steps.snapshot(), gc_timer.snapshot(), thread_cpu()
        load = Load([broker.pid, producer.pid])
        t_lat = time.monotonic()
        go.set()
        sent = finish_paced(producer, out, latency_seconds)
        if not run.done.wait(120):
            raise RuntimeError(f"latency phase: driftd stuck at {run.counts()} of {(base_p + n_lat, base_l + n_lat)}")
        lat_wall = time.monotonic() - t_lat
        load = load.done()
        lat_batches = run.batches[first_batch:]
        lat_threads = thread_cpu_delta(threads0, thread_cpu())
        lat_steps = step_table(StepTimer.delta(steps0, steps.snapshot()), lat_batches, lat_wall,
                               next((cpu for name, _, cpu in lat_threads if name == "driftd-loop"), None),
                               GcTimer.delta(gc0, gc_timer.snapshot()), 2 * n_lat)
        polls = np.array([(b[1], b[3] - base_p, b[4] - base_l) for b in lat_batches])
        latency = latency_summary(polls, sent, rate_pred)
        latency.update({
            "mean_batch_records": float(np.mean([b[2] for b in lat_batches])),
            "max_batch_seconds": max(b[1] - b[0] for b in lat_batches),
            "checkpoints": run.checkpoints[checkpoints_before:], "load": load,
        })
        results["latency"] = latency
        rss_end = proc_status("VmRSS")
        with run.daemon.lock:
            ends = dict(run.daemon.states[0].offsets)
        run.stop()
        ckpts = sorted(Path(work, "state").glob("*.ckpt"))
        results["memory"] = {
            "rss_before_daemon": rss_before, "rss_after_throughput": rss_after, "rss_after_latency": rss_end,
            "peak_rss_daemon_phase": hwm if hwm_reset else None,
            "peak_rss_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "checkpoint_bytes": sum(p.stat().st_size for p in ckpts), "checkpoint_files": len(ckpts),
        }

        # -- raw baseline (2), and raw with short fetch waits (context, not the baseline) -----
        print("raw consumer again ...", flush=True)
        total2 = total + 2 * n_lat
        raw2 = run_child(_raw_consumer, bootstrap, base_config, total2, broker.pid, {})
        print("raw consumer, fetch_max_wait_ms=10 ...", flush=True)
        raw_fast = run_child(_raw_consumer, bootstrap, base_config, total2, broker.pid, {"fetch_max_wait_ms": 10})
        results["raw"] = [raw1, raw2]
        results["raw_fetch_max_wait_10ms"] = raw_fast

        # -- raw consumer latency at the same rate ---------------------------------------------
        print("raw consumer latency at the same rate ...", flush=True)
        ctx = multiprocessing.get_context("spawn")
        queue, ready = ctx.Queue(), ctx.Event()
        consumer = ctx.Process(target=_raw_latency_consumer, args=(bootstrap, base_config, ends, (n_lat, n_lat), ready, queue))
        consumer.start()
        producer, go, out = start_paced(bootstrap, n + n_lat, n_lat, rate_pred, args.decimals, work)
        if not ready.wait(120):
            raise RuntimeError("raw latency consumer got no partitions")
        time.sleep(0.5)  # let its first fetch go out
        go.set()
        sent = finish_paced(producer, out, latency_seconds)
        polls = np.array(queue.get(timeout=120))
        consumer.join(30)
        results["raw_latency"] = raw_latency = latency_summary(polls, sent, rate_pred)

        # -- profile -------------------------------------------------------------------------------
        profile_lines = []
        if args.profile:
            print("driftd under cProfile ...", flush=True)
            total3 = total2 + 2 * n_lat
            config = daemon_config(bootstrap, os.path.join(work, "state-profile"), args.session_timeout_ms)
            prun = DaemonRun(bootstrap, config, profile=True)
            prun.expect(total3 // 2, total3 // 2)
            prun.start()
            prun.assigned.wait(120)
            prun.done.wait(1800)
            seconds = (prun.end_of_batch_reaching(total3 // 2, total3 // 2) or time.monotonic()) - (prun.t_assigned or 0)
            prun.stop()
            if args.profile_out:
                prun.profile.dump_stats(args.profile_out)
            profile_lines = [f"  {total3:,} records in {seconds:.1f} s under the profiler; the PSI/KS calibrations are "
                             f"cached from the measured run, so this is the steady state"]
            profile_lines += profile_report(prun.profile, total3, args.top)
    finally:
        broker.close()
        shutil.rmtree(work, ignore_errors=True)

    # -- report ------------------------------------------------------------------------------------
    raw_rates = [r["records"] / r["seconds"] for r in (raw1, raw2)]
    raw_rate = max(raw_rates)
    e2e = total / wall
    steady = total / (wall - build[0])
    ratio, ratio_steady = e2e / raw_rate, steady / raw_rate
    raw_cpu_rec = min(r["cpu_seconds"] / r["records"] for r in (raw1, raw2))
    driftd_cpu_rec = None if loop_cpu is None else (loop_cpu - build[1]) / total
    verdict = lambda r: "PASS" if r >= TARGET else "BELOW"  # noqa: E731
    results["summary"] = {"raw_records_per_second": raw_rate, "driftd_records_per_second": e2e,
                          "driftd_steady_records_per_second": steady, "ratio": ratio, "ratio_steady": ratio_steady,
                          "raw_cpu_us_per_record": 1e6 * raw_cpu_rec,
                          "driftd_cpu_us_per_record": None if driftd_cpu_rec is None else 1e6 * driftd_cpu_rec}

    w = 58
    print()
    print(f"{'throughput':{w}} {'records/s':>10} {'events/s':>9} {'MB/s':>6} {'seconds':>8} {'CPU us/rec':>10}")

    def line(label, records, seconds, cpu=None):
        rate = records / seconds
        cpu_text = "" if cpu is None else f"{1e6 * cpu / records:10.1f}"
        print(f"{label:{w}} {fmt_rate(rate):>10} {fmt_rate(rate / 2):>9} "
              f"{data_bytes * records / total / seconds / 1e6:6.1f} {seconds:8.2f} {cpu_text:>10}")

    line("produce (KafkaProducer, linger 20 ms, 1 MiB batches)", total, produced["produce_seconds"])
    line("raw consume, daemon's consumer settings (run 1)", raw1["records"], raw1["seconds"], raw1["cpu_seconds"])
    line("raw consume, daemon's consumer settings (run 2, more)", raw2["records"], raw2["seconds"], raw2["cpu_seconds"])
    line("driftd end to end: assignment -> all processed", total, wall, loop_cpu)
    line("driftd without the one-off reference build", total, wall - build[0],
         None if loop_cpu is None else loop_cpu - build[1])
    line("[context] raw with fetch_max_wait_ms=10 (not baseline)", raw_fast["records"], raw_fast["seconds"], raw_fast["cpu_seconds"])
    print(f"  events/s = predictions/s (each prediction comes with one label: 2 records); the baseline is the faster "
          f"raw run, {fmt_rate(raw_rate)} records/s. CPU us/rec: the raw consumer process, driftd's loop thread.")
    print(f"  events: prediction {produced['prediction_bytes'] / n:.0f} B, label {produced['label_bytes'] / n:.0f} B; "
          f"decode one prediction: daemon.stream.events {1e6 / decode['decode_prediction']:.1f} us "
          f"({fmt_rate(decode['decode_prediction'])}/s; json.loads {fmt_rate(decode['json.loads (prediction)'])}/s), "
          f"a label {1e6 / decode['decode_label']:.2f} us")
    print(f"  startup (daemon thread start -> partitions assigned, excluded above): driftd {driftd['startup_seconds']:.2f} s; "
          f"raw {raw1['startup_seconds']:.2f} s (Tansu answers a group join after ~session_timeout/2000 s)")
    print(f"  one-off reference build: {build[0]:.2f} s wall, {build[1]:.2f} s CPU ({2 * (N_FEATURES + 1)} detectors typed, "
          f"built, calibrated to ert; the daemon lock is held meanwhile)")
    print(f"  raw run 1: {load_text(raw1['load'])}")
    print(f"  driftd:    {load_text(driftd['load'])}")
    print("  CPU by thread during the driftd run: " + ", ".join(f"{name} {cpu:.1f} s" for name, cpu in driftd["threads"]))
    join = driftd["join"] or {}
    print(f"  checks: dead letters {driftd['dead_letters'] or 0}, joined {join.get('joined')} of {n}, group assignments "
          f"{driftd['assignments']}, detections (false alarms: the stream is stationary) {driftd['detections'] or 'none'}")
    if driftd["assignments"] != 1 or raw1["assignments"] != 1 or raw2["assignments"] != 1:
        print("  WARNING: a rebalance happened during a measurement; numbers are suspect")
    print()
    print("where driftd's time went (throughput run; timers around the daemon's methods, per batch):")
    print("\n".join(throughput_steps))
    print()
    lp, ll = latency["predictions_latency"], latency["labels_latency"]
    print(f"latency, produce -> processed, at {fmt_rate(latency['target_records_per_second'])} records/s "
          f"(half of driftd's steady rate; achieved {fmt_rate(latency['achieved_records_per_second'])}), "
          f"{latency['predictions']:,} predictions + their labels per run, ~{latency_seconds:g} s:")
    print(f"  {'':<34} {'n':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for name, q in (("driftd: predictions processed", lp), ("driftd: labels processed", ll),
                    ("raw consumer: predictions polled", raw_latency["predictions_latency"]),
                    ("raw consumer: labels polled", raw_latency["labels_latency"])):
        if q:
            print(f"  {name:<34} {q['n']:>8,} {1e3 * q['p50']:8.1f} {1e3 * q['p90']:8.1f} {1e3 * q['p99']:8.1f} "
                  f"{1e3 * q['max']:8.1f} {1e3 * q['mean']:8.1f}")
    print("  method: send time = just before KafkaProducer.send() in a separate, paced process (linger 1 ms); driftd's "
          "processed time = return of the Daemon._process call whose batch held the event (a hook: exact per batch, "
          "not sampled; events of one batch share it); the raw consumer's = return of the poll that handed it the "
          "record. One monotonic clock for all processes (Linux CLOCK_MONOTONIC).")
    print(f"  driftd in the phase: {latency['batches']} batches, mean {latency['mean_batch_records']:.0f} records, "
          f"longest {1e3 * latency['max_batch_seconds']:.0f} ms; checkpoints (the loop waits meanwhile): "
          + (", ".join(f"{1e3 * c:.0f} ms" for c in latency["checkpoints"]) or "none")
          + f"; the raw consumer: {raw_latency['batches']} non-empty polls")
    print(f"  {load_text(latency['load'])}")
    print("\n".join(lat_steps))
    print()
    m = results["memory"]
    print(f"memory: RSS {mb(m['rss_before_daemon'])} before driftd (interpreter, numpy, scipy, river, kafka-python), "
          f"{mb(m['rss_after_throughput'])} after the {n:,} events (+{mb(m['rss_after_throughput'] - m['rss_before_daemon'])}), "
          f"{mb(m['rss_after_latency'])} after the latency phase (+{2 * n_lat:,} records); peak during driftd "
          f"{mb(m['peak_rss_daemon_phase']) if m['peak_rss_daemon_phase'] else 'n/a (VmHWM not resettable)'}, "
          f"process peak (getrusage) {mb(m['peak_rss_process'])}; checkpoint: {m['checkpoint_files']} file, "
          f"{mb(m['checkpoint_bytes'])} after {n + n_lat:,} predictions")
    if profile_lines:
        print()
        print("profile of the daemon thread (cProfile; kafka-python's IO thread is not in it: see CPU by thread):")
        print("\n".join(profile_lines))
    print()
    print(f"run time {time.monotonic() - t_run:.0f} s")
    cpu_text = "" if driftd_cpu_rec is None else (
        f"; CPU per record: driftd {1e6 * driftd_cpu_rec:.1f} us vs raw {1e6 * raw_cpu_rec:.1f} us")
    print(f"SUMMARY driftd/raw = {ratio:.2f} end to end ({fmt_rate(e2e)} vs {fmt_rate(raw_rate)} records/s): "
          f"{verdict(ratio)} (target >= {TARGET}); without the one-off reference build {ratio_steady:.2f}: "
          f"{verdict(ratio_steady)}{cpu_text}; latency p50/p99 {1e3 * lp.get('p50', math.nan):.0f}/"
          f"{1e3 * lp.get('p99', math.nan):.0f} ms at {fmt_rate(latency['target_records_per_second'])} records/s "
          f"(raw consumer {1e3 * raw_latency['predictions_latency'].get('p50', math.nan):.0f}/"
          f"{1e3 * raw_latency['predictions_latency'].get('p99', math.nan):.0f} ms); "
          f"RSS +{mb(m['rss_after_throughput'] - m['rss_before_daemon'])}")
    if args.json:
        text = json.dumps(results, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
