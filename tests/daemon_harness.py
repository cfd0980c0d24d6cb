"""Running a real driftd daemon in a test: in a thread, on the test broker.

``daemon_config`` builds a configuration with the test's own topics, group and state
directory; ``running_daemon`` starts it and stops it afterwards; ``produce`` writes
records; ``wait_until`` polls a condition with a deadline and says what it last saw.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request

from kafka import KafkaConsumer, KafkaProducer

from daemon.config import from_dict
from daemon.runtime.service import Daemon


def daemon_config(bootstrap: str, unique_name, state_dir, models=None, **sections) -> dict:
    names = {t: unique_name(t) for t in ("predictions", "labels", "dead")}
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": unique_name("group"), "create_topics": 1,
                  "predictions_topic": names["predictions"], "labels_topic": names["labels"],
                  "dead_letter_topic": names["dead"], "poll_timeout_ms": 50, "session_timeout_ms": 2000},
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(state_dir), "checkpoint_interval_seconds": 0.5, "topic": unique_name("state")},
        "model_defaults": {"reference_size": 1000, "window": 500, "stride": 100, "ert": 1_000_000,
                           "decay_reference_size": 500, "decay_window": 400},
        "models": models if models is not None else {"fraud": {}},
        "log_level": "WARNING",
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    return config


@contextlib.contextmanager
def running_daemon(config: dict, prepare=None):
    """A daemon running in a thread; ``prepare(daemon)`` runs before it starts (test hooks)."""
    daemon = Daemon(from_dict(config))
    if prepare is not None:
        prepare(daemon)
    errors = []

    def run():
        try:
            daemon.run()
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert daemon.wait_started(30), f"daemon did not start: {errors}"
    try:
        yield daemon
    finally:
        daemon.stop()
        thread.join(30)
        assert not thread.is_alive(), "daemon did not stop"
        assert not errors, f"daemon loop died: {errors!r}"


def produce(bootstrap: str, records) -> dict:
    """Write (topic, key, value) records; returns how many went to each topic."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, batch_size=256 * 1024)
    counts: dict = {}
    for topic, key, value in records:
        producer.send(topic, key=key, value=value)
        counts[topic] = counts.get(topic, 0) + 1
    producer.flush()
    producer.close()
    return counts



def read_topic(bootstrap: str, topic: str, expect: int, timeout_ms: int = 5000) -> list:
    """Up to ``expect`` records of ``topic`` from its beginning (fewer if none come for
    ``timeout_ms``); fetch limits large enough for 2 MB records."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms, fetch_max_bytes=16 * 1024 * 1024,
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    got = []
    try:
        for message in consumer:
            got.append(message)
            if len(got) >= expect:
                break
    finally:
        consumer.close()
    return got


def get(daemon: Daemon, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.http_port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def status(daemon: Daemon) -> dict:
    return json.loads(get(daemon, "/status")[1])


def processed(daemon: Daemon, model: str = "fraud") -> tuple[int, int]:
    m = status(daemon).get("models", {}).get(model)  # a stale status (loop busy) may have none yet
    return (m["processed"]["prediction"], m["processed"]["label"]) if m else (0, 0)


def calibrated(daemon: Daemon, model: str = "fraud") -> bool:
    """Every test of ``model`` has its thresholds (computed in the background: until then
    its decisions are held), and the decisions they released have been seen."""
    s = status(daemon)
    m = s.get("models", {}).get(model)
    return bool(m and m["reference_complete"] and m["uncalibrated_tests"] == 0 and s.get("calibrations_pending") == 0)


def wait_until(condition, timeout: float = 60, what: str = "condition", interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last saw {last!r}")
