"""The label join's cost per event and its memory of settled ids, by number of models.

Run from the repository root::

    .venv/bin/python bench/join.py            # 400,000 events per configuration
    .venv/bin/python bench/join.py --quick    # 100,000

The same stream for every configuration: predictions, each labelled 50 events later (5% of
predictions and labels sent twice, the copy 20 events after the original; 5% of labels
never sent), spread round-robin over 1, 100, 1,000 or 10,000 models of one partition,
stamped 0.1 s apart (100 events/s), TTL one day (at 10,000 models, 40 events a model, 10
with ``--quick``: what many quiet models cost, their first filter generations included). For each it prints microseconds of CPU per event for
:class:`daemon.stream.join.LabelJoin` and, in the same run, for a baseline: the same events
through two dicts (waiting predictions and labels) and two sets (settled ids), an exact join
with no event time, no expiry, no counts and no checkpoints, which is what a join costs at
the least in Python. Their ratio is the figure (machines are noisy; ratios are what
matters). Then the bytes of the join's filters (of settled ids) per settled id, against the
baseline's sets (``sys.getsizeof`` of the sets and their strings).

Expected: the cost per event flat in the number of models (each lookup consults its own
model's filter generations only); filters under 10 bytes an id for busy models, more for
many quiet ones (a generation is allocated per model and bucket).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.stream.join import LabelJoin  # noqa: E402

DELAY, COPY_AFTER = 50, 20


def stream(n: int, models: int) -> list[tuple]:
    """(kind, model, id, ts) in arrival order, about ``n`` of them."""
    events, due = [], {}
    for i in range(n // 2):
        model, id, ts = f"model-{i % models}", f"id-{i}", 1.7e9 + i * 0.1
        events.append(("p", model, id, ts))
        if i % 20 == 0:
            due.setdefault(i + COPY_AFTER, []).append(("p", model, id, ts))
        if i % 20 != 1:
            due.setdefault(i + DELAY, []).append(("l", model, id, ts + DELAY * 0.1))
            if i % 20 == 2:
                due.setdefault(i + DELAY + COPY_AFTER, []).append(("l", model, id, ts + DELAY * 0.1))
        events += due.pop(i, [])
    return events


def run_join(events: list) -> tuple[float, LabelJoin]:
    join = LabelJoin(ttl=86_400.0, grace=600.0, max_pending=500_000)
    add_prediction, add_label = join.add_prediction, join.add_label
    started = time.process_time()
    for kind, model, id, ts in events:
        if kind == "p":
            add_prediction(model, id, ts, None)
        else:
            add_label(model, id, ts, 1)
    return time.process_time() - started, join


def run_baseline(events: list) -> tuple[float, tuple]:
    predictions, labels, settled_predictions, settled_labels = {}, {}, set(), set()
    started = time.process_time()
    for kind, model, id, ts in events:
        key = (model, id)
        mine, other, settled = ((predictions, labels, settled_predictions) if kind == "p"
                                else (labels, predictions, settled_labels))
        if key in mine or key in settled:
            continue  # a copy
        if other.pop(key, None) is not None:
            settled_predictions.add(key)
            settled_labels.add(key)
        else:
            mine[key] = ts
    return time.process_time() - started, (settled_predictions, settled_labels)


def set_bytes(ids: set) -> int:
    return sys.getsizeof(ids) + sum(sys.getsizeof(key) + sys.getsizeof(key[1]) for key in ids)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100,000 events per configuration instead of 400,000")
    opts = p.parse_args(argv)
    n = 100_000 if opts.quick else 400_000
    print(f"{n:,} events per configuration (1 partition, TTL one day, 100 events/s); CPU microseconds per event")
    costs = {}
    for models in (1, 100, 1_000, 10_000):
        events = stream(n, models)
        best_join = best_base = float("inf")
        for _ in range(3):  # best of three: the least disturbed
            seconds, join = run_join(events)
            best_join = min(best_join, seconds)
            seconds, sets = run_baseline(events)
            best_base = min(best_base, seconds)
        per_event, base = best_join / len(events) * 1e6, best_base / len(events) * 1e6
        costs[models] = per_event
        filters = (join._settled_predictions, join._settled_labels)
        held = sum(f.count for f in filters)
        counts = {outcome: sum(v for (_, o), v in join.counts.items() if o == outcome)
                  for outcome in ("joined", "duplicate_prediction", "duplicate_label")}
        print(f"  {models:>6,} models ({len(events) // models:,} events a model): join {per_event:.2f} us, baseline {base:.2f} us, ratio {per_event / base:.1f}x; "
              f"filters {sum(f.nbytes() for f in filters) / max(held, 1):.1f} bytes a settled id "
              f"(baseline sets {sum(map(set_bytes, sets)) / max(held, 1):.0f}); {counts}")
    print(f"Cost per event by models 1 / 100 / 1,000 / 10,000: {' / '.join(f'{c:.2f}' for c in costs.values())} us "
          f"(10,000 against 1: {costs[10_000] / costs[1]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
