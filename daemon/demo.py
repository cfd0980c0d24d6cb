"""``driftd demo``: the detectors on a generated stream with known changes.

A simulated model sees a numeric feature whose mean shifts at ``DATA_CHANGE``, a
categorical feature whose mix changes at the same point, and makes errors whose rate
rises at ``CONCEPT_CHANGE`` (concept drift: the inputs look the same, the answers get
worse). The demo prints which detectors fired, at which event, and how long after the
true change.
"""

from __future__ import annotations

import time

import numpy as np

from detectors import KS, PSI, ChiSquare, PerformanceDecay, RiverDetector

N_EVENTS = 40_000
REFERENCE = 5_000
DATA_CHANGE = 20_000
CONCEPT_CHANGE = 30_000
BATCH = 100


def _stream(rng):
    amount = np.where(np.arange(N_EVENTS) < DATA_CHANGE, rng.normal(50, 10, N_EVENTS), rng.normal(56, 10, N_EVENTS))
    mix_before, mix_after = [0.5, 0.3, 0.2], [0.35, 0.3, 0.35]
    country = np.concatenate([
        rng.choice(["DE", "FR", "IT"], DATA_CHANGE, p=mix_before),
        rng.choice(["DE", "FR", "IT"], N_EVENTS - DATA_CHANGE, p=mix_after),
    ]).astype(object)
    error_rate = np.where(np.arange(N_EVENTS) < CONCEPT_CHANGE, 0.10, 0.25)
    errors = (rng.random(N_EVENTS) < error_rate).astype(int)
    return amount, country, errors


def run(seed: int = 7, out=print) -> list[dict]:
    rng = np.random.default_rng(seed)
    amount, country, errors = _stream(rng)
    ert = 200_000
    watched = {
        "PSI(amount)": (PSI(amount[:REFERENCE], window=1000, stride=100, ert=ert), amount, DATA_CHANGE),
        "KS(amount)": (KS(amount[:REFERENCE], window=1000, stride=100, ert=ert), amount, DATA_CHANGE),
        "ChiSquare(country)": (ChiSquare(country[:REFERENCE], window=1000, stride=100, ert=ert), country, DATA_CHANGE),
        "ADWIN(error)": (RiverDetector("ADWIN", delta=0.002), errors, CONCEPT_CHANGE),
        "DDM(error)": (RiverDetector("DDM"), errors, CONCEPT_CHANGE),
        "accuracy decay": (PerformanceDecay("accuracy", window=1000, reference_size=REFERENCE), 1 - errors, CONCEPT_CHANGE),
    }
    out(f"driftd demo: {N_EVENTS} events; data drift at event {DATA_CHANGE}, concept drift at {CONCEPT_CHANGE}")
    first: dict[str, int] = {}
    false_alarms = dict.fromkeys(watched, 0)
    started = time.perf_counter()
    for start in range(REFERENCE, N_EVENTS, BATCH):
        end = start + BATCH
        for name, (detector, values, change) in watched.items():
            before = detector.n_detections
            chunk = values[start:end]
            if isinstance(detector, PerformanceDecay):
                detector.update_many(np.ones(len(chunk), dtype=int), chunk)
            else:
                detector.update_many(chunk)
            if detector.n_detections > before:
                if end <= change:
                    false_alarms[name] += 1
                elif name not in first:
                    first[name] = end
                    out(f"  event {end:>6}: {name} detected drift (statistic {detector.statistic:.4g}, threshold {detector.threshold:.4g})")
    elapsed = time.perf_counter() - started
    out(f"\nsummary ({(N_EVENTS - REFERENCE) / elapsed:,.0f} events/s through {len(watched)} detectors):")
    results = []
    for name, (_, _, change) in watched.items():
        at = first.get(name)
        delay = "missed" if at is None else f"{at - change} events after the change"
        out(f"  {name:<20} {'fired at ' + str(at) if at else 'did not fire':<16} {delay:<28} false alarms before: {false_alarms[name]}")
        results.append({"detector": name, "detected_at": at, "change_at": change, "false_alarms": false_alarms[name]})
    return results
