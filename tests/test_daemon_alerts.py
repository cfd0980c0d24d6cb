"""Alerts are a function of the input stream alone, on the real broker.

One stream with drift episodes that start and end (data drift, then an accuracy drop) is
consumed by several daemons, each with its own consumer group, state and alert topic:
while it is produced (live, paced) and afterwards (catch-up) with ``poll_max_records`` 1,
100 and 5,000, with calibration slowed down on purpose, and as a ``driftd run`` process
killed with SIGKILL at random points. Every one of them must send the same alerts (ids,
statuses, event times, details) once a receiver de-duplicates them by id, as the README
advises.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
import uuid

import pytest
import yaml
from kafka import KafkaConsumer

from daemon.kafka.embedded_broker import create_topics

from . import streams
from .daemon_harness import daemon_config, running_daemon, status, wait_until
from .test_daemon_process import DaemonProcess
from .test_daemon_process import produce as produce_paced

N_EVENTS = 4500
MODEL_SETTINGS = {"reference_size": 1000, "window": 300, "stride": 50, "ert": 20_000, "label_ert": 20_000,
                  "decay_reference_size": 500, "decay_window": 300}


def _name(prefix: str) -> str:
    return f"{prefix}-alerts-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topics(kafka_bootstrap):
    """The test's own prediction and label topics (every daemon of the test reads them)."""
    names = {"predictions": _name("predictions"), "labels": _name("labels")}
    create_topics(kafka_bootstrap, {names["predictions"]: 1, names["labels"]: 1})
    return names


def config_for(bootstrap: str, topics: dict, state_dir, poll_max_records: int) -> dict:
    alert_topic = _name("alert-out")
    config = daemon_config(bootstrap, _name, state_dir, models={"m": {}}, alerts={
        "clear_after": 3, "cooldown_seconds": 0, "retry_initial_seconds": 0.1,
        "sinks": [{"type": "kafka", "topic": alert_topic}]})
    config["kafka"].update({"predictions_topic": topics["predictions"], "labels_topic": topics["labels"],
                            "poll_max_records": poll_max_records})
    config["model_defaults"] = MODEL_SETTINGS
    return config


def sent_alerts(bootstrap: str, config: dict) -> list[dict]:
    """What the daemon's Kafka sink delivered, de-duplicated by id, in event-time order."""
    topic = config["alerts"]["sinks"][0]["topic"]
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000)
    try:
        unique = {}
        for record in consumer:
            alert = json.loads(record.value)["data"]
            unique.setdefault(alert["id"], alert)
    finally:
        consumer.close()
    return sorted(unique.values(), key=lambda a: (a["event_time"], a["id"]))


def settled(daemon, n_predictions: int) -> bool:
    """Every prediction and its label processed (the streams label each one: a daemon
    reading one record a poll may still be reading labels when its predictions are all
    in), every threshold in place, every alert delivered."""
    return _settled(status(daemon), n_predictions)


def _settled(s: dict, n_predictions: int) -> bool:
    model = s.get("models", {}).get("m")
    return bool(model and model["processed"]["prediction"] == n_predictions and model["processed"]["label"] == n_predictions
                and model["uncalibrated_tests"] == 0 and s["calibrations_pending"] == 0 and s["pending_alerts"] == 0)


def test_the_same_alerts_for_any_batching_live_or_catch_up_and_any_calibration_speed(kafka_bootstrap, topics, tmp_path):
    records = streams.records(N_EVENTS, topics["predictions"], topics["labels"])
    runs = {  # name -> (poll_max_records, calibration delay in seconds)
        "live, 5000": (5000, 0.0), "catch-up, 1": (1, 0.0), "catch-up, 100, slow calibration": (100, 3.0),
        "catch-up, 5000": (5000, 0.0)}
    configs = {name: config_for(kafka_bootstrap, topics, tmp_path / f"state-{i}", poll)
               for i, (name, (poll, _)) in enumerate(runs.items())}
    for config in configs.values():
        create_topics(kafka_bootstrap, {config["alerts"]["sinks"][0]["topic"]: 1})

    def slow(seconds):
        return lambda daemon: setattr(daemon.calibrator, "delay_seconds", seconds)

    with contextlib.ExitStack() as stack:
        live = stack.enter_context(running_daemon(configs["live, 5000"], prepare=slow(runs["live, 5000"][1])))
        wait_until(lambda: status(live)["ready"], timeout=30, what="the live daemon ready")
        produce_paced(kafka_bootstrap, records, chunk=400, pause=0.1)  # about 4,000 records a second
        daemons = {"live, 5000": live}
        for name in list(runs)[1:]:
            daemons[name] = stack.enter_context(running_daemon(configs[name], prepare=slow(runs[name][1])))
        for name, daemon in daemons.items():
            wait_until(lambda d=daemon: settled(d, N_EVENTS), timeout=120, interval=0.5, what=f"{name} settled")
        time.sleep(1.0)  # anything sent late would show now
        got = {name: sent_alerts(kafka_bootstrap, configs[name]) for name in runs}

    expected = got["live, 5000"]
    firing = [(a["detector"], a["feature"], streams.index(a["event_time"])) for a in expected if a["status"] == "firing"]
    resolved = [(a["detector"], a["feature"]) for a in expected if a["status"] == "resolved"]
    assert ("ks", "x") in resolved and ("decay", "accuracy") in {(d, f) for d, f, _ in firing}
    assert all(2000 <= i < 4500 for _, _, i in firing), firing  # nothing before the first change
    for name, alerts in got.items():
        assert alerts == expected, name


def test_the_same_alerts_through_sigkills_at_random_points(kafka_bootstrap, topics, tmp_path):
    """A ``driftd run`` process killed (SIGKILL) at random points while the stream comes
    sends, de-duplicated by id, the alerts of an uninterrupted catch-up run."""
    records = streams.records(N_EVENTS, topics["predictions"], topics["labels"])
    killed = config_for(kafka_bootstrap, topics, tmp_path / "killed", 500)
    killed["state"]["checkpoint_interval_seconds"] = 0.3
    killed["log_level"] = "INFO"
    create_topics(kafka_bootstrap, {killed["alerts"]["sinks"][0]["topic"]: 1})
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(killed))
    process = DaemonProcess(path, tmp_path)
    rng = random.Random(20251123)
    progress = []  # predictions processed shortly before each kill
    producer = threading.Thread(target=produce_paced, args=(kafka_bootstrap, records), kwargs={"chunk": 300, "pause": 0.25})
    try:
        process.start()
        producer.start()  # about 1,200 records a second: some 8 s of stream
        # Kill points by the stream's progress, not by the clock (a slow start must not put
        # every kill before or after the stream): somewhere in it, a calibration, the alerts.
        for target in sorted(rng.sample(range(200, N_EVENTS - 300), 3)):
            wait_until(lambda t=target: _processed(process) >= t, timeout=120, interval=0.05,
                       what=f"{target} predictions processed")
            progress.append(_processed(process))
            process.signal(signal.SIGKILL)
            assert process.wait(10) == -signal.SIGKILL
            process.start()
        producer.join(60)
        wait_until(lambda: process.alive() and _settled_process(process, N_EVENTS), timeout=120, interval=0.5,
                   what="the restarted process settled")
        time.sleep(1.0)
    finally:
        process.kill()
        producer.join(60)
    print(f"killed after {progress} of {N_EVENTS} predictions")
    assert any(0 < p < N_EVENTS for p in progress), progress  # mid-stream, not before or after it

    reference = config_for(kafka_bootstrap, topics, tmp_path / "reference", 500)
    create_topics(kafka_bootstrap, {reference["alerts"]["sinks"][0]["topic"]: 1})
    with running_daemon(reference) as daemon:
        wait_until(lambda: settled(daemon, N_EVENTS), timeout=120, interval=0.5, what="the reference run settled")
        time.sleep(0.5)
    expected = sent_alerts(kafka_bootstrap, reference)
    assert len(expected) >= 10
    assert sent_alerts(kafka_bootstrap, killed) == expected


def _processed(process: DaemonProcess) -> int:
    try:
        return process.status().get("models", {}).get("m", {}).get("processed", {}).get("prediction", 0)
    except (OSError, ValueError):
        return 0


def _settled_process(process: DaemonProcess, n_predictions: int) -> bool:
    try:
        return _settled(process.status(), n_predictions)
    except OSError:
        return False
