"""Alert delivery in a real daemon, on the real broker with real HTTP receivers.

A restarted daemon sends a pending alert again only to the sinks that had not
acknowledged it, whether it finds the alert in its local file of pending alerts or, on
another replica (another state directory), in the state topic with the partition; /metrics
shows each sink's backlog and the age of its oldest pending alert, across a restart.
"""

from __future__ import annotations

import json
import time

from daemon.alerting.episodes import Episodes

from prometheus_client.parser import text_string_to_metric_families

from .daemon_harness import daemon_config, get, running_daemon, status, wait_until
from .test_alerts import Receiver

DETAIL = {"statistic": 0.21, "threshold": 0.07, "p_value": 0.001}


def alert_of_partition_0(model: str):
    """An alert as the daemon's episodes make it, opened by an event of partition 0."""
    key = (model, "ks", "amount")
    return Episodes().observe(key, True, time.time(), DETAIL, origin=("predictions", 0, 41))


def ids(receiver: Receiver) -> list[str]:
    return [json.loads(r["body"])["data"]["id"] for r in receiver.requests if r["status"] == 200]


def test_a_restart_resends_a_pending_alert_only_to_the_sinks_that_had_not_acknowledged_it(
        kafka_bootstrap, unique_name, tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTD_STATE_KEY", "alert-restarts-test-key-0123456789")  # one key for every replica
    up, down = Receiver(), Receiver()
    down.default = (503, {})
    try:
        config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "a", alerts={
            "retry_initial_seconds": 0.2, "retry_max_seconds": 0.5,
            "sinks": [{"type": "webhook", "url": up.url}, {"type": "webhook", "url": down.url}]})
        local, elsewhere = alert_of_partition_0("local"), alert_of_partition_0("elsewhere")
        with running_daemon(config) as daemon:
            wait_until(lambda: status(daemon)["ready"], timeout=30, what="ready")
            daemon.alerts.send(local)
            daemon.alerts.send(elsewhere)
            wait_until(lambda: sorted(ids(up)) == sorted([local.id, elsewhere.id]) and len(down.requests) >= 2,
                       timeout=10, what="up acknowledged both, down refused")
        # Clean stop (SIGTERM's path): the final checkpoint holds both, done for sink up.
        down.default = (200, {})
        with running_daemon(config) as daemon:                 # the same state directory
            wait_until(lambda: {local.id, elsewhere.id} <= set(ids(down)), timeout=20, what="down got both")
            wait_until(lambda: status(daemon)["pending_alerts"] == 0, timeout=10, what="nothing pending")
        assert sorted(ids(up)) == sorted([local.id, elsewhere.id])  # not sent to up again

        # Another replica (an empty state directory) takes partition 0 from the state topic.
        down.default = (503, {})
        third = alert_of_partition_0("third")
        with running_daemon(config) as daemon:
            wait_until(lambda: status(daemon)["ready"], timeout=30, what="ready")
            daemon.alerts.send(third)
            wait_until(lambda: third.id in ids(up) and len(down.requests) >= 4, timeout=10, what="up got the third")
        down.default = (200, {})
        config["state"]["dir"] = str(tmp_path / "b")
        with running_daemon(config) as daemon:
            wait_until(lambda: third.id in ids(down), timeout=30, what="down got the third from the state topic")
            wait_until(lambda: status(daemon)["pending_alerts"] == 0, timeout=10, what="nothing pending")
        assert ids(up).count(third.id) == 1
    finally:
        up.close()
        down.close()


def test_the_file_of_pending_alerts_keeps_the_delivery_records_and_reads_an_earlier_driftds(tmp_path):
    from daemon.kafka.checkpoint import Checkpoints, seal

    checkpoints = Checkpoints(tmp_path, "scope", key=b"k" * 32)
    alert = alert_of_partition_0("m").to_dict()
    record = {alert["id"]: {"done": ["webhook-0"], "first_due": 1763891000.0}}
    checkpoints.save_alerts([alert], record)
    assert checkpoints.load_pending() == ([alert], record)
    # An earlier driftd's file: the alerts alone (sent again to every sink).
    checkpoints.alerts_path.write_bytes(seal(b"k" * 32, "alerts scope", [alert]))
    assert checkpoints.load_pending() == ([alert], {})


def backlog(daemon) -> dict:
    """{(family, sink): value} of the alert backlog gauges."""
    text = get(daemon, "/metrics")[1].decode()
    return {(f.name, s.labels["sink"]): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if f.name in ("driftd_alerts_pending", "driftd_alerts_oldest_pending_age_seconds")}


def test_metrics_show_a_sinks_backlog_and_its_oldest_alerts_age_across_a_restart(
        kafka_bootstrap, unique_name, tmp_path):
    """A trial's finding: an outage shorter than the give-up time showed nowhere (no
    gave_up yet, retries logged at INFO); and a restart reset the give-up clock."""
    down = Receiver()
    down.default = (503, {})
    try:
        config = daemon_config(kafka_bootstrap, unique_name, tmp_path, alerts={
            "retry_initial_seconds": 0.2, "retry_max_seconds": 0.5, "sinks": [{"type": "webhook", "url": down.url}]})
        with running_daemon(config) as daemon:
            wait_until(lambda: status(daemon)["ready"], timeout=30, what="ready")
            assert backlog(daemon) == {("driftd_alerts_pending", "webhook-0"): 0.0,
                                       ("driftd_alerts_oldest_pending_age_seconds", "webhook-0"): 0.0}
            daemon.alerts.send(alert_of_partition_0("m"))
            time.sleep(2.0)
            seen = backlog(daemon)
            assert seen[("driftd_alerts_pending", "webhook-0")] == 1.0
            assert 1.5 <= seen[("driftd_alerts_oldest_pending_age_seconds", "webhook-0")] < 60
        with running_daemon(config) as daemon:  # restarted: the alert's age goes on
            seen = backlog(daemon)
            assert seen[("driftd_alerts_pending", "webhook-0")] == 1.0
            assert seen[("driftd_alerts_oldest_pending_age_seconds", "webhook-0")] >= 2.0
            down.default = (200, {})
            wait_until(lambda: backlog(daemon)[("driftd_alerts_pending", "webhook-0")] == 0.0, timeout=10,
                       what="the backlog delivered")
            assert backlog(daemon)[("driftd_alerts_oldest_pending_age_seconds", "webhook-0")] == 0.0
    finally:
        down.close()
