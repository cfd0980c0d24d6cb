"""What a replay keeps for the report (:mod:`daemon.web.report`): every decision of every
detector (event time, statistic, threshold, drift), each model's decay metrics at each of
their tests against their baseline (realised, and estimated before the labels), the
reference and window distributions of the data tests at
the end and at the first detection of the test drawn, and the final counters
(processed, join outcomes, label delays, dead letters); :func:`replay_document` puts them
in one JSON document with the alerts.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from daemon.config import Config
from daemon.stream.estimation import NAME as ESTIMATED_DECAY
from daemon.stream.join import OUTCOMES
from daemon.stream.labels import DECAY
from daemon.web.status import partition_models


class Recorder:
    """What the report draws, kept as replay goes (plain lists, JSON-able at the end).

    ``series[model]["detector/feature"]``: lists ``t`` (event time, s), ``statistic``,
    ``threshold``, ``drift`` of every decision; ``performance[model][metric]`` (the decay
    tests) and ``estimated[model][metric]`` (the estimate's decay test): lists ``t`` (the
    event time of the test), ``value`` (the metric over its window), ``baseline`` (over its
    reference: it changes with the model version) and ``model_version``, one entry per test,
    so a function of the input alone (not of the batches);
    ``distributions[model][feature]``: bin labels, reference counts, window counts at the
    end (``current``) and at the test's first detection (``at_detection``, with its event
    time ``detection_time``: see :func:`_distribution`).
    """

    def __init__(self):
        self.series: dict = {}
        self.performance: dict = {}
        self.estimated: dict = {}
        # (model, test, feature) -> [(position, event time)] of its entries into drift.
        self.entries: dict = {}

    def decisions(self, model: str, observations: list) -> None:
        series = self.series.setdefault(model, {})
        for o in observations:
            if o.drift is None:
                continue  # the end of a test gone with a model version: no decision
            if o.detector in _METRIC_TESTS:
                self._metric(getattr(self, _METRIC_TESTS[o.detector]), model, o)
            s = series.get(f"{o.detector}/{o.feature}")
            if s is None:
                s = series[f"{o.detector}/{o.feature}"] = {"t": [], "statistic": [], "threshold": [], "drift": []}
            if o.drift and not (s["drift"] and s["drift"][-1]) and o.detector in _BINNED:
                entries = self.entries.setdefault((model, o.detector, o.feature), [])
                if len(entries) < MAX_ENTRIES:
                    entries.append((o.position, o.event_time))
            s["t"].append(o.event_time)
            s["statistic"].append(_finite(o.detail.get("statistic")))
            s["threshold"].append(_finite(o.detail.get("threshold")))
            s["drift"].append(bool(o.drift))
            if len(s["t"]) > MAX_SERIES:
                _halve(s)

    def detection_time(self, model: str, test: str, feature: str, position: int) -> float | None:
        """Event time of the entry into drift of ``test`` on ``feature`` at ``position``
        (the latest such: a later model version's tests count positions from 1 again)."""
        times = [t for p, t in self.entries.get((model, test, feature), ()) if p == position]
        return times[-1] if times else None

    @staticmethod
    def _metric(kept: dict, model: str, o) -> None:
        """A decay test's decision as a point of its metric (the decision's detail has it)."""
        p = kept.setdefault(model, {}).setdefault(o.feature, {"t": [], "value": [], "baseline": [], "model_version": []})
        p["t"].append(o.event_time)
        p["value"].append(_finite(o.detail.get("current")))
        p["baseline"].append(_finite(o.detail.get("baseline")))
        p["model_version"].append(o.detail.get("model_version"))
        if len(p["t"]) > MAX_SERIES:
            _halve(p)

    def finish(self, states: dict) -> dict:
        """The recording, with the final distributions and counters: see :func:`summary`."""
        return summary(states, self)


#: Decisions kept per series: beyond, every other one is dropped (drift decisions are kept),
#: so that a long replay's recording stays small (a test that decides at every labelled
#: event, as ADWIN does, would otherwise keep millions).
MAX_SERIES = 20_000
#: Entries into drift remembered per test and feature (for the time of the first detection).
MAX_ENTRIES = 1000


#: Decay tests whose decisions are points of a metric: detector -> the Recorder's dict.
_METRIC_TESTS = {DECAY: "performance", ESTIMATED_DECAY: "estimated"}


def _halve(s: dict) -> None:
    drift = s.get("drift")
    keep = [i for i in range(len(s["t"])) if i % 2 == 0 or (drift and drift[i]) or i == len(s["t"]) - 1]
    for k in s:
        s[k] = [s[k][i] for i in keep]


def summary(states: dict, recorder: Recorder | None = None) -> dict:
    """A JSON-able account of ``states`` (partition -> PartitionState) and what
    ``recorder`` kept: ``{"models": {name: {...}}, "dead_letters": {reason: n}}``, the
    input of :mod:`daemon.web.report`."""
    models: dict = {}
    dead = Counter()
    for _, state in sorted(states.items()):
        dead.update(state.dead_letters)
        waiting = state.join.waiting()
        for name, status in sorted(partition_models(state).items()):
            pipeline = state.models[name]
            delay = state.label_delay.get(name)
            models[name] = {
                "partition": state.partition,
                "status": _plain(status),
                # With what still waited at the end: predictions never labelled, say.
                "join": {**{o: state.join.counts[(name, o)] for o in OUTCOMES},
                         "prediction_waiting": waiting[(name, "prediction")], "label_waiting": waiting[(name, "label")]},
                "label_delay": None if delay is None else {
                    "buckets": [b if math.isfinite(b) else None for b in state.delay_buckets],
                    "counts": [int(c) for c in delay[0]], "sum_seconds": float(delay[1])},
                "distributions": {f: d for f in pipeline.features if (d := _distribution(pipeline, f)) is not None},
            }
    if recorder is not None:
        for name, model in models.items():
            model["series"] = dict(sorted(recorder.series.get(name, {}).items()))  # (not the order met)
            model["performance"] = recorder.performance.get(name, {})
            model["estimated_performance"] = recorder.estimated.get(name, {})
            for feature, dist in model["distributions"].items():
                if "at_detection" in dist:
                    dist["detection_time"] = recorder.detection_time(name, dist["test"], feature, dist["detection_at"])
    return {"models": dict(sorted(models.items())), "dead_letters": dict(sorted(dead.items()))}


# Which test's bins show a column's distribution, in order of preference.
_BINNED = ("psi", "chisquare", "ks", "value_change")


def _distribution(pipeline, feature: str) -> dict | None:
    """Reference and window counts of ``feature`` from one of its binned data tests: at
    the end (``current``) and at the test's first detection (``at_detection``; the number of
    the value that completed that test, ``detection_at``), which the detector keeps
    whatever the batches (:meth:`detectors.windowed.WindowedTest.first_detection_window`)."""
    detectors = pipeline.data_detectors
    for test in _BINNED:
        detector = detectors.get((test, feature))
        binning = getattr(detector, "binning", None)
        counts = getattr(detector, "counts", None)
        if binning is None or counts is None:
            continue
        labels = _bin_labels(binning)
        if labels is None or len(labels) != len(counts):
            continue
        found = {"test": test, "bins": labels, "reference": [int(c) for c in binning.reference_counts],
                 "current": [int(c) for c in counts]}
        first = getattr(detector, "first_detection", None)
        if first is not None and len(first[1]) == len(counts):
            found["at_detection"], found["detection_at"] = [int(c) for c in first[1]], int(first[0])
        return found
    return None


def _bin_labels(binning) -> list[str] | None:
    edges = getattr(binning, "edges", None)
    if edges is not None:
        e = [f"{x:.4g}" for x in np.asarray(edges, dtype=float)]
        labels = [f"< {e[0]}"] + [f"[{a}, {b})" for a, b in zip(e, e[1:])] + [f">= {e[-1]}"] if e else ["all"]
        return labels + ["missing"]
    levels = getattr(binning, "levels", None)
    if levels is not None:
        return [str(level) for level in levels] + ["other", "missing"]
    if getattr(binning, "n_bins", None) == 2:
        return ["false", "true"]
    return None


def _finite(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _finite(value)
    return value


def replay_document(result, config: Config, files: list[str], blank_lines: dict | None = None) -> dict:
    """The JSON document of a replay (``--summary``; ``result``: its
    :class:`~daemon.offline.replay.Result`): the :func:`summary` of its states with
    its alerts and dead letters; the input of :mod:`daemon.web.report`. ``blank_lines``:
    path -> blank lines of a JSON Lines file skipped (``source.blank_lines``, files with any)."""
    document = dict(result.recording) if result.recording else summary(result.states)
    document["source"] = {"kind": "replay", "files": files, "events": result.records,
                          "seconds": round(result.seconds, 3), "blank_lines": dict(blank_lines or {})}
    # In event-time order, not the polls' (which the batch size and the reading order set).
    document["alerts"] = [a.to_dict() for a in sorted(result.alerts, key=_alert_order)]
    # In the files' order, not the polls' (a poll's predictions go before its labels).
    rows = sorted(result.dead_letters, key=lambda d: (d.path, d.line))
    document["dead_letter_rows"] = [vars(d) for d in rows[:1000]]
    for name in document.get("models", {}):
        settings = config.model(name)
        document["models"][name]["task"] = settings.task if settings is not None else None
    return document


def _alert_order(alert) -> tuple:
    return alert.event_time, alert.model, alert.detector, alert.feature, alert.episode, alert.status, alert.id
