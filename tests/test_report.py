"""The HTML drift report: what it holds, that it is self-contained, and that it works in a
real browser.

The browser test opens the report of a replay in headless Chromium (Debian's
``chromium`` package; installed here with apt-get when missing and the test runs as root
with apt-get available, else the test is skipped with the reason): the page must load
with no console message and no uncaught error, and its screenshot must not be blank.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest

from daemon.cli import main
from daemon.config import from_dict
from daemon.offline.recording import replay_document
from daemon.offline.replay import Replay, events
from daemon.stream.partition import PartitionState

from . import streams
from .daemon_harness import calibrated, daemon_config, get, processed, produce, running_daemon, status, wait_until

pytest.importorskip("plotly", reason="plotly is not installed (the report extra)")

from daemon.web import report  # noqa: E402 - after the skip above
from daemon.web.status import partition_models

CONFIG = {"kafka": {"predictions_topic": "predictions", "labels_topic": "labels"}, "models": {"m": {}},
          "model_defaults": {"reference_size": 1000, "window": 300, "stride": 50, "ert": 20_000, "label_ert": 20_000,
                             "decay_reference_size": 500, "decay_window": 300},
          "alerts": {"clear_after": 3, "cooldown_seconds": 0}}


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A replay of a stream with a data drift and an accuracy drop, and its document."""
    directory = tmp_path_factory.mktemp("report")
    path = directory / "events.jsonl"
    with open(path, "wb") as f:
        for _, _, value in streams.records(4500, "predictions", "labels"):
            f.write(value + b"\n")
        f.write(b"{not json\n")
    config = from_dict(CONFIG)
    result = Replay(config).run(events([(str(path), False)]))
    return directory, replay_document(result, config, [str(path)])


def test_the_report_holds_every_part_and_needs_no_network(replayed, tmp_path):
    _, document = replayed
    out = tmp_path / "report.html"
    report.write(document, str(out))
    page = out.read_text()
    for heading in ("Tests over event time", "Reference and current distributions",
                    "Performance against its baseline", "Label join health", "Alerts"):
        assert heading in page
    assert page.count("Plotly.newPlot") >= 4  # statistics, distributions, performance, label delay
    # plotly.js itself is in the page, once; nothing is loaded from elsewhere.
    assert len(re.findall(r"plotly\.js v\d", page)) == 1
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=\"?https?:", page)
    for alert in document["alerts"]:
        assert alert["id"] in page
    assert "not_json: 1" in page
    # The alerts name their model version; the performance figure has the realised and
    # the estimated accuracy, each against its baseline.
    assert "<th>model version</th><th>reason</th>" in page
    assert document["models"]["m"]["estimated_performance"]["accuracy"]["t"]
    for name in ("accuracy baseline", "accuracy estimated", "accuracy estimated baseline"):
        assert f'"name":"{name}"' in page, name


def test_a_document_of_an_earlier_driftd_with_one_baseline_is_still_drawn(replayed):
    _, document = replayed
    old = json.loads(json.dumps(document))
    model = old["models"]["m"]
    del model["estimated_performance"]
    accuracy = model["performance"]["accuracy"]
    accuracy["baseline"] = accuracy["baseline"][-1]
    del accuracy["model_version"]
    page = report.render(old)
    assert '"name":"accuracy baseline"' in page and '"name":"accuracy estimated"' not in page


def test_a_report_from_a_daemons_status(tmp_path):
    state = PartitionState(0, from_dict(CONFIG))
    status = {"models": partition_models(state), "dead_letters": {}}
    page = report.render(report.from_status(status, "http://127.0.0.1:9108"))
    assert "No model has seen an event yet" in page
    status = {"models": {"m": {"processed": {"prediction": 5, "label": 1}, "join": {"joined": 1},
                               "detectors": {"ks/x": {"statistic": 0.3, "threshold": 0.1, "drift": True}}}}}
    page = report.render(report.from_status(status, "http://127.0.0.1:9108"))
    assert "each test's last statistic against its threshold" in page and "From the running daemon at http://127.0.0.1:9108" in page


def test_a_report_from_a_running_daemon(kafka_bootstrap, unique_name, tmp_path, capsys):
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "state", models={"m": {}})
    config["model_defaults"] = CONFIG["model_defaults"]
    kafka = config["kafka"]
    with running_daemon(config) as daemon:
        wait_until(lambda: status(daemon)["ready"], timeout=30, what="the daemon ready")
        produce(kafka_bootstrap, streams.records(1500, kafka["predictions_topic"], kafka["labels_topic"], data_shift=None,
                                                 accuracy_drop=None))
        wait_until(lambda: calibrated(daemon, "m") and processed(daemon, "m")[0] == 1500, timeout=60,
                   what="the model's tests deciding")
        out = tmp_path / "live.html"
        assert main(["report", "--url", f"http://127.0.0.1:{daemon.http_port}", "--out", str(out)]) == 0
        code, served = get(daemon, "/report")  # the daemon serves the same report itself
    assert code == 200 and b"Model m" in served
    page = out.read_text()
    assert "Model m" in page and "each test's last statistic against its threshold" in page
    assert "<td>predictions</td>" not in page and "<th>predictions</th><td>1500</td>" in page


def test_the_daemons_report_page(monkeypatch):
    status = {"models": {"m": {"processed": {"prediction": 5, "label": 1}, "join": {"joined": 1}, "detectors": {}}}}
    code, body, content_type = report.http_page(status)
    assert code == 200 and content_type.startswith("text/html") and b"Model m" in body
    monkeypatch.setitem(__import__("sys").modules, "plotly", None)  # as if not installed
    monkeypatch.setitem(__import__("sys").modules, "plotly.graph_objects", None)
    code, body, _ = report.http_page(status)
    assert code == 501 and b"pip install -e '.[report]'" in body


def test_the_report_command(replayed, tmp_path, capsys):
    directory, document = replayed
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps(document))
    out = tmp_path / "r.html"
    assert main(["report", "--from-replay", str(summary), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "--from-replay", str(tmp_path / "none.json"), "--out", str(out)]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["report", "--url", "http://127.0.0.1:9", "--out", str(out)]) == 1
    assert "no driftd /status" in capsys.readouterr().err
    # A file that is not a summary is named as such (a JSON list gave a traceback, {} an
    # empty report, the alerts' JSON Lines "Extra data"), and the summary is never overwritten.
    for text, words in (("[1]", "is not a 'driftd replay --summary' document"),
                        ("{}", "is not a 'driftd replay --summary' document"),
                        ('{"id": 1}\n{"id": 2}\n', "not its alerts"),
                        ('{"models": {"m": {"status": 3}}}', "as this driftd writes it")):
        wrong = tmp_path / "wrong.json"
        wrong.write_text(text)
        assert main(["report", "--from-replay", str(wrong), "--out", str(out)]) == 1
        assert words in capsys.readouterr().err, text
    assert main(["report", "--from-replay", str(summary), "--out", str(summary)]) == 1
    assert "is also an input" in capsys.readouterr().err and json.loads(summary.read_text()) == document


# -- in a real browser ----------------------------------------------------------------------------

def _chromium() -> str:
    """The Chromium binary, installed with apt-get if missing (and possible); else skip with the reason."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("DRIFTD_NO_INSTALL"):
        pytest.skip("chromium is not installed and DRIFTD_NO_INSTALL forbids installing it")
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as root): "
                    "apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"chromium could not be installed ({' '.join(command)} exited {done.returncode}: "
                        f"{done.stderr.strip()[-300:]})")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


# Collects uncaught errors, rejected promises and console messages into the page itself,
# where --dump-dom reads them after the page has run.
_PROBE = """<script>
window.__driftdProblems = [];
window.addEventListener("error", e => window.__driftdProblems.push("error: " + e.message));
window.addEventListener("unhandledrejection", e => window.__driftdProblems.push("rejection: " + e.reason));
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__driftdProblems.push(level + ": " + args.join(" ")); original(...args); };
}
window.addEventListener("load", () => setTimeout(() => {
  const out = document.createElement("pre");
  out.id = "driftd-probe";
  out.textContent = JSON.stringify({problems: window.__driftdProblems,
                                    plots: document.querySelectorAll(".js-plotly-plot .main-svg").length});
  document.body.appendChild(out);
}, 500));
</script>"""


def _browse(chromium: str, page, *options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", *options, page.as_uri()],
        capture_output=True, text=True, timeout=180)


def test_the_report_in_headless_chromium(replayed, tmp_path):
    chromium = _chromium()
    _, document = replayed
    page = tmp_path / "report.html"
    report.write(document, str(page))

    # 1. Loads with no uncaught error and no console message, every plot drawn.
    probed = tmp_path / "probed.html"
    probed.write_text(page.read_text().replace("<head>", "<head>" + _PROBE, 1))
    run = _browse(chromium, probed, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="driftd-probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the page did not finish loading; stderr: {run.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["problems"] == []
    assert probe["plots"] >= 4, probe
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    # 2. Its screenshot is not blank: many colours, not one background.
    shot = tmp_path / "shot.png"
    run = _browse(chromium, page, "--window-size=1200,1600", f"--screenshot={shot}")
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = _png_rgb(shot.read_bytes())
    assert pixels.shape[:2] == (1600, 1200)
    colours = np.unique(pixels.reshape(-1, 3), axis=0).shape[0]
    not_background = float(np.mean(np.any(pixels != pixels[0, 0], axis=2)))
    assert colours > 50 and not_background > 0.05 and pixels.std() > 10, (colours, not_background, pixels.std())
    assert [line for line in run.stderr.splitlines() if ":CONSOLE" in line] == []


def _png_rgb(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG as an (height, width, 3) array (a small decoder: the
    tests need no imaging library)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, width * bpp + 1)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    previous = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 2:
            row = (line + previous) & 0xFF
        elif kind == 1:  # Sub: a running sum per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 0xFF
        else:  # Average or Paeth: each byte depends on the one before it
            row = np.zeros_like(line)
            for x in range(line.size):
                a = row[x - bpp] if x >= bpp else 0
                b = previous[x]
                if kind == 3:
                    row[x] = (line[x] + (a + b) // 2) & 0xFF
                else:
                    c = previous[x - bpp] if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    row[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out[y] = row
        previous = row
    return out.reshape(height, width, bpp)[:, :, :3]


def test_the_alerts_are_listed_in_event_time_and_versions_are_not_joined_by_a_line():
    alerts = [{"status": "firing", "detector": "ks", "feature": "x", "event_time": 1_700_000_300.0, "id": "later"},
              {"status": "firing", "detector": "psi", "feature": "x", "event_time": 1_700_000_100.0, "id": "earlier"}]
    table = report._alerts_table(alerts)
    assert table.index("earlier") < table.index("later")
    p = {"t": [1.0, 2.0, 3.0], "value": [0.9, 0.8, 0.7], "baseline": [0.9, 0.9, 0.85], "model_version": ["1", "1", "2"]}
    t, values, versions, baseline = report._broken_at_versions(p)
    assert values == [0.9, 0.8, None, 0.7] and baseline == [0.9, 0.9, None, 0.85] and versions[2] is None
    assert t[2] is None and len(t) == 4


def test_the_decay_tests_line_breaks_at_a_version_change_too():
    performance = {"accuracy": {"t": [1.0, 2.0, 3.0], "value": [0.9, 0.8, 0.9], "baseline": [0.9, 0.9, 0.88],
                                "model_version": ["1", "1", "2"]}}
    assert report._versions_at([1.0, 2.0, 3.0], performance["accuracy"]) == ["1", "1", "2"]
    decay = {"decay/accuracy": {"t": [1.0, 2.0, 3.0], "statistic": [1.0, 5.0, -2.0], "threshold": [4.0, 4.0, 4.1],
                                "drift": [False, True, False]}}
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = report._performance_figure(performance, {}, decay, [], go, make_subplots)
    (z,) = [trace for trace in fig.data if trace.name == "z"]
    assert list(z.y) == [1.0, 5.0, None, -2.0]


def test_the_learners_are_in_the_report(tmp_path, monkeypatch):
    """A new user's finding: nothing of the learners was in a replay's output. The report
    has their table: scores, events learned, failures with the last one, retrains."""
    monkeypatch.delenv("DRIFTD_REGISTRY_KEY", raising=False)
    path = tmp_path / "events.jsonl"
    with open(path, "wb") as f:
        for _, _, value in streams.records(4500, "predictions", "labels"):
            f.write(value + b"\n")
    settings = {**CONFIG, "models": {"m": {"learners": {"nb": ["GaussianNB"], "tree": ["HoeffdingTreeClassifier"]}}}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(settings))
    out = tmp_path / "report.html"
    assert main(["replay", str(path), "--config", str(config_path), "--report", str(out), "--quiet"]) == 0
    page = out.read_text()
    assert "<h3>Learners</h3>" in page and "champion (the deployed model)" in page
    assert re.search(r"<td>nb</td><td>[^<]*</td><td>0</td><td>4,500</td><td>TypeError", page), page[-3000:]
    assert re.search(r"<td>tree</td><td>0\.\d+</td><td>4,500</td><td>0</td>", page)


def test_a_later_version_with_its_reference_incomplete_says_why_there_are_no_distributions(tmp_path):
    """The last version's reference not complete: the section said "the reference is not
    complete, or the report comes from /status", though the earlier version's tests ran."""
    path = tmp_path / "e.jsonl"
    with open(path, "wb") as f:
        for i, (_, _, value) in enumerate(streams.records(2000, "predictions", "labels")):
            event = json.loads(value)
            if "prediction" in event:
                event["model_version"] = "1" if i < 3000 else "2"
            f.write(json.dumps(event).encode() + b"\n")
    config = from_dict(CONFIG)
    document = replay_document(Replay(config).run(events([(str(path), False)])), config, [str(path)])
    page = report.render(document)
    assert "the reference of model version 2 is not complete, so its tests have not run. The earlier versions&#x27; " \
           "tests are in the series above" in page
    status = {"models": {"m": {**document["models"]["m"]["status"]}}}
    assert "Not available from a running daemon&#x27;s /status" in report.render(report.from_status(status))
