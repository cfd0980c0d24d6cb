"""deploy/prometheus, deploy/alertmanager and deploy/grafana, checked with the real tools.

- The rules and the scrape configuration pass ``promtool check``; the rules' unit tests
  (``deploy/prometheus/tests/*.yml``) pass ``promtool test rules`` and show every rule both
  firing and not firing; the rules follow the conventions (names, severity, annotations, for).
- The Alertmanager example passes ``amtool check-config`` and routes as it says; its inhibit
  rules work on a real Alertmanager, also for a ``DriftdDown`` from ``absent()`` (no
  ``instance`` label).
- Every rule links its runbook (``runbook_url``, an anchor of a README heading) and the
  dashboard; severities agree with driftd's own alerts (:func:`daemon.alerting.sinks.alert_severity`).
- The Grafana dashboard is well formed (data sources, queries, ids, grid, the model variable)
  and provisioned.
- End to end: Debian's ``prometheus`` and ``prometheus-alertmanager``, started here on
  loopback ports with 1 s scrape and evaluation intervals, watch a real driftd on the test
  broker fed a drifting stream: every dashboard query returns data, the data-drift rule fires
  and reaches a local webhook through Alertmanager's routes, and the live scrape passes
  ``promtool check metrics``. Then driftd stops: ``DriftdDown`` fires, the "Daemons" row shows
  it down, and the queries without data are exactly those with no true value while driftd
  is down (:data:`UNKNOWN_WHILE_DOWN`). The rules are the shipped file with only their
  ``for:`` durations shortened.

The tools come from Debian packages installed by :mod:`tests.promtool` when missing (root and
apt-get); otherwise the tests that need them are skipped with the reason, never passed.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from daemon.demo.simulate import Simulation

from .daemon_harness import daemon_config, get, produce, running_daemon, status, wait_until
from .promtool import require

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "driftd-rules.yml"
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "driftd.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
README_FRAGMENTS = (ROOT / "README.md",)

#: The alerts the issue asks for (more may exist).
REQUIRED_ALERTS = {
    "DriftdFeatureDrift", "DriftdConceptDrift", "DriftdPerformanceDecay", "DriftdDeadLettersRising",
    "DriftdLabelJoinFailing", "DriftdConsumerLagGrowing", "DriftdProcessingStalled", "DriftdDown",
}
SEVERITIES = {"critical", "warning", "info"}
#: Grafana's built-in variables and the values the end-to-end test gives them.
GRAFANA_BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
BAD_EVENTS = (b"not json at all", b"[1, 2, 3]")
#: Whole end-to-end test, from the first process started to the last query.
E2E_BUDGET_SECONDS = 100
#: The rate interval Grafana gives a data source whose timeInterval is the test's 1 s scrape
#: interval (4 scrapes): with driftd down, rates then see its last samples for 4 s only.
DOWN_RATE_INTERVAL = "4s"
#: Dashboard queries (panel title, refId) that rightly return nothing while driftd is down:
#: detector states, performance, lag, batch times, versions and learners are unknown until a
#: daemon reports them again (their time series keep their history). Every other query shows
#: something: the Daemons row says driftd is down, rates read 0, ready reads 0, the time since
#: the last checkpoint and the event age keep growing, the detector table and the join buffer
#: show their last (checkpointed) values, and the alerts show DriftdDown.
UNKNOWN_WHILE_DOWN = sorted([
    ("Labels joined", "A"), ("Model version", "A"), ("Model version", "A"),  # the stat and the timeline
    ("Drift statistic / threshold per feature", "A"), ("Active drifts", "A"),
    ("Drift detections", "A"),
    ("Largest statistic / threshold per test", "A"), ("Features in drift or warning", "A"),
    ("Features in drift or warning", "B"),
    ("Performance: current vs reference", "A"), ("Error rate (concept-drift detector)", "A"),
    ("Decay tests: statistic vs threshold", "A"), ("Decay tests: statistic vs threshold", "B"),
    *(("Label delay", ref) for ref in "ABC"),
    ("Consumer lag", "A"), ("Batch processing time", "A"), ("Batch processing time", "B"),
    ("Retrains and promotions", "A"), ("Retrains and promotions", "B"),
    ("Learner scores", "A"), ("Learner scores", "B"), ("Alert deliveries", "B"),
])
#: The dashboard row about driftd itself: its panels show every driftd target, whatever the model.
DAEMONS_ROW = "Daemons"


# -- tools ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def promtool() -> str:
    return require("prometheus", "promtool")


@pytest.fixture(scope="module")
def amtool() -> str:
    return require("prometheus-alertmanager", "amtool")


def _run(*args, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd)


def _ok(result: subprocess.CompletedProcess) -> str:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"{' '.join(result.args)} exited {result.returncode}:\n{output}"
    return output


# -- Prometheus rules -----------------------------------------------------------------------------
def _rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a Prometheus duration: {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def test_prometheus_config_and_rules_pass_promtool_check(promtool):
    _ok(_run(promtool, "check", "rules", str(RULES)))
    # Checks the scrape configuration and, through rule_files, the rules it loads.
    output = _ok(_run(promtool, "check", "config", str(PROMETHEUS_CONFIG)))
    assert "1 rule files found" in output, output


def test_scrape_config_has_the_job_the_rules_expect():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert "driftd" in jobs, jobs  # DriftdDown looks for up{job="driftd"}
    assert any('job="driftd"' in rule["expr"] for rule in _rules())
    assert config["rule_files"] == [RULES.name], "rule_files must name driftd-rules.yml next to prometheus.yml"


def test_alert_rules_follow_conventions():
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert all("alert" in rule for rule in rules), "only alerting rules here"
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert REQUIRED_ALERTS <= set(names), f"missing: {sorted(REQUIRED_ALERTS - set(names))}"
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Driftd(?:[A-Z][a-z]+)+", name), f"{name}: CamelCase with the Driftd prefix"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity label"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), f"{name}: summary and description"
        # The runbook: README.md, or the URL of the operator's copy (an external label), at
        # the anchor of the alert's heading under "Runbooks".
        assert annotations.get("runbook_url") == (
            "{{ with $externalLabels.driftd_runbook_base_url }}{{ . }}{{ else }}README.md{{ end }}#" + name.lower()
        ), f"{name}: runbook_url {annotations.get('runbook_url')!r}"
        assert name.lower() in _readme_anchors(), f"{name}: no README heading with anchor #{name.lower()}"
        assert annotations.get("dashboard", "").startswith(
            "{{ with $externalLabels.driftd_dashboard_url }}{{ . }}{{ else }}/d/" + _dashboard()["uid"] + "{{ end }}"
        ), f"{name}: dashboard {annotations.get('dashboard')!r}"
        assert "driftd_" in rule["expr"] or "up{" in rule["expr"], f"{name}: {rule['expr']}"
        # Production durations: minutes, so that a blip does not page anyone.
        assert _seconds(rule.get("for", "0s")) >= 60, f"{name}: for: {rule.get('for')!r} (minutes expected)"


def _readme_anchors() -> set[str]:
    """GitHub's anchors of the README's headings (lower case, punctuation dropped, spaces to -)."""
    anchors = set()
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_runbooks_in_the_readme_cover_every_rule_with_what_to_check_and_do():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("#### Runbooks"):]
    section = section[:section.index("\n## ")]
    for rule in _rules():
        name = rule["alert"]
        start = section.index(f"##### {name}\n")
        body = section[start:section.find("\n##### ", start + 1)]
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in body, f"runbook of {name}: no {part}"


def test_severities_agree_with_driftds_own_alerts():
    """driftd's own webhook for a decay episode has the severity of DriftdPerformanceDecay,
    and so on: one severity per signal, whichever way the alert comes."""
    from daemon.alerting.sinks import alert_severity

    severity = {rule["alert"]: rule["labels"]["severity"] for rule in _rules()}
    assert severity["DriftdPerformanceDecay"] == alert_severity("decay") == "critical"
    for detector in ("psi", "ks", "cusum", "chisquare", "value_change", "missing_rate", "unseen_rate",
                     "unknown_features", "reconstruction"):
        assert severity["DriftdFeatureDrift"] == alert_severity(detector) == "warning"
    assert severity["DriftdConceptDrift"] == alert_severity("adwin") == "warning"


def test_alert_rule_unit_tests_pass(promtool):
    assert RULE_TESTS, "no rule unit tests in deploy/prometheus/tests/"
    output = _ok(_run(promtool, "test", "rules", *map(str, RULE_TESTS)))
    assert "SUCCESS" in output and "FAILED" not in output, output


def test_every_rule_is_unit_tested_firing_and_not_firing():
    firing, silent = set(), set()
    for path in RULE_TESTS:
        suite = yaml.safe_load(path.read_text())
        assert any(Path(path.parent, f).resolve() == RULES for f in suite["rule_files"]), f"{path} does not test {RULES}"
        for test in suite["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
                for alert in case.get("exp_alerts") or []:
                    # Annotations are part of what is tested: a receiver shows them.
                    assert {"summary", "description"} <= set(alert.get("exp_annotations", {})), (
                        f"{path.name}: {case['alertname']} at {case['eval_time']}: give the annotations")
    names = {rule["alert"] for rule in _rules()}
    assert names - firing == set(), f"never shown firing: {sorted(names - firing)}"
    assert names - silent == set(), f"never shown silent: {sorted(names - silent)}"


# -- Alertmanager ---------------------------------------------------------------------------------
def test_alertmanager_config_passes_amtool(amtool):
    output = _ok(_run(amtool, "check-config", str(ALERTMANAGER_CONFIG)))
    assert "SUCCESS" in output, output


@pytest.mark.parametrize("labels, receiver", [
    ({"alertname": "DriftdFeatureDrift", "severity": "warning", "model": "fraud"}, "ml-platform"),
    ({"alertname": "DriftdPerformanceDecay", "severity": "critical", "model": "fraud"}, "ml-oncall"),
    ({"alertname": "DriftdDown", "severity": "critical", "instance": "driftd:9108"}, "ml-oncall"),
    ({"alertname": "NodeDiskFull", "severity": "critical"}, "default"),
])
def test_alertmanager_routes(amtool, labels, receiver):
    args = [f"{k}={v}" for k, v in labels.items()]
    result = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
                  f"--verify.receivers={receiver}", *args)
    _ok(result)  # amtool exits 1 when the receivers differ
    assert result.stdout.strip() == receiver, result.stdout


def _post(url: str, body) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as r:
        assert r.status == 200, r.status


def _suppressed(alertmanager_bin: str, config: Path, tmp_path: Path, name: str, alerts: list[dict]) -> dict:
    """Start Alertmanager on ``config``, post ``alerts`` (label dicts, firing), and return
    alertname/instance -> the alertnames inhibiting it (empty: not inhibited)."""
    port = _free_port()
    process = _Process(f"alertmanager-{name}", [
        alertmanager_bin, f"--config.file={config}", f"--storage.path={tmp_path / (name + '-data')}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        tmp_path / f"{name}.log", f"http://127.0.0.1:{port}/-/ready")
    try:
        process.wait_ready()
        base = f"http://127.0.0.1:{port}/api/v2"
        _post(f"{base}/alerts", [{"labels": labels, "annotations": {}} for labels in alerts])

        def settled():
            with urllib.request.urlopen(f"{base}/alerts", timeout=5) as r:
                got = json.loads(r.read())
            return got if len(got) == len(alerts) else None

        # Inhibitions are computed as alerts arrive; one more read lets the sources land.
        wait_until(settled, timeout=10, what="Alertmanager holding every posted alert")
        time.sleep(0.5)
        got = settled()
        ids = {a["fingerprint"]: a["labels"]["alertname"] for a in got}
        return {f"{a['labels']['alertname']}/{a['labels'].get('instance', '')}":
                sorted(ids.get(f, f) for f in a["status"]["inhibitedBy"]) for a in got}
    finally:
        process.stop()


def test_alertmanager_inhibits_daemon_alerts_under_driftd_down_also_from_absent(tmp_path):
    """DriftdDown from ``absent(up{job="driftd"})`` carries job but no instance: the shipped
    inhibit rules silence the daemon alerts of every instance of the job with it, and a
    DriftdDown of one instance only that instance's. The model alerts stay, and so does
    everything with the inhibit rule the example used to have (``equal: [instance]``)."""
    alertmanager_bin = require("prometheus-alertmanager", "prometheus-alertmanager")
    absent_down = {"alertname": "DriftdDown", "job": "driftd", "severity": "critical"}
    targets = [
        {"alertname": "DriftdNotReady", "job": "driftd", "instance": "a:9108", "severity": "warning"},
        {"alertname": "DriftdConsumerLagGrowing", "job": "driftd", "instance": "b:9108", "topic": "predictions", "severity": "warning"},
        {"alertname": "DriftdCheckpointStale", "job": "driftd", "instance": "b:9108", "severity": "warning"},
        {"alertname": "DriftdFeatureDrift", "job": "driftd", "instance": "a:9108", "model": "fraud", "severity": "warning"},
    ]
    got = _suppressed(alertmanager_bin, ALERTMANAGER_CONFIG, tmp_path, "absent", [absent_down, *targets])
    assert got == {
        "DriftdDown/": [], "DriftdNotReady/a:9108": ["DriftdDown"], "DriftdConsumerLagGrowing/b:9108": ["DriftdDown"],
        "DriftdCheckpointStale/b:9108": ["DriftdDown"], "DriftdFeatureDrift/a:9108": [],
    }, got

    # One instance down: its alerts only.
    one_down = {"alertname": "DriftdDown", "job": "driftd", "instance": "a:9108", "severity": "critical"}
    stale_a = {"alertname": "DriftdCheckpointStale", "job": "driftd", "instance": "a:9108", "severity": "warning"}
    got = _suppressed(alertmanager_bin, ALERTMANAGER_CONFIG, tmp_path, "one", [one_down, stale_a, *targets[1:3]])
    assert got == {"DriftdDown/a:9108": [], "DriftdCheckpointStale/a:9108": ["DriftdDown"],
                   "DriftdConsumerLagGrowing/b:9108": [], "DriftdCheckpointStale/b:9108": []}, got

    # The control: the old rule never matched the absent() alert.
    old = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    old["inhibit_rules"] = [{"source_matchers": ['alertname=~"DriftdDown|DriftdProcessingStalled"'],
                             "target_matchers": ['alertname=~"DriftdConsumerLagGrowing|DriftdNotReady|DriftdEventsDelayed"'],
                             "equal": ["instance"]}]
    (tmp_path / "old.yml").write_text(yaml.safe_dump(old))
    got = _suppressed(alertmanager_bin, tmp_path / "old.yml", tmp_path, "old", [absent_down, *targets[:2]])
    assert got == {"DriftdDown/": [], "DriftdNotReady/a:9108": [], "DriftdConsumerLagGrowing/b:9108": []}, got


# -- Grafana --------------------------------------------------------------------------------------
def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _all_panels(dashboard: dict) -> list[dict]:
    """Rows and panels, those inside a collapsed row included."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return panels


def _query_panels(dashboard: dict) -> list[dict]:
    return [p for p in _all_panels(dashboard) if p["type"] != "row"]


def _rows(dashboard: dict) -> list[str]:
    return [p["title"] for p in dashboard["panels"] if p["type"] == "row"]


def _row_panels(dashboard: dict, title: str) -> list[dict]:
    """The panels of row ``title`` (laid out below it, or held by it when collapsed)."""
    panels, current = [], None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            if current == title:
                panels.extend(panel.get("panels", []))
        elif current == title:
            panels.append(panel)
    return panels


def test_dashboard_structure():
    dashboard = _dashboard()
    assert dashboard.get("uid") and dashboard.get("title") and isinstance(dashboard.get("schemaVersion"), int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    model = variables["model"]
    query = model["query"]["query"] if isinstance(model["query"], dict) else model["query"]
    assert model["type"] == "query" and query == "label_values(driftd_events_processed_total, model)", model

    ids = [p["id"] for p in _all_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(i for i in ids if ids.count(i) > 1)}"
    for panel in _all_panels(dashboard):
        grid = panel.get("gridPos")
        assert grid and all(isinstance(grid.get(k), int) for k in "hwxy"), f"{panel['title']}: gridPos {grid}"
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{panel['title']}: {grid}"
    cells = {}  # no two panels on one grid cell (panels of a collapsed row are not laid out)
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]

    panels = _query_panels(dashboard)
    assert len(panels) >= 10
    daemons = _row_panels(dashboard, DAEMONS_ROW)
    # driftd up/down from `up`, and readiness, on top.
    assert dashboard["panels"][0]["title"] == DAEMONS_ROW, "the Daemons row first"
    daemon_exprs = " ".join(t["expr"] for p in daemons for t in p["targets"])
    assert 'up{job="driftd"}' in daemon_exprs and "absent(up{job=" in daemon_exprs and "driftd_ready" in daemon_exprs, daemon_exprs
    for panel in panels:
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel.get("datasource", {}).get("uid") == "${datasource}", f"{title}: datasource"
        targets = panel.get("targets")
        assert targets, f"{title}: no targets"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), f"{title}: refIds {refs}"
        for target in targets:
            assert target.get("expr", "").strip(), f"{title}: target {target.get('refId')} has no expr"
            if panel not in daemons:  # those show every daemon: one that is down names no model
                assert "$model" in target["expr"], f"{title}: {target['expr']} ignores the model selector"
            assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}", f"{title}: target datasource"

    # What the issue asks the dashboard to show, by the metrics its queries use.
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in ("driftd_drift_statistic", "driftd_drift_threshold", "driftd_drift_active", "driftd_model_performance",
                   "driftd_label_join_total", "driftd_label_delay_seconds_bucket", "driftd_events_processed_total",
                   "driftd_consumer_lag_records", "driftd_dead_letter_total", "driftd_alerts_sent_total", "ALERTS",
                   "driftd_model_version_info", "driftd_promotions_total", "driftd_retrains_total", "driftd_learner_score",
                   "driftd_batch_processing_seconds_bucket", "driftd_ready", "driftd_label_join_pending"):
        assert metric in exprs, f"no panel shows {metric}"


def test_grafana_provisioning():
    providers = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "driftd.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    sources = yaml.safe_load((GRAFANA_PROVISIONING / "datasources" / "driftd-prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
    assert sources["datasources"][0]["url"].startswith("http")


def test_readme_describes_every_dashboard_row():
    text = "\n".join(p.read_text() for p in README_FRAGMENTS if p.exists())
    for row in _rows(_dashboard()):
        assert row in text, f"the README does not describe the dashboard row {row!r}"


# -- end to end -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Receiver:
    """Accepts every POST (driftd's webhooks, Alertmanager's notifications) and keeps them."""

    def __init__(self):
        self.received: list[tuple[str, bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                received.append((self.path, self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def notifications(self, prefix: str) -> list[tuple[str, dict]]:
        return [(path, json.loads(body)) for path, body in list(self.received) if path.startswith(prefix)]


class _Process:
    """A tool started by the test, with its output in a file; stopped by pid."""

    def __init__(self, name: str, args: list[str], log: Path, ready_url: str):
        self.name, self.log, self.ready_url = name, log, ready_url
        self._out = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}:\n{self.tail()}"
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.ready_url, timeout=1) as r:
                    if r.status == 200:
                        return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        self._out.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


def _test_rules(directory: Path) -> Path:
    """The shipped rules with every ``for:`` shortened to 1 s, nothing else changed."""
    text = RULES.read_text()
    short, count = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", r"\g<1>1s", text)
    assert count == len(_rules()), f"rewrote {count} for: lines for {len(_rules())} rules"
    path = directory / RULES.name
    path.write_text(short)
    return path


def _prometheus_config(directory: Path, rules: Path, driftd_port: int, alertmanager_port: int) -> Path:
    """The shipped scrape configuration, pointed at the test's daemon and Alertmanager, 1 s intervals."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "driftd"]
    for key in ("scrape_interval", "scrape_timeout"):
        job.pop(key, None)
    job["static_configs"] = [{"targets": [f"127.0.0.1:{driftd_port}"]}]
    config["scrape_configs"] = [job]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alertmanager_config(directory: Path, receiver_url: str) -> Path:
    """The shipped Alertmanager example, its webhooks sent to the test's receiver, no waiting."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())

    def quick(route):
        route.update({k: "1s" for k in ("group_wait", "group_interval") if k in route or route is config["route"]})
        for child in route.get("routes", []):
            quick(child)

    quick(config["route"])
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{receiver_url}/alertmanager/{receiver['name']}"
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _api(base: str, path: str, **params):
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def _panel_queries(model: str, builtins: dict = GRAFANA_BUILTINS) -> list[tuple[str, str, str]]:
    """(panel title, refId, query with the variables at their test values) of every panel."""
    queries = []
    for panel in _query_panels(_dashboard()):
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in builtins.items():
                expr = expr.replace("${" + name[1:] + "}", value).replace(name, value)
            expr = expr.replace("${model}", model).replace("$model", model)
            assert "$" not in expr, f"{panel['title']}: a variable the test does not know in {expr}"
            queries.append((panel["title"], target["refId"], expr))
    return queries


def test_end_to_end_prometheus_alertmanager_grafana_queries(promtool, kafka_bootstrap, unique_name, tmp_path, monkeypatch):
    prometheus_bin = require("prometheus", "prometheus")
    alertmanager_bin = require("prometheus-alertmanager", "prometheus-alertmanager")
    started = time.monotonic()

    monkeypatch.setenv("E2E_WEBHOOK_SECRET", "whsec_" + "c2VjcmV0LWtleS1mb3ItZTJlLXRlc3Q=")
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "e2e-registry-key-" + "k" * 16)
    receiver = _Receiver()
    # A learner, so that the versions/learners panels have data: the concept drift makes it
    # retrain a challenger, and the promotion gate decides.
    config = daemon_config(
        kafka_bootstrap, unique_name, tmp_path / "state",
        model_defaults={"reference_size": 1000, "window": 500, "stride": 100,
                        "decay_reference_size": 500, "decay_window": 300,
                        "learners": {"lr": [{"Union": [["Numeric", "StandardScaler"], ["Categorical", "OneHotEncoder"]]},
                                            "LogisticRegression"]},
                        "promotion_min_events": 300, "promotion_window": 1000, "retrain_cooldown": 300},
        alerts={"cooldown_seconds": 100_000, "retry_initial_seconds": 0.1,
                "sinks": [{"type": "webhook", "url": f"{receiver.url}/driftd", "secret": {"env": "E2E_WEBHOOK_SECRET"}}]},
        registry={"dir": str(tmp_path / "registry"), "model_updated_topic": ""},
        state={"checkpoint_interval_seconds": 0.5})
    kafka = config["kafka"]
    sim = Simulation(n_events=8000, data_drift_at=4000, concept_drift_at=6000, label_delay=50,
                     predictions_topic=kafka["predictions_topic"], labels_topic=kafka["labels_topic"])
    records = list(sim.records())
    for i, bad in enumerate(BAD_EVENTS):  # dead letters, for their panel
        records.insert(100 + i * 1000, (kafka["predictions_topic"], b"fraud", bad))
    expected = (sum(1 for t, _, v in records if t == kafka["predictions_topic"] and v not in BAD_EVENTS),
                sum(1 for t, _, _ in records if t == kafka["labels_topic"]))

    processes: list[_Process] = []
    try:
        with running_daemon(config) as daemon:
            am_port, prom_port = _free_port(), _free_port()
            alertmanager = _Process("alertmanager", [
                alertmanager_bin, f"--config.file={_alertmanager_config(tmp_path, receiver.url)}",
                f"--storage.path={tmp_path / 'alertmanager-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address="], tmp_path / "alertmanager.log", f"http://127.0.0.1:{am_port}/-/ready")
            processes.append(alertmanager)
            rules = _test_rules(tmp_path)
            _ok(_run(promtool, "check", "rules", str(rules)))
            prometheus = _Process("prometheus", [
                prometheus_bin, f"--config.file={_prometheus_config(tmp_path, rules, daemon.http_port, am_port)}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                tmp_path / "prometheus.log", f"http://127.0.0.1:{prom_port}/-/ready")
            processes.append(prometheus)
            alertmanager.wait_ready()
            prometheus.wait_ready()
            prom = f"http://127.0.0.1:{prom_port}"

            # A scrape or two before the events, so that rates start from zero.
            wait_until(lambda: _api(prom, "/api/v1/query", query='up{job="driftd"} == 1')["result"],
                       timeout=15, what="Prometheus scraping driftd")
            produce(kafka_bootstrap, records)

            def processed():
                # A status taken while a batch holds the lock is the previous one (maybe empty).
                model = status(daemon).get("models", {}).get("fraud")
                return model and (model["processed"]["prediction"], model["processed"]["label"]) == expected

            wait_until(processed, timeout=60, what=f"{expected} events processed")

            # (2) The data-drift rule fires in Prometheus and reaches the webhook through
            # Alertmanager's driftd route (warning: the ml-platform receiver).
            def drift_notified():
                for path, body in receiver.notifications("/alertmanager/"):
                    for alert in body["alerts"]:
                        if alert["labels"]["alertname"] == "DriftdFeatureDrift" and alert["status"] == "firing":
                            return path, alert
                return None

            path, alert = wait_until(drift_notified, timeout=30, what="DriftdFeatureDrift at the webhook via Alertmanager")
            assert path == "/alertmanager/ml-platform", path
            assert alert["labels"]["model"] == "fraud" and alert["labels"]["severity"] == "warning", alert
            assert alert["labels"]["detector"] in {"psi", "ks", "cusum", "chisquare"}, alert
            assert alert["labels"]["feature"] in {"age", "country"}, alert  # the features the stream drifts
            assert alert["annotations"]["summary"].startswith("Data drift in model fraud"), alert
            assert re.search(r"Statistic [\d.e+-]+, threshold [\d.e+-]+\.", alert["annotations"]["description"]), alert

            # (1) Every dashboard query returns at least one series: first the model variable.
            models = _api(prom, "/api/v1/label/model/values", **{"match[]": "driftd_events_processed_total"})
            assert models == ["fraud"], models
            queries = _panel_queries("fraud")

            def empty_queries():
                missing = [(title, ref, expr) for title, ref, expr in queries
                           if not _api(prom, "/api/v1/query", query=expr)["result"]]
                return missing or None

            deadline = time.monotonic() + 20
            while (missing := empty_queries()) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not missing, "dashboard queries without data:\n" + "\n".join(f"  {t} [{r}]: {e}" for t, r, e in missing)

            # The scrape itself was clean.
            (target,) = _api(prom, "/api/v1/targets")["activeTargets"]
            assert target["health"] == "up" and not target["lastError"], target

            # (3) promtool check metrics is clean on the live scrape.
            text = get(daemon, "/metrics")[1].decode()
            result = _run(promtool, "check", "metrics", stdin=text)
            problems = (result.stdout + result.stderr).strip()
            assert result.returncode == 0 and not problems, f"promtool check metrics exited {result.returncode}:\n{problems}"

        # (4) driftd stops (leaving the block): DriftdDown fires, the Daemons row shows it,
        # and only the queries with no true value while it is down return nothing.
        def down_and_alerted():
            return (_api(prom, "/api/v1/query", query='up{job="driftd"} == 0')["result"]
                    and _api(prom, "/api/v1/query", query='ALERTS{alertname="DriftdDown", alertstate="firing"}')["result"])

        wait_until(down_and_alerted, timeout=20, what="driftd seen down and DriftdDown firing")
        down_queries = _panel_queries("fraud", {**GRAFANA_BUILTINS, "$__rate_interval": DOWN_RATE_INTERVAL})

        def empty_while_down():
            return sorted((title, ref) for title, ref, expr in down_queries
                          if not _api(prom, "/api/v1/query", query=expr)["result"])

        # Rates over DOWN_RATE_INTERVAL still see the last samples for a few seconds.
        deadline = time.monotonic() + 15
        while (empty := empty_while_down()) != UNKNOWN_WHILE_DOWN and time.monotonic() < deadline:
            time.sleep(0.5)
        assert empty == UNKNOWN_WHILE_DOWN, (
            f"with driftd down, {len(empty)} of {len(down_queries)} queries return nothing; unexpected: "
            f"{sorted(set(empty) - set(UNKNOWN_WHILE_DOWN))}, with data although unknown: "
            f"{sorted(set(UNKNOWN_WHILE_DOWN) - set(empty))}")
        (down,) = [expr for title, _, expr in down_queries if title == "driftd down"]
        assert [float(r["value"][1]) for r in _api(prom, "/api/v1/query", query=down)["result"]] == [1.0]
    finally:
        for process in reversed(processes):
            process.stop()
        receiver.close()
    assert receiver.notifications("/driftd"), "driftd's own webhook got no alert"
    elapsed = time.monotonic() - started
    assert elapsed < E2E_BUDGET_SECONDS, f"end-to-end test took {elapsed:.0f} s (budget {E2E_BUDGET_SECONDS} s)"
