"""Calibration: CPU to make a model's data-drift tests ready, and the per-model false-alarm
contract on stationary streams.

Run from the repository root::

    PYTHONPATH=. python bench/calibration.py                  # both parts, default sizes
    PYTHONPATH=. python bench/calibration.py --events 200000  # quicker false-alarm part
    PYTHONPATH=. python bench/calibration.py --no-false-alarms

Five kinds of model (features drawn independently, stationary):

- ``continuous``: 20 numeric features without ties (normal, lognormal, uniform);
- ``tied``: 20 integer-valued features (Poisson and binomial counts: many ties);
- ``decimals``: 20 numeric features recorded with two decimals (normal, sd 0.7 to 1.5:
  about 400 to 750 distinct values in 5,000, so every feature's ties give its own null);
- ``categorical``: 10 string features with 5 to 50 levels (Dirichlet level shares);
- ``mix``: 7 continuous, 7 tied and 6 categorical features, each value missing with
  probability 10%.

A model's tests are those the daemon plans for such columns (see ``daemon/stream/columns.py``):
PSI and KS on numeric features, chi-square on categorical ones, a missing-value rate test
on every feature (PSI and chi-square leave missing values to it: ``missing="ignore"``) and
an unseen-level rate test on categorical ones; the model's ``ert`` is
split equally across its columns (each gets ``ert * n_columns``) and within a column by
``detectors.calibration.calibrate_union`` where it exists, else equally.

Part 1, CPU: ``time.process_time`` to build the tests from references of 5,000 and 50,000
events (binning), take their null models and calibrate them, calibration caches emptied
before each model (so a model pays for its own shared tables); ``--daemon-allocator``
measures with the C allocator set as the daemon sets it. Part 2, false alarms: the
model's detections summed over its tests on stationary streams, pooled over several
references, against the number asked for (``events / ert``).

Figures only: nothing here fails on a target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from detectors import KS, PSI, ChiSquare, RateTest, calibration  # noqa: E402

KINDS = ("continuous", "tied", "decimals", "categorical", "mix")
WINDOW, STRIDE = 1000, 100


# -- models -------------------------------------------------------------------------------
def _continuous(rng):
    shape = rng.integers(3)
    if shape == 0:
        loc, scale = rng.normal(0, 5), rng.uniform(0.5, 3)
        return lambda n: rng.normal(loc, scale, n)
    if shape == 1:
        sigma = rng.uniform(0.3, 1.5)
        return lambda n: rng.lognormal(0, sigma, n)
    low = rng.normal(0, 10)
    return lambda n: rng.uniform(low, low + 5, n)


def _tied(rng):
    if rng.random() < 0.5:
        lam = rng.uniform(1, 40)
        return lambda n: rng.poisson(lam, n).astype(np.float64)
    trials, p = int(rng.integers(3, 60)), rng.uniform(0.1, 0.9)
    return lambda n: rng.binomial(trials, p, n).astype(np.float64)


def _decimals(rng):
    loc, scale = rng.normal(0, 5), rng.uniform(0.7, 1.5)
    return lambda n: np.round(rng.normal(loc, scale, n), 2)


def _categorical(rng):
    k = int(rng.integers(5, 51))
    levels = np.array([f"v{i}" for i in range(k)], dtype=object)
    p = rng.dirichlet(np.full(k, 2.0))
    return lambda n: levels[rng.choice(k, n, p=p)]


def _missing(draw, rng, rate):
    def with_gaps(n):
        values = draw(n)
        gaps = rng.random(n) < rate
        if values.dtype == object:
            values[gaps] = None
        else:
            values[gaps] = np.nan
        return values
    return with_gaps


def model_sources(kind: str, rng) -> list[tuple[str, str, object]]:
    """(feature name, "numeric" | "categorical", draw: n -> n values) of one model."""
    if kind == "continuous":
        plan = [("numeric", _continuous)] * 20
    elif kind == "tied":
        plan = [("numeric", _tied)] * 20
    elif kind == "decimals":
        plan = [("numeric", _decimals)] * 20
    elif kind == "categorical":
        plan = [("categorical", _categorical)] * 10
    else:
        plan = [("numeric", _continuous)] * 7 + [("numeric", _tied)] * 7 + [("categorical", _categorical)] * 6
    sources = []
    for i, (typ, make) in enumerate(plan):
        draw = make(rng)
        if kind == "mix":
            draw = _missing(draw, rng, 0.1)
        sources.append((f"f{i}", typ, draw))
    return sources


def _flags(typ: str, test: str, values, levels) -> np.ndarray:
    if test == "missing_rate":
        return np.array([v is None for v in values]) if typ == "categorical" else np.isnan(values)
    return np.array([v is not None and v not in levels for v in values])  # unseen_rate


class Model:
    """The tests of one model, built from a reference of each feature (deferred)."""

    def __init__(self, sources, references: dict, ert: float):
        self.sources = sources
        self.columns: dict[str, dict] = {}
        self.levels: dict[str, frozenset] = {}
        for name, typ, _ in sources:
            ref = references[name]
            common = dict(window=WINDOW, stride=STRIDE, ert=ert, defer_calibration=True)
            tests = {}
            if typ == "numeric":
                # Missing values are the missing_rate test's alone, as in the daemon.
                tests["psi"] = PSI(ref, missing="ignore", **common)
                tests["ks"] = KS(ref, **common)
            else:
                self.levels[name] = frozenset(v for v in ref if v is not None)
                tests["chisquare"] = ChiSquare(ref, missing="ignore", **common)
                tests["unseen_rate"] = RateTest(_flags(typ, "unseen_rate", ref, self.levels[name]), **common)
            tests["missing_rate"] = RateTest(_flags(typ, "missing_rate", ref, None), **common)
            self.columns[name] = tests
        self.ert = ert

    def calibrate(self) -> None:
        """Thresholds for every test: the model's ert split equally across columns, within
        a column by calibrate_union where it exists, else equally."""
        column_ert = self.ert * len(self.columns)
        union = getattr(calibration, "calibrate_union", None)
        for tests in self.columns.values():
            detectors = list(tests.values())
            models = [d.null_model() for d in detectors]
            if union is not None and len(models) > 1:
                thresholds = union(models, column_ert)
            else:
                thresholds = [calibration.calibrate(m, column_ert * len(models)) for m in models]
            for detector, (threshold, warning) in zip(detectors, thresholds):
                detector.set_thresholds(threshold, warning)

    def update_many(self, batch: dict) -> None:
        for name, typ, _ in self.sources:
            values = batch[name]
            for test, detector in self.columns[name].items():
                if test in ("missing_rate", "unseen_rate"):
                    detector.update_many(_flags(typ, test, values, self.levels.get(name)))
                else:
                    detector.update_many(values)
                detector.pop_decisions()

    @property
    def n_detections(self) -> int:
        return sum(d.n_detections for tests in self.columns.values() for d in tests.values())

    @property
    def n_tests(self) -> int:
        return sum(len(tests) for tests in self.columns.values())


def _clear_caches() -> None:
    calibration._cache.clear()
    calibration._simulations.clear()


# -- part 1: CPU --------------------------------------------------------------------------
def calibration_cpu(kind: str, reference_size: int, ert: float, seed: int = 1) -> dict:
    """CPU seconds to build one model's tests (binning) and to calibrate them."""
    rng = np.random.default_rng(seed)
    sources = model_sources(kind, rng)
    references = {name: draw(reference_size) for name, _, draw in sources}
    _clear_caches()
    t0 = time.process_time()
    model = Model(sources, references, ert)
    t1 = time.process_time()
    model.calibrate()
    t2 = time.process_time()
    return {"kind": kind, "reference": reference_size, "tests": model.n_tests,
            "build": t1 - t0, "calibrate": t2 - t1, "total": t2 - t0}


# -- part 2: false alarms -------------------------------------------------------------------
def false_alarms(kind: str, n_events: int, n_references: int, ert: float, reference_size: int = 5000,
                 seed: int = 2) -> dict:
    """Detections of models of ``kind`` on stationary streams: ``n_events`` in total, split
    over ``n_references`` independent models (each its own reference)."""
    rng = np.random.default_rng(seed)
    alarms, per_reference = 0, []
    per_model = n_events // n_references
    for _ in range(n_references):
        sources = model_sources(kind, rng)
        model = Model(sources, {name: draw(reference_size) for name, _, draw in sources}, ert)
        model.calibrate()
        for start in range(0, per_model, 20_000):
            size = min(20_000, per_model - start)
            model.update_many({name: draw(size) for name, _, draw in sources})
        per_reference.append(model.n_detections)
        alarms += model.n_detections
    asked = n_references * per_model / ert
    return {"kind": kind, "events": n_references * per_model, "references": n_references, "ert": ert,
            "alarms": alarms, "asked": asked, "ratio": alarms / asked, "per_reference": per_reference}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ert", type=float, default=200_000, help="model ert for the CPU part (default: the daemon's)")
    p.add_argument("--fa-ert", type=float, default=20_000,
                   help="model ert for the false-alarm part (short enough to see alarms in --events)")
    p.add_argument("--events", type=int, default=1_000_000, help="stationary events per kind of model")
    p.add_argument("--references", type=int, default=10, help="independent references per kind")
    p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    p.add_argument("--daemon-allocator", action="store_true",
                   help="glibc's mmap threshold fixed as the daemon fixes it (daemon/runtime/allocator.py): "
                        "large temporary arrays then cost page faults every time")
    p.add_argument("--no-cpu", action="store_true")
    p.add_argument("--no-false-alarms", action="store_true")
    opts = p.parse_args(argv)
    if opts.daemon_allocator:
        from daemon.runtime import allocator

        allocator.tune()
    if not opts.no_cpu:
        print(f"CPU to make a model ready (build + calibrate, caches cold), model ert {opts.ert:,.0f}, "
              f"window {WINDOW}, stride {STRIDE}; target <= 1 s at 5,000, <= 5 s at 50,000")
        print(f"  {'kind':12s} {'reference':>9s} {'tests':>5s} {'build s':>8s} {'calibrate s':>11s} {'total s':>8s}")
        for kind in opts.kinds:
            for size in (5_000, 50_000):
                r = calibration_cpu(kind, size, opts.ert)
                print(f"  {kind:12s} {size:>9,d} {r['tests']:>5d} {r['build']:>8.3f} {r['calibrate']:>11.3f} {r['total']:>8.3f}",
                      flush=True)
    if not opts.no_false_alarms:
        print(f"False alarms per model on stationary streams, model ert {opts.fa_ert:,.0f} "
              f"({opts.events:,d} events per kind over {opts.references} references of 5,000; target ratio 0.5-2)")
        for kind in opts.kinds:
            t = time.perf_counter()
            r = false_alarms(kind, opts.events, opts.references, opts.fa_ert)
            print(f"  {kind:12s} alarms {r['alarms']:4d}  asked {r['asked']:6.1f}  observed/asked {r['ratio']:.2f}  "
                  f"per reference {r['per_reference']}  ({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
