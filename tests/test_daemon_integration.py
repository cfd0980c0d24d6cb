"""The daemon end to end on the real broker: drift, alerts, stationary streams, bad input."""

from __future__ import annotations

from kafka import KafkaConsumer
from standardwebhooks import Webhook

from daemon.demo.simulate import Simulation

from .daemon_harness import calibrated, daemon_config, get, processed, produce, running_daemon, wait_until

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItZHJpZnRkLXRlc3Rz"


def _sim(config, **kw) -> Simulation:
    return Simulation(predictions_topic=config["kafka"]["predictions_topic"],
                      labels_topic=config["kafka"]["labels_topic"], **kw)


def test_drift_gives_metrics_and_one_signed_alert_per_episode(kafka_bootstrap, unique_name, tmp_path, webhook, monkeypatch):
    url, requests = webhook
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", SECRET)
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path, alerts={
        "cooldown_seconds": 100_000, "retry_initial_seconds": 0.1,
        "sinks": [{"type": "webhook", "url": url, "secret": {"env": "TEST_WEBHOOK_SECRET"}}]})
    sim = _sim(config, n_events=8000, data_drift_at=4000, concept_drift_at=6000, label_delay=50)
    with running_daemon(config) as daemon:
        counts = produce(kafka_bootstrap, sim.records())
        wait_until(lambda: processed(daemon) == (counts[sim.predictions_topic], counts[sim.labels_topic]), what="all events processed")
        wait_until(lambda: calibrated(daemon), what="thresholds computed")
        metrics = get(daemon, "/metrics")[1].decode()
        wait_until(lambda: len(requests) >= 5, timeout=20, what="alerts at the webhook")
    verifier = Webhook(SECRET)
    received = [verifier.verify(body, headers) for body, headers in requests]  # raises if a signature is bad

    assert 'driftd_drift_active{detector="ks",feature="age",model="fraud"} 1.0' in metrics
    # metrics.per_feature: alerting (the default): amount, which did not drift, has no series of
    # its own; the per-model summary counts the features each test finds in drift.
    assert 'feature="amount"' not in metrics
    assert 'driftd_features_in_drift{detector="ks",model="fraud"} 1.0' in metrics
    assert f'driftd_events_processed_total{{kind="prediction",model="fraud"}} {float(counts[sim.predictions_topic])}' in metrics
    firing = [body["data"] for body in received if body["data"]["status"] == "firing"]
    keys = [(a["detector"], a["feature"]) for a in firing]
    assert len(keys) == len(set(keys)), f"repeated alerts: {keys}"  # one per episode
    assert {("ks", "age"), ("psi", "age"), ("chisquare", "country"), ("decay", "accuracy")} <= set(keys)
    for alert in firing:  # data drift is seen after the change, concept drift after its change
        change = 6000 if alert["detector"] in ("adwin", "decay") else 4000
        assert change <= sim.event_index(alert["event_time"]) < change + 1500, alert
    assert ("ks", "amount") not in keys  # amount did not drift


def test_a_stationary_stream_raises_no_alarm(kafka_bootstrap, unique_name, tmp_path):
    # Every feature's series, so that the detectors below can be seen not to fire.
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path, metrics={"per_feature": "all"})
    sim = _sim(config, n_events=8000, data_drift_at=None, concept_drift_at=None, label_delay=50)
    with running_daemon(config) as daemon:
        counts = produce(kafka_bootstrap, sim.records())
        wait_until(lambda: processed(daemon) == (counts[sim.predictions_topic], counts[sim.labels_topic]), what="all events processed")
        wait_until(lambda: calibrated(daemon), what="thresholds computed")
        metrics = get(daemon, "/metrics")[1].decode()
    detections = [line for line in metrics.splitlines() if line.startswith("driftd_drift_detections_total{")]
    assert len(detections) >= 8  # the detectors exist and were exported ...
    assert all(line.endswith(" 0.0") for line in detections), detections  # ... and none fired
    # 7000 values after the 1000-value reference: a test at 500, then every 100.
    assert 'driftd_drift_tests_total{detector="ks",feature="amount",model="fraud"} 66.0' in metrics


BAD = [
    (b"not json at all", "not_json"),
    (b"", "not_json"),
    (b"\xff\xfe\x00", "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (b'{"model": "fraud", "ts": 1.0, "features": {}, "prediction": 1}', "missing_field"),
    (b'{"model": "fraud", "id": "x", "ts": 1.0, "features": [1], "prediction": 1}', "wrong_type"),
    (b'{"model": "fraud", "id": "x", "ts": 1.0, "features": {"a": NaN}, "prediction": 1}', "non_finite"),
    (b'{"model": "fraud", "id": "x", "ts": 1.0, "features": {"a": 1e999}, "prediction": 1}', "non_finite"),
    (b'{"model": "fraud", "id": "x", "ts": "yesterday", "features": {}, "prediction": 1}', "bad_timestamp"),
    (b'{"model": "nobody", "id": "x", "ts": 1763891000.0, "features": {}, "prediction": 1}', "unknown_model"),
    (b'{"model": "fraud", "id": "x", "ts": 1.0, "features": {"pad": "' + b"x" * 5000 + b'"}, "prediction": 1}', "oversize"),
]


def test_bad_events_go_to_the_dead_letter_topic_and_good_ones_flow(kafka_bootstrap, unique_name, tmp_path):
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path, kafka={"max_event_bytes": 4096})
    topic = config["kafka"]["predictions_topic"]
    sim = _sim(config, n_events=600, data_drift_at=None, concept_drift_at=None, label_delay=10)
    good = list(sim.records())
    records = []
    for i, record in enumerate(good):
        records.append(record)
        if i % 50 == 0 and i // 50 < len(BAD):
            records.append((topic, b"fraud", BAD[i // 50][0]))
    records.append((config["kafka"]["labels_topic"], b"fraud", b'{"model": "fraud", "id": "p-1", "ts": 1.0}'))
    with running_daemon(config) as daemon:
        counts = produce(kafka_bootstrap, good)
        produce(kafka_bootstrap, [r for r in records if r not in good])
        wait_until(lambda: processed(daemon) == (counts[sim.predictions_topic], counts[sim.labels_topic]), what="good events processed")
        metrics = wait_until(lambda: (m := get(daemon, "/metrics")[1].decode()) and 'driftd_dead_letter_total{model="",reason="oversize"} 1.0' in m and m, what="dead-letter counts")

    consumer = KafkaConsumer(config["kafka"]["dead_letter_topic"], bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    dead = list(consumer)
    consumer.close()
    assert len(dead) == len(BAD) + 1
    reasons = {}
    for record in dead:
        headers = dict(record.headers)
        reasons[record.value] = headers["driftd-reason"].decode()
        assert headers["driftd-source-topic"].decode() in (topic, config["kafka"]["labels_topic"])
        assert int(headers["driftd-source-offset"]) >= 0 and record.key == b"fraud"
    for raw, reason in BAD:
        assert reasons[raw] == reason, (raw[:60], reasons.get(raw))
    assert reasons[b'{"model": "fraud", "id": "p-1", "ts": 1.0}'] == "missing_field"
    # The events the decoder refused that name the watched model count under it; those
    # with no model to read (not JSON, not an object) or too large to read under none.
    assert 'driftd_dead_letter_total{model="fraud",reason="missing_field"} 2.0' in metrics
    assert 'driftd_dead_letter_total{model="fraud",reason="non_finite"} 2.0' in metrics
    assert 'driftd_dead_letter_total{model="",reason="missing_field"} 0.0' in metrics
    assert 'driftd_dead_letter_total{model="",reason="not_json"} 3.0' in metrics
