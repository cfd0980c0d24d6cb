"""Several ``driftd run`` replicas of one consumer group on the test broker.

What :mod:`tests.test_replicas` needs around real processes:

- :class:`Replica`: one ``driftd run`` subprocess with its own configuration file and
  state directory; every replica gets the same ``DRIFTD_STATE_KEY`` in its environment
  (:data:`STATE_KEY`), so that each can read the others' checkpoints on the state topic;
- :func:`replica_config`: a configuration for one replica (the group's topics, its own
  state directory and HTTP port 0);
- :class:`Stream`: a multi-model stream with drifts, late, missing and duplicate labels and
  a few invalid events, each record on an explicit partition (the model's), with what it
  must add up to per model, per partition and per dead-letter reason;
- :func:`view`: the sum over live replicas of every counter in their /status, with the
  detectors of each model from the replica that owns it;
- :func:`state_topic_records`: the state topic as written (every manifest, unsealed), to
  see which replica wrote which checkpoint under which epoch.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import yaml
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from daemon.demo.simulate import Simulation
from daemon.kafka.checkpoint import unseal
from daemon.kafka.embedded_broker import create_topics
from daemon.kafka.statetopic import parse_key

from .process_harness import DriftdProcess

#: The state key every replica of a test shares (checkpoints are sealed with it).
STATE_KEY = "replica-test-state-key-0123456789abcdef"


# -- configuration and topics -----------------------------------------------------------------

def topic_names(prefix: str) -> dict:
    """The topics and group of one deployment, all under ``prefix`` (unique per test)."""
    return {"predictions": f"{prefix}-pred", "labels": f"{prefix}-lab", "dead": f"{prefix}-dead",
            "state": f"{prefix}-state", "alerts": f"{prefix}-alerts", "group": f"{prefix}-group"}


def create(bootstrap: str, names: dict, partitions: int) -> None:
    """The input topics with ``partitions`` partitions and the state topic as driftd would
    create it (compacted), before any producer or replica touches them (Tansu would
    auto-create a topic with 4 partitions)."""
    create_topics(bootstrap, {names["predictions"]: partitions, names["labels"]: partitions, names["dead"]: 1,
                              names["alerts"]: 1, names["state"]: partitions},
                  configs={names["state"]: {"cleanup.policy": "compact"}})


def replica_config(path: Path, bootstrap: str, names: dict, models: list, state_dir: Path,
                   model_defaults: dict | None = None, **sections) -> Path:
    """Write the configuration of one replica to ``path``; returns it."""
    config = {
        "kafka": {
            "bootstrap_servers": bootstrap, "group_id": names["group"], "create_topics": 1,
            "predictions_topic": names["predictions"], "labels_topic": names["labels"],
            "dead_letter_topic": names["dead"], "poll_timeout_ms": 100, "poll_max_records": 500,
            "session_timeout_ms": 2000,  # Tansu answers a join after ~session/2 s; a dead member leaves in 2 s
            "reconnect_backoff_max_seconds": 1.0,
        },
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(state_dir), "checkpoint_interval_seconds": 0.5, "topic": names["state"]},
        "model_defaults": model_defaults or {},
        "models": {m: {} for m in models},
        "alerts": {"sinks": [{"type": "kafka", "topic": names["alerts"]}]},
        "log_level": "INFO",
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(yaml.safe_dump(config))
    return path


# -- one replica ------------------------------------------------------------------------------

class Replica(DriftdProcess):
    """``driftd run`` as a subprocess with the group's shared :data:`STATE_KEY`; each run's
    log goes to its own file."""

    def __init__(self, name: str, config_path: Path, log_dir: Path):
        super().__init__(config_path, log_dir, name=name, env={"DRIFTD_STATE_KEY": STATE_KEY})

    def status(self) -> dict | None:
        """/status, or None if it does not answer or answers a stale copy (loop busy)."""
        return self.fresh_status()


# -- the stream -------------------------------------------------------------------------------

class Stream:
    """Records of ``models`` (model ``i`` on partition ``i % partitions``) as a service would
    write them, the models' records interleaved; plus ``bad`` invalid records per partition
    (half not JSON, on the prediction topic; half of an unknown model, on the label topic).

    ``records``: [(side, partition, key, value)], side "predictions" or "labels".
    """

    def __init__(self, models: list, partitions: int, n_events: int, label_delay: int = 30, bad: int = 4,
                 seed: int = 0):
        self.models, self.partitions = list(models), partitions
        self.partition_of = {m: i % partitions for i, m in enumerate(self.models)}
        streams = []
        for i, model in enumerate(self.models):
            # Data drift in two of three models, concept drift in every other one, at
            # different places: detectors fire at different times in different models.
            data = None if i % 3 == 0 else n_events // 2 + 7 * i
            concept = n_events * 3 // 4 - 5 * i if i % 2 else None
            sim = Simulation(n_events=n_events, model=model, data_drift_at=data, concept_drift_at=concept,
                             label_delay=label_delay, missing_labels=0.03, duplicate_labels=0.02, seed=seed * 1000 + i)
            streams.append(iter(sim.records()))
        records = []
        while streams:
            for it in list(streams):
                item = next(it, None)
                if item is None:
                    streams.remove(it)
                    continue
                topic, key, value = item
                records.append((topic, self.partition_of[key.decode()], key, value))
        # Invalid records spread over the stream: dead letters, counted per partition.
        step = max(1, len(records) // (bad * partitions + 1))
        for k in range(bad * partitions):
            partition, at = k % partitions, (k + 1) * step + k
            bad_record = (("predictions", partition, b"x", b"not json") if k % 2 == 0 else
                          ("labels", partition, b"nobody", b'{"model": "nobody", "id": "z", "ts": 1763900000.0, "label": 1}'))
            records.insert(at, bad_record)
        self.records = records

    def chunks(self, n: int) -> list[list]:
        """The records in ``n`` consecutive parts."""
        size = -(-len(self.records) // n)
        return [self.records[i:i + size] for i in range(0, len(self.records), size)]

    def expected(self, records: list | None = None) -> dict:
        """What replicas must count for ``records`` (default: all): ``processed``
        {(model, kind): n}, ``joined`` and ``duplicate_label`` {model: n}, ``dead``
        {reason: n} and ``ends`` {(side, partition): next offset}."""
        records = self.records if records is None else records
        processed, dead, ends = Counter(), Counter(), Counter()
        predicted, labelled = {}, {}
        for side, partition, _, value in records:
            ends[(side, partition)] += 1
            try:
                event = json.loads(value)
            except ValueError:
                dead["not_json"] += 1
                continue
            if event["model"] not in self.partition_of:
                dead["unknown_model"] += 1
                continue
            kind = "prediction" if side == "predictions" else "label"
            processed[(event["model"], kind)] += 1
            (predicted if kind == "prediction" else labelled).setdefault(event["model"], []).append(event["id"])
        joined = {m: len(set(labelled.get(m, [])) & set(predicted.get(m, []))) for m in self.models}
        duplicate = {m: len(labelled.get(m, [])) - len(set(labelled.get(m, []))) for m in self.models}
        return {"processed": dict(processed), "joined": joined, "duplicate_label": duplicate, "dead": dict(dead),
                "ends": dict(ends)}


def produce(bootstrap: str, names: dict, records: list) -> None:
    """Write ``records`` in order, each to its partition; one request in flight, so that
    the offsets are the same in every deployment the stream is written to."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                             enable_idempotence=False, retries=5, max_in_flight_requests_per_connection=1)
    try:
        for side, partition, key, value in records:
            producer.send(names[side], key=key, value=value, partition=partition)
        producer.flush(60)
    finally:
        producer.close(5)


# -- what the replicas show -------------------------------------------------------------------

def view(replicas: list) -> dict | None:
    """The sum over ``replicas`` (the live ones) of every counter in their /status, or None
    if one does not answer (now):

    - ``processed`` {(model, kind): n}, ``join`` {(model, outcome): n}, ``dead``
      {reason: n}: summed;
    - ``offsets`` {partition: {topic: offset}}, ``owners`` {partition: [replica names]}
      (more than one: two replicas hold the partition at once);
    - ``models`` {model: its /status entry} from the replica owning its partition,
      ``owners_of_model`` {model: [replica names]};
    - ``settled``: every replica ready, no calibration pending or test uncalibrated.
    """
    processed, join, dead = Counter(), Counter(), Counter()
    offsets, owners, models, model_owners = {}, {}, {}, {}
    settled = True
    for replica in replicas:
        status = replica.status()
        if status is None:
            return None
        owned = {int(p): o for p, o in status["partitions"].items()}
        for p, o in owned.items():
            offsets[p] = o
            owners.setdefault(p, []).append(replica.name)
        dead.update(status["dead_letters"])
        settled &= bool(status["ready"]) and status["calibrations_pending"] == 0
        for name, entry in status["models"].items():
            if entry.get("partition") not in owned:
                continue  # listed by configuration, owned by another replica
            for kind, n in entry["processed"].items():
                processed[(name, kind)] += n
            for outcome, n in entry["join"].items():
                join[(name, outcome)] += n
            models[name] = entry
            model_owners.setdefault(name, []).append(replica.name)
            settled &= entry["uncalibrated_tests"] == 0
    return {"processed": {k: v for k, v in processed.items() if v}, "join": dict(join),
            "dead": {k: v for k, v in dead.items() if v}, "offsets": offsets, "owners": owners,
            "models": models, "owners_of_model": model_owners, "settled": settled}


def complete(seen: dict | None, want: dict, names: dict, partitions: int) -> bool:
    """Whether ``seen`` (:func:`view`) shows the whole stream ``want`` (:meth:`Stream.expected`)
    processed by one owner per partition, and the replicas settled."""
    if not seen or not seen["settled"]:
        return False
    if sorted(seen["owners"]) != list(range(partitions)) or any(len(o) != 1 for o in seen["owners"].values()):
        return False
    ends = {p: {names[side]: n for (side, q), n in want["ends"].items() if q == p} for p in range(partitions)}
    return seen["offsets"] == ends and seen["processed"] == want["processed"] and seen["dead"] == want["dead"]


def alerts(bootstrap: str, topic: str, names: dict, timeout_ms: int = 2000) -> list[dict]:
    """The alerts on ``topic`` (data of each), with their source topic named by side
    ("predictions"/"labels") rather than by name, so that deployments on other topics
    compare; ``id`` dropped for the same reason (a hash of the rest, topic included)."""
    sides = {names["predictions"]: "predictions", names["labels"]: "labels"}
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms, enable_auto_commit=False)
    out = []
    try:
        for message in consumer:
            data = json.loads(message.value)["data"]
            origin = list(data.get("origin") or [])
            if origin:
                origin[0] = sides.get(origin[0], origin[0])
            out.append({**{k: v for k, v in data.items() if k != "id"}, "origin": origin})
    finally:
        consumer.close()
    return out


def alert_ids(bootstrap: str, topic: str, timeout_ms: int = 2000) -> dict:
    """{alert id: alert data} of the alerts on ``topic``."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms, enable_auto_commit=False)
    try:
        return {json.loads(m.value)["data"]["id"]: json.loads(m.value)["data"] for m in consumer}
    finally:
        consumer.close()


def alert_keys(found: list[dict]) -> set:
    """Alerts as comparable, hashable values (duplicates, delivered at least once, merge)."""
    return {json.dumps(a, sort_keys=True) for a in found}


def state_topic_records(bootstrap: str, topic: str, scope: str, partitions: int) -> list[dict]:
    """Every manifest on the state topic of ``scope``, in log order per state partition,
    unsealed with :data:`STATE_KEY`: {"partition", "epoch", "seq", "offsets", "offset"}."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                for r in records:
                    parsed = parse_key(r.key or b"")
                    if parsed is None or parsed[0] != scope or parsed[3] != "m" or r.value is None:
                        continue
                    manifest = unseal(STATE_KEY.encode(), f"state {scope} p{parsed[1]}", r.value)["manifest"]
                    out.append({"partition": manifest.partition, "epoch": manifest.epoch, "seq": manifest.seq,
                                "offsets": manifest.offsets, "offset": (r.partition, r.offset)})
            if all(consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp) for tp in tps):
                break
    finally:
        consumer.close()
    return out


def scope_of(names: dict) -> str:
    """The scope under which driftd keys a deployment's checkpoints (daemon.runtime.wiring)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{names['group']}-{names['predictions']}-{names['labels']}")
