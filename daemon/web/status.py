"""The ``models`` section of ``/status``: every configured model from the start, each with
a one-line ``state`` a person can read.

A model listed under ``models:`` appears before its first event, with zero counts and the
state ``waiting for events``; one that events brought in (``auto_register_models``) appears
once it has any. ``state`` is one of:

- ``waiting for events``: no prediction or label of it yet (on this daemon: with several
  replicas, each shows the models of the partitions it owns);
- ``drift: psi/age, decay/accuracy``: detectors in drift now (test/feature; at most five
  named, then ``+N more``);
- ``collecting reference``: its first ``reference_size`` predictions (of this model version);
- ``calibrating N tests``: tests waiting for their thresholds (decisions held);
- ``watching``: everything tested, nothing in drift.

``driftd models`` prints these states (with no daemon answering, it shows the
configuration alone), read with :func:`fetch_status`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from daemon.config import Config
from daemon.stream.join import OUTCOMES

WAITING = "waiting for events"
#: Detectors named in a drift state at most.
NAMED = 5


def configured_models(config: Config, seen: dict) -> dict:
    """``seen`` ({model: its /status entry}, from the partitions' states) with every model
    of ``config.models`` added, configured ones first in the file's order; each entry gets
    ``state`` (see the module docs). ``seen`` is not changed."""
    out = {}
    for name in [*config.models, *(n for n in seen if n not in config.models)]:
        entry = dict(seen[name]) if name in seen else waiting_entry(config, name)
        entry["state"] = state_of(entry)
        out[name] = entry
    return out


def waiting_entry(config: Config, name: str) -> dict:
    """The /status entry of a configured model no event has reached: zero counts, nothing
    built yet (the same keys as a model with events)."""
    return {
        "partition": None,
        "version": None,
        "version_changes": 0,
        "version_returns": 0,
        "reference_complete": False,
        "features": {},
        "untestable_features": {},
        "unwatched_features": 0,
        "unknown_features": [],
        "unseen_levels": {},
        "schema": {"missing": {}, "unseen": {}, "unknown": 0},
        "uncalibrated_tests": 0,
        "skipped_tests": {},
        "scores_left_out": 0,
        "detectors": {},
        "learning": None,
        "processed": {"prediction": 0, "label": 0},
        "join": {outcome: 0 for outcome in OUTCOMES},
        "labels_held": 0,
    }


def partition_models(state) -> dict:
    """Per model of one partition's state (a :class:`~daemon.stream.partition.PartitionState`):
    its ``/status`` entry (the keys of :func:`waiting_entry`, and more)."""
    return {
        name: {
            "partition": state.partition,
            "version": pipeline.version,
            # Changes of model_version, and returns to the one before while the other's
            # reference was incomplete (two versions interleaved: see the warning).
            "version_changes": pipeline.version_changes,
            "version_returns": pipeline.version_returns,
            "reference_complete": pipeline.reference_complete,
            "features": pipeline.features,
            "untestable_features": pipeline.untestable,
            "unwatched_features": pipeline.n_unwatched,
            "unknown_features": pipeline.unknown_features,
            "unseen_levels": pipeline.unseen_levels,
            "schema": _schema(pipeline.schema),
            "uncalibrated_tests": pipeline.uncalibrated,
            "skipped_tests": {f"{test}/{feature}": why for (test, feature), why in pipeline.skipped.items()},
            # Predictions the estimated performance left out: a score of the other form.
            "scores_left_out": pipeline.estimation.unlike,
            "detectors": _detector_states(pipeline),
            "learning": _learning(pipeline),
            "processed": {kind: state.processed[(name, kind)] for kind in ("prediction", "label")},
            "join": {outcome: state.join.counts[(name, outcome)] for outcome in OUTCOMES},
            # Joined labels held behind one waiting for its prediction (label order).
            "labels_held": state.label_order.held(name),
        }
        for name, pipeline in state.models.items()
    }


def _detector_states(pipeline) -> dict:
    """``"test/column"`` -> the detector's state, with ``detections_total`` and
    ``tests_total``: the exported counters' values, which go on from earlier model versions'
    detectors (``n_detections`` and ``n_tests`` are this version's detector's own)."""
    before = pipeline.counts_before()
    out = {}
    for name, feature, detector in pipeline.detectors():
        state = dict(vars(detector.state()))
        earlier = before.get((name, feature), (0, 0))
        state["detections_total"] = state["n_detections"] + earlier[0]
        state["tests_total"] = state["n_tests"] + earlier[1]
        out[f"{name}/{feature}"] = state
    return out


def _learning(pipeline) -> dict | None:
    """The model's learners (None: it has none): each one's recent score (accuracy or MAE,
    as ``driftd_learner_score``), labelled events learned, errors and the last one's
    message; the champion's recent score; retrains by reason, and those that failed; with
    ``retrain_warm_start: meta``, how each challenger's check ``k`` labels after its retrain
    ended (``meta_inits``: replaced by a stored solution, ``library``, or by their average,
    ``average``; ``kept`` as it was; None without meta); the promotion gate's
    decisions; the learner last promoted; errors in all (``driftd_learner_errors_total``)."""
    cc = pipeline.lifecycle
    if cc is None:
        return None
    scores = cc.scores()
    meta = getattr(cc, "meta", None)  # (lifecycles from before meta-learning have none)
    return {
        "learners": {name: {"score": scores.get(name), "learned": learner.n_learned, "errors": cc.errors.get(name, 0),
                            "last_error": cc.last_error.get(name)} for name, learner in cc.learners.items()},
        "champion_score": scores["champion"],
        "retrains": dict(cc.retrains),
        "failed_retrains": dict(cc.failed_retrains),
        "meta_inits": dict(meta.inits) if meta is not None else None,
        "gate": dict(cc.decisions),
        "promoted": cc.champion_learner,
        "errors": pipeline.learning_errors + sum(cc.errors.values()),
    }


def _schema(counts) -> dict:
    """Schema events by kind and column, for /status."""
    out: dict = {"missing": {}, "unseen": {}, "unknown": 0}
    for (what, column), n in sorted(counts.items()):
        if what == "unknown":
            out["unknown"] += n
        else:
            out[what][column] = n
    return out


def state_of(entry: dict) -> str:
    """One line for a model's /status ``entry`` (see the module docs)."""
    processed = entry.get("processed") or {}
    if not any(processed.values()):
        return WAITING
    drifting = sorted(name for name, detector in (entry.get("detectors") or {}).items() if detector.get("drift"))
    if drifting:
        more = f" +{len(drifting) - NAMED} more" if len(drifting) > NAMED else ""
        return "drift: " + ", ".join(drifting[:NAMED]) + more
    if not entry.get("reference_complete"):
        return "collecting reference"
    if entry.get("uncalibrated_tests"):
        return f"calibrating {entry['uncalibrated_tests']} tests"
    return "watching"


def fetch_status(url: str, timeout: float) -> tuple[dict | None, str]:
    """A daemon's ``/status`` at ``url`` (``http://host:port``), waiting at most ``timeout``
    seconds: (the document, "") or (None, why not: the HTTP status, the connection's
    error, not JSON, not a driftd /status)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/status", timeout=timeout) as response:
            status = json.loads(response.read())
    except urllib.error.HTTPError as e:
        return None, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return None, str(getattr(e, "reason", e))
    except ValueError as e:
        return None, f"not JSON ({e})"
    if not isinstance(status, dict) or not isinstance(status.get("models", {}), dict):
        return None, "not a driftd /status"
    return status, ""
