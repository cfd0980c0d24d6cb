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
configuration alone).
"""

from __future__ import annotations

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
        "reference_complete": False,
        "features": {},
        "untestable_features": {},
        "unwatched_features": 0,
        "unknown_features": [],
        "unseen_levels": {},
        "schema": {"missing": {}, "unseen": {}, "unknown": 0},
        "uncalibrated_tests": 0,
        "skipped_tests": {},
        "detectors": {},
        "processed": {"prediction": 0, "label": 0},
        "join": {outcome: 0 for outcome in OUTCOMES},
        "labels_held": 0,
    }


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
