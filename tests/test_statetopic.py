"""The state topic on the real broker: checkpoints in pieces, written incrementally,
restored as the newest readable one, fenced by epoch (daemon.kafka.statetopic)."""

from __future__ import annotations

import os

import pytest
from kafka import KafkaConsumer, KafkaProducer

from daemon.kafka.checkpoint import seal
from daemon.kafka.embedded_broker import create_topics
from daemon.kafka.statereader import StateReader
from daemon.kafka.statetopic import Epoch, decode, encode
from daemon.kafka.statewriter import StateWriter

KEY = b"k" * 32
SCOPE = "g-pred-lab"


@pytest.fixture
def state_topic(kafka_bootstrap, unique_name):
    topic = unique_name("state")
    create_topics(kafka_bootstrap, {topic: 2}, configs={topic: {"cleanup.policy": "compact"}})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_in_flight_requests_per_connection=1)
    yield kafka_bootstrap, topic, producer
    producer.close()


def _reader(bootstrap, topic, key=KEY):
    return StateReader(lambda: KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                             fetch_max_bytes=16 << 20, max_partition_fetch_bytes=16 << 20),
                       topic, SCOPE, key, lambda t: 2)


def _writer(producer, topic, piece_bytes=1024):
    return StateWriter(producer, topic, SCOPE, KEY, piece_bytes, lambda t: 2)


def _sections(restored) -> dict:
    return {name: decode(data) for name, data in restored.sections.items()}


def test_a_checkpoint_in_pieces_comes_back_whole_and_unchanged_sections_are_not_written_again(state_topic):
    bootstrap, topic, producer = state_topic
    writer = _writer(producer, topic)
    writer.own(3, Epoch(1, 5), 0, [])
    big = encode(os.urandom(10_000))  # incompressible: ten pieces of 1 KiB (bytes: an encoded blob)
    writer.save(3, [("core", {"n": 1}), ("model/a", big)], {"pred": 10}, {"pred": "c/t"}, wait=5)
    first = writer.bytes_written
    writer.save(3, [("core", {"n": 2}), ("model/a", big)], {"pred": 20}, {"pred": "c/t"}, wait=5)
    assert writer.bytes_written - first < 2_000, "the unchanged 10 kB section was written again"

    restored = _reader(bootstrap, topic).restore([3], timeout=10)[3]
    assert restored.manifest.offsets == {"pred": 20} and restored.manifest.logs == {"pred": "c/t"}
    assert _sections(restored) == {"core": {"n": 2}, "model/a": decode(big)}
    assert (restored.manifest.epoch, restored.manifest.seq, restored.top_epoch) == (Epoch(1, 5), 2, 1)


def test_blobs_no_longer_named_are_deleted(state_topic):
    bootstrap, topic, producer = state_topic
    writer = _writer(producer, topic)
    writer.own(0, Epoch(1, 1), 0, [])
    writer.save(0, [("core", {"v": "old" * 1000})], {}, {}, wait=5)
    writer.save(0, [("core", {"v": "new"})], {}, {}, wait=5)
    producer.flush()
    reader = _reader(bootstrap, topic)
    reader.start_standby()  # keeps what it read: the blobs left can be counted
    try:
        restored = reader.restore([0], timeout=10)[0]
    finally:
        reader.close()
    assert _sections(restored) == {"core": {"v": "new"}}
    blobs = [k for k in restored.keys if b"/b/" in k]
    assert len(blobs) == 1, blobs  # the old blob's pieces were tombstoned


def test_a_fenced_writer_cannot_overwrite_the_newer_owner(state_topic):
    bootstrap, topic, producer = state_topic
    old = _writer(producer, topic)
    old.own(1, Epoch(1, 3), 0, [])
    old.save(1, [("core", {"by": "old", "n": 1})], {"pred": 100}, {}, wait=5)

    # The partition moves: the new owner restores and takes the next epoch.
    restored = _reader(bootstrap, topic).restore([1], timeout=10)[1]
    new = _writer(producer, topic)
    new.own(1, Epoch(restored.top_epoch + 1, 4), restored.manifest.seq, restored.keys)
    new.save(1, [("core", {"by": "new", "n": 2})], {"pred": 200}, {}, wait=5)

    # The old owner wakes up (it was paused) and writes on under its old epoch.
    old.save(1, [("core", {"by": "old", "n": 3})], {"pred": 300}, {}, wait=5)

    restored = _reader(bootstrap, topic).restore([1], timeout=10)[1]
    assert _sections(restored) == {"core": {"by": "new", "n": 2}}
    assert restored.manifest.offsets == {"pred": 200} and restored.manifest.epoch == Epoch(2, 4)


def test_a_checkpoint_missing_a_blob_falls_back_to_an_older_one_and_a_forged_one_is_refused(state_topic):
    bootstrap, topic, producer = state_topic
    writer = _writer(producer, topic)
    writer.own(0, Epoch(1, 1), 0, [])
    writer.save(0, [("core", {"good": True})], {"pred": 5}, {}, wait=5)
    # A newer epoch whose manifest names a blob that never arrived (a writer that died mid-way).
    other = _writer(producer, topic)
    other.own(0, Epoch(2, 2), 1, [])
    other.producer = _DropBlobs(producer)
    other.save(0, [("core", {"good": False})], {"pred": 9}, {}, wait=5)
    # And a manifest sealed with another key.
    forged = seal(b"not the key", f"state {SCOPE} p0", {"format": 3, "manifest": None})
    producer.send(topic, key=f"{SCOPE}/p0/9.9/m".encode(), value=forged, partition=0).get(5)

    restored = _reader(bootstrap, topic).restore([0], timeout=10)[0]
    assert _sections(restored) == {"core": {"good": True}} and restored.manifest.offsets == {"pred": 5}
    assert restored.top_epoch == 9  # a new owner still goes above every epoch it saw


def test_other_scopes_and_partitions_are_not_read_as_ours(state_topic):
    bootstrap, topic, producer = state_topic
    ours, theirs = _writer(producer, topic), StateWriter(producer, topic, "another-scope", KEY, 1024, lambda t: 2)
    ours.own(2, Epoch(1, 1), 0, [])
    theirs.own(2, Epoch(7, 7), 0, [])
    ours.save(2, [("core", "ours")], {}, {}, wait=5)
    theirs.save(2, [("core", "theirs")], {}, {}, wait=5)
    restored = _reader(bootstrap, topic).restore([0, 2], timeout=10)
    assert restored[0].manifest is None and _sections(restored[2]) == {"core": "ours"}


class _DropBlobs:
    """A producer that loses every blob record (what a reader sees of a writer that died)."""

    def __init__(self, producer):
        self._producer = producer

    def send(self, topic, key, value, partition):
        if b"/b/" in key:
            return _Done()
        return self._producer.send(topic, key=key, value=value, partition=partition)

    def flush(self, timeout=None):
        self._producer.flush(timeout)


class _Done:
    def get(self, timeout=None):
        return None


# -- the daemon: a replica with no state of its own takes over from the topic ----------------

@pytest.mark.parametrize("standby", [False, True])
def test_a_replica_with_an_empty_state_dir_resumes_from_the_state_topic(kafka_bootstrap, unique_name, tmp_path,
                                                                         monkeypatch, standby):
    from .daemon_harness import calibrated, daemon_config, produce, running_daemon, status, wait_until
    from .test_daemon_process import expected, sim_records

    monkeypatch.setenv("DRIFTD_STATE_KEY", "one key for every replica")
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "first")
    first, second = sim_records(config, 1500), sim_records(config, 400, id_prefix="q-", seed=4)
    want_first, want_second = expected(config, first), expected(config, second)

    def counts(daemon) -> dict:
        model = status(daemon).get("models", {}).get("fraud")
        return {} if model is None else {**model["processed"], **model["join"]}

    def settled(daemon, want) -> bool:
        c = counts(daemon)
        return all(c.get(k) == v for k, v in want.items())

    with running_daemon(config) as daemon:
        produce(kafka_bootstrap, first)
        wait_until(lambda: settled(daemon, want_first) and calibrated(daemon), timeout=60, what="the first stream")
        before = status(daemon)["models"]["fraud"]

    # Another replica (a new pod: an empty state.dir) of the same group.
    config["state"] = {**config["state"], "dir": str(tmp_path / "second"), "standby": standby}
    with running_daemon(config) as daemon:
        wait_until(lambda: daemon.health()[1], timeout=30, what="state restored")
        after = status(daemon)["models"]["fraud"]
        assert {k: after[k] for k in ("processed", "join", "detectors")} == \
               {k: before[k] for k in ("processed", "join", "detectors")}
        produce(kafka_bootstrap, second)
        total = {k: want_first[k] + want_second[k] for k in want_first}
        wait_until(lambda: settled(daemon, total), timeout=60, what="the second stream, counted once")


def test_the_join_buffer_is_written_as_a_changelog_not_whole_every_checkpoint(state_topic):
    from daemon.config import from_dict
    from daemon.kafka.statetopic import Changelog, decode_partition
    from daemon.stream.partition import PartitionState

    bootstrap, topic, producer = state_topic
    config = from_dict({"models": {"fraud": {}}})
    state = PartitionState(0, config)
    for i in range(50_000):  # predictions waiting for their labels
        state.join.add_prediction("fraud", f"id-{i}", 1_000.0 + i, (1, 0.9, None, 1_000.0 + i, None))
    writer, changelog = _writer(producer, topic, piece_bytes=64 * 1024), Changelog("join", encode)
    writer.own(0, Epoch(1, 1), 0, [])

    def checkpoint():
        before = writer.bytes_written
        writer.save(0, state.sections(changelog.sections), {"pred": 1}, {}, wait=5)
        return writer.bytes_written - before

    whole = checkpoint()
    for i in range(10):  # a few labels and predictions later
        state.join.add_label("fraud", f"id-{i}", 60_000.0, 0)
        state.join.add_prediction("fraud", f"new-{i}", 60_000.0, (1, 0.9, None, 60_000.0, None))
    increment = checkpoint()
    assert whole > 100_000 and increment < whole / 20, (whole, increment)

    restored = _reader(bootstrap, topic).restore([0], timeout=10)[0]
    back = decode_partition(restored.sections, config)
    assert back.join.pending == state.join.pending == 50_000
    assert back.join.counts == state.join.counts
    assert back.join.add_label("fraud", "id-0", 60_001.0, 0) is None and back.join.counts[("fraud", "duplicate_label")] == 1
    assert back.join.add_label("fraud", "new-3", 60_001.0, 1)[0] == "fraud"  # still waiting: joins


def _lag(metrics_text: bytes) -> float:
    """driftd_consumer_lag_records summed over its series (None: no series)."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [s.value for f in text_string_to_metric_families(metrics_text.decode())
             if f.name == "driftd_consumer_lag_records" for s in f.samples]
    return sum(found) if found else None


def test_a_replica_with_another_key_waits_instead_of_starting_afresh(kafka_bootstrap, unique_name, tmp_path,
                                                                      monkeypatch):
    """A replica started without the group's DRIFTD_STATE_KEY cannot read the partition's
    checkpoints: it must not count the stream again from scratch and write checkpoints the
    others cannot read; it stays unready and says why."""
    from .daemon_harness import daemon_config, get, produce, running_daemon, status, wait_until
    from .test_daemon_process import expected, sim_records

    monkeypatch.setenv("DRIFTD_STATE_KEY", "the group's key")
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "first")
    records = sim_records(config, 600)
    want = expected(config, records)
    with running_daemon(config) as daemon:
        produce(kafka_bootstrap, records)
        wait_until(lambda: status(daemon).get("models", {}).get("fraud", {}).get("processed", {}).get("label")
                   == want["label"], timeout=60, what="the stream")

    monkeypatch.setenv("DRIFTD_STATE_KEY", "another key")
    config["state"] = {**config["state"], "dir": str(tmp_path / "second")}
    with running_daemon(config) as daemon:
        reason = wait_until(lambda: (r := get(daemon, "/readyz")) and b"sealed with another key" in r[1] and r,
                            timeout=30, what="not ready, saying why")
        assert reason[0] == 503
        assert status(daemon)["models"]["fraud"]["processed"] == {"prediction": 0, "label": 0}
        assert 'driftd_kafka_errors_total{operation="state_refused"}' in get(daemon, "/metrics")[1].decode()
        # What arrives meanwhile waits, and the lag says so (a trial's finding: a held
        # partition had no lag series, so no lag rule could see that nobody processed it):
        # counted from the group's committed offset, where the state stopped.
        produce(kafka_bootstrap, records)
        wait_until(lambda: _lag(get(daemon, "/metrics")[1]) == len(records), timeout=60,
                   what=f"the lag of the held partition at {len(records)} records")

    monkeypatch.setenv("DRIFTD_STATE_KEY", "the group's key")  # the key fixed: the state is there
    with running_daemon(config) as daemon:
        wait_until(lambda: daemon.health()[1], timeout=30, what="ready")
        wait_until(lambda: status(daemon)["models"]["fraud"]["processed"]["label"] == 2 * want["label"], timeout=60,
                   what="the records that waited, processed from where the state stopped")
