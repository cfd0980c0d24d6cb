"""Records that used to stop the daemon, on the real broker with a real ``driftd run``
process, and a batch that does not finish never reaching a checkpoint.

- An oversize record (2,000,000 bytes), a label with 1,000 nested arrays, the regression
  overflow pair (prediction -1e308, label 1e308) and a label stamped in milliseconds among
  labels in seconds: each used to crash the loop (and every restart, on the same offset)
  or to move the clock for everyone. Now each is a dead letter with its reason, the daemon
  keeps running, and the events around them are all processed and joined.
- A batch failing after it changed the state (labels a0, a, a2): no checkpoint holds it,
  on any path (the rebalance listener on close, the final one, the periodic one), and a
  restart processes those labels exactly once.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time

from kafka import KafkaProducer

from daemon.kafka.checkpoint import Checkpoints
from daemon.config import from_dict
from daemon.stream.partition import PartitionState
from daemon.runtime.service import Daemon
from daemon.runtime import wiring

from .daemon_harness import daemon_config, processed, produce as produce_records, read_topic, running_daemon, wait_until
from .test_daemon_process import MODEL, committed, daemons, expected, sim_records, wait_counts, write_config  # noqa: F401 - fixture

OVERSIZE = b"x" * 2_000_000




def test_records_that_crashed_the_loop_are_dead_letters_and_the_daemon_runs_on(kafka_bootstrap, unique_name, tmp_path, daemons):
    path, config = write_config(tmp_path, kafka_bootstrap, unique_name, models={
        MODEL: {}, "reg": {"task": "regression", "decay_metrics": ["mae"], "reference_size": 50}})
    kafka = config["kafka"]
    predictions, labels, dead = kafka["predictions_topic"], kafka["labels_topic"], kafka["dead_letter_topic"]
    records = sim_records(config, 3000)
    want = expected(config, records)
    first_ts = json.loads(next(v for t, _, v in records if t == labels))["ts"]
    reg_ts = first_ts + 100
    bad = [
        (predictions, b"fraud", OVERSIZE, "oversize"),
        (labels, b"fraud", json.dumps({"model": MODEL, "id": "p-5", "ts": first_ts, "label": 1}).encode()[:-1]
         + b', "extra": ' + b"[" * 1000 + b"]" * 1000 + b"}", "too_deep"),
        (predictions, b"reg", json.dumps({"model": "reg", "id": "r-huge", "ts": reg_ts, "features": {"x": 1.0},
                                          "prediction": -1e308}).encode(), "non_finite"),
        (labels, b"reg", json.dumps({"model": "reg", "id": "r-huge", "ts": reg_ts + 1, "label": 1e308}).encode(), "non_finite"),
        # The clock case: one label in milliseconds among labels in seconds.
        (labels, b"fraud", json.dumps({"model": MODEL, "id": "p-1500", "ts": first_ts * 1000, "label": 1}).encode(), "bad_timestamp"),
        # A prediction three days ahead of when it was produced, and a label from 1970.
        (predictions, b"fraud", json.dumps({"model": MODEL, "id": "future", "ts": time.time() + 3 * 86400,
                                            "features": {"amount": 1.0}, "prediction": 1}).encode(), "bad_timestamp"),
        (labels, b"fraud", json.dumps({"model": MODEL, "id": "p-7", "ts": 0, "label": 1}).encode(), "bad_timestamp"),
    ]
    # Good regression events around the bad pair: the model carries on.
    reg = [(predictions, b"reg", json.dumps({"model": "reg", "id": f"r-{i}", "ts": reg_ts + i, "features": {"x": float(i % 9)},
                                             "prediction": float(i % 5)}).encode()) for i in range(200)]
    reg += [(labels, b"reg", json.dumps({"model": "reg", "id": f"r-{i}", "ts": reg_ts + i + 2, "label": float(i % 3)}).encode())
            for i in range(200)]

    daemon = daemons(path).start()
    half = len(records) // 2
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5, max_request_size=3_000_000,
                             enable_idempotence=False)
    try:
        for topic, key, value in records[:half] + [(t, k, v) for t, k, v, _ in bad] + reg + records[half:]:
            producer.send(topic, key=key, value=value)
        producer.flush(30)
    finally:
        producer.close(5)

    wait_counts(daemon, {**want, "dead": len(bad)}, timeout=60)
    assert daemon.alive(), daemon.log()
    m = daemon.metrics()
    reg_counts = {kind: m.get(("driftd_events_processed_total", frozenset({"model": "reg", "kind": kind}.items())))
                  for kind in ("prediction", "label")}
    assert reg_counts == {"prediction": 200, "label": 200}
    for _, _, _, reason in bad:  # whichever model the dead letter was of
        assert sum(v for (name, labels), v in m.items()
                   if name == "driftd_dead_letter_total" and dict(labels)["reason"] == reason) >= 1, reason

    got = read_topic(kafka_bootstrap, dead, len(bad))
    by_reason = {}
    for message in got:
        headers = dict(message.headers)
        by_reason.setdefault(headers["driftd-reason"].decode(), []).append((message, headers))
    assert sorted((r, len(v)) for r, v in by_reason.items()) == [("bad_timestamp", 3), ("non_finite", 2), ("oversize", 1), ("too_deep", 1)]
    (oversize, headers), = by_reason["oversize"]
    assert headers["driftd-original-size"] == str(len(OVERSIZE)).encode()
    assert headers["driftd-original-sha256"] == hashlib.sha256(OVERSIZE).hexdigest().encode()
    assert 0 < len(oversize.value) <= 524_288 and OVERSIZE.startswith(oversize.value)
    (deep, _), = by_reason["too_deep"]
    assert deep.value == bad[1][2]  # small enough: byte for byte
    details = sorted(headers["driftd-detail"].decode() for _, headers in by_reason["bad_timestamp"])
    assert sum("milliseconds" in d for d in details) == 1 and sum("earliest_event_time" in d for d in details) == 1, details
    assert sum("a producer clock ahead?" in d for d in details) == 1, details  # three days ahead: not milliseconds

    # It still runs, commits past them, and stops cleanly: a restart does not meet them again.
    time.sleep(1.0)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(15) == 0, daemon.log()
    assert "Traceback" not in daemon.log()


def test_a_batch_that_did_not_finish_is_in_no_checkpoint_and_a_restart_counts_it_once(kafka_bootstrap, unique_name, tmp_path, monkeypatch):
    """The issue's scenario: labels a0, a, a2 in a failing batch. The close's rebalance
    listener checkpointed the half-done batch: 3 labels processed and joined while ADWIN
    saw 1 and decay 0; after a restart they counted as duplicates and never reached the
    detectors."""
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path, state={"checkpoint_interval_seconds": 0.2})
    kafka = config["kafka"]
    ts = 1_763_900_000.0
    ids = ("a0", "a", "a2")
    predictions = [(kafka["predictions_topic"], b"fraud", json.dumps({
        "model": "fraud", "id": id_, "ts": ts + i, "features": {"amount": 1.0 + i}, "prediction": 1}).encode())
        for i, id_ in enumerate(ids)]
    labels = [(kafka["labels_topic"], b"fraud", json.dumps({"model": "fraud", "id": id_, "ts": ts + 10, "label": 0}).encode())
              for id_ in ids]
    scope = wiring.checkpoint_scope(from_dict(config).kafka)

    def saved() -> PartitionState | None:
        return Checkpoints(config["state"]["dir"], scope).load(0)

    with running_daemon(config) as daemon:
        produce_records(kafka_bootstrap, predictions)
        wait_until(lambda: processed(daemon) == (3, 0), what="predictions processed")
        wait_until(lambda: (s := saved()) is not None and s.offsets.get(kafka["predictions_topic"]) == 3, what="checkpointed")

    # The labels' batch fails after the labels changed the state (a failure around the
    # records, which are contained one by one).
    finish = PartitionState.finish_batch

    def failing_finish(self):
        if self.processed[("fraud", "label")]:
            raise RuntimeError("injected failure after the labels were handled")
        return finish(self)

    monkeypatch.setattr(PartitionState, "finish_batch", failing_finish)
    daemon = Daemon(from_dict(config))
    died = []
    thread = threading.Thread(target=lambda: _run(daemon, died), daemon=True)
    thread.start()
    assert daemon.wait_started(30)
    wait_until(lambda: daemon.states, what="partition assigned")
    time.sleep(0.5)  # several periodic checkpoints of the restored state
    produce_records(kafka_bootstrap, labels)  # one flush: one batch
    thread.join(30)
    assert not thread.is_alive() and died and "injected" in str(died[0])
    state = saved()
    assert state.offsets.get(kafka["labels_topic"], 0) == 0
    assert committed(kafka_bootstrap, kafka["group_id"], [kafka["labels_topic"]])[kafka["labels_topic"]] in (None, 0)
    assert state.processed[("fraud", "label")] == 0 and state.join.counts[("fraud", "joined")] == 0
    monkeypatch.setattr(PartitionState, "finish_batch", finish)

    with running_daemon(config) as daemon:
        wait_until(lambda: processed(daemon) == (3, 3), what="labels processed after the restart")
        time.sleep(0.5)
        state = daemon.states[0]
        assert processed(daemon) == (3, 3)
        assert state.join.counts[("fraud", "joined")] == 3
        assert state.join.counts[("fraud", "duplicate_label")] == 0
        (error_detector,) = [d for _, feature, d in state.models["fraud"].detectors() if feature == "<error>"]
        assert error_detector.n_seen == 3


def _run(daemon: Daemon, died: list) -> None:
    try:
        daemon.run()
    except BaseException as e:  # noqa: BLE001 - what the test expects
        died.append(e)


def test_status_while_the_loop_holds_the_lock_is_the_last_answer_or_every_model_waiting(monkeypatch):
    """The first /status of a busy daemon was {"stale": true} alone: no models, where the
    README says every configured model is there from the start."""
    import daemon.runtime.service as service

    monkeypatch.setattr(service, "LOCK_WAIT_SECONDS", 0.01)
    daemon = Daemon(from_dict({"models": {"fraud": {}, "churn": {}}}))
    with daemon.lock:  # the loop's
        status = daemon.status()
    assert status["stale"] is True and list(status["models"]) == ["fraud", "churn"]
    assert status["models"]["fraud"]["state"] == "waiting for events" and status["ready"] is False
    fresh = daemon.status()
    assert "stale" not in fresh and list(fresh["models"]) == ["fraud", "churn"]


def test_a_stale_status_is_the_last_answer_whole_with_its_time(monkeypatch):
    """A tester's finding: a stale /status showed the partitions' offsets of now beside
    model counts minutes old (the answer kept the live offset dicts), and nothing said how
    old it was."""
    import daemon.runtime.service as service
    from daemon.stream.partition import PartitionState

    monkeypatch.setattr(service, "LOCK_WAIT_SECONDS", 0.01)
    config = from_dict({"models": {"fraud": {}}})
    daemon = Daemon(config)
    state = daemon.states[0] = PartitionState(0, config)
    state.offsets["predictions"] = 400
    before = time.time()
    answer = daemon.status()
    assert answer["partitions"] == {0: {"predictions": 400}} and before <= answer["as_of"] <= time.time()
    state.offsets["predictions"] = 82_400  # the loop goes on, holding the lock
    with daemon.lock:
        stale = daemon.status()
    assert stale["stale"] is True and stale["partitions"] == {0: {"predictions": 400}}
    assert stale["as_of"] == answer["as_of"]


def test_input_topics_of_different_partition_counts_keep_the_daemon_unready_with_the_reason(kafka_bootstrap, unique_name,
                                                                                           tmp_path):
    """A new user's finding: predictions of 2 partitions and labels of 3 (topics created
    beforehand) started silently and /readyz said ok, while the labels of 2 of 3 models
    never joined (4,000 pending each). The README says the counts must match: /readyz
    says which differ, the log once; the data side still runs."""
    from daemon.kafka.embedded_broker import create_topics

    from .daemon_harness import get

    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "state")
    config["kafka"]["create_topics"] = 0
    create_topics(kafka_bootstrap, {config["kafka"]["predictions_topic"]: 2, config["kafka"]["labels_topic"]: 3,
                                    config["kafka"]["dead_letter_topic"]: 1})
    with running_daemon(config) as daemon:
        status, body = wait_until(lambda: (lambda r: r if b"kafka.labels_topic" in r[1] else None)(get(daemon, "/readyz")),
                                  timeout=60, what="/readyz naming the partition counts")
        assert status == 503
        assert b"has 2 partitions and kafka.labels_topic" in body and b"3:" in body, body


def test_a_healthy_start_never_reads_as_a_broker_outage(kafka_bootstrap, unique_name, tmp_path):
    """A new user's finding: /readyz said "broker not answering" for the first seconds of
    every healthy start, the reason the README gives for Kafka unreachable since the pod
    started. Until the group first answers, it says it is joining."""
    from .daemon_harness import get

    reasons = []
    with running_daemon(daemon_config(kafka_bootstrap, unique_name, tmp_path / "state")) as daemon:
        def ready():
            status, body = get(daemon, "/readyz")
            reasons.append(body.decode().strip())
            return status == 200
        wait_until(ready, timeout=60, what="/readyz 200", interval=0.01)
    assert "broker not answering" not in reasons, reasons
    assert reasons[-1] == "ok"
