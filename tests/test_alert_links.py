"""driftd's own alerts link their runbook and the dashboard, as the shipped Prometheus rules do.

``alerts.runbook_base_url`` and ``alerts.dashboard_url`` (absent when unset) become
``runbook_url`` and ``dashboard_url`` in the payload's ``data``: sent to a real HTTP
receiver (Standard Webhooks, and Slack's text), and produced to the test broker (Kafka sink).
Every runbook anchor driftd can link is a README heading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from kafka import KafkaProducer

from daemon.alerting.episodes import Alert, info
from daemon.alerting.sinks import AlertLinks, KafkaSink, WebhookSink, runbook_anchor
from daemon.config import ConfigError, from_dict

from .daemon_harness import read_topic

README = Path(__file__).resolve().parents[1] / "README.md"
LINKS = AlertLinks("https://git.example.com/ml/driftd/blob/main/README.md#old-anchor",
                   "https://grafana.example.com/d/driftd?orgId=1&var-model=stale")


def _alert(detector: str = "decay", feature: str = "accuracy", model: str = "fraud & co") -> Alert:
    return Alert(id=f"a-{detector}", status="firing", model=model, detector=detector, feature=feature,
                 severity="critical", event_time=1_700_000_000.0, episode=1, detail={"statistic": 4.2})


def test_the_webhook_payload_carries_runbook_and_dashboard_links(webhook):
    url, received = webhook
    WebhookSink(url, "secret", name="webhook-0", links=LINKS).deliver(_alert())
    WebhookSink(url, "secret", name="webhook-1").deliver(_alert())  # no links configured
    (linked, _), (plain, _) = received
    data = json.loads(linked)["data"]
    assert data["runbook_url"] == "https://git.example.com/ml/driftd/blob/main/README.md#driftdperformancedecay"
    # The model is the dashboard's model variable (quoted); the URL's other parameters stay.
    assert data["dashboard_url"] == "https://grafana.example.com/d/driftd?orgId=1&var-model=fraud+%26+co"
    assert data["severity"] == "critical" and data["model"] == "fraud & co"
    assert "runbook_url" not in json.loads(plain)["data"] and "dashboard_url" not in json.loads(plain)["data"]


def test_each_link_is_absent_when_its_option_is_unset():
    assert AlertLinks(None, None).of(_alert()) == {}
    assert AlertLinks("https://docs.example.com/README.md", None).of(_alert()) == {
        "runbook_url": "https://docs.example.com/README.md#driftdperformancedecay"}
    assert AlertLinks(None, "https://grafana.example.com/d/driftd").of(_alert(model="eta")) == {
        "dashboard_url": "https://grafana.example.com/d/driftd?var-model=eta"}


def test_slack_text_ends_with_the_links(webhook):
    url, received = webhook
    WebhookSink(url, format="slack", name="slack-0", links=LINKS).deliver(_alert("psi", "age", "fraud"))
    text = json.loads(received[0][0])["text"]
    assert text.endswith(" (<https://git.example.com/ml/driftd/blob/main/README.md#driftdfeaturedrift|runbook>, "
                         "<https://grafana.example.com/d/driftd?orgId=1&amp;var-model=fraud|dashboard>)"), text


def test_the_kafka_sink_carries_the_links(kafka_bootstrap, unique_name):
    topic = unique_name("alerts")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        KafkaSink(producer, topic, name="kafka-0", links=LINKS).deliver(_alert("adwin", "<error>", "fraud"))
    finally:
        producer.close(5)
    (record,) = read_topic(kafka_bootstrap, topic, 1)
    data = json.loads(record.value)["data"]
    assert data["runbook_url"].endswith("README.md#driftdconceptdrift")
    assert data["dashboard_url"] == "https://grafana.example.com/d/driftd?orgId=1&var-model=fraud"
    # The webhook's envelope, timestamp too (a new user's finding: the Kafka sink had none).
    webhook = WebhookSink("http://127.0.0.1:9/", name="webhook-0", links=LINKS).body(_alert("adwin", "<error>", "fraud"))
    assert json.loads(record.value) == json.loads(webhook)


def _readme_anchors() -> set[str]:
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in README.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("alert, anchor", [
    (_alert("decay", "accuracy"), "driftdperformancedecay"),
    (_alert("estimated_decay", "accuracy"), "driftdestimatedperformancedecay"),
    (_alert("adwin", "<error>"), "driftdconceptdrift"),
    (_alert("psi", "age"), "driftdfeaturedrift"),
    (_alert("missing_rate", "age"), "driftdfeaturedrift"),
    (_alert("unknown_features", "<features>"), "driftdfeaturedrift"),
    (info("fraud", "model_promoted", {"version": "2"}, 1_700_000_000.0, "k"), "learning-retraining-and-promotion"),
])
def test_every_runbook_anchor_is_a_readme_heading(alert, anchor):
    assert runbook_anchor(alert) == anchor
    assert anchor in _readme_anchors()


def test_the_options_are_read_and_bad_urls_fail_at_start_naming_the_key():
    config = from_dict({"alerts": {"runbook_base_url": "https://docs.example.com/driftd/README.md",
                                   "dashboard_url": "https://grafana.example.com/d/driftd"}})
    assert (config.alerts.runbook_base_url, config.alerts.dashboard_url) == (
        "https://docs.example.com/driftd/README.md", "https://grafana.example.com/d/driftd")
    assert from_dict({}).alerts.runbook_base_url is None and from_dict({}).alerts.dashboard_url is None
    for key, value in (("runbook_base_url", "README.md"), ("dashboard_url", "ftp://grafana/d/driftd"),
                       ("dashboard_url", "https:// spaced.example.com")):
        with pytest.raises(ConfigError) as caught:
            from_dict({"alerts": {key: value}})
        assert caught.value.key == f"alerts.{key}", caught.value
