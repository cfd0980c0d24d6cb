"""The HTML drift report: one self-contained file that works offline.

Per model: each test's statistic against its threshold over event time, with the tests'
drift decisions and the alerts marked; the reference against the current distribution of
each watched column (and the window at its test's first detection); the performance
metric at each decay test against its baseline (realised, and estimated before the labels
come), with the decay test's state; the alerts with their model version and the reason an
episode ended; the label join's
health (join outcomes, label delays). Drawn with plotly (the ``report``
extra), whose JavaScript is embedded once in the page: no network is needed
to open it.

Input: the JSON document of a replay (:func:`daemon.offline.recording.replay_document`,
``driftd replay --summary``) or one built from a running daemon's ``/status``
(:func:`from_status`: the tests' current state, no history). ``driftd report`` writes
either; :func:`render` returns the page as a string (what a ``/report`` route serves).
"""

from __future__ import annotations

import bisect
import datetime as dt
import html
import json
import math
import sys
from collections import Counter

REPORT_EXTRA = "pip install -e '.[report]' in driftd's checkout"
#: Points per drawn series at most (decisions are thinned evenly; drift decisions are kept).
MAX_POINTS = 2000


class ReportError(Exception):
    """The report cannot be made (plotly missing, an unreadable input)."""


def _plotly():
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        from plotly.subplots import make_subplots
    except ImportError:
        raise ReportError(f"the HTML report needs plotly: {REPORT_EXTRA}") from None
    return go, pio, make_subplots


def write(document: dict, path: str) -> None:
    """Render ``document`` and write it to ``path`` (UTF-8)."""
    _write_page(render(document), path)


def _write_page(page: str, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)


def render(document: dict) -> str:
    """The report page of ``document`` (see the module docs) as one HTML string."""
    go, pio, make_subplots = _plotly()
    figures = _Figures(pio)
    models = document.get("models") or {}
    alerts = document.get("alerts") or []
    source = document.get("source") or {}
    parts = [_HEAD, f"<h1>driftd drift report</h1><p class=meta>{html.escape(_describe(source))}</p>"]
    dead = document.get("dead_letters") or {}
    parts.append("<p>Dead letters: " + (", ".join(f"{html.escape(str(r))}: {n}" for r, n in sorted(dead.items()))
                                        if dead else "none") + "</p>")
    if not models:
        parts.append("<p>No model has seen an event yet.</p>")
    parts.append("<nav>" + " · ".join(f'<a href="#model-{html.escape(n)}">{html.escape(n)}</a>' for n in models) + "</nav>")
    for name, model in models.items():
        model_alerts = [a for a in alerts if a.get("model") == name]
        parts.append(_model_section(name, model, model_alerts, go, make_subplots, figures))
    parts.append("</body></html>")
    return "\n".join(parts)


class _Figures:
    """Figures to HTML, plotly.js embedded with the first one only."""

    def __init__(self, pio):
        self.pio = pio
        self.first = True

    def html(self, figure) -> str:
        out = self.pio.to_html(figure, include_plotlyjs=self.first, full_html=False,
                               config={"displaylogo": False, "responsive": True})
        self.first = False
        return out


def _model_section(name: str, model: dict, alerts: list, go, make_subplots, figures: _Figures) -> str:
    status = model.get("status") or {}
    processed = status.get("processed") or {}
    out = [f'<section id="model-{html.escape(name)}"><h2>Model {html.escape(name)}</h2>',
           "<table class=facts>" + "".join(
               f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in (
                   ("task", model.get("task") or "?"),
                   ("predictions", processed.get("prediction", "?")), ("labels", processed.get("label", "?")),
                   ("model version", status.get("version")), ("reference complete", status.get("reference_complete")),
                   ("tests waiting for thresholds", status.get("uncalibrated_tests")),
                   ("alerts", ", ".join(f"{n} {status_}" for status_, n in Counter(a["status"] for a in alerts).items())
                    or "none"),
                   ("tests not run", ", ".join(f"{k} ({v})" for k, v in (status.get("skipped_tests") or {}).items()) or "none"),
                   ("untestable features", ", ".join(f"{k} ({v})" for k, v in (status.get("untestable_features") or {}).items()) or "none"),
               )) + "</table>"]
    out.append(_alerts_table(alerts))
    series = model.get("series") or {}
    out.append("<h3>Tests over event time</h3>")
    if series:
        out.append(figures.html(_series_figure(series, alerts, go, make_subplots)))
    else:
        detectors = status.get("detectors") or {}
        if detectors:
            out.append("<p>From a running daemon: each test's last statistic against its threshold "
                       "(replay a file for the history).</p>")
            out.append(figures.html(_state_figure(detectors, go)))
        else:
            out.append("<p>No test has decided yet (the reference is still being collected).</p>")
    distributions = model.get("distributions") or {}
    out.append("<h3>Reference and current distributions</h3>")
    if distributions:
        out.append(figures.html(_distribution_figure(distributions, go, make_subplots)))
    else:
        out.append(f"<p>{html.escape(_no_distributions(model, status))}</p>")
    shares = ((status.get("detectors") or {}).get("reconstruction/<all>") or {}).get("contributions")
    if shares:
        out.append("<h3>Multivariate drift: each feature's share of the reconstruction error</h3><table>" + "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{v:.1%}</td></tr>"
            for k, v in sorted(shares.items(), key=lambda kv: -kv[1])) + "</table>")
    out.append("<h3>Performance against its baseline</h3>")
    performance = model.get("performance") or {}
    estimated = model.get("estimated_performance") or {}
    decay = {k: v for k, v in series.items() if k.startswith("decay/")}
    if performance or estimated or decay:
        out.append(figures.html(_performance_figure(performance, estimated, decay, alerts, go, make_subplots)))
    else:
        out.append("<p>No labelled events have been tested yet.</p>")
    if status.get("learning"):
        out.append(_learning_table(status["learning"]))
    out.append("<h3>Label join health</h3>")
    out.append(_join_table(model.get("join") or status.get("join") or {}))
    delay = model.get("label_delay")
    if delay and sum(delay["counts"]):
        out.append(figures.html(_delay_figure(delay, go)))
    out.append("</section>")
    return "\n".join(out)


def _no_distributions(model: dict, status: dict) -> str:
    """Why a model's section has no distributions: say which, a version's reference that
    is not complete hid the earlier versions' tests behind a generic line."""
    if "series" not in model:
        return "Not available from a running daemon's /status (replay a file for the distributions)."
    if status.get("reference_complete") is False:
        why = f"Not available: the reference of model version {status.get('version')} is not complete, so its tests have not run."
        if status.get("version_changes"):
            why += (" The earlier versions' tests are in the series above; their distributions ended with them"
                    " (a replay that stops before the change shows them).")
        return why
    return "Not available: no test of this model bins its values (PSI, chi-square, KS)."


def _alerts_table(alerts: list) -> str:
    if not alerts:
        return "<p>No alerts.</p>"
    # In event-time order (a replay lists them by poll and partition: an order that moves
    # with the batch size), ties by test and column.
    alerts = sorted(alerts, key=lambda a: (a.get("event_time") or 0, a.get("detector", ""), a.get("feature", ""),
                                           a.get("status", "")))
    rows = "".join(
        f"<tr class={html.escape(a.get('status', ''))}><td>{html.escape(a.get('status', ''))}</td>"
        f"<td>{html.escape(a.get('detector') or a.get('kind', ''))}</td><td>{html.escape(a.get('feature', ''))}</td>"
        f"<td>{_iso(a.get('event_time'))}</td><td>{_num((a.get('detail') or {}).get('statistic'))}</td>"
        f"<td>{_num((a.get('detail') or {}).get('threshold'))}</td>"
        f"<td>{html.escape(str((a.get('detail') or {}).get('model_version') or ''))}</td>"
        f"<td>{html.escape(str(_reason(a.get('detail') or {})))}</td>"
        f"<td><code>{html.escape(a.get('id', ''))}</code></td></tr>"
        for a in alerts)
    return ("<h3>Alerts</h3><table class=alerts><tr><th>status</th><th>test</th><th>column</th><th>event time (UTC)</th>"
            f"<th>statistic</th><th>threshold</th><th>model version</th><th>reason</th><th>id</th></tr>{rows}</table>")


def _reason(detail: dict) -> str:
    """A drift alert's reason; a promotion's learner and the gate's figures."""
    if detail.get("learner"):
        m = detail.get("metrics") or {}
        return (f"{detail['learner']} promoted: {_num(m.get('challenger'))} vs {_num(m.get('champion'))}, "
                f"p = {_num(m.get('p_value'))} over {m.get('events')} labelled events")
    return detail.get("reason") or ""


def _learning_table(learning: dict) -> str:
    """The model's learners (``/status`` ``learning``): each one's recent score, events
    learned, failures and the last one; the retrains and the promotion gate's decisions."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_num(lr.get('score'))}</td><td>{lr.get('learned', 0):,}</td>"
        f"<td>{lr.get('errors', 0):,}</td><td>{html.escape(str(lr.get('last_error') or ''))[:200]}</td></tr>"
        for name, lr in (learning.get("learners") or {}).items())
    retrains = ", ".join(f"{k} {v:,}" for k, v in sorted((learning.get("retrains") or {}).items())) or "none"
    failed = sum((learning.get("failed_retrains") or {}).values())
    if failed:
        retrains += f"; {failed:,} failed (see the last errors)"
    gate = ", ".join(f"{k} {v:,}" for k, v in sorted((learning.get("gate") or {}).items())) or "none"
    return ("<h3>Learners</h3><table class=facts><tr><th>learner</th><th>recent score</th><th>learned</th><th>errors</th>"
            f"<th>last error</th></tr><tr><td>champion (the deployed model)</td><td>{_num(learning.get('champion_score'))}"
            f"</td><td></td><td></td><td></td></tr>{rows}</table><p>Retrains: {html.escape(retrains)}. Promotion gate: "
            f"{html.escape(gate)}; last promoted: {html.escape(str(learning.get('promoted') or 'none'))}.</p>")


def _join_table(join: dict) -> str:
    if not join:
        return "<p>No label join counts.</p>"
    total = sum(join.values()) or 1
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td><td>{100 * v / total:.1f}%</td></tr>" for k, v in join.items())
    return f"<table class=facts><tr><th>outcome</th><th>events</th><th>share</th></tr>{rows}</table>"


def _ordered(series: dict, alerts: list) -> list[str]:
    """Series keys: those with alerts first, then by name."""
    alerted = {f"{a.get('detector')}/{a.get('feature')}" for a in alerts}
    return sorted(series, key=lambda k: (k not in alerted, k))


def _series_figure(series: dict, alerts: list, go, make_subplots):
    keys = _ordered(series, alerts)
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.6 / len(keys)),
                        subplot_titles=[k.replace("/", " · ") for k in keys])
    for row, key in enumerate(keys, 1):
        s = _thin(series[key])
        t = [_iso(x) for x in s["t"]]
        show = row == 1
        fig.add_trace(go.Scatter(x=t, y=s["statistic"], mode="lines", name="statistic", line={"color": "#1f77b4"},
                                   legendgroup="statistic", showlegend=show), row=row, col=1)
        fig.add_trace(go.Scatter(x=t, y=s["threshold"], mode="lines", name="threshold",
                                   line={"color": "#7f7f7f", "dash": "dash"}, legendgroup="threshold", showlegend=show),
                      row=row, col=1)
        drift = [i for i, d in enumerate(s["drift"]) if d]
        if drift:
            fig.add_trace(go.Scatter(x=[t[i] for i in drift], y=[s["statistic"][i] for i in drift], mode="markers",
                                       name="drift decision", marker={"color": "#d62728", "size": 4},
                                       legendgroup="drift", showlegend=show), row=row, col=1)
        detector, feature = key.split("/", 1)
        mine = [a for a in alerts if a.get("detector") == detector and a.get("feature") == feature]
        for status, symbol, color in (("firing", "triangle-up", "#d62728"), ("resolved", "triangle-down", "#2ca02c")):
            marks = [a for a in mine if a.get("status") == status]
            if marks:
                fig.add_trace(go.Scatter(
                    x=[_iso(a["event_time"]) for a in marks], y=[(a.get("detail") or {}).get("statistic") for a in marks],
                    mode="markers", name=f"alert {status}", marker={"symbol": symbol, "size": 12, "color": color},
                    legendgroup=f"alert-{status}", showlegend=show,
                    text=[a.get("id") for a in marks], hovertemplate="%{x}<br>alert " + status + " %{text}<extra></extra>"),
                    row=row, col=1)
    fig.update_layout(height=max(340, 200 * len(keys)), margin={"l": 50, "r": 20, "t": 80, "b": 30},
                      legend={"orientation": "h", "y": 1.0, "yanchor": "top", "yref": "container"}, xaxis_title=None)
    # Times under every chart, not the last one only: a reader scrolls to one detector.
    fig.update_xaxes(showticklabels=True)
    fig.update_xaxes(title_text="event time (UTC)", row=len(keys), col=1)
    return fig


def _state_figure(detectors: dict, go):
    keys = sorted(detectors)
    ratio = []
    for k in keys:
        d = detectors[k]
        stat, threshold = d.get("statistic"), d.get("threshold")
        ratio.append(stat / threshold if stat is not None and threshold else None)
    colors = ["#d62728" if detectors[k].get("drift") else "#1f77b4" for k in keys]
    fig = go.Figure(go.Bar(x=ratio, y=[k.replace("/", " · ") for k in keys], orientation="h", marker={"color": colors}))
    fig.add_vline(x=1.0, line_dash="dash", line_color="#7f7f7f")
    fig.update_layout(height=max(300, 24 * len(keys)), xaxis_title="statistic / threshold (1: the threshold)",
                      margin={"l": 200, "r": 20, "t": 20, "b": 40})
    return fig


def _distribution_figure(distributions: dict, go, make_subplots):
    distributions = {n: _with_detection(d) for n, d in distributions.items()}
    names = sorted(distributions, key=lambda f: ("at_detection" not in distributions[f], f))
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    titles = [f"{n} ({distributions[n]['test']} bins)" + (
        f", detected {_iso(distributions[n]['detection_time'])[:19]}" if distributions[n].get("detection_time")
        else "") for n in names]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                        vertical_spacing=min(0.12, 0.5 / rows))
    for i, name in enumerate(names):
        d = distributions[name]
        row, col = i // cols + 1, i % cols + 1
        kinds = [("reference", "#7f7f7f", "reference"), ("current", "#1f77b4", "window at the end")]
        if d.get("at_detection"):
            kinds.append(("at_detection", "#d62728", "window at the test's first detection"))
        for field, color, label in kinds:
            counts = d.get(field) or []
            total = sum(counts) or 1
            fig.add_trace(go.Bar(x=d["bins"], y=[c / total for c in counts], name=label, marker={"color": color},
                                 legendgroup=field, showlegend=i == 0 or (field == "at_detection" and name == names[0])),
                          row=row, col=col)
    fig.update_layout(barmode="group", height=300 * rows, margin={"l": 40, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom"})
    fig.update_yaxes(tickformat=".0%")
    return fig


def _with_detection(d: dict) -> dict:
    """A distribution of a summary written before ``at_detection``: its ``at_alert`` (the
    window after the batch of the column's first alert) drawn in that place."""
    if "at_alert" in d and "at_detection" not in d:
        return {**d, "at_detection": d["at_alert"], "detection_time": d.get("alert_time")}
    return d


#: How each kind of metric series is drawn: (name suffix, value colour, baseline dash).
_METRIC_LINES = (("", "#1f77b4", "dash"), (" estimated", "#ff7f0e", "dot"))


def _performance_figure(performance: dict, estimated: dict, decay: dict, alerts: list, go, make_subplots):
    metrics = sorted(set(performance) | set(estimated) | {k.split("/", 1)[1] for k in decay})
    titles = []
    for m in metrics:
        titles += [f"{m} at each decay test (window) against its baseline", f"decay test of {m}: z against its threshold"]
    fig = make_subplots(rows=len(metrics), cols=2, subplot_titles=titles)
    for row, metric in enumerate(metrics, 1):
        for (suffix, colour, dash), kept in zip(_METRIC_LINES, (performance, estimated)):
            p = kept.get(metric)
            if not p or not p["t"]:
                continue
            t, values, versions, baseline = _broken_at_versions(p)
            fig.add_trace(go.Scatter(x=t, y=values, mode="lines", name=f"{metric}{suffix}", line={"color": colour},
                                     text=versions, hovertemplate="%{x}<br>%{y}<br>model version %{text}<extra></extra>"
                                     if versions else None), row=row, col=1)
            if isinstance(baseline, list):  # one a test: a new model version has its own
                fig.add_trace(go.Scatter(x=t, y=baseline, mode="lines", line={"color": "#7f7f7f", "dash": dash, "shape": "hv"},
                                         name=f"{metric}{suffix} baseline"), row=row, col=1)
            elif baseline is not None:  # a document of an earlier driftd: one baseline
                fig.add_trace(go.Scatter(x=[t[0], t[-1]], y=[baseline] * 2, mode="lines", name=f"{metric}{suffix} baseline",
                                         line={"color": "#7f7f7f", "dash": dash}), row=row, col=1)
        s = decay.get(f"decay/{metric}")
        if s:
            s = _thin(s)
            # Broken where the model version changes, as the metric's line beside it.
            t, z, _, threshold = _broken_at_versions({"t": s["t"], "value": s["statistic"], "baseline": s["threshold"],
                                                      "model_version": _versions_at(s["t"], performance.get(metric))})
            fig.add_trace(go.Scatter(x=t, y=z, mode="lines", name="z", line={"color": "#9467bd"}),
                          row=row, col=2)
            fig.add_trace(go.Scatter(x=t, y=threshold, mode="lines", name="threshold",
                                       line={"color": "#7f7f7f", "dash": "dash"}), row=row, col=2)
            marks = [a for a in alerts if a.get("detector") == "decay" and a.get("feature") == metric]
            if marks:
                fig.add_trace(go.Scatter(
                    x=[_iso(a["event_time"]) for a in marks], y=[(a.get("detail") or {}).get("statistic") for a in marks],
                    mode="markers", name="decay alerts",
                    marker={"symbol": ["triangle-up" if a["status"] == "firing" else "triangle-down" for a in marks],
                            "color": ["#d62728" if a["status"] == "firing" else "#2ca02c" for a in marks], "size": 12}),
                    row=row, col=2)
    fig.update_layout(height=320 * len(metrics), margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def _versions_at(times: list, p: dict | None) -> list | None:
    """The model version of the decay test at each of ``times``, read from the metric's
    points ``p`` (one a test, with their versions), or None where they do not say."""
    if not p or not p.get("model_version") or p["t"] != sorted(p["t"]):
        return None
    return [p["model_version"][max(0, bisect.bisect_right(p["t"], x) - 1)] for x in times]


def _broken_at_versions(p: dict) -> tuple[list, list, list | None, object]:
    """A metric series' times (ISO), values, versions and baseline, with a gap (None) where
    the model version changes: no line is drawn across the time no test of either ran."""
    versions, baseline = p.get("model_version"), p.get("baseline")
    t, values = [_iso(x) for x in p["t"]], list(p["value"])
    if not versions:
        return t, values, versions, baseline
    out = ([], [], [], [])
    for i, row in enumerate(zip(t, values, versions, baseline)):
        if i and versions[i] != versions[i - 1]:
            for column in out:
                column.append(None)
        for column, value in zip(out, row):
            column.append(value)
    return out


def _delay_figure(delay: dict, go):
    labels = [f"≤ {_duration(b)}" if b is not None else "longer" for b in delay["buckets"]]
    fig = go.Figure(go.Bar(x=labels, y=delay["counts"], marker={"color": "#1f77b4"}))
    n = sum(delay["counts"])
    fig.update_layout(title=f"label delay (event time), mean {_duration(delay['sum_seconds'] / n)} over {n} joins",
                      height=280, margin={"l": 40, "r": 20, "t": 50, "b": 40}, yaxis_title="joined events")
    return fig


def _thin(s: dict) -> dict:
    """At most about :data:`MAX_POINTS` points of a series, evenly; drift decisions kept."""
    n = len(s["t"])
    if n <= MAX_POINTS:
        return s
    step = math.ceil(n / MAX_POINTS)
    keep = [i for i in range(n) if i % step == 0 or s["drift"][i] or i == n - 1]
    return {k: [v[i] for i in keep] for k, v in s.items()}


def _iso(t) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(float(t), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _num(x) -> str:
    return "" if x is None else f"{x:.4g}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}" if seconds % size == 0 else f"{seconds / size:.1f} {unit}"
    return f"{seconds:g} s" if seconds == int(seconds) else f"{seconds:.1f} s"


def _describe(source: dict) -> str:
    if source.get("kind") == "replay":
        return (f"Replay of {', '.join(source.get('files') or [])}: {source.get('events', 0):,} events. "
                "Times are event times (UTC).")
    if source.get("kind") == "status":
        return f"From the running daemon at {source.get('url')}, {source.get('at')} (current state, no history)."
    return ""


def from_status(status: dict, url: str = "") -> dict:
    """A report document from a daemon's ``/status``: the tests' current state and the
    counters, no history."""
    models = {}
    for name, model in (status.get("models") or {}).items():
        if not isinstance(model, dict):
            continue
        models[name] = {"status": model, "join": model.get("join") or {}, "task": model.get("task")}
    return {"models": models, "dead_letters": status.get("dead_letters") or {}, "alerts": [],
            "source": {"kind": "status", "url": url,
                       "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}}


def http_page(status: dict) -> tuple[int, bytes, str]:
    """(HTTP status, body, content type) of the daemon's ``/report`` route: the report of
    its ``status`` (from :func:`from_status`), or 501 naming the extra if plotly is missing."""
    try:
        return 200, render(from_status(status, "this daemon")).encode(), "text/html; charset=utf-8"
    except ReportError as e:
        return 501, f"{e}\n".encode(), "text/plain; charset=utf-8"


def command(args) -> int:
    """``driftd report``: exit 0 written, 1 on a failure (named on stderr)."""
    try:
        if args.from_replay:
            from daemon.cli import output_clash

            clash = output_clash({"--out": args.out}, [args.from_replay])
            if clash:
                raise ReportError(clash)
            try:
                with open(args.from_replay, encoding="utf-8") as f:
                    document = json.load(f)
            except (OSError, ValueError) as e:
                hint = " (one JSON document is expected: the --summary of 'driftd replay', not its alerts)" \
                    if isinstance(e, ValueError) and "Extra data" in str(e) else ""
                raise ReportError(f"cannot read {args.from_replay}: {e}{hint}") from None
            if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
                raise ReportError(f"{args.from_replay} is not a 'driftd replay --summary' document (it has no "
                                  "\"models\" object): give the file written by --summary")
            try:
                page = render(document)
            except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
                raise ReportError(f"{args.from_replay} is not a 'driftd replay --summary' document as this driftd "
                                  f"writes it ({type(e).__name__}: {e}): give the file written by --summary") from None
            _write_page(page, args.out)
            print(f"driftd report: written to {args.out}", file=sys.stderr)
            return 0
        else:
            from daemon.web.status import fetch_status

            status, why = fetch_status(args.url, 5.0)
            if status is None:
                raise ReportError(f"no driftd /status at {args.url}: {why}")
            document = from_status(status, args.url)
        write(document, args.out)
    except ReportError as e:
        print(f"driftd report: {e}", file=sys.stderr)
        return 1
    print(f"driftd report: written to {args.out}", file=sys.stderr)
    return 0


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>driftd drift report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }
tr.firing td:first-child { color: #d62728; font-weight: bold; } tr.resolved td:first-child { color: #2ca02c; }
code { font-size: 0.85em; }
</style></head><body>"""
