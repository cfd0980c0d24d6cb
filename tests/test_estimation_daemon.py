"""Estimated performance through a running daemon on the test broker: /metrics exports the
label-free estimate next to the reference and current performance, its error against the
labels that came, and its decay test like any detector."""

from __future__ import annotations

import re

from daemon.demo.simulate import Simulation

from .daemon_harness import calibrated, daemon_config, get, processed, produce, running_daemon, wait_until


def test_metrics_show_the_estimated_performance(kafka_bootstrap, unique_name, tmp_path):
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path)  # decay_reference_size 500, decay_window 400
    sim = Simulation(predictions_topic=config["kafka"]["predictions_topic"], labels_topic=config["kafka"]["labels_topic"],
                     n_events=3000, data_drift_at=None, concept_drift_at=None, label_delay=50)
    with running_daemon(config) as daemon:
        counts = produce(kafka_bootstrap, sim.records())
        wait_until(lambda: processed(daemon) == (counts[sim.predictions_topic], counts[sim.labels_topic]), what="all events processed")
        wait_until(lambda: calibrated(daemon), what="thresholds computed")
        metrics = get(daemon, "/metrics")[1].decode()

    def value(pattern):
        found = re.search(pattern + r" (\S+)", metrics)
        assert found, f"no {pattern} in /metrics"
        return float(found.group(1))

    estimated = value(r'driftd_model_performance\{metric="accuracy",model="fraud",window="estimated"\}')
    current = value(r'driftd_model_performance\{metric="accuracy",model="fraud",window="current"\}')
    assert 0.5 < estimated <= 1 and abs(estimated - current) < 0.1
    for metric in ("precision", "recall", "f1", "roc_auc"):
        assert f'driftd_model_performance{{metric="{metric}",model="fraud",window="estimated"}}' in metrics
    assert abs(value(r'driftd_estimate_error\{metric="accuracy",model="fraud"\}')) < 0.1
    assert value(r'driftd_drift_tests_total\{detector="estimated_decay",feature="accuracy",model="fraud"\}') > 0
    assert value(r'driftd_drift_detections_total\{detector="estimated_decay",feature="accuracy",model="fraud"\}') == 0
