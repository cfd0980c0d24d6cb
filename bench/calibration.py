"""Calibration: CPU to make a model ready in the daemon's own pipeline, and the per-model
false-alarm contract on stationary streams.

Run from the repository root::

    PYTHONPATH=. python bench/calibration.py                  # both parts, default sizes
    PYTHONPATH=. python bench/calibration.py --no-false-alarms --kinds decimals mix
    PYTHONPATH=. python bench/calibration.py --events 200000  # quicker false-alarm part
    PYTHONPATH=. python bench/calibration.py --no-false-alarms --blas-threads 0   # BLAS's own default

Five kinds of model (features drawn independently, stationary):

- ``continuous``: 20 numeric features without ties (normal, lognormal, uniform);
- ``tied``: 20 integer-valued features (Poisson and binomial counts: many ties);
- ``decimals``: 20 numeric features recorded with two decimals (normal, sd 0.7 to 1.5:
  about 400 to 750 distinct values in 5,000, so every feature's ties give its own null);
- ``categorical``: 10 string features with 5 to 50 levels (Dirichlet level shares);
- ``mix``: 7 continuous, 7 tied and 6 categorical features, each value missing with
  probability 10%.

Part 1, CPU (issue 8: at most 1 s per model at reference 5,000, 5 s at 50,000). What the
daemon does: each model is :class:`daemon.stream.pipeline.ModelPipeline` at
``ModelConfig()`` defaults but ``reference_size`` (window 1,000, stride 100, ert 1e8; its
tests as ``daemon/stream/columns.py`` plans them: PSI, KS and the CUSUM per numeric
column, chi-square per categorical one, the rate tests, the prediction's and the score's
tests, the masked-feature reconstruction), fed its first ``reference_size`` predictions
(the daemon's decoded events: features as a producer sends them, whole numbers as JSON
integers, a predicted class drawn independently, 30% positive, and a score, Beta(2, 5))
through :class:`bench.feeding.Fed`, which computes the thresholds in this thread as
:func:`daemon.runtime.calibrator.calibrate_now` does. Thread CPU seconds by phase:
``collect`` (taking the reference), ``build`` (the tests built from it: binning, the
reconstruction's fit; on the consumer loop in the daemon), ``calibrate`` (every
threshold; off the loop in the daemon), ``ready`` = build + calibrate, and ``process``:
the process's CPU for build and calibration, which counts the BLAS library's own threads
too (BLAS is limited to one thread as ``driftd run`` limits it, daemon/runtime/blas.py;
``--blas-threads 0`` leaves the library's default, whose threads spin where cores are busy). Of which, from
timers on the detectors' methods: the joint PSI + KS simulation
(:func:`detectors.joint.joint_simulation`), the CUSUMs' build and calibration, the
reconstruction's build (its fit) and calibration. Calibration caches are emptied before
each model (so a model pays for its own shared tables). The C allocator is tuned as
``driftd run`` tunes it (``daemon/runtime/allocator.py``) unless ``--plain-allocator``.

Part 2, false alarms (the detectors built here, not the daemon's pipeline: PSI and KS on
numeric features, chi-square on categorical ones, a missing-value rate test on every
feature and an unseen-level rate test on categorical ones, the model's ``ert`` split
equally across its columns and within a column by
``detectors.calibration.calibrate_union``): the model's detections summed over its tests
on stationary streams, pooled over several references, against the number asked for
(``events / ert``). ``tests/test_model_false_alarms.py`` checks the daemon's pipeline.

Figures only: nothing here fails on a target (each kind's line says within or ABOVE).
"""

from __future__ import annotations

import argparse
import json
import os
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


# -- part 1: CPU, the daemon's own path ---------------------------------------------------
#: Predictions per batch fed to the pipeline while collecting (a polled batch).
FEED_BATCH = 500


def _json_values(typ: str, draw, n: int) -> list:
    """``n`` values of a source as a producer sends them: numbers (whole numbers as JSON
    integers), strings, None for missing."""
    values = draw(n)
    if typ == "categorical":
        return list(values)
    out = values.tolist()
    if np.all(np.isnan(values) | (values == np.round(values))) and not np.all(np.isnan(values)):
        out = [None if v != v else int(v) for v in out]  # counts: JSON integers
    else:
        out = [None if v != v else v for v in out]
    return out


def model_events(kind: str, n: int, seed: int = 1, score: bool = True) -> list:
    """The first ``n`` predictions of a model of ``kind``, decoded by the daemon's decoder
    (:func:`bench.feeding.predictions`): its features, a predicted class drawn independently
    (30% positive) and, with ``score``, a score in (0, 1) (Beta(2, 5))."""
    from bench import feeding

    rng = np.random.default_rng(seed)
    sources = model_sources(kind, rng)
    columns = {name: _json_values(typ, draw, n) for name, typ, draw in sources}
    prediction = (rng.random(n) < 0.3).astype(int)
    scores = rng.beta(2, 5, n) if score else None
    return feeding.predictions(f"bench-{kind}", columns, prediction, scores)


class _Timers:
    """Thread CPU seconds spent in a few methods of the detectors while active (the
    reconstruction's fit and calibration, the CUSUM's build and calibration, the joint
    PSI + KS simulation): each wrapped on its class, restored on exit. Nested calls count
    in each wrapper that sees them (the joint simulation within a union calibration)."""

    def __init__(self):
        from detectors import cusum, joint, reconstruction

        self.seconds: dict[str, float] = {}
        self._patches = [
            (reconstruction.Reconstruction, "__init__", "reconstruction build", False),
            (reconstruction.Reconstruction, "exact_thresholds", "reconstruction calibration", "classmethod"),
            (cusum.CUSUM, "__init__", "cusum build", False),
            (cusum.CUSUM, "exact_thresholds", "cusum calibration", "staticmethod"),
            (joint, "joint_simulation", "joint simulation", False),
        ]
        self._saved: list = []

    def _wrap(self, function, name):
        def timed(*args, **kwargs):
            t = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.thread_time() - t
        return timed

    def __enter__(self):
        for owner, attr, name, how in self._patches:
            raw = owner.__dict__[attr]
            self._saved.append((owner, attr, raw))
            if how == "classmethod":
                setattr(owner, attr, classmethod(self._wrap(raw.__func__, name)))
            elif how == "staticmethod":
                setattr(owner, attr, staticmethod(self._wrap(raw.__func__, name)))
            else:
                setattr(owner, attr, self._wrap(raw, name))
        return self

    def __exit__(self, *exc):
        for owner, attr, raw in reversed(self._saved):
            setattr(owner, attr, raw)
        self._saved = []


def calibration_cpu(kind: str, reference_size: int, seed: int = 1, score: bool = True, ert: float | None = None) -> dict:
    """Thread CPU seconds to make one model ready in the daemon's own pipeline
    (:class:`~daemon.stream.pipeline.ModelPipeline` at ``ModelConfig()`` defaults but
    ``reference_size`` and ``ert``, fed through :class:`bench.feeding.Fed`): collecting
    the reference, building its tests (``build``) and computing every threshold
    (``calibration``, as :func:`daemon.runtime.calibrator.calibrate_now` does), with a
    few detectors' shares (:class:`_Timers`). Calibration caches are emptied first, so
    the model pays for its own shared tables."""
    from bench import feeding
    from daemon.config import ModelConfig

    settings = {"reference_size": reference_size} if ert is None else {"reference_size": reference_size, "ert": ert}
    config = ModelConfig(**settings)
    events = model_events(kind, reference_size, seed, score)
    _clear_caches()
    fed = feeding.Fed(f"bench-{kind}", config)
    with _Timers() as timers:
        process = time.process_time()
        for i in range(0, len(events), FEED_BATCH):
            fed.feed(events[i:i + FEED_BATCH])
        process = time.process_time() - process
    if not fed.ready:
        raise RuntimeError(f"{kind}: the model is not ready after its reference and calibration")
    tests = fed.tests()
    return {"kind": kind, "reference": reference_size, "tests": len(tests),
            "cusums": sum(t == "cusum" for t, _ in tests), "reconstruction": any(t == "reconstruction" for t, _ in tests),
            "collect": fed.cpu["reference"], "build": fed.cpu["build"], "calibrate": fed.cpu["calibration"],
            "total": fed.cpu["build"] + fed.cpu["calibration"],
            # The process's CPU (BLAS's own threads too, which thread CPU misses) less
            # collecting's: what building and calibrating cost the machine.
            "process": process - fed.cpu["reference"], "parts": dict(timers.seconds)}


#: CPU to make a model ready that issue 8 allows, by reference size (seconds).
TARGETS = {5_000: 1.0, 50_000: 5.0}


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
    p.add_argument("--fa-ert", type=float, default=20_000,
                   help="model ert for the false-alarm part (short enough to see alarms in --events)")
    p.add_argument("--events", type=int, default=1_000_000, help="stationary events per kind of model")
    p.add_argument("--references", type=int, default=10, help="independent references per kind")
    p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    p.add_argument("--sizes", nargs="*", type=int, default=sorted(TARGETS), help="reference sizes of the CPU part")
    p.add_argument("--plain-allocator", action="store_true",
                   help="leave glibc's mmap threshold to rise as it does by default, instead of fixing it as "
                        "`driftd run` does (daemon/runtime/allocator.py)")
    p.add_argument("--no-score", action="store_true", help="models without a score column in the CPU part")
    p.add_argument("--repeat", type=int, default=1, help="CPU part: models per kind and size (the least is shown)")
    p.add_argument("--json", action="store_true", help="CPU part: also print each result as a JSON line")
    p.add_argument("--blas-threads", type=int, default=1,
                   help="BLAS threads (default 1, as driftd run sets them; 0: the library's default)")
    p.add_argument("--no-cpu", action="store_true")
    p.add_argument("--no-false-alarms", action="store_true")
    opts = p.parse_args(argv)
    if not opts.plain_allocator:
        from daemon.runtime import allocator

        allocator.tune()  # as `driftd run` does
    if opts.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=opts.blas_threads, user_api="blas")  # driftd run: daemon/runtime/blas.py
    if not opts.no_cpu:
        from daemon.config import ModelConfig

        defaults = ModelConfig()
        allocator_name = "glibc's plain" if opts.plain_allocator else "the daemon's"
        blas = opts.blas_threads or os.environ.get("OPENBLAS_NUM_THREADS") or f"default ({os.cpu_count()} CPUs)"
        print(f"CPU to make a model ready in the daemon's pipeline (ModelConfig() defaults: window {defaults.window}, "
              f"stride {defaults.stride}, ert {defaults.ert:.0e}; caches cold), {allocator_name} allocator, "
              f"BLAS threads {blas}; seconds of thread CPU (process: the process's, BLAS threads too)")
        print(f"  {'kind':12s} {'reference':>9s} {'tests':>5s} {'collect':>7s} {'build':>6s} {'calibrate':>9s} "
              f"{'ready':>6s} {'process':>7s}   of which: joint PSI+KS, CUSUM (build+cal), reconstruction (build+cal)")
        verdicts = []
        for kind in opts.kinds:
            for size in opts.sizes:
                runs = [calibration_cpu(kind, size, seed=1, score=not opts.no_score) for _ in range(opts.repeat)]
                r = min(runs, key=lambda r: r["total"])
                parts = r["parts"]
                cusum = parts.get("cusum build", 0.0) + parts.get("cusum calibration", 0.0)
                recon = parts.get("reconstruction build", 0.0) + parts.get("reconstruction calibration", 0.0)
                print(f"  {kind:12s} {size:>9,d} {r['tests']:>5d} {r['collect']:>7.3f} {r['build']:>6.3f} "
                      f"{r['calibrate']:>9.3f} {r['total']:>6.3f} {r['process']:>7.3f}   {parts.get('joint simulation', 0.0):.3f}, "
                      f"{cusum:.3f} ({parts.get('cusum calibration', 0.0):.3f} cal), "
                      f"{recon:.3f} ({parts.get('reconstruction calibration', 0.0):.3f} cal)", flush=True)
                if opts.json:
                    print(json.dumps(r), flush=True)
                target = TARGETS.get(size)
                if target is not None:
                    verdicts.append((kind, size, r["total"], target))
        for kind, size, total, target in verdicts:
            print(f"  {kind} at {size:,d}: {total:.2f} s, {'within' if total <= target else 'ABOVE'} {target:g} s")
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
