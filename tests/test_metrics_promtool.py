"""/metrics of a running daemon passes ``promtool check metrics`` and has every family, and
every family driftd exports is in the README's metric table (those of the live scrape, and
every one :mod:`daemon.web.metrics` defines, learner families included).

promtool (Debian package ``prometheus``) is installed by :mod:`tests.promtool` when it is
missing and we may; otherwise the test is skipped with the reason, never passed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.stream.events import REASONS
from daemon.demo.simulate import Simulation

from .daemon_harness import daemon_config, get, produce, running_daemon, status, wait_until
from .promtool import require

#: Families that must be there, with at least one sample.
EXPECTED_SAMPLES = (
    "driftd_events_processed_total",
    "driftd_dead_letter_total",
    "driftd_drift_statistic",
    "driftd_drift_threshold",
    "driftd_drift_p_value",
    "driftd_drift_active",
    "driftd_drift_detections_total",
    "driftd_model_performance",
    "driftd_label_join_total",
    "driftd_label_delay_seconds_bucket",
    "driftd_alerts_sent_total",
    "driftd_consumer_lag_records",
    "driftd_last_checkpoint_timestamp_seconds",
    "driftd_batch_processing_seconds_bucket",
    "driftd_untestable_features",
    "driftd_tests_uncalibrated",
    "driftd_calibration_jobs_pending",
    "driftd_feature_missing_total",
    "driftd_unknown_features_total",
)

#: (name in HELP/TYPE lines, type) for each family above.
EXPECTED_TYPES = {
    "driftd_events_processed_total": ("driftd_events_processed_total", "counter"),
    "driftd_dead_letter_total": ("driftd_dead_letter_total", "counter"),
    "driftd_drift_statistic": ("driftd_drift_statistic", "gauge"),
    "driftd_drift_threshold": ("driftd_drift_threshold", "gauge"),
    "driftd_drift_p_value": ("driftd_drift_p_value", "gauge"),
    "driftd_drift_active": ("driftd_drift_active", "gauge"),
    "driftd_drift_detections_total": ("driftd_drift_detections_total", "counter"),
    "driftd_model_performance": ("driftd_model_performance", "gauge"),
    "driftd_label_join_total": ("driftd_label_join_total", "counter"),
    "driftd_label_delay_seconds_bucket": ("driftd_label_delay_seconds", "histogram"),
    "driftd_alerts_sent_total": ("driftd_alerts_sent_total", "counter"),
    "driftd_consumer_lag_records": ("driftd_consumer_lag_records", "gauge"),
    "driftd_last_checkpoint_timestamp_seconds": ("driftd_last_checkpoint_timestamp_seconds", "gauge"),
    "driftd_batch_processing_seconds_bucket": ("driftd_batch_processing_seconds", "histogram"),
    "driftd_untestable_features": ("driftd_untestable_features", "gauge"),
    "driftd_tests_uncalibrated": ("driftd_tests_uncalibrated", "gauge"),
    "driftd_calibration_jobs_pending": ("driftd_calibration_jobs_pending", "gauge"),
    "driftd_feature_missing_total": ("driftd_feature_missing_total", "counter"),
    "driftd_unknown_features_total": ("driftd_unknown_features_total", "counter"),
}

BAD_EVENTS = (b"not json at all", b"[1, 2, 3]")
ROOT = Path(__file__).resolve().parents[1]


def readme_metric_table() -> set[str]:
    """Metric names in the first column of README's table under "Endpoints and metrics"."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| metric | labels | what |"):]
    table = table[:table.index("\n\n")]
    return {name for row in table.splitlines()[2:] for name in re.findall(r"`(driftd_\w+)`", row.split(" | ")[0])}


def defined_families() -> set[str]:
    """Every family daemon/web/metrics.py (and its collectors) can export, as named in
    TYPE lines: counters with ``_total``."""
    source = (ROOT / "daemon" / "web" / "metrics.py").read_text()
    found = re.findall(r"\b(Counter|Gauge|Histogram)(?:MetricFamily)?\(\s*\"(driftd_\w+)\"", source)
    assert len(found) >= 30, found  # the pattern still finds them
    return {name + "_total" if kind == "Counter" and not name.endswith("_total") else name for kind, name in found}


def test_every_family_driftd_defines_is_in_the_readme_table():
    missing = defined_families() - readme_metric_table()
    assert not missing, f"metrics missing from README's table: {sorted(missing)}"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require("prometheus", "promtool")


def _scrape(kafka_bootstrap, unique_name, tmp_path, url, monkeypatch) -> tuple[str, Simulation]:
    monkeypatch.setenv("PROMTOOL_TEST_WEBHOOK_SECRET", "whsec_" + "c2VjcmV0LWtleS1mb3ItcHJvbXRvb2w=")
    config = daemon_config(
        kafka_bootstrap, unique_name, tmp_path,
        model_defaults={"reference_size": 1000, "window": 500, "stride": 100,
                        "decay_reference_size": 500, "decay_window": 300},
        alerts={"cooldown_seconds": 100_000, "retry_initial_seconds": 0.1,
                "sinks": [{"type": "webhook", "url": url, "secret": {"env": "PROMTOOL_TEST_WEBHOOK_SECRET"}}]},
        state={"checkpoint_interval_seconds": 0.3})
    kafka = config["kafka"]
    sim = Simulation(n_events=8000, data_drift_at=4000, concept_drift_at=6000, label_delay=50,
                     predictions_topic=kafka["predictions_topic"], labels_topic=kafka["labels_topic"])
    records = list(sim.records())
    for i, bad in enumerate(BAD_EVENTS):  # a bad event or two, so driftd_dead_letter_total has samples
        records.insert(100 + i * 1000, (kafka["predictions_topic"], b"fraud", bad))
    expected = (sum(1 for t, _, v in records if t == kafka["predictions_topic"] and v not in BAD_EVENTS),
                sum(1 for t, _, _ in records if t == kafka["labels_topic"]))

    def processed():
        model = status(daemon).get("models", {}).get("fraud")
        return model and (model["processed"]["prediction"], model["processed"]["label"]) == expected

    def complete():
        text = get(daemon, "/metrics")[1].decode()
        samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
        # Thresholds are computed in the background: their tests' decisions come after.
        return set(EXPECTED_SAMPLES) <= set(samples) and samples["driftd_tests_uncalibrated"] == 0 and text

    with running_daemon(config) as daemon:
        produce(kafka_bootstrap, records)
        wait_until(processed, timeout=120, what=f"{expected} events processed")
        # Alert deliveries, the lag and the checkpoint time come a moment after processing.
        text = wait_until(complete, timeout=30, what="every expected family with a sample")
    return text, sim


def test_metrics_pass_promtool_and_cover_every_family(promtool, kafka_bootstrap, unique_name, tmp_path, webhook, monkeypatch):
    url, received = webhook
    text, sim = _scrape(kafka_bootstrap, unique_name, tmp_path, url, monkeypatch)
    assert wait_until(lambda: received, timeout=20, what="an alert at the webhook")

    # promtool prints every lint problem; a clean exposition gives exit 0 and no output.
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not problems, (
        f"promtool check metrics exited {result.returncode}:\n{problems}")

    lines = text.splitlines()
    exported = {line.split()[2] for line in lines if line.startswith("# TYPE ")}
    assert not exported - readme_metric_table(), f"scraped, not in README's table: {sorted(exported - readme_metric_table())}"
    for sample_name, (family, kind) in EXPECTED_TYPES.items():
        assert f"# TYPE {family} {kind}" in lines, f"no TYPE line for {family} ({kind})"
        assert any(line.startswith(f"# HELP {family} ") for line in lines), f"no HELP line for {family}"
        assert any(line.startswith((sample_name + "{", sample_name + " ")) for line in lines), f"no sample of {sample_name}"

    # Specific samples the drifting stream must have produced.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    dead = {(s.labels["reason"], s.labels["model"]): s.value for s in families["driftd_dead_letter"].samples
            if s.name.endswith("_total")}
    # Every reason is exported from the start (at 0), so rate() sees a reason's first event;
    # those a watched model's event can have, per model too. The bad events name no model.
    assert dead == {**{(reason, ""): 1.0 if reason in ("not_json", "not_object") else 0.0 for reason in REASONS},
                    **{(reason, "fraud"): 0.0 for reason in ("missing_field", "wrong_type", "non_finite", "too_deep",
                                                             "bad_timestamp", "internal_error")}}, dead
    sent = [s for s in families["driftd_alerts_sent"].samples if s.name == "driftd_alerts_sent_total"]
    assert any(s.labels["outcome"] == "sent" and s.value >= 1 for s in sent), sent

    # Bounded cardinality: labels are model, detector, feature, ... never event ids.
    ids = {f"p-{i}" for i in range(sim.n_events)}
    for family in families.values():
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert not value.startswith("p-") and value not in ids, (
                    f"{sample.name} label {label}={value!r} looks like an event id")
    series = [(s.name, tuple(sorted(s.labels.items()))) for f in families.values() for s in f.samples]
    assert len(series) < 1000, f"{len(series)} series from one model with three features"
    # promtool (2.42) does not catch a series exported twice; Prometheus drops such samples.
    duplicates = sorted({s for s in series if series.count(s) > 1})
    assert not duplicates, f"series exported more than once: {duplicates[:5]}"
