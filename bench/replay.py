"""``driftd replay`` against the daemon: records per second on the same stream, same run.

Run from the repository root::

    .venv/bin/python bench/replay.py                # 50,000 predictions + labels
    .venv/bin/python bench/replay.py --events N [--json out.json]

What it does, in one process:

1. makes the stream of ``bench/daemon.py`` (model ``bench``: 10 numeric features, a score,
   PSI and KS on each, ADWIN on the error stream, accuracy decay; each label
   ``LABEL_LAG`` predictions after its prediction) and produces it to the embedded broker;
2. **daemon**: ``daemon.runtime.service.Daemon`` in a thread consumes it from the
   beginning. Each polled batch's end is noted (the daemon object's ``_process`` is
   wrapped): its time and the records processed so far;
3. **replay**: the same records, written to a JSON Lines file in the order they were
   produced, replayed with :class:`daemon.offline.replay.Replay` (reading the file
   included), each batch's end noted the same way.

Two rates each, in records/s (predictions and labels): **overall**, from the first
batch's start to the last one's end (for replay this includes computing every threshold
in its own thread, which the daemon does in the background), and **steady**, over the
batches after the model's last threshold was set (no calibration left: the per-event
work alone). The ratios replay/daemon are printed; the issue's target is a steady ratio
of at least 1. The machine is shared: CPU time of the measuring thread is given next to
wall time, and the numbers move from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    # `python bench/replay.py` from the repository root: the package `daemon`, not bench/daemon.py.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.daemon import DEAD, LABEL_LAG, LABELS, MODEL, PREDICTIONS, daemon_config, make_events  # noqa: E402
from daemon.config import from_dict  # noqa: E402
from daemon.kafka.embedded_broker import EmbeddedBroker  # noqa: E402
from daemon.offline.replay import Replay, events  # noqa: E402
from daemon.runtime.service import Daemon  # noqa: E402


def stream(n: int) -> list[tuple[str, bytes]]:
    """(topic, value) in the order bench/daemon.py produces them."""
    predictions, labels = make_events(0, n)
    out = []
    for i in range(n + LABEL_LAG):
        if i < n:
            out.append((PREDICTIONS, predictions[i]))
        if i >= LABEL_LAG:
            out.append((LABELS, labels[i - LABEL_LAG]))
    return out


def produce(bootstrap: str, records: list) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1 << 20,
                             max_request_size=8 << 20, enable_idempotence=False)
    key = MODEL.encode()
    for topic, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def rates(marks: list, total: int) -> dict:
    """Overall and steady rates from batch marks (start, end, records so far, calibrated?)."""
    if not marks:
        return {}
    first, last = marks[0], marks[-1]
    overall = total / (last[1] - first[0])
    steady_from = next((i for i, m in enumerate(marks) if m[3]), None)
    steady = None
    if steady_from is not None and steady_from + 1 < len(marks):
        start = marks[steady_from]
        steady = (last[2] - start[2]) / (last[1] - start[1])
    return {"overall": overall, "steady": steady, "batches": len(marks),
            "seconds": last[1] - first[0], "steady_records": None if steady_from is None else last[2] - marks[steady_from][2]}


def calibrated(states) -> bool:
    pipelines = [s.models.get(MODEL) for s in states]
    return any(p is not None and p.reference_complete and p.uncalibrated == 0 for p in pipelines)


def run_daemon(bootstrap: str, total: int, state_dir: str) -> tuple[dict, float]:
    config = daemon_config(bootstrap, state_dir, None)
    config["kafka"]["dead_letter_topic"] = DEAD
    daemon = Daemon(from_dict(config))
    marks: list = []
    done = threading.Event()
    original = daemon._process

    def timed(batch):
        start = time.perf_counter()
        original(batch)
        processed = sum(sum(s.processed.values()) for s in daemon.states.values())
        marks.append((start, time.perf_counter(), processed, calibrated(daemon.states.values())))
        if processed >= total:
            done.set()

    daemon._process = timed
    cpu = [0.0]

    def run():
        started = time.thread_time()
        try:
            daemon.run()
        finally:
            cpu[0] = time.thread_time() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not done.wait(900):
        raise SystemExit(f"the daemon did not process {total} records in 15 minutes")
    daemon.stop()
    thread.join(30)
    return rates(marks, total), cpu[0]


def run_replay(path: str, total: int, bootstrap: str, state_dir: str) -> tuple[dict, float]:
    config = from_dict(daemon_config(bootstrap, state_dir, None))
    replay = Replay(config, record_series=False)
    marks: list = []
    original = replay._poll

    def timed(batch):
        start = time.perf_counter()
        original(batch)
        processed = sum(sum(s.processed.values()) for s in replay.states.values())
        marks.append((start, time.perf_counter(), processed, calibrated(replay.states.values())))

    replay._poll = timed
    cpu = time.thread_time()
    result = replay.run(events([(path, False)]))
    cpu = time.thread_time() - cpu
    assert result.records == total and not result.dead_letters, (result.records, result.dead_letters[:3])
    out = rates(marks, total)
    out["overall"] = total / result.seconds  # reading the file included
    out["seconds"] = result.seconds
    return out, cpu


def fmt(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="predictions (each with a label); default 50,000")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    n = args.events
    records = stream(n)
    total = len(records)
    with tempfile.TemporaryDirectory() as work, EmbeddedBroker(topics={PREDICTIONS: 1, LABELS: 1, DEAD: 1}) as broker:
        print(f"{n:,} predictions and their labels: {total:,} records", file=sys.stderr)
        produce(broker.bootstrap, records)
        daemon, daemon_cpu = run_daemon(broker.bootstrap, total, os.path.join(work, "daemon-state"))
        path = os.path.join(work, "events.jsonl")
        with open(path, "wb") as f:
            for _, value in records:
                f.write(value + b"\n")
        replayed, replay_cpu = run_replay(path, total, broker.bootstrap, os.path.join(work, "replay-state"))
    figures = {"records": total, "daemon": {**daemon, "thread_cpu_seconds": daemon_cpu},
               "replay": {**replayed, "thread_cpu_seconds": replay_cpu}}
    figures["ratio_overall"] = replayed["overall"] / daemon["overall"]
    figures["ratio_steady"] = (replayed["steady"] / daemon["steady"]) if replayed.get("steady") and daemon.get("steady") else None
    print(f"{'':8} {'overall rec/s':>14} {'steady rec/s':>13} {'wall s':>7} {'CPU s':>6}")
    for name in ("daemon", "replay"):
        f = figures[name]
        print(f"{name:8} {fmt(f['overall']):>14} {fmt(f['steady']):>13} {f['seconds']:7.1f} {f['thread_cpu_seconds']:6.1f}")
    steady = figures["ratio_steady"]
    print(f"replay / daemon: overall {figures['ratio_overall']:.2f}x, steady "
          f"{'-' if steady is None else f'{steady:.2f}x'} (target: steady >= 1)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
