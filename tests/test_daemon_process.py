"""The daemon as an operator runs it: a real ``driftd run`` process on the real broker.

No mocks: the daemon is a subprocess (``python -m daemon.cli run --config FILE``), it is
stopped with real signals (SIGKILL, SIGTERM), and the broker under it is really stopped
and restarted. What is checked is what the design promises:

- after a crash at any point no event is lost and none is counted twice;
- SIGTERM stops polling, checkpoints, commits, leaves the group and exits 0, and a
  restart resumes where it stopped;
- a broker outage neither kills nor wedges the daemon: /livez stays 200, /readyz says
  503 while the broker is away and 200 when it is back, and new events flow again;
- ``driftd check-config`` names the key and the reason of an invalid file.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from daemon.kafka.checkpoint import Checkpoints
from daemon.kafka.embedded_broker import EmbeddedBroker
from daemon.demo.simulate import Simulation

from .daemon_harness import wait_until
from .process_harness import ROOT, DriftdProcess
MODEL = "fraud"


# -- helpers ---------------------------------------------------------------------------------

def write_config(tmp_path: Path, bootstrap: str, unique_name, **sections) -> tuple[Path, dict]:
    config = {
        "kafka": {
            "bootstrap_servers": bootstrap, "group_id": unique_name("group"), "create_topics": 1,
            "predictions_topic": unique_name("predictions"), "labels_topic": unique_name("labels"),
            "dead_letter_topic": unique_name("dead"),
            "poll_timeout_ms": 100, "poll_max_records": 1000,
            "session_timeout_ms": 2000,  # Tansu answers a join after ~session/2 s: keep it short
            "reconnect_backoff_max_seconds": 1.0,
        },
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(tmp_path / "state"), "checkpoint_interval_seconds": 0.5, "topic": unique_name("state")},
        # Small reference and windows: the detectors are built and tested within the first
        # thousand events. A short ERT keeps their threshold calibration (simulated null
        # runs, at least 100 * ert values up to 2 million) at ~2 s instead of ~16 s per process.
        "model_defaults": {"reference_size": 1000, "window": 500, "stride": 100, "ert": 4000,
                           "decay_reference_size": 500, "decay_window": 400},
        "models": {MODEL: {}},
        "log_level": "INFO",
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path = tmp_path / "driftd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, config


class DaemonProcess(DriftdProcess):
    """``driftd run`` as a subprocess; its log goes to a file (read for the port)."""

    def __init__(self, config_path: Path, log_dir: Path):
        super().__init__(config_path, log_dir)

    def status(self) -> dict:
        return json.loads(self.get("/status")[1])

    def metrics(self) -> dict:
        """Samples of the state's counters: {(name, frozenset(labels)): value}."""
        text = self.get("/metrics")[1].decode()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def counts(self) -> dict:
        """Processed predictions and labels, joined labels and dead letters, summed over
        every partition (from /metrics, which adds up the partition states)."""
        m = self.metrics()
        return {
            "prediction": m.get(("driftd_events_processed_total", frozenset({"model": MODEL, "kind": "prediction"}.items())), 0),
            "label": m.get(("driftd_events_processed_total", frozenset({"model": MODEL, "kind": "label"}.items())), 0),
            "joined": m.get(("driftd_label_join_total", frozenset({"model": MODEL, "outcome": "joined"}.items())), 0),
            "duplicate_label": m.get(("driftd_label_join_total", frozenset({"model": MODEL, "outcome": "duplicate_label"}.items())), 0),
            "dead": sum(v for (name, _), v in m.items() if name == "driftd_dead_letter_total"),
        }


@pytest.fixture
def daemons(tmp_path):
    started = []

    def make(config_path: Path) -> DaemonProcess:
        d = DaemonProcess(config_path, tmp_path)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()  # a test that got this far with a live daemon already failed


def sim_records(config: dict, n_events: int, id_prefix: str = "p-", seed: int = 7) -> list:
    sim = Simulation(n_events=n_events, predictions_topic=config["kafka"]["predictions_topic"],
                     labels_topic=config["kafka"]["labels_topic"], data_drift_at=None, concept_drift_at=None,
                     label_delay=50, missing_labels=0.03, duplicate_labels=0.02, seed=seed)
    records = list(sim.records())
    if id_prefix != "p-":  # fresh ids, so that a second stream is not a duplicate of the first
        records = [(t, k, v.replace(b'"id": "p-', f'"id": "{id_prefix}'.encode())) for t, k, v in records]
    return records


def expected(config: dict, records: list) -> dict:
    """What the daemon must count for ``records``: every valid event once, and one join per
    distinct labelled id whose prediction exists."""
    predictions, labels = config["kafka"]["predictions_topic"], config["kafka"]["labels_topic"]
    predicted = {json.loads(v)["id"] for t, _, v in records if t == predictions}
    labelled = [json.loads(v)["id"] for t, _, v in records if t == labels]
    return {"prediction": sum(t == predictions for t, _, _ in records), "label": len(labelled),
            "joined": len(set(labelled) & predicted), "duplicate_label": len(labelled) - len(set(labelled))}


def wait_counts(daemon: DaemonProcess, want: dict, timeout: float) -> None:
    """Wait until the daemon's counts (the keys of ``want``) are exactly ``want``."""
    last = {}

    def check():
        nonlocal last
        last = {k: daemon.counts()[k] for k in want}
        return last == want

    try:
        wait_until(check, timeout=timeout, what="counts")
    except AssertionError:
        raise AssertionError(f"counts did not reach {want} in {timeout} s; last saw {last}") from None


def new_producer(bootstrap: str) -> KafkaProducer:
    # Not idempotent: an idempotent producer is stuck after the broker restarts empty.
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                         enable_idempotence=False, retries=5)


def produce(bootstrap: str, records: list, chunk: int | None = None, pause: float = 0.0) -> None:
    """Write (topic, key, value) records in order; with ``chunk``, a pause after every
    ``chunk`` records, like a live stream (else the broker has it all at once)."""
    producer = new_producer(bootstrap)
    try:
        for i, (topic, key, value) in enumerate(records, 1):
            producer.send(topic, key=key, value=value)
            if chunk and i % chunk == 0:
                producer.flush(30)
                time.sleep(pause)
        producer.flush(30)
    finally:
        producer.close(5)


def committed(bootstrap: str, group: str, topics: list[str]) -> dict:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {t: consumer.committed(TopicPartition(t, 0), timeout_ms=10_000) for t in topics}
    finally:
        consumer.close(autocommit=False)


def group_members(bootstrap: str, group: str) -> tuple[str, list]:
    """State and member ids of a consumer group. A raw DescribeGroups: Tansu answers
    authorized operations kafka-python cannot decode (``describe_groups`` raises)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    async def describe():
        coordinator = (await admin._find_coordinator_ids([group]))[group]
        return await admin._manager.send(admin._describe_groups_request([group]), node_id=coordinator)

    try:
        (found,) = admin._manager.run(describe).groups
    finally:
        admin.close()
    return found.group_state, [m.member_id for m in found.members]


def checkpointed_offsets(config: dict, partition: int = 0) -> dict:
    kafka = config["kafka"]
    scope = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kafka['group_id']}-{kafka['predictions_topic']}-{kafka['labels_topic']}")
    state = Checkpoints(config["state"]["dir"], scope).load(partition)
    assert state is not None, f"no checkpoint for partition {partition} in {config['state']['dir']}"
    return dict(state.offsets)


def sub(a: dict, b: dict) -> dict:
    return {k: a[k] - b.get(k, 0) for k in a}


# -- 1. SIGKILL mid-stream --------------------------------------------------------------------

def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(kafka_bootstrap, unique_name, tmp_path, daemons):
    path, config = write_config(tmp_path, kafka_bootstrap, unique_name, state={"checkpoint_interval_seconds": 2.0})
    topics = [config["kafka"]["predictions_topic"], config["kafka"]["labels_topic"]]
    records = sim_records(config, 20_000)
    want = expected(config, records)
    assert want["duplicate_label"] > 0 and want["label"] < 20_000 + want["duplicate_label"]  # the stream has both

    def paused_past_checkpoint():
        """Pause the daemon (SIGSTOP) when it has processed events of both topics that its
        checkpoint does not reflect yet: those the restart must read again without counting
        them twice. Returns (offsets processed, offsets checkpointed); resumes it if not."""
        offsets = daemon.status()["partitions"].get("0", {})
        daemon.signal(signal.SIGSTOP)  # from here on its checkpoint file cannot change
        try:
            saved = checkpointed_offsets(config)
        except AssertionError:
            saved = {}  # no checkpoint yet
        if all(t in saved and offsets.get(t, 0) > saved[t] >= 1000 for t in topics):
            return offsets, saved
        daemon.signal(signal.SIGCONT)
        return None

    daemon = daemons(path).start()
    # A live stream, about 6,000 records a second: the daemon keeps up with it, so it is
    # mid-way through the stream when it is killed.
    producer = threading.Thread(target=produce, args=(kafka_bootstrap, records), kwargs={"chunk": 600, "pause": 0.1})
    producer.start()
    try:
        at_kill, saved = wait_until(paused_past_checkpoint, timeout=60, interval=0.05,
                                    what="processing past a checkpoint in both topics")
        daemon.signal(signal.SIGKILL)
        streaming = producer.is_alive()
        assert daemon.wait(10) == -signal.SIGKILL
    finally:
        producer.join(60)
    assert streaming or at_kill[topics[0]] < want["prediction"], f"not killed mid-stream ({at_kill})"

    daemon.start()  # same configuration, same state directory
    wait_counts(daemon, want, timeout=60)
    restored = re.search(r"partition 0 restored at offsets (\{.*\})", daemon.log())
    assert restored, "the restart did not restore the checkpoint"
    restored = ast.literal_eval(restored.group(1))
    print(f"killed at offsets {at_kill} or later; restored at {restored}")
    assert restored == saved
    time.sleep(1.0)  # an event counted twice would show up by now
    final = daemon.counts()
    assert {k: final[k] for k in want} == want
    status = daemon.status()
    assert status["partitions"] == {"0": {topics[0]: want["prediction"], topics[1]: want["label"]}}
    assert status["models"][MODEL]["processed"] == {"prediction": want["prediction"], "label": want["label"]}
    assert status["models"][MODEL]["join"]["joined"] == want["joined"]
    assert status["models"][MODEL]["join"]["duplicate_label"] == want["duplicate_label"]
    assert daemon.alive()


# -- 2. SIGTERM ------------------------------------------------------------------------------

def test_sigterm_checkpoints_commits_exits_0_then_resumes(kafka_bootstrap, unique_name, tmp_path, daemons):
    path, config = write_config(
        tmp_path, kafka_bootstrap, unique_name,
        # A long (legal: up to 249 characters) group name: checkpoint file names are built
        # from group and topic names and must still fit in a file name.
        kafka={"group_id": unique_name("group") + "-" + "g" * 150},
        state={"checkpoint_interval_seconds": 30})  # only the SIGTERM checkpoint counts
    kafka = config["kafka"]
    topics = [kafka["predictions_topic"], kafka["labels_topic"]]
    records = sim_records(config, 4000)
    want = expected(config, records)

    daemon = daemons(path).start()
    produce(kafka_bootstrap, records)
    wait_counts(daemon, want, timeout=30)

    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    rc = daemon.wait(15)
    took = time.monotonic() - started
    assert rc == 0, daemon.log()
    assert took < 5, f"SIGTERM took {took:.1f} s"
    print(f"SIGTERM to exit 0: {took:.2f} s")
    assert "final checkpoint failed" not in daemon.log()

    # The state was checkpointed with the offsets of everything produced, and exactly those
    # offsets are committed in Kafka.
    ends = {kafka["predictions_topic"]: want["prediction"], kafka["labels_topic"]: want["label"]}
    assert checkpointed_offsets(config) == ends
    assert {t: o for t, o in committed(kafka_bootstrap, kafka["group_id"], topics).items()} == ends

    # On the embedded broker the group's leader (here its only member) does not leave, lest
    # it wedge the group (daemon.kafka.leaving): it stays listed until the next join after
    # its session timeout (2 s) drops it (Tansu expires members lazily); see below.
    _, gone = group_members(kafka_bootstrap, kafka["group_id"])
    assert len(gone) == 1, gone  # the cluster id told the embedded broker: it did not leave

    # A restart resumes from there: nothing is processed again ...
    daemon.start()
    wait_until(lambda: re.search(r"partition 0 restored at offsets", daemon.log()), timeout=20, what="state restored")
    time.sleep(1.5)
    assert daemon.status()["partitions"] == {"0": ends}
    state, members = group_members(kafka_bootstrap, kafka["group_id"])
    assert len(members) == 1 and not set(members) & set(gone), (state, members, gone)
    assert {k: daemon.counts()[k] for k in want} == want
    # ... and what comes next is processed once.
    more = sim_records(config, 500, id_prefix="q-", seed=8)
    more_want = expected(config, more)
    produce(kafka_bootstrap, more)
    total = {k: want[k] + more_want[k] for k in want}
    wait_counts(daemon, total, timeout=20)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0


# -- 3. broker outage ------------------------------------------------------------------------

BAD_EVENTS = [b"not json", b'{"model": "nobody", "id": "x", "ts": 1.0, "features": {}, "prediction": 1}']


def test_broker_outage_daemon_stays_up_turns_unready_and_recovers(unique_name, tmp_path, daemons):
    predictions, labels, dead = unique_name("predictions"), unique_name("labels"), unique_name("dead")
    # The broker's own ``topics`` are created on every start, so also after the restart.
    with EmbeddedBroker(topics={predictions: 1, labels: 1, dead: 1}) as broker:
        path, config = write_config(tmp_path, broker.bootstrap, unique_name, kafka={
            "predictions_topic": predictions, "labels_topic": labels, "dead_letter_topic": dead})
        daemon = daemons(path).start()

        before = sim_records(config, 3000)
        produce(broker.bootstrap, before + [(predictions, b"fraud", v) for v in BAD_EVENTS])
        want = {**expected(config, before), "dead": len(BAD_EVENTS)}
        wait_counts(daemon, want, timeout=30)
        time.sleep(1.0)  # two checkpoint intervals: everything is checkpointed, dead letters confirmed
        wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=10, what="ready")

        # The broker goes away: the daemon lives on and says it is not ready.
        broker.stop()
        went = time.monotonic()
        livez = []
        while True:
            livez.append(daemon.get("/livez")[0])
            if daemon.get("/readyz")[0] == 503:
                break
            assert time.monotonic() - went < 15, "/readyz still 200 15 s after the broker stopped"
            time.sleep(0.2)
        unready_after = time.monotonic() - went
        assert "broker not answering" in daemon.get("/readyz")[1].decode()
        for _ in range(10):  # and stays up while the broker is away
            assert daemon.alive(), daemon.log()
            livez.append(daemon.get("/livez")[0])
            assert daemon.get("/readyz")[0] == 503
            time.sleep(0.2)
        assert set(livez) == {200}, livez
        # The counts (from the checkpointed state) are still served.
        assert {k: daemon.counts()[k] for k in want} == want

        # The broker comes back, empty, with the topics re-created.
        broker.start()
        wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=30, what="/readyz 200 after the broker restart")
        partitions = {}
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            for t in admin.describe_topics([predictions, labels]):
                partitions[t["name"]] = len(t["partitions"])
        finally:
            admin.close()

        after = sim_records(config, 2000, id_prefix="r-", seed=9)
        produce(broker.bootstrap, after + [(labels, b"fraud", BAD_EVENTS[0])])
        more = expected(config, after)
        total = {"prediction": want["prediction"] + more["prediction"], "label": want["label"] + more["label"],
                 "dead": want["dead"] + 1}
        if partitions[predictions] == partitions[labels]:  # co-partitioned: the joins must add up too
            total["joined"] = want["joined"] + more["joined"]
        wait_counts(daemon, total, timeout=30)
        time.sleep(1.0)
        assert {k: daemon.counts()[k] for k in total} == total
        assert daemon.alive() and daemon.get("/livez")[0] == 200
        print(f"unready {unready_after:.1f} s after the broker stopped; topics after restart: {partitions}")

        # The dead letters of after the restart reached the (new) dead-letter topic.
        consumer = KafkaConsumer(dead, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=3000)
        got = [r.value for r in consumer]
        consumer.close()
        assert got == [BAD_EVENTS[0]]

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, daemon.log()


# -- 4. check-config -------------------------------------------------------------------------

def _check_config(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon.cli", "check-config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("text, key, reason", [
    ("kafka:\n  poll_timeout_ms: -5\n", "kafka.poll_timeout_ms", "must be above 0"),
    ("kafka:\n  bootstrap_server: x:9092\n", "kafka.bootstrap_server", "unknown key"),
    ("models:\n  fraud:\n    window: many\n", "models.fraud.window", "must be a whole number"),
    ("http:\n  port: 70000\n", "http.port", "between 0 and 65535"),
    ("kafka: [unclosed\n", "", "not valid YAML"),
])
def test_check_config_rejects_an_invalid_file_naming_key_and_reason(tmp_path, text, key, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _check_config(path)
    assert result.returncode != 0
    assert key in result.stderr and reason in result.stderr, result.stderr


def test_check_config_accepts_the_shipped_config():
    result = _check_config(ROOT / "config.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
