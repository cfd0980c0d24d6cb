"""Scale-out on a real broker: replicas of one consumer group, the state topic, takeover,
metric series and memory of real ``driftd run`` processes.

Run from the repository root::

    .venv/bin/python bench/scale_out.py            # about 6 minutes
    .venv/bin/python bench/scale_out.py --quick    # about 2 minutes
    .venv/bin/python bench/scale_out.py --only takeover,series

``bench/scale.py`` runs it after its in-process figures. One embedded Tansu broker (a
child process, memory storage) serves every part; each part has its own topics, each
configuration its own consumer group and state topic (``cleanup.policy=compact``, created
by the bench before any client can auto-create it). Every replica is a real
``python -m daemon.cli run`` subprocess with its own configuration file, state directory
and HTTP port, all sharing one ``DRIFTD_STATE_KEY`` (manifests on the state topic are
sealed with it: replicas must share it to read each other's checkpoints), with
``kafka.session_timeout_ms: 2000`` and the default ``state.checkpoint_interval_seconds`` (5).
Events are the README's JSON, each record sent to its model's partition (the partition
number is the model's index modulo the partition count, so partitions hold equal numbers of
models), every value rounded to 6 decimals; labels follow their prediction a few steps
later and agree with it 90% of the time. Nothing is asserted; figures only.

1. **throughput**: 6 partitions x 100 models, 10 numeric features each (reference 1,000,
   window 500, stride 100, ert 4,000; ``--quick``: 200 / 100 / 50). The whole stream (a
   warm-up: reference and first window of every model; then 2,500 more predictions per
   model, ``--quick`` 400; each prediction with its label) is in the broker before the
   replicas start; then 1, 2 and 3 replicas of a fresh group each read it from the
   beginning. Their ``/status`` (partition offsets, calibrations pending) is polled every
   0.25 s. The **window** runs from the first poll at which every replica owns partitions
   to the one at which every record is consumed: records (predictions + labels) in it /
   its wall time, as a ratio to 1 replica. The **steady** rate, where there is such a
   window, leaves the warm-up out: from every partition past its warm-up (no calibration
   pending) to the first partition at its end. The CPU that the replicas, the broker, the
   bench and every other process (``/proc/stat``) used in the window is printed beside it.
2. **state-topic bytes**: after the last throughput run its replicas stay up and a paced
   producer sends 1,000 records/s (500 predictions and their labels) for 30 s (``--quick``:
   10 s). A plain consumer reads the state topic from its beginning (key + value bytes of
   every record) once the stream is on and again at the end: bytes written per 1,000
   records processed in between, and the checkpoints (manifests) counted. For scale: one
   full state, the sections named by the newest manifest of every partition (zstd, as on
   the topic).
3. **takeover**: 2 partitions; partition 0 holds 10 models of 20 features whose reference
   (20,000) is half collected and their 100,000 predictions waiting for labels
   (``--quick``: 30,000), partition 1 one small model. Two replicas; once partition 0's
   owner has checkpointed all of it, a producer sends 400 predictions/s to partition 0,
   and 11 s later (two more checkpoints; ``--quick``: 3 s) its owner gets SIGKILL. The
   survivor is polled every 50 ms (``/readyz`` and ``/status``): when it leaves the
   group's old generation (first unready), when it is assigned partition 0 (``/readyz``
   says "restoring state from the state topic"), when ``/status`` shows the partition,
   and when its offset passes the one it was restored at (the next processed event).
   Without and with ``state.standby: true`` on both replicas. The session timeout (2 s)
   is part of every takeover: the rest is printed apart.
4. **series**: one daemon per ``metrics.per_feature`` value (where the setting exists) on
   the same stream of 20 models (``--quick``: 10) x 20 numeric features (reference 200,
   window 100): once every model's tests are calibrated, ``/metrics`` is scraped and its
   samples counted, those with a ``model`` label divided by the models; also at 10
   features, from the last throughput run (scraped once, at its end). The daemon's RSS
   before any event (no model) is kept for ``bench/scale.py``.
5. **RSS**: VmRSS and VmHWM of every replica at the end of each run.

How the 2 cores are shared is printed with the throughput: the broker is one process, each
replica one process (its consumer loop does the work, a background thread calibrates), and
the bench polls; none is pinned. 3 replicas and the broker on 2 cores cannot scale linearly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import typing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.structs import TopicPartition  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from daemon.kafka.checkpoint import Checkpoints, unseal  # noqa: E402
from daemon.kafka.embedded_broker import EmbeddedBroker, create_topics  # noqa: E402
from daemon.kafka.statetopic import decode, parse_key  # noqa: E402
from tests.process_harness import DriftdProcess  # noqa: E402

SEED = 20_251_210
#: Shared by every replica of the run: manifests are sealed with it (``state.key_env``).
STATE_KEY = secrets.token_hex(32)
#: Event time of step 0: a day ago (events may not be a day ahead of the clock).
START_TS = float(int(time.time()) - 86_400)
# Decimals of every value. At 3, a few ties among a small reference's values send each
# feature's threshold calibration down the tied-values path, ~50x dearer: it would dominate.
DECIMALS = 6
STEP_SECONDS = 0.01  # event time between two steps of a model
LABEL_LAG = 5  # a label is sent this many steps after its prediction
SESSION_MS = 2000
CHECKPOINT_SECONDS = 5.0  # the default state.checkpoint_interval_seconds
CLK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    """Everything ``--quick`` changes."""

    ref: int = 1000
    window: int = 500
    stride: int = 100
    steady_steps: int = 2500  # predictions per model after the warm-up
    bytes_seconds: float = 30.0
    heavy_per_model: int = 10_000
    before_kill: float = 11.0  # seconds of the trickle before the SIGKILL (checkpoints go on meanwhile)
    series_models: int = 20


FULL = Sizes()
QUICK = Sizes(ref=200, window=100, stride=50, steady_steps=400, bytes_seconds=10.0, heavy_per_model=3_000, before_kill=3.0,
              series_models=10)


# -- events -------------------------------------------------------------------------------------

class Stream:
    """Predictions (and labels) of ``models``; model ``i`` on partition
    ``first_partition + i % partitions``.

    ``records(first, steps)`` gives, step after step, each model's prediction and (with
    ``labels``) the label of its prediction ``LABEL_LAG`` steps back, as
    [(side, partition, key, value)] with side ``"p"`` or ``"l"``; ``final=True`` adds the
    labels still owed at the end. Deterministic in the seed and the step numbers.
    """

    def __init__(self, models: list[str], partitions: int, n_features: int, seed: int, labels: bool = True,
                 first_partition: int = 0):
        self.models = list(models)
        self.partitions = partitions
        self.first_partition = first_partition
        self.n_features = n_features
        self.labels = labels
        self.seed = seed
        rng = np.random.default_rng([seed, 0])
        self.means = rng.uniform(-5, 5, size=(len(models), n_features))
        self.scales = rng.uniform(0.5, 3, size=(len(models), n_features))
        self.names = [f"x{k}" for k in range(n_features)]
        self._keys = [m.encode() for m in self.models]
        self._encode = msgspec.json.Encoder().encode

    def partition(self, m: int) -> int:
        return self.first_partition + m % self.partitions

    def _step(self, step: int):
        """Features (models, features), predictions and labels of one step."""
        rng = np.random.default_rng([self.seed, 1, step])
        z = rng.normal(size=(len(self.models), self.n_features))
        x = np.round(z * self.scales + self.means, DECIMALS)
        prediction = (z[:, 0] + z[:, 1] > 0).astype(int)
        label = np.where(rng.random(len(self.models)) < 0.9, prediction, 1 - prediction)
        return x, prediction, label

    def records(self, first: int, steps: int, final: bool = False) -> list[tuple]:
        out, labels = [], {}
        for step in range(first, first + steps):
            x, prediction, labels[step] = self._step(step)
            ts = START_TS + step * STEP_SECONDS
            for m, model in enumerate(self.models):
                event = {"model": model, "model_version": "1", "id": f"{model}-{step}", "ts": ts,
                         "features": dict(zip(self.names, x[m].tolist())), "prediction": int(prediction[m])}
                out.append(("p", self.partition(m), self._keys[m], self._encode(event)))
            if self.labels and step >= LABEL_LAG:
                out += self._labels(step - LABEL_LAG, labels)
        if final and self.labels:
            for step in range(max(0, first + steps - LABEL_LAG), first + steps):
                out += self._labels(step, labels)
        return out

    def _labels(self, step: int, known: dict) -> list:
        row = known[step] if step in known else self._step(step)[2]
        ts = START_TS + step * STEP_SECONDS + 1.0
        return [("l", self.partition(m), self._keys[m],
                 self._encode({"model": model, "id": f"{model}-{step}", "ts": ts, "label": int(row[m])}))
                for m, model in enumerate(self.models)]


def new_producer(bootstrap: str) -> KafkaProducer:
    # Not idempotent (see daemon/kafka/embedded_broker.py); large batches: the bench's
    # producer must not be what limits a measurement made before the replicas start.
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024,
                         enable_idempotence=False, retries=5)


def produce(producer: KafkaProducer, topics: dict, records: list) -> Counter:
    """Send [(side, partition, key, value)] to ``topics[side]`` and flush; counts per
    (side, partition)."""
    counts: Counter = Counter()
    for side, partition, key, value in records:
        producer.send(topics[side], key=key, value=value, partition=partition)
        counts[(side, partition)] += 1
    producer.flush(120)
    return counts


# -- processes ----------------------------------------------------------------------------------

def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_vm(pid: int, name: str) -> int:
    """``VmRSS``, ``VmHWM``... of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    return 0


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU so far (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle, sum(values[:8])


class Replica(DriftdProcess):
    """``driftd run`` as a subprocess of the bench (:class:`tests.process_harness.DriftdProcess`)
    with the deployment's shared state key, its own state directory and log file."""

    def __init__(self, name: str, config_path: Path, state_dir: Path, log_path: Path):
        super().__init__(config_path, log_path.parent, name=name, env={"DRIFTD_STATE_KEY": STATE_KEY})
        self.state_dir = state_dir

    def wait_port(self, timeout: float = 90) -> "Replica":
        return super().wait_port(timeout)

    def status(self, timeout: float = 5) -> dict | None:
        return self.fresh_status(timeout)

    def readyz(self) -> tuple[int, str]:
        try:
            code, body = self.get("/readyz", 2)
        except OSError as e:
            return 0, str(e)
        return code, body.decode(errors="replace").strip()

    def restored_offsets(self, partition: int) -> list[dict]:
        """The offsets of every "partition N restored at offsets {...} from ..." log line, in order."""
        return [offsets for offsets, _ in self.restored(partition)]


class Deployment:
    """The topics, group and state topic of one configuration; writes replica configs."""

    def __init__(self, work: Path, bootstrap: str, tag: str, topics: dict, partitions: int, models: dict,
                 model_defaults: dict, **sections):
        self.work, self.bootstrap, self.tag = work, bootstrap, tag
        self.topics = topics  # {"p": predictions, "l": labels, "dead": ...}
        self.group = f"{tag}-group"
        self.state_topic = f"{tag}-state"
        self.partitions = partitions
        create_topics(bootstrap, {self.state_topic: partitions}, configs={self.state_topic: {"cleanup.policy": "compact"}})
        self.config = {
            "kafka": {"bootstrap_servers": bootstrap, "group_id": self.group, "create_topics": 0,
                      "predictions_topic": topics["p"], "labels_topic": topics["l"], "dead_letter_topic": topics["dead"],
                      "session_timeout_ms": SESSION_MS, "reconnect_backoff_max_seconds": 1.0},
            "http": {"host": "127.0.0.1", "port": 0},
            "state": {"topic": self.state_topic, "checkpoint_interval_seconds": CHECKPOINT_SECONDS},
            "model_defaults": model_defaults,
            "models": models,
            "log_level": "INFO",
        }
        for section, values in sections.items():
            self.config[section] = {**self.config.get(section, {}), **values}
        self.replicas: list[Replica] = []

    def replica(self) -> Replica:
        name = f"{self.tag}-r{len(self.replicas)}"
        state_dir = self.work / name
        config = json.loads(json.dumps(self.config))
        config["state"]["dir"] = str(state_dir)
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        replica = Replica(name, path, state_dir, self.work / f"{name}.log")
        self.replicas.append(replica)
        return replica

    def scope(self) -> str:
        from daemon.runtime.wiring import checkpoint_scope

        kafka = self.config["kafka"]
        return checkpoint_scope(type("K", (), {"group_id": self.group, "predictions_topic": kafka["predictions_topic"],
                                               "labels_topic": kafka["labels_topic"]}))

    def stop_all(self) -> None:
        for r in self.replicas:
            r.stop()


def wait_for(condition, timeout: float, what: str, interval: float = 0.1, replicas=()):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        for r in replicas:
            if not r.alive():
                raise RuntimeError(f"{r.name} exited ({r.proc.returncode}) while waiting for {what}; log tail:\n{r.log()[-3000:]}")
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; last saw {last!r}")


# -- the state topic, read as a consumer sees it --------------------------------------------------

class StateMeter:
    """A plain consumer (no group) on every partition of a state topic, from its beginning:
    key + value bytes and records per state partition, manifests (checkpoints) per input
    partition, and the newest manifest of each input partition (unsealed)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning(*self.tps)
        self.bytes: Counter = Counter()
        self.records: Counter = Counter()
        self.manifests: Counter = Counter()
        self.newest: dict = {}  # input partition -> Manifest

    def read(self, timeout: float = 120) -> int:
        """Read to the end (the fetch high watermark); total bytes read so far."""
        deadline = time.monotonic() + timeout
        while True:
            for tp, records in self.consumer.poll(timeout_ms=200).items():
                for r in records:
                    self.bytes[tp.partition] += len(r.key or b"") + len(r.value or b"")
                    self.records[tp.partition] += 1
                    self._manifest(r)
            if all(self.consumer.highwater(tp) is not None and self.consumer.position(tp) >= self.consumer.highwater(tp)
                   for tp in self.tps):
                return sum(self.bytes.values())
            if time.monotonic() > deadline:
                raise RuntimeError(f"state topic not read to its end in {timeout:.0f} s")

    def _manifest(self, record) -> None:
        parsed = parse_key(record.key or b"")
        if parsed is None or parsed[3] != "m" or record.value is None:
            return
        scope, partition = parsed[0], parsed[1]
        self.manifests[partition] += 1
        try:
            manifest = unseal(STATE_KEY.encode(), f"state {scope} p{partition}", record.value)["manifest"]
        except Exception:  # noqa: BLE001 - a manifest the bench cannot read is not counted as state
            return
        if partition not in self.newest or manifest.id > self.newest[partition].id:
            self.newest[partition] = manifest

    def full_state_bytes(self) -> int:
        """Bytes of the sections the newest manifest of every partition names (as on the topic)."""
        return sum(size for m in self.newest.values() for _, _, size in m.sections)

    def close(self) -> None:
        self.consumer.close()


# -- 1 + 2: throughput and state-topic bytes --------------------------------------------------------

@dataclass
class Poll:
    t: float
    offsets: dict  # partition -> records consumed (both topics), last known
    owners: dict  # partition -> replica index, last known
    pending: int  # calibrations pending over the replicas, last known
    stale: int  # replicas whose /status did not answer fresh at this poll (loop busy past 0.5 s)
    cpu: list  # CPU seconds of each replica
    broker_cpu: float
    own_cpu: float
    machine: tuple


def poll_all(replicas: list[Replica], topics: dict, broker_pid: int, last: dict) -> Poll:
    """One /status of every replica; what a replica did not answer fresh is taken from
    ``last`` (its previous answer), which this updates."""
    offsets, owned, pending = last.setdefault("offsets", {}), last.setdefault("owned", {}), last.setdefault("pending", {})
    stale = 0
    for i, r in enumerate(replicas):
        s = r.status()
        if s is None:
            stale += 1
            continue
        pending[i] = s.get("calibrations_pending", 0)
        owned[i] = set()
        for p, found in s["partitions"].items():
            p = int(p)
            owned[i].add(p)
            offsets[p] = max(offsets.get(p, 0), found.get(topics["p"], 0) + found.get(topics["l"], 0))
    owners = {p: i for i, ps in owned.items() for p in ps}
    waiting = sum(pending.values()) if len(pending) == len(replicas) else -1
    return Poll(time.monotonic(), dict(offsets), owners, waiting, stale, [proc_cpu(r.pid) for r in replicas],
                proc_cpu(broker_pid), proc_cpu(os.getpid()), machine_jiffies())


def throughput_run(broker, work: Path, n_replicas: int, topics: dict, models: dict, model_defaults: dict,
                   warm: dict, ends: dict, measure: dict | None, timeout: float = 600) -> dict:
    """One fresh group of ``n_replicas`` reads the whole stream; the steady window's
    figures. ``measure`` ({stream, next_step, seconds}): then the state-topic bytes of a
    paced stream on the warm replicas, and the series of the first replica."""
    dep = Deployment(work, broker.bootstrap, f"tp{n_replicas}", topics, 6, models, model_defaults)
    replicas = [dep.replica() for _ in range(n_replicas)]
    started = time.monotonic()
    try:
        for r in replicas:
            r.launch()
        for r in replicas:
            r.wait_port()
        polls: list[Poll] = []
        last: dict = {}
        total = sum(ends.values())
        while True:
            poll = poll_all(replicas, topics, broker.pid, last)
            polls.append(poll)
            if sum(poll.offsets.values()) >= total and poll.pending == 0:
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{n_replicas} replicas: not done in {timeout:.0f} s "
                                   f"({sum(poll.offsets.values()):,} of {total:,} records)")
            for r in replicas:
                if not r.alive():
                    raise RuntimeError(f"{r.name} exited ({r.proc.returncode}); log tail:\n{r.log()[-3000:]}")
            time.sleep(max(0.0, 0.25 - (time.monotonic() - poll.t)))
        result = {"replicas": n_replicas, "start_to_done": polls[-1].t - started, **steady(polls, warm, ends, n_replicas)}
        result["rss"] = [proc_vm(r.pid, "VmRSS") for r in replicas]
        result["hwm"] = [proc_vm(r.pid, "VmHWM") for r in replicas]
        statuses = [r.status(timeout=30) or {} for r in replicas]
        result["processed"] = sum(m["processed"]["prediction"] + m["processed"]["label"]
                                  for s in statuses for m in s.get("models", {}).values())
        result["dead_letters"] = sum(sum(s.get("dead_letters", {}).values()) for s in statuses)
        result["expected"] = total
        result["restores"] = sum(len(re.findall(r"restored at offsets", r.log())) for r in replicas)
        if measure:
            # /status lists every configured model; those with events are this replica's.
            mine = sum(1 for m in statuses[0].get("models", {}).values() if m["processed"]["prediction"])
            result["series"] = count_series(replicas[0].get("/metrics", timeout=60)[1].decode(), mine)
            result["bytes"] = state_bytes(broker, dep, replicas, topics, **measure)
        return result
    finally:
        dep.stop_all()


def window(a: Poll, b: Poll, polls: list[Poll], n_partitions: int) -> dict:
    """Records/s and CPU shares between polls ``a`` and ``b``."""
    seconds = b.t - a.t
    records = sum(b.offsets.values()) - sum(a.offsets.values())
    replicas_cpu = [y - x for x, y in zip(a.cpu, b.cpu)]
    moved = any(p.owners != a.owners for p in polls if a.t <= p.t <= b.t and len(p.owners) == n_partitions)
    return {"seconds": seconds, "records": records, "rate": records / seconds,
            "replica_cores": [c / seconds for c in replicas_cpu], "broker_cores": (b.broker_cpu - a.broker_cpu) / seconds,
            "bench_cores": (b.own_cpu - a.own_cpu) / seconds, "machine_cores": (b.machine[0] - a.machine[0]) / CLK / seconds,
            "cpu_ms_per_1000": sum(replicas_cpu) / max(records, 1) * 1e6, "rebalanced": moved}


def steady(polls: list[Poll], warm: dict, ends: dict, n_replicas: int) -> dict:
    """Two windows of a run: ``stream``, from the first poll at which every replica owns
    partitions to the one at which every record is consumed (warm-up included: each
    replica builds and calibrates its own models' tests); ``steady``, where every partition
    is past its warm-up, no calibration is pending and none has reached its end (None when
    the partitions were not all in it at once: a consumer reads a partition's fetched
    records in large chunks, so one can end before another is past its warm-up)."""
    partitions = sorted(ends)
    total = sum(ends.values())
    stale = sum(p.stale for p in polls) / max(1, len(polls) * n_replicas)

    def grouped(p: Poll) -> bool:
        return len(p.owners) == len(partitions) and len(set(p.owners.values())) == n_replicas

    out = {"stream": None, "steady": None, "stale": stale, "why": ""}
    a = next((p for p in polls if grouped(p)), None)
    b = next((p for p in polls if sum(p.offsets.values()) >= total), None)
    if a is not None and b is not None and b.t > a.t:
        out["stream"] = window(a, b, polls, len(partitions))
    t0 = polls[0].t
    warmed = next((p for p in polls if all(p.offsets.get(k, 0) >= warm[k] for k in partitions)), None)
    ended = next((p for p in polls if any(p.offsets.get(k, 0) >= ends[k] for k in partitions)), None)
    out["why"] = (f"every partition past its warm-up at {warmed.t - t0:.1f} s, the first at its end at "
                  f"{ended.t - t0:.1f} s" if warmed and ended else "the stream did not get that far")
    first = next((i for i, p in enumerate(polls)
                  if grouped(p) and p.pending == 0 and all(p.offsets.get(k, 0) >= warm[k] for k in partitions)), None)
    if first is None:
        return out
    last = next((i for i in range(first, len(polls)) if any(polls[i].offsets.get(k, 0) >= ends[k] for k in partitions)),
                len(polls) - 1)
    if polls[last].t - polls[first].t >= 1.0:
        out["steady"] = window(polls[first], polls[last], polls, len(partitions))
    return out


def state_bytes(broker, dep: Deployment, replicas: list[Replica], topics: dict, stream: "Stream", next_step: int,
                seconds: float, rate: int = 1000) -> dict:
    """A paced stream of ``rate`` records/s (predictions and their labels) on the warm
    replicas; state-topic bytes written per 1,000 records processed."""
    step_seconds = 2 * len(stream.models) / rate
    meter = StateMeter(broker.bootstrap, dep.state_topic, dep.partitions)
    stop = threading.Event()

    def paced():
        producer = new_producer(broker.bootstrap)
        step, due = next_step, time.monotonic()
        try:
            while not stop.is_set():
                produce(producer, topics, stream.records(step, 1))
                step += 1
                due += step_seconds
                time.sleep(max(0.0, due - time.monotonic()))
        finally:
            producer.close(5)

    thread = threading.Thread(target=paced, daemon=True)
    thread.start()
    try:
        meter.read()
        time.sleep(CHECKPOINT_SECONDS + 1)  # the stream is on and a checkpoint has gone by
        last: dict = {}
        a = poll_all(replicas, topics, broker.pid, last)
        bytes_a, manifests_a = meter.read(), sum(meter.manifests.values())
        time.sleep(seconds)
        b = poll_all(replicas, topics, broker.pid, last)
        bytes_b, manifests_b = meter.read(), sum(meter.manifests.values())
    finally:
        stop.set()
        thread.join(30)
        meter.close()
    records = sum(b.offsets.values()) - sum(a.offsets.values())
    return {"rate": rate, "seconds": b.t - a.t, "records": records, "bytes": bytes_b - bytes_a,
            "rss": [proc_vm(r.pid, "VmRSS") for r in replicas],
            "checkpoints": manifests_b - manifests_a, "full_state": meter.full_state_bytes(),
            "partitions": len(meter.newest), "topic_total": bytes_b}


def throughput(broker, work: Path, sizes: Sizes, counts: list[int]) -> dict:
    topics = {"p": "tp-predictions", "l": "tp-labels", "dead": "tp-dead"}
    create_topics(broker.bootstrap, {topics["p"]: 6, topics["l"]: 6, topics["dead"]: 1})
    model_names = [f"m{i:03d}" for i in range(100)]
    stream = Stream(model_names, 6, 10, SEED)
    warm_steps, steady_steps = sizes.ref + sizes.window, sizes.steady_steps
    model_defaults = {"reference_size": sizes.ref, "window": sizes.window, "stride": sizes.stride, "ert": 4000,
                      "decay_reference_size": sizes.window, "decay_window": sizes.window}
    producer = new_producer(broker.bootstrap)
    t = time.monotonic()
    counts_warm: Counter = Counter()
    for first in range(0, warm_steps, 100):
        counts_warm += produce(producer, topics, stream.records(first, min(100, warm_steps - first)))
    counts_all = Counter(counts_warm)
    end = warm_steps + steady_steps
    for first in range(warm_steps, end, 100):
        n = min(100, end - first)
        counts_all += produce(producer, topics, stream.records(first, n, final=first + n == end))
    produce_seconds = time.monotonic() - t
    producer.close(10)
    warm = {p: counts_warm[("p", p)] + counts_warm[("l", p)] for p in range(6)}
    ends = {p: counts_all[("p", p)] + counts_all[("l", p)] for p in range(6)}
    note(f"throughput stream: {sum(ends.values()):,} records ({sum(warm.values()):,} warm-up) produced in {produce_seconds:.0f} s")
    runs = []
    for i, n in enumerate(counts):
        # The last run's replicas stay up for the state-topic bytes of a paced stream
        # (the same models, steps after the stream) and a scrape of their series.
        measure = {"stream": stream, "next_step": end + LABEL_LAG, "seconds": sizes.bytes_seconds} if i == len(counts) - 1 else None
        runs.append(throughput_run(broker, work, n, topics, {m: {} for m in model_names}, model_defaults, warm, ends, measure))
        note(f"throughput with {n} replica(s): done")
    return {"runs": runs, "records": sum(ends.values()), "warm": sum(warm.values()), "produce_seconds": produce_seconds,
            "model_defaults": model_defaults, "steady_steps": steady_steps, "warm_steps": warm_steps}


# -- 3: takeover ------------------------------------------------------------------------------------

def takeover(broker, work: Path, sizes: Sizes) -> dict:
    topics = {"p": "to-predictions", "l": "to-labels", "dead": "to-dead"}
    create_topics(broker.bootstrap, {topics["p"]: 2, topics["l"]: 2, topics["dead"]: 1})
    heavy = Stream([f"h{i}" for i in range(10)], 1, 20, SEED + 1, labels=False)
    light = Stream(["light"], 1, 5, SEED + 2, first_partition=1)
    models = {**{m: {} for m in heavy.models}, "light": {"reference_size": 200}}
    # Half of each heavy model's reference collected: its values are held exactly.
    model_defaults = {"reference_size": 2 * sizes.heavy_per_model, "window": 500, "stride": 100, "ert": 4000}
    producer = new_producer(broker.bootstrap)
    t = time.monotonic()
    ends: Counter = Counter()
    for first in range(0, sizes.heavy_per_model, 500):
        ends += produce(producer, topics, heavy.records(first, min(500, sizes.heavy_per_model - first)))
    ends += produce(producer, topics, light.records(0, 300, final=True))
    producer.close(10)
    note(f"takeover stream: {ends[('p', 0)]:,} predictions on partition 0 produced in {time.monotonic() - t:.0f} s")
    cursor = [sizes.heavy_per_model]  # next step of the heavy models (the trickle goes on from there)
    out = []
    for standby in (False, True):
        out.append(takeover_once(broker, work, topics, models, model_defaults, heavy, ends, cursor, standby, sizes.before_kill))
        note(f"takeover {'with' if standby else 'without'} standby: done")
    return {"variants": out, "heavy_models": len(heavy.models), "heavy_per_model": sizes.heavy_per_model,
            "before_kill": sizes.before_kill,
            "features": heavy.n_features, "reference_size": model_defaults["reference_size"]}


def takeover_once(broker, work: Path, topics: dict, models: dict, model_defaults: dict, heavy: Stream, ends: Counter,
                  cursor: list, standby: bool, before_kill: float) -> dict:
    dep = Deployment(work, broker.bootstrap, "to-standby" if standby else "to-plain", topics, 2, models, model_defaults,
                     state={"standby": standby})
    a, b = dep.replica(), dep.replica()
    stop = threading.Event()
    trickle = None
    try:
        a.launch(), b.launch()
        a.wait_port(), b.wait_port()

        def settled():
            sa, sb = a.status(), b.status()
            if not sa or not sb:
                return None
            pa, pb = set(sa["partitions"]), set(sb["partitions"])
            if len(pa) == 1 and len(pb) == 1 and pa | pb == {"0", "1"}:
                return (a, b) if "0" in pa else (b, a)
            return None

        owner, survivor = wait_for(settled, 120, "two replicas owning one partition each", replicas=[a, b])
        end0 = ends[("p", 0)]
        wait_for(lambda: (s := owner.status()) and s["partitions"].get("0", {}).get(topics["p"], 0) >= end0, 600,
                 "partition 0 processed to its end", interval=0.25, replicas=[a, b])
        files = Checkpoints(owner.state_dir, dep.scope(), key=STATE_KEY.encode())

        def checkpointed():
            found = files.restore_sections(0)
            return found if found and found[0] is not None and found[0].offsets.get(topics["p"], 0) >= end0 else None

        manifest, sections = wait_for(checkpointed, 60, "a checkpoint of partition 0 at its end", interval=0.25,
                                      replicas=[a, b])
        kinds = Counter()
        pickled = 0
        for name, data in sections.items():
            kinds[name.split("/")[0]] += len(data)
            pickled += len(pickle.dumps(decode(data), protocol=pickle.HIGHEST_PROTOCOL))
        restores_before = len(survivor.restored_offsets(0))

        def trickle_on():
            producer = new_producer(broker.bootstrap)
            try:
                while not stop.is_set():
                    ends.update(produce(producer, topics, heavy.records(cursor[0], 2)))  # 20 predictions
                    cursor[0] += 2
                    time.sleep(0.05)
            finally:
                producer.close(5)

        trickle = threading.Thread(target=trickle_on, daemon=True)
        trickle.start()
        time.sleep(before_kill)
        meter = StateMeter(broker.bootstrap, dep.state_topic, 2)
        meter.read()
        held, manifests = meter.bytes[0], meter.manifests[0]
        meter.close()
        survivor_rss = proc_vm(survivor.pid, "VmRSS")
        owner.kill()  # SIGKILL, our own child by pid
        t0 = time.monotonic()
        times: dict = {}
        reasons = []
        while True:
            now = time.monotonic() - t0
            code, reason = survivor.readyz()
            if not reasons or reasons[-1][1] != reason:
                reasons.append((now, reason))
            if code != 200:
                times.setdefault("unready", now)
            if "restoring state" in reason:
                times.setdefault("assigned", now)
            s = survivor.status(timeout=2)
            if s and "0" in s["partitions"]:
                times.setdefault("shown", now)
                found = survivor.restored_offsets(0)[restores_before:]
                if found and s["partitions"]["0"].get(topics["p"], 0) > found[-1].get(topics["p"], 0):
                    times["first_event"] = now
                    restored_at = found[-1]
                    break
            if now > 180:
                raise RuntimeError(f"no event of partition 0 processed by the survivor 180 s after the kill; "
                                   f"readyz {reasons}; log tail:\n{survivor.log()[-3000:]}")
            if not survivor.alive():
                raise RuntimeError(f"the survivor exited; log tail:\n{survivor.log()[-3000:]}")
            time.sleep(max(0.0, 0.05 - (time.monotonic() - t0 - now)))
        source = re.findall(r"partition 0 restored at offsets .*? from (.*)", survivor.log())[-1].strip()
        return {"standby": standby, "state_sections": sum(kinds.values()), "state_by_kind": dict(kinds),
                "state_pickled": pickled, "topic_held": held, "topic_manifests": manifests, "survivor_rss": survivor_rss,
                "times": times,
                "reasons": reasons, "restored_at": restored_at, "checkpointed_at": dict(manifest.offsets),
                "source": source}
    finally:
        stop.set()
        if trickle is not None:
            trickle.join(10)
        dep.stop_all()


# -- 4: series per model ------------------------------------------------------------------------------

def per_feature_values() -> list:
    """The values ``metrics.per_feature`` takes in this checkout (default first), or [None]
    if the setting does not exist. Read from daemon/config/options.py and checked with it, so that
    the bench follows the setting as it is."""
    from daemon import config as c

    hints = typing.get_type_hints(c.Config)
    if "metrics" not in hints or not dataclasses.is_dataclass(hints["metrics"]):
        return [None]
    cls = hints["metrics"]
    found = {f.name: f for f in dataclasses.fields(cls)}.get("per_feature")
    if found is None:
        return [None]
    kind = typing.get_type_hints(cls)["per_feature"]
    if kind is bool:
        candidates = [True, False]
    elif typing.get_origin(kind) is typing.Literal:
        candidates = list(typing.get_args(kind))
    else:  # a string: the values the doc names in backquotes, those the loader accepts
        candidates = re.findall(r"`([A-Za-z_][\w-]*)`", found.metadata.get("doc", ""))
    default = found.default
    ok = []
    for value in dict.fromkeys([default, *candidates]):
        try:
            c.from_dict({"metrics": {"per_feature": value}})
        except Exception:  # noqa: BLE001 - not a value of the setting
            continue
        ok.append(value)
    return ok or [None]


def count_series(text: str, n_models: int) -> dict:
    """Samples of a /metrics page: all, those with a ``model`` label per model, by family."""
    total = with_model = 0
    families: Counter = Counter()
    alerting = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            total += 1
            if "model" in s.labels:
                with_model += 1
                families[family.name] += 1
            if family.name in ("driftd_features_in_drift", "driftd_features_in_warning"):
                alerting += s.value
    return {"total": total, "with_model": with_model, "per_model": with_model / max(n_models, 1),
            "other": total - with_model, "families": families, "alerting": alerting, "models": n_models}


def series(broker, work: Path, sizes: Sizes) -> dict:
    topics = {"p": "se-predictions", "l": "se-labels", "dead": "se-dead"}
    create_topics(broker.bootstrap, {topics["p"]: 1, topics["l"]: 1, topics["dead"]: 1})
    stream = Stream([f"s{i:02d}" for i in range(sizes.series_models)], 1, 20, SEED + 3)
    model_defaults = {"reference_size": 200, "window": 100, "stride": 50, "ert": 4000,
                      "decay_reference_size": 100, "decay_window": 100}
    values = per_feature_values()
    deps = []
    for i, value in enumerate(values):
        extra = {} if value is None else {"metrics": {"per_feature": value}}
        deps.append(Deployment(work, broker.bootstrap, f"se{i}", topics, 1, {m: {} for m in stream.models}, model_defaults,
                               **extra))
    replicas = [d.replica() for d in deps]
    try:
        for r in replicas:
            r.launch()
        for r in replicas:
            r.wait_port()
        for r in replicas:
            wait_for(lambda r=r: r.readyz()[0] == 200, 60, f"{r.name} ready", replicas=[r])
        time.sleep(1.0)
        idle = [proc_vm(r.pid, "VmRSS") for r in replicas]
        producer = new_producer(broker.bootstrap)
        steps = 400
        ends = produce(producer, topics, stream.records(0, steps, final=True))
        producer.close(10)
        total = ends[("p", 0)] + ends[("l", 0)]

        def calibrated(r):
            s = r.status()
            if not s:
                return False
            offsets = s["partitions"].get("0", {})
            models = s.get("models", {})
            return (offsets.get(topics["p"], 0) + offsets.get(topics["l"], 0) >= total and s["calibrations_pending"] == 0
                    and len(models) == len(stream.models)
                    and all(m["reference_complete"] and m["uncalibrated_tests"] == 0 for m in models.values()))

        for r in replicas:
            wait_for(lambda r=r: calibrated(r), 180, f"{r.name}: every model calibrated", interval=0.25, replicas=[r])
        counted = [count_series(r.get("/metrics", timeout=30)[1].decode(), len(stream.models)) for r in replicas]
        return {"values": values, "counts": counted, "idle_rss": idle, "models": len(stream.models),
                "features": stream.n_features}
    finally:
        for d in deps:
            d.stop_all()


# -- report ---------------------------------------------------------------------------------------

def note(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def mb(b: float, digits: int = 1) -> str:
    return f"{b / 2**20:,.{digits}f} MB"


def cores_line() -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return (f"os.cpu_count() = {os.cpu_count()} ({usable} usable by this process); not pinned: the broker (Tansu, one "
            f"process), each replica (one process: its consumer loop does the work, a background thread calibrates) "
            f"and the bench's poller share them with whatever else runs on the machine")


def print_throughput(t: dict) -> None:
    d = t["model_defaults"]
    print(f"1. Throughput: 6 partitions x 100 models, 10 numeric features each (reference {d['reference_size']:,}, "
          f"window {d['window']}, stride {d['stride']}, ert {d['ert']:,}); {t['records']:,} records (predictions + "
          f"labels), {t['warm']:,} of them warm-up, in the broker before the replicas start (produced in "
          f"{t['produce_seconds']:.0f} s); a fresh group each time")
    print(f"   {cores_line()}")
    head = (f"   {'replicas':>8} {'window':>7} {'records/s':>10} {'vs 1':>6} {'steady':>14} {'replica cores':>16} "
            f"{'broker':>7} {'bench':>6} {'others':>7} {'CPU ms/1000':>11} {'start->done':>11} {'RSS per replica':>19}")
    print(head)
    print("   " + "-" * (len(head) - 3))
    base = next((r["stream"]["rate"] for r in t["runs"] if r["stream"]), None)
    steady_base = next((r["steady"]["rate"] for r in t["runs"] if r["steady"]), None)
    for r in t["runs"]:
        s, st = r["stream"], r["steady"]
        rss = " / ".join(f"{v / 2**20:.0f}" for v in r["rss"]) + " MB"
        steady_text = f"{st['rate']:,.0f} {st['rate'] / steady_base:.2f}x" if st else "-"
        if s is None:
            print(f"   {r['replicas']:>8} {'(no window: see below)':>40} {steady_text:>14} {'':>55} "
                  f"{r['start_to_done']:>10.1f}s {rss:>19}")
            continue
        cores = "+".join(f"{c:.2f}" for c in s["replica_cores"])
        others = max(0.0, s["machine_cores"] - sum(s["replica_cores"]) - s["broker_cores"] - s["bench_cores"])
        print(f"   {r['replicas']:>8} {s['seconds']:>6.1f}s {s['rate']:>10,.0f} {s['rate'] / base:>5.2f}x {steady_text:>14} "
              f"{cores:>16} {s['broker_cores']:>7.2f} {s['bench_cores']:>6.2f} {others:>7.2f} {s['cpu_ms_per_1000']:>11.0f} "
              f"{r['start_to_done']:>10.1f}s {rss:>19}")
    print("   window: from the first /status poll (every 0.25 s) at which every replica owns partitions to the one at which\n"
          "   every record is consumed; records/s in it (warm-up included: each replica builds and calibrates the tests of\n"
          "   its own models), as a ratio to 1 replica. steady: records/s (and ratio) where every partition is past its\n"
          "   warm-up, no calibration is pending and none has reached its end, when there is such a window of 1 s or more.\n"
          "   Cores: CPU seconds per wall second in the window of the replicas, the broker, this bench, and every other\n"
          "   process on the machine (/proc/stat); together at most 2. With 2 cores, 3 replicas and the broker cannot\n"
          "   scale linearly: the group's rate is bounded by what the 2 cores leave after the broker and the other\n"
          "   processes, whatever the replica count. CPU ms/1000: the replicas' CPU per 1,000 records (the steadier\n"
          "   figure on a shared machine). start->done: from starting the processes to the last record.")
    for r in t["runs"]:
        flags = []
        if r["processed"] != r["expected"]:
            flags.append(f"processed {r['processed']:,} of {r['expected']:,} records")
        if r["dead_letters"]:
            flags.append(f"{r['dead_letters']} dead letters")
        if r["stream"] and r["stream"]["rebalanced"]:
            flags.append("partitions moved during the window")
        print(f"   {r['replicas']} replica(s): counts over the replicas {'add up' if not flags else '; '.join(flags)}; "
              f"{r['restores']} partition restores in their logs; {r['stale']:.0%} of the /status polls answered stale "
              f"(loop busy over 0.5 s){'' if r['steady'] else '; no steady window: ' + r['why']}")


def print_bytes(b: dict) -> None:
    print(f"2. State-topic bytes: the last run's replicas, a paced stream of {b['rate']:,} records/s (predictions and their "
          f"labels) for {b['seconds']:.0f} s, checkpoints every {CHECKPOINT_SECONDS:g} s")
    per = b["bytes"] / max(b["records"], 1) * 1000
    print(f"   {b['records']:,} records processed, {b['checkpoints']} partition checkpoints (manifests), "
          f"{mb(b['bytes'])} written to the state topic (key + value): {per / 1024:,.1f} kB per 1,000 records, "
          f"{b['bytes'] / max(b['checkpoints'], 1) / 1024:,.0f} kB per partition checkpoint")
    print(f"   one full state ({b['partitions']} partitions, the sections their newest manifests name, zstd): "
          f"{mb(b['full_state'])}; the topic holds {mb(b['topic_total'])} in all (what compaction left of every "
          f"checkpoint); replicas' VmRSS after the paced stream: " + " / ".join(mb(v, 0) for v in b["rss"]))


def print_takeover(t: dict) -> None:
    print(f"3. Takeover: partition 0 = {t['heavy_models']} models x {t['features']} features, {t['heavy_per_model']:,} "
          f"predictions each (reference {t['reference_size']:,}: half collected), none labelled; once checkpointed, 400 "
          f"more predictions/s for {t['before_kill']:g} s, then SIGKILL of its owner; survivor polled every 50 ms; "
          f"session timeout {SESSION_MS / 1000:g} s")
    head = (f"   {'standby':>7} {'state':>9} {'pickled':>9} {'topic p0':>9} {'unready':>8} {'assigned':>9} {'shown':>7} "
            f"{'1st event':>9} {'- session':>9} {'restore':>8} {'survivor RSS':>12}")
    print(head)
    print("   " + "-" * (len(head) - 3))
    for v in t["variants"]:
        tm = v["times"]
        fmt = lambda k: f"{tm[k]:.2f}s" if k in tm else "-"  # noqa: E731
        restore = f"{tm['first_event'] - tm['assigned']:.2f}s" if "assigned" in tm else "-"
        print(f"   {'yes' if v['standby'] else 'no':>7} {mb(v['state_sections']):>9} {mb(v['state_pickled']):>9} "
              f"{mb(v['topic_held']):>9} {fmt('unready'):>8} {fmt('assigned'):>9} {fmt('shown'):>7} {fmt('first_event'):>9} "
              f"{tm['first_event'] - SESSION_MS / 1000:>8.2f}s {restore:>8} {mb(v['survivor_rss'], 0):>12}")
    print("   state: the sections of partition 0's checkpoint as on the topic (zstd); pickled: the same uncompressed;\n"
          "   topic p0: what the state topic's partition 0 held at the kill, the records of every checkpoint that\n"
          "   compaction left (what a restore without standby reads, from the beginning);\n"
          "   times from the SIGKILL: unready = the survivor left the old generation (session timeout, then its\n"
          "   heartbeat hears of the rebalance); assigned = /readyz says it is restoring; shown = /status lists\n"
          "   partition 0; 1st event = its offset passed the restored one. '- session' = 1st event minus the session\n"
          "   timeout: the group's rejoin (Tansu answers a join after ~1 s), the restore and the first fetch;\n"
          "   restore = 1st event minus assigned: reading the state topic, decoding, seeking, the first fetch.\n"
          "   survivor RSS: before the kill (with standby it holds what it tails of the state topic).")
    for v in t["variants"]:
        kinds = ", ".join(f"{k} {mb(n)}" for k, n in sorted(v["state_by_kind"].items()))
        print(f"   standby {'yes' if v['standby'] else 'no'}: sections {kinds}; {v['topic_manifests']} checkpoints of "
              f"partition 0 on the topic at the kill; restored from {v['source']}")


def print_series(s: dict, t: dict | None) -> None:
    print(f"4. Series per model: {s['models']} models x {s['features']} numeric features (reference 200, window 100), every "
          "test calibrated, one /metrics scrape")
    for value, c in zip(s["values"], s["counts"]):
        label = "(no metrics.per_feature setting)" if value is None else f"metrics.per_feature: {value}"
        top = ", ".join(f"{name} {n / c['models']:.0f}" for name, n in c["families"].most_common(4))
        print(f"   {label:<36} {c['per_model']:>7.1f} series per model ({c['total']:,} in all, {c['other']} without a model "
              f"label; features in warning or drift at the scrape: {c['alerting']:.0f}); largest: {top}")
    counts = {c["total"] for c in s["counts"]}
    if len(s["values"]) > 1 and len(counts) == 1:
        print("   the same count for every value: the setting did not reach the daemon's /metrics in this checkout")
    if t:
        runs = [r for r in t["runs"] if "series" in r]
        for r in runs:
            c = r["series"]
            print(f"   10 features, default setting, a replica of the {r['replicas']}-replica run ({c['models']} models): "
                  f"{c['per_model']:.1f} series per model ({c['total']:,} in all)")


def print_rss(s: dict | None, t: dict | None) -> None:
    print("5. RSS")
    if s:
        print("   a daemon with no model yet (started, partitions assigned, no event): "
              + " / ".join(mb(v) for v in s["idle_rss"]))
    if t:
        for r in t["runs"]:
            print(f"   {r['replicas']} replica(s), 100 models / {r['replicas']} each, at the last record of the backlog: VmRSS "
                  + " / ".join(mb(v, 0) for v in r["rss"]) + ", peak " + " / ".join(mb(v, 0) for v in r["hwm"]))


PARTS = ("throughput", "takeover", "series")


def run(quick: bool = False, only=PARTS, replicas=(1, 2, 3), keep: bool = False) -> dict:
    """Run the parts; returns their results (``bench/scale.py`` reads ``series.idle_rss``)."""
    sizes = QUICK if quick else FULL
    work = Path(tempfile.mkdtemp(prefix="driftd-scale-out-"))
    results: dict = {"started": time.monotonic()}
    failed = False
    try:
        with EmbeddedBroker() as broker:
            for part in only:
                try:
                    if part == "throughput":
                        results[part] = throughput(broker, work, sizes, list(replicas))
                    elif part == "takeover":
                        results[part] = takeover(broker, work, sizes)
                    elif part == "series":
                        results[part] = series(broker, work, sizes)
                except Exception as e:  # noqa: BLE001 - report it, go on with the other parts
                    failed = True
                    results.setdefault("errors", []).append((part, f"{type(e).__name__}: {e}"))
                    note(f"{part} FAILED: {type(e).__name__}: {str(e)[:3000]}")
    finally:
        results["seconds"] = time.monotonic() - results["started"]
        if keep or failed:
            results["work"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def report(results: dict) -> None:
    import feeding

    print("driftd scale-out: real `driftd run` replicas of one consumer group on the embedded broker (Tansu, memory storage)")
    print(feeding.machine_line())
    print()
    if "throughput" in results:
        print_throughput(results["throughput"])
        print()
        last = results["throughput"]["runs"][-1]
        if "bytes" in last:
            print_bytes(last["bytes"])
            print()
    if "takeover" in results:
        print_takeover(results["takeover"])
        print()
    if "series" in results or "throughput" in results:
        if "series" in results:
            print_series(results["series"], results.get("throughput"))
            print()
        print_rss(results.get("series"), results.get("throughput"))
        print()
    for part, error in results.get("errors", []):
        print(f"{part}: FAILED: {error[:2000]}")
    if "work" in results:
        print(f"configurations and replica logs kept in {results['work']}")
    print(f"scale-out run time {results['seconds']:.0f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller stream, references and takeover state (about 2 minutes)")
    p.add_argument("--only", help=f"comma-separated parts among {', '.join(PARTS)} (default: all)")
    p.add_argument("--replicas", default="1,2,3", help="replica counts of the throughput part (default 1,2,3)")
    p.add_argument("--keep", action="store_true", help="keep the configurations and replica logs")
    opts = p.parse_args(argv)
    only = PARTS if not opts.only else [x.strip() for x in opts.only.split(",")]
    unknown = set(only) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}: choose among {', '.join(PARTS)}")
    results = run(opts.quick, only, [int(n) for n in opts.replicas.split(",")], opts.keep)
    report(results)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
