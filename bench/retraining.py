"""Retrain and promote under a concept change: driftd end to end against two baselines.

Run from the repository root::

    PYTHONPATH=. python bench/retraining.py                   # 2 streams x 40,000 events (~1.5 min)
    PYTHONPATH=. python bench/retraining.py --quick           # 2 streams x 16,000 events (~45 s)
    PYTHONPATH=. python bench/retraining.py --label-delay 200 --events 60000 --json out.json

The world: River's Agrawal generator (nine loan-applicant features, two classes). Before
the change it labels with classification function 0, after it with function 2 (the two
agree on about half of the events):

- ``abrupt``: the function switches at event N/2 (the same features, the other function);
- ``gradual``: River's ``ConceptDriftStream`` from function 0 to function 2, centred on
  N/2 with ``--width`` events (each event comes from the new concept with a sigmoid
  probability: 12 % at centre - width/2, 88 % at centre + width/2).

Labels arrive ``--label-delay`` events after their prediction (default 500). The deployed
model at the start is a Hoeffding tree trained offline on 10,000 events of function 0
(another seed) and frozen. Three ways to run it, compared on the same events:

(a) **static**: the deployed model, never retrained;
(b) **online River learner**: ``river.drift.DriftRetrainingClassifier`` around a copy of the
    deployed tree (DDM, River's default: on a drift it restarts from a fresh tree, trained
    in the background since the warning), learning each label when it arrives: what a
    model server could do alone;
(c) **driftd**: the simulated model server produces prediction events (the prediction of
    the model it currently serves) and, ``--label-delay`` events later, the label events,
    on the embedded broker (Tansu). driftd (``daemon.runtime.service.Daemon`` in a thread, same
    process) joins them, watches the champion's error stream (ADWIN) and accuracy (decay
    test), keeps a Hoeffding adaptive tree learning, retrains a challenger from the replay
    buffer on drift or decay and promotes it when the promotion gate says it beats the
    champion (see ``MODEL_CONFIG``). The loop is closed: the server checks the registry
    directory before each chunk of ``--chunk`` events and, when a new version is there,
    loads it with ``learners.loader.load_model`` (signature checked) and serves it from the
    next event on, with ``model_version`` = the registry version. (c)'s accuracy is the
    accuracy of the predictions served.

The server produces a chunk, then waits until driftd has processed all of it and
published what it promoted (read from the daemon's state under its lock): the stream
advances in event time, not wall time, so "time to promotion" is counted in events and
does not depend on the machine's speed. A promotion reaches the server at most one chunk
after it was published.

Accuracy is reported over three windows: **before** (the ``--window`` events just before
the change; for the gradual stream, before its transition: centre - width), **after**
(the ``--after`` events from the change on; the gradual stream's centre) and **end** (the
last ``--window`` events), and the events from the change to the first prediction served
by a promoted model. No learner can know the new concept before labels of it arrive:
``--label-delay`` events after the change at the earliest.

Targets (printed PASS or BELOW; information only, the script never fails on them):
(c) recovers to within 5 accuracy points of its own pre-change level by the end, and beats
(a) clearly (10 points or more at the end). (c) against (b) is reported as measured.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import platform
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Allow `python bench/retraining.py` from the repository root without PYTHONPATH.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL = "loans"
START_TS = 1_763_900_000.0
SECONDS_PER_EVENT = 1.0  # event time between predictions
KEY_ENV = "DRIFTD_REGISTRY_KEY"
FUNCTION_BEFORE, FUNCTION_AFTER = 0, 2
PRETRAIN_EVENTS = 10_000
RECOVERY_POINTS = 0.05   # target: end accuracy within this of the pre-change accuracy
CLEAR_WIN_POINTS = 0.10  # target: end accuracy this much above the static model's

#: driftd's settings for the model (see README / daemon/config/options.py). Event time runs at one
#: second per event, so the rate limit is 1,000 events between promotions.
MODEL_CONFIG = {
    "task": "classification",
    # Detectors: the defaults, with a lighter data-drift set (data drift is not the
    # subject here; the label detectors are what trigger retraining).
    "reference_size": 2000, "window": 1000, "stride": 250, "numeric_tests": ["psi"], "categorical_tests": ["psi"],
    "error_detector": "ADWIN", "decay_metrics": ["accuracy"], "decay_reference_size": 1000, "decay_window": 500,
    # Learning: one Hoeffding adaptive tree from the start; retrained challengers from the
    # replay buffer on drift or decay.
    "learners": {"hat": {"HoeffdingAdaptiveTreeClassifier": {"seed": 1}}},
    "replay_reservoir_size": 1000, "replay_recent_size": 500,
    "retrain_on_drift": True, "retrain_on_decay": True, "retrain_cooldown": 500, "max_retrained": 2,
    "promotion_margin": 0.02, "promotion_min_events": 300, "promotion_alpha": 0.01,
    "promotion_window": 1000, "promotion_min_interval_seconds": 1000.0,
}


# ---------------------------------------------------------------------------------------
# the world


@dataclass
class Stream:
    name: str
    description: str
    rows: list            # (features, label)
    change: int           # the change point reported against (abrupt: the switch; gradual: the centre)
    before: tuple         # (lo, hi) of the "before" window
    predictions: dict = field(default_factory=dict)  # run name -> list of predictions
    promotions: list = field(default_factory=list)   # (c): dicts, one per version served
    seconds: float = 0.0  # wall time of (c)
    lifecycle: dict | None = None  # (c): driftd's retrains, gate decisions and scores at the end


def make_streams(n: int, width: int, window: int, seed: int) -> list[Stream]:
    from river.datasets import synth

    half = n // 2
    old = synth.Agrawal(classification_function=FUNCTION_BEFORE, seed=seed)
    new = synth.Agrawal(classification_function=FUNCTION_AFTER, seed=seed)
    abrupt = []
    for i, ((x, y0), (x2, y2)) in enumerate(zip(old, new)):
        if i == n:
            break
        assert x == x2  # one seed: the same features, labelled by either function
        abrupt.append((x, y0 if i < half else y2))
    gradual = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=FUNCTION_BEFORE, seed=seed + 1),
        drift_stream=synth.Agrawal(classification_function=FUNCTION_AFTER, seed=seed + 2),
        position=half, width=width, seed=seed + 3)
    gradual_rows = list(itertools.islice(gradual, n))
    ramp_start = max(0, half - width)
    return [
        Stream("abrupt", f"Agrawal function {FUNCTION_BEFORE} -> {FUNCTION_AFTER} at event {half:,}",
               abrupt, half, (max(0, half - window), half)),
        Stream("gradual", f"ConceptDriftStream Agrawal {FUNCTION_BEFORE} -> {FUNCTION_AFTER}, centre {half:,}, "
               f"width {width:,}", gradual_rows, half, (max(0, ramp_start - window), ramp_start)),
    ]


def pretrained_model(seed: int):
    """The deployed model: a Hoeffding tree trained offline on the old concept, frozen."""
    from river import tree
    from river.datasets import synth

    model = tree.HoeffdingTreeClassifier()
    for x, y in itertools.islice(synth.Agrawal(classification_function=FUNCTION_BEFORE, seed=seed + 100), PRETRAIN_EVENTS):
        model.learn_one(x, y)
    return model


# ---------------------------------------------------------------------------------------
# (a) and (b): in process, no broker


def run_static(stream: Stream, deployed) -> list:
    return [deployed.predict_one(x) for x, _ in stream.rows]


def run_online(stream: Stream, deployed, delay: int) -> list:
    """A DriftRetrainingClassifier around a copy of the deployed tree; it learns each
    label ``delay`` events after its prediction, as the model server would get it."""
    from river import drift

    model = drift.DriftRetrainingClassifier(model=copy.deepcopy(deployed))
    rows, predictions = stream.rows, []
    for i, (x, _) in enumerate(rows):
        predictions.append(model.predict_one(x))
        if i >= delay:
            model.learn_one(*rows[i - delay])
    for j in range(max(0, len(rows) - delay), len(rows)):
        model.learn_one(*rows[j])  # (nothing left to predict; for symmetry only)
    return predictions


# ---------------------------------------------------------------------------------------
# (c): driftd on the broker, the loop closed through the registry


def daemon_config(bootstrap: str, work: Path, name: str) -> dict:
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    return {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": f"bench-{run}", "create_topics": 1,
                  "predictions_topic": f"predictions-{run}", "labels_topic": f"labels-{run}",
                  "dead_letter_topic": f"dead-{run}", "poll_timeout_ms": 50, "fetch_max_wait_ms": 10,
                  "session_timeout_ms": 2000},
        "http": {"host": "127.0.0.1", "port": 0},
        "state": {"dir": str(work / f"state-{run}"), "checkpoint_interval_seconds": 5.0},
        "registry": {"dir": str(work / f"registry-{run}"), "key_env": KEY_ENV, "keep": 1000,
                     "model_updated_topic": f"model-updates-{run}"},
        "models": {MODEL: MODEL_CONFIG},
        "log_level": "WARNING",
    }


def _counts(daemon) -> tuple[int, int, int]:
    """(predictions processed, labels processed, promotions not yet published)."""
    with daemon.lock:
        states = list(daemon.states.values())
        return (sum(s.processed[(MODEL, "prediction")] for s in states),
                sum(s.processed[(MODEL, "label")] for s in states),
                sum(len(m.pending_promotions) for s in states for m in s.models.values()))


def _wait(daemon, predictions: int, labels: int, errors: list, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        seen = _counts(daemon)
        if seen == (predictions, labels, 0):
            return
        if errors:
            raise RuntimeError(f"the daemon died: {errors[0]!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"driftd did not catch up in {timeout:.0f} s: {seen} of {(predictions, labels)}")
        time.sleep(0.002)


def _newest(registry_dir: Path) -> int:
    return max((int(p.name) for p in registry_dir.iterdir() if p.name.isdigit()), default=0) if registry_dir.exists() else 0


def _promotion(manifest: dict, served_from: int | None) -> dict:
    decided_ts = (manifest.get("training_window") or {}).get("last_event_time")
    return {"version": manifest["version"], "served_from": served_from, "learner": manifest.get("learner"),
            "decided_at": None if decided_ts is None else round((decided_ts - START_TS) / SECONDS_PER_EVENT),
            "gate": manifest["metrics"]["gate"]}


def run_driftd(stream: Stream, deployed, delay: int, chunk: int, bootstrap: str, work: Path) -> list:
    from kafka import KafkaProducer

    from daemon.config import from_dict
    from daemon.runtime.service import Daemon
    from learners.loader import load_model

    config = daemon_config(bootstrap, work, stream.name)
    kafka, registry_dir = config["kafka"], Path(config["registry"]["dir"]) / MODEL
    daemon = Daemon(from_dict(config))
    errors: list = []

    def run():
        try:
            daemon.run()
        except BaseException as e:  # noqa: BLE001 - reported by the waits
            errors.append(e)

    thread = threading.Thread(target=run, name="driftd", daemon=True)
    thread.start()
    if not daemon.wait_started(60):
        raise RuntimeError(f"driftd did not start: {errors}")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, enable_idempotence=False)
    key = MODEL.encode()
    served, version = deployed, 0
    rows, predictions = stream.rows, []
    sent_predictions = sent_labels = 0
    t0 = time.monotonic()
    try:
        for lo in range(0, len(rows) + delay, chunk):
            # The model server: a new version in the registry? Load it (signature checked).
            if lo < len(rows) and _newest(registry_dir) > version:
                served, manifest = load_model(registry_dir, key=os.environ[KEY_ENV])
                version = manifest["version"]
                stream.promotions.append(_promotion(manifest, served_from=lo))
            for i in range(lo, min(lo + chunk, len(rows) + delay)):
                if i < len(rows):
                    x, _ = rows[i]
                    y_pred = served.predict_one(x)
                    predictions.append(y_pred)
                    event = {"model": MODEL, "model_version": str(version), "id": f"e-{i}",
                             "ts": START_TS + i * SECONDS_PER_EVENT, "features": x, "prediction": y_pred}
                    producer.send(kafka["predictions_topic"], key=key, value=json.dumps(event).encode())
                    sent_predictions += 1
                j = i - delay
                if j >= 0:
                    label = {"model": MODEL, "id": f"e-{j}", "ts": START_TS + i * SECONDS_PER_EVENT, "label": rows[j][1]}
                    producer.send(kafka["labels_topic"], key=key, value=json.dumps(label).encode())
                    sent_labels += 1
            producer.flush()
            _wait(daemon, sent_predictions, sent_labels, errors)
        stream.seconds = time.monotonic() - t0
        for v in range(version + 1, _newest(registry_dir) + 1):  # promoted after the last prediction
            stream.promotions.append(_promotion(load_model(registry_dir / str(v), key=os.environ[KEY_ENV])[1], None))
        with daemon.lock:
            cc = next(s.models[MODEL] for s in daemon.states.values() if MODEL in s.models).lifecycle
            stream.lifecycle = {"retrains": dict(cc.retrains), "decisions": dict(cc.decisions),
                                "scores": {k: (None if v is None else round(v, 4)) for k, v in cc.scores().items()}}
    finally:
        producer.close()
        daemon.stop()
        thread.join(30)
    return predictions


# ---------------------------------------------------------------------------------------
# report


def accuracy(stream: Stream, predictions: list, lo: int, hi: int) -> float:
    rows = stream.rows
    return sum(predictions[i] == rows[i][1] for i in range(lo, hi)) / max(1, hi - lo)


def windows(stream: Stream, after: int, window: int) -> dict:
    n = len(stream.rows)
    return {"before": stream.before, "after": (stream.change, min(n, stream.change + after)), "end": (n - window, n)}


RUNS = [("static", "(a) static deployed model"), ("online", "(b) River DriftRetrainingClassifier"),
        ("driftd", "(c) driftd retrain + promote")]


def report(stream: Stream, after: int, window: int, delay: int) -> dict:
    w = windows(stream, after, window)
    result = {"stream": stream.name, "description": stream.description, "events": len(stream.rows),
              "change": stream.change, "windows": w, "accuracy": {}, "promotions": stream.promotions,
              "driftd_seconds": round(stream.seconds, 1), "lifecycle": stream.lifecycle}
    print(f"\n== {stream.name}: {stream.description}; labels {delay} events late ==")
    spans = {k: f"{lo:,}-{hi:,}" for k, (lo, hi) in w.items()}
    print(f"{'accuracy over events':38}{'before':>16}{'after':>16}{'end':>16}")
    print(f"{'':38}{spans['before']:>16}{spans['after']:>16}{spans['end']:>16}")
    for run, title in RUNS:
        accs = {k: accuracy(stream, stream.predictions[run], *w[k]) for k in ("before", "after", "end")}
        result["accuracy"][run] = {k: round(v, 4) for k, v in accs.items()}
        print(f"{title:38}{accs['before']:>16.3f}{accs['after']:>16.3f}{accs['end']:>16.3f}")
    if stream.promotions:
        served = [p for p in stream.promotions if p["served_from"] is not None]
        after_change = [p for p in served if p["served_from"] >= stream.change]
        for p in stream.promotions:
            g = p["gate"]
            where = ("after the last prediction: not served" if p["served_from"] is None else
                     f"served from event {p['served_from']:,} ({p['served_from'] - stream.change:+,} events from the change)")
            print(f"  promotion v{p['version']} ({p['learner']}): decided at the label of event {p['decided_at']:,}, {where}; "
                  f"gate {g['challenger']:.3f} vs champion {g['champion']:.3f} on {g['n']} events, p = {g['p_value']:.2g}")
        t = after_change[0]["served_from"] - stream.change if after_change else None
        result["change_to_promotion_events"] = t
        if served and served[0]["served_from"] < stream.change:
            print("  (a promotion before the change: the learners beat the deployed model on the old concept)")
        print(f"  change -> first promoted model served: {t:,} events" if t is not None else
              "  change -> promotion: none after the change")
    else:
        result["change_to_promotion_events"] = None
        print("  no promotion")
    if result["lifecycle"]:
        lc = result["lifecycle"]
        print(f"  driftd: retrains {lc['retrains']}, gate decisions {lc['decisions']}; recent scores at the end "
              + ", ".join(f"{k} {v:.3f}" for k, v in lc["scores"].items() if v is not None)
              + f"; {len(stream.rows) / max(stream.seconds, 1e-9):,.0f} events/s closed loop ({stream.seconds:.1f} s)")
    acc = result["accuracy"]
    recovered = acc["driftd"]["end"] >= acc["driftd"]["before"] - RECOVERY_POINTS
    beats_static = acc["driftd"]["end"] >= acc["static"]["end"] + CLEAR_WIN_POINTS
    vs_online = {k: round(acc["driftd"][k] - acc["online"][k], 4) for k in ("after", "end")}
    result["targets"] = {"recovered": recovered, "beats_static": beats_static, "driftd_minus_online": vs_online}
    print(f"  target: (c) end {acc['driftd']['end']:.3f} within {RECOVERY_POINTS * 100:.0f} points of its before "
          f"{acc['driftd']['before']:.3f}: {'PASS' if recovered else 'BELOW'}; (c) beats (a) at the end by "
          f"{(acc['driftd']['end'] - acc['static']['end']) * 100:+.1f} points (>= {CLEAR_WIN_POINTS * 100:.0f}): "
          f"{'PASS' if beats_static else 'BELOW'}")
    print(f"  (c) - (b): {vs_online['after'] * 100:+.1f} points right after the change, "
          f"{vs_online['end'] * 100:+.1f} points at the end")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=None, help="events per stream (default 40,000; quick 16,000)")
    parser.add_argument("--quick", action="store_true", help="smaller streams (16,000 events)")
    parser.add_argument("--label-delay", type=int, default=500, help="labels arrive this many events after their prediction")
    parser.add_argument("--width", type=int, default=None, help="gradual stream's transition width (default events / 8)")
    parser.add_argument("--after", type=int, default=2000, help="events in the window right after the change")
    parser.add_argument("--window", type=int, default=None, help="events in the before and end windows (default 5,000; quick 2,000)")
    parser.add_argument("--chunk", type=int, default=100, help="events the model server sends between registry checks")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--streams", default="abrupt,gradual", help="comma-separated: abrupt, gradual")
    parser.add_argument("--json", help="write the results as JSON to this file ('-' for stdout)")
    args = parser.parse_args(argv)
    n = args.events or (16_000 if args.quick else 40_000)
    width = args.width or n // 8
    window = args.window or (2000 if args.quick else 5000)
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # connection chatter at shutdown
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))  # the registry's signing key, this run only

    from daemon.kafka.embedded_broker import EmbeddedBroker

    print(f"retraining bench: {n:,} events per stream, labels {args.label_delay} events late, server checks the "
          f"registry every {args.chunk} events; Python {platform.python_version()}, {os.cpu_count()} CPUs")
    t_all = time.monotonic()
    deployed = pretrained_model(args.seed)
    streams = [s for s in make_streams(n, width, window, args.seed) if s.name in args.streams.split(",")]
    work = Path(tempfile.mkdtemp(prefix="driftd-retraining-"))
    results = []
    try:
        with EmbeddedBroker() as broker:
            for stream in streams:
                stream.predictions["static"] = run_static(stream, deployed)
                stream.predictions["online"] = run_online(stream, deployed, args.label_delay)
                stream.predictions["driftd"] = run_driftd(stream, deployed, args.label_delay, args.chunk,
                                                          broker.bootstrap, work)
                results.append(report(stream, args.after, window, args.label_delay))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal {time.monotonic() - t_all:.0f} s")
    if args.json:
        out = {"events": n, "label_delay": args.label_delay, "width": width, "chunk": args.chunk,
               "model_config": MODEL_CONFIG, "streams": results}
        text = json.dumps(out, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
