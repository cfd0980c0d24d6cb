"""Throughput, memory and false-alarm calibration of driftd's detectors.

Run from the repository root::

    PYTHONPATH=. python bench/detectors.py            # full run (about 2 minutes on 2 cores)
    PYTHONPATH=. python bench/detectors.py --quick    # smoke run with small sizes
    PYTHONPATH=. python bench/detectors.py --json -   # also print the results as JSON
    PYTHONPATH=. python bench/detectors.py --json out.json

For every detector it prints the values fed per second (``time.perf_counter``, best of a
few repeats where cheap), the ratio to River's KSWIN and ADWIN measured in the same run
(ratios are what matter: machines are noisy), the size of the detector's pickle
(``len(det.snapshot())``) and the tracemalloc peak during construction plus feeding.
Slow detectors are timed on a prefix of the stream; the table says on how many values.

Targets (KS window 1000 / reference 5000 / stride 100 at >= 1,000,000 values/s; PSI
batched at >= 2,000,000 values/s) are printed as PASS or BELOW: information only, the
script never fails on them.

The last section checks the ``ert=`` calibration of PSI and KS: on stationary streams
(fresh draws from the reference's distribution) the observed number of false alarms
(``n_detections``) against the number asked for (``n_values / ert``), per reference sample
and pooled over several independent reference samples.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import itertools
import json
import os
import pickle
import platform
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):
    # Allow `python bench/detectors.py` from the repository root without PYTHONPATH.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import river  # noqa: E402
import scipy  # noqa: E402
from river import drift as river_drift  # noqa: E402

from detectors import calibration as calibration_module  # noqa: E402
from detectors.chisquare import ChiSquare  # noqa: E402
from detectors.ks import KS  # noqa: E402
from detectors.psi import PSI  # noqa: E402
from detectors.river import RiverDetector  # noqa: E402

try:  # performance decay is newer than the rest; benchmark it where it exists
    from detectors.decay import PerformanceDecay  # noqa: E402
except ImportError:  # pragma: no cover - depends on the tree
    PerformanceDecay = None

SEED = 20_240_601
REFERENCE_SIZE = 5_000
WINDOW = 1_000
STRIDE = 100
BATCH = 10_000
ERROR_RATE = 0.2  # share of 1s in the 0/1 error stream of the binary River detectors
LEVELS = list("ABCDEFGH")
LEVEL_P = np.array([0.30, 0.20, 0.15, 0.10, 0.10, 0.07, 0.05, 0.03])
ACCURACY = 0.9  # of the simulated model, for PerformanceDecay

KS_TARGET = 1_000_000
PSI_TARGET = 2_000_000


# ---------------------------------------------------------------------------------------
# data


@dataclass
class Data:
    n: int
    ref: np.ndarray  # numeric reference, N(0, 1)
    x: np.ndarray  # numeric stream, fresh N(0, 1) draws
    x_list: list  # the same as Python floats (what a JSON decoder hands over)
    err_list: list  # 0/1 error stream
    cat_ref: list  # categorical reference
    cat_list: list  # categorical stream
    y_true: list  # labels, for PerformanceDecay
    y_pred: list  # predictions (right with probability ACCURACY)
    y_reg: list  # regression targets / predictions for the mae metric
    p_reg: list


def make_data(n: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=REFERENCE_SIZE)
    x = rng.normal(size=n)
    err = (rng.random(n) < ERROR_RATE).astype(np.int64)
    cat_ref = rng.choice(LEVELS, size=REFERENCE_SIZE, p=LEVEL_P).tolist()
    cat = rng.choice(LEVELS, size=n, p=LEVEL_P).tolist()
    y_true = rng.integers(0, 2, size=n)
    y_pred = np.where(rng.random(n) < ACCURACY, y_true, 1 - y_true)
    y_reg = rng.normal(size=n)
    p_reg = y_reg + rng.normal(scale=0.5, size=n)
    return Data(
        n=n, ref=ref, x=x, x_list=x.tolist(), err_list=err.tolist(), cat_ref=cat_ref,
        cat_list=cat, y_true=y_true.tolist(), y_pred=y_pred.tolist(),
        y_reg=y_reg.tolist(), p_reg=p_reg.tolist(),
    )


# ---------------------------------------------------------------------------------------
# feeders: each takes (detector, n) and feeds the first n values of its stream


def per_value(stream) -> Callable:
    def feed(det, n):
        update = det.update
        for v in itertools.islice(stream, n):  # no copy of the input inside the traced region
            update(v)
    return feed


def batched(stream, batch: int = BATCH) -> Callable:
    def feed(det, n):
        update_many = det.update_many
        for i in range(0, n, batch):
            update_many(stream[i : min(n, i + batch)])
    return feed


def _update_takes_pair_args(det) -> bool:
    """decay.py's update is update((y_true, y_pred)) in some versions and
    update(y_true, y_pred) in others: look at the signature."""
    try:
        params = [p for p in inspect.signature(det.update).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


def pairs_per_value(y_true, y_pred) -> Callable:
    def feed(det, n):
        update = det.update
        if _update_takes_pair_args(det):
            for t, p in itertools.islice(zip(y_true, y_pred), n):
                update(t, p)
        else:
            for t, p in itertools.islice(zip(y_true, y_pred), n):
                update((t, p))
    return feed


def pairs_batched(y_true, y_pred, batch: int = BATCH) -> Callable:
    def feed(det, n):
        update_many = det.update_many
        for i in range(0, n, batch):
            j = min(n, i + batch)
            update_many(y_true[i:j], y_pred[i:j])
    return feed


# ---------------------------------------------------------------------------------------
# one benchmark case


@dataclass
class Case:
    name: str
    input: str  # how values are fed, for the table
    make: Callable[[], object]
    feed: Callable[[object, int], None]
    kind: str = "driftd"  # "baseline" (raw River) or "driftd"
    fixed_n: int | None = None  # time on exactly this many values (slow baselines)
    fixed_reps: int | None = None
    target: int | None = None
    note: str = ""
    pickle_size: Callable[[object], int] = lambda det: len(det.snapshot())
    result: dict = field(default_factory=dict)


def _time_once(case: Case, n: int) -> tuple[float, object]:
    det = case.make()
    gc.collect()
    t0 = time.perf_counter()
    case.feed(det, n)
    return time.perf_counter() - t0, det


def run_case(case: Case, n_max: int, opts) -> dict:
    """Time ``case``: the whole stream (n_max values) when a pass is cheap enough, else a
    prefix sized to about ``opts.prefix_seconds`` per pass."""
    case_started = time.perf_counter()
    if case.fixed_n is not None:
        n, reps = min(case.fixed_n, n_max), case.fixed_reps or 1
    else:
        warm = min(n_max, opts.warmup)
        dt, _ = _time_once(case, warm)  # also warms caches and imports
        rate = warm / max(dt, 1e-9)
        full_s = n_max / rate
        if full_s <= opts.full_seconds:
            n, reps = n_max, opts.repeats
        else:
            n = int(rate * opts.prefix_seconds)
            n = max(warm, (n // BATCH) * BATCH if n >= BATCH else n)
            reps = opts.repeats
    best, det = None, None
    for _ in range(reps):
        dt, d = _time_once(case, n)
        if best is None or dt < best:
            best, det = dt, d
    res = {
        "name": case.name, "kind": case.kind, "input": case.input, "n": n,
        "prefix": n < n_max, "repeats": reps, "seconds": best, "rate": n / best,
        "n_detections": getattr(det, "n_detections", None),
        "pickle_bytes": case.pickle_size(det), "note": case.note,
    }
    if case.target is not None:
        res["target"] = case.target
        res["meets_target"] = res["rate"] >= case.target
    # memory: tracemalloc peak while building and feeding (on at most opts.mem_values values;
    # the input is allocated before tracing starts)
    # (tracemalloc slows Python-heavy code many times over: keep that pass to about
    # opts.mem_seconds untraced, but at least a few windows' worth of values)
    mem_n = min(n, opts.mem_values, max(opts.mem_min_values, int(res["rate"] * opts.mem_seconds)))
    del det
    gc.collect()
    mem_started = time.perf_counter()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    d = case.make()
    case.feed(d, mem_n)
    res["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
    res["tracemalloc_values"] = mem_n
    tracemalloc.stop()
    del d
    res["tracemalloc_seconds"] = time.perf_counter() - mem_started
    res["wall_seconds"] = time.perf_counter() - case_started
    return res


# ---------------------------------------------------------------------------------------
# the cases


def build_cases(data: Data, opts) -> list[Case]:
    ref, x, xl = data.ref, data.x, data.x_list
    el, cref, cl = data.err_list, data.cat_ref, data.cat_list
    raw_pickle = lambda det: len(pickle.dumps(det, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: E731
    cases = [
        Case("River KSWIN (raw)", "per value", lambda: river_drift.KSWIN(seed=1), per_value(xl),
             kind="baseline", fixed_n=opts.kswin_n, fixed_reps=opts.kswin_repeats, pickle_size=raw_pickle,
             note="window_size=100 (default)"),
        Case("River ADWIN (raw)", "per value", lambda: river_drift.ADWIN(), per_value(xl),
             kind="baseline", pickle_size=raw_pickle),
    ]
    for kind in ("ADWIN", "PageHinkley", "KSWIN", "DDM", "EDDM", "HDDM_A", "HDDM_W"):
        binary = kind in ("DDM", "EDDM", "HDDM_A", "HDDM_W")
        params = {"seed": 1} if kind == "KSWIN" else {}
        cases.append(Case(
            f"RiverDetector {kind}", "per value, 0/1" if binary else "per value",
            (lambda kind=kind, params=params: RiverDetector(kind, **params)),
            per_value(el if binary else xl),
            fixed_n=opts.kswin_n if kind == "KSWIN" else None,
            fixed_reps=opts.kswin_repeats if kind == "KSWIN" else None,
            note=f"error stream p={ERROR_RATE}" if binary else "",
        ))
    cases.append(Case(
        "RiverDetector ADWIN", f"list batches {BATCH:,}", lambda: RiverDetector("ADWIN"),
        batched(xl), note="update_many"))

    def psi():
        return PSI(ref, window=WINDOW, stride=STRIDE, threshold=0.1)

    def ks(stride):
        return lambda: KS(ref, window=WINDOW, stride=stride, threshold=0.1)

    cases += [
        Case(f"PSI numeric w{WINDOW} s{STRIDE}", f"ndarray batches {BATCH:,}", psi, batched(x),
             target=PSI_TARGET, note=f"reference {REFERENCE_SIZE}, 10 bins"),
        Case(f"PSI numeric w{WINDOW} s{STRIDE}", f"list batches {BATCH:,}", psi, batched(xl),
             note="Python floats"),
        Case(f"PSI numeric w{WINDOW} s{STRIDE}", "per value", psi, per_value(xl)),
        Case(f"PSI categorical w{WINDOW} s{STRIDE}", f"list batches {BATCH:,}",
             lambda: PSI(cref, window=WINDOW, stride=STRIDE, threshold=0.1, categorical=True),
             batched(cl), note=f"{len(LEVELS)} levels"),
        Case(f"KS w{WINDOW} s{STRIDE}", f"ndarray batches {BATCH:,}", ks(STRIDE), batched(x),
             target=KS_TARGET, note=f"reference {REFERENCE_SIZE}; the target configuration"),
        Case(f"KS w{WINDOW} s{STRIDE}", f"list batches {BATCH:,}", ks(STRIDE), batched(xl),
             note="Python floats"),
        Case(f"KS w{WINDOW} s10", f"ndarray batches {BATCH:,}", ks(10), batched(x),
             note="for information"),
        Case(f"KS w{WINDOW} s{STRIDE}", "per value", ks(STRIDE), per_value(xl)),
        Case(f"ChiSquare w{WINDOW} s{STRIDE}", f"list batches {BATCH:,}",
             lambda: ChiSquare(cref, window=WINDOW, stride=STRIDE, threshold=1e9),
             batched(cl), note=f"{len(LEVELS)} levels"),
    ]
    if PerformanceDecay is not None:
        dk = dict(window=WINDOW, reference_size=REFERENCE_SIZE, stride=STRIDE, threshold=4.0)  # per-pair cost, no calibration
        cases += [
            Case(f"PerformanceDecay accuracy w{WINDOW} s{STRIDE}", f"list batches {BATCH:,}",
                 lambda: PerformanceDecay("accuracy", **dk),
                 pairs_batched(data.y_true, data.y_pred),
                 note=f"reference {REFERENCE_SIZE} pairs; z on the confusion table"),
            Case(f"PerformanceDecay accuracy w{WINDOW} s{STRIDE}", "per pair",
                 lambda: PerformanceDecay("accuracy", **dk),
                 pairs_per_value(data.y_true, data.y_pred)),
            Case(f"PerformanceDecay mae w{WINDOW} s{STRIDE}", f"list batches {BATCH:,}",
                 lambda: PerformanceDecay("mae", **dk),
                 pairs_batched(data.y_reg, data.p_reg), note="Welch z"),
        ]
    return cases


# ---------------------------------------------------------------------------------------
# calibration


def _clear_calibration_cache() -> None:
    cache = getattr(calibration_module, "_cache", None)
    if isinstance(cache, dict):
        cache.clear()


def run_calibration(opts) -> dict:
    """For PSI and KS with ``ert=``: false alarms on stationary streams, per reference and
    pooled. Two variants: the default ``calibration_seed`` (0, what a user gets), and a
    different ``calibration_seed`` per reference, which shows how much of the error is the
    calibration's own Monte-Carlo noise (with one seed every reference shares it)."""
    n, ert, n_refs = opts.cal_values, opts.ert, opts.cal_refs
    expected = n / ert
    out = {"n_values": n, "ert": ert, "window": WINDOW, "stride": STRIDE,
           "reference_size": REFERENCE_SIZE, "expected": expected, "detectors": {}}
    variants = [(name, cls, mode) for name, cls in (("PSI", PSI), ("KS", KS))
                for mode in ("default", "per-reference")]
    if opts.no_seed_variation:
        variants = [v for v in variants if v[2] == "default"]
    per = {(name, mode): [] for name, _, mode in variants}
    for r in range(n_refs):
        rng = np.random.default_rng([SEED, 1_000 + r])
        ref = rng.normal(size=REFERENCE_SIZE)
        stream = rng.normal(size=n)
        for name, cls, mode in variants:
            kwargs = {} if mode == "default" else {"calibration_seed": 100 + r}
            # Calibrations are cached per (configuration, reference) in the process, and a
            # reference of distinct numbers may be keyed by its ranks only: empty the cache
            # so that every construction pays for its calibration, then time a cached one.
            _clear_calibration_cache()
            t0 = time.perf_counter()
            det = cls(ref, window=WINDOW, stride=STRIDE, ert=ert, **kwargs)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            cls(ref, window=WINDOW, stride=STRIDE, ert=ert, **kwargs)
            cached = time.perf_counter() - t0
            t0 = time.perf_counter()
            for i in range(0, n, BATCH):
                det.update_many(stream[i : i + BATCH])
            feed = time.perf_counter() - t0
            per[name, mode].append({
                "reference": r, "calibration_seed": det.calibration_seed,
                "threshold": det.threshold, "warning_threshold": det.warning_threshold,
                "n_tests": det.n_tests, "observed": det.n_detections,
                "ratio": det.n_detections / expected, "calibration_seconds": build,
                "cached_construction_seconds": cached, "feed_seconds": feed,
            })
    for (name, mode), rows in per.items():
        observed = sum(row["observed"] for row in rows)
        out["detectors"][f"{name} ({mode} calibration_seed)"] = {
            "detector": name, "seed_mode": mode,
            "per_reference": rows,
            "pooled_observed": observed,
            "pooled_expected": expected * len(rows),
            "pooled_ratio": observed / (expected * len(rows)),
            "calibration_seconds_mean": float(np.mean([row["calibration_seconds"] for row in rows])),
            "cached_construction_seconds_mean": float(
                np.mean([row["cached_construction_seconds"] for row in rows])),
        }
    return out


# ---------------------------------------------------------------------------------------
# printing


def fmt_int(v) -> str:
    return f"{v:,.0f}"


def fmt_bytes(b) -> str:
    if b is None:
        return "-"
    for unit, size in (("MB", 1 << 20), ("kB", 1 << 10)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b} B"


def fmt_ratio(r) -> str:
    if r < 0.1:
        return f"{r:.2g}x"
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def header_lines(opts) -> list[str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    return [
        "driftd detector benchmark",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"numpy {np.__version__}, scipy {scipy.__version__}, river {river.__version__}",
        f"{platform.system()} {platform.machine()}, CPUs: {os.cpu_count()} ({usable} usable), "
        f"processor: {_cpu_model()}, load average at start: {_loadavg()}",
        f"stream {opts.n:,} values per detector{' (--quick)' if opts.quick else ''}, seed {SEED}; "
        f"reference {REFERENCE_SIZE:,}, window {WINDOW:,}; best of {opts.repeats} passes, over the "
        f"whole stream where a pass takes <= {opts.full_seconds:g} s, else over a prefix",
    ]


def table(rows: list[dict], kswin_rate: float, adwin_rate: float) -> list[str]:
    cols = ["detector", "input", "values timed", "reps", "values/s", "vs KSWIN", "vs ADWIN",
            "pickle", "tracemalloc peak", "alarms", "target"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["name"], r["input"], "-", "-", "ERROR", "-", "-", "-", "-", "-",
                         r["error"][:60]])
            continue
        n = fmt_int(r["n"]) + (" (prefix)" if r["prefix"] else "")
        target = ""
        if "target" in r:
            target = f"{'PASS' if r['meets_target'] else 'BELOW'} (>= {fmt_int(r['target'])})"
        body.append([
            r["name"], r["input"], n, str(r["repeats"]), fmt_int(r["rate"]),
            fmt_ratio(r["rate"] / kswin_rate), fmt_ratio(r["rate"] / adwin_rate),
            fmt_bytes(r["pickle_bytes"]),
            f"{fmt_bytes(r['tracemalloc_peak_bytes'])} /{r['tracemalloc_values'] // 1000}k",
            "-" if r["n_detections"] is None else str(r["n_detections"]), target,
        ])
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    right = {2, 3, 4, 5, 6, 7, 8, 9}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(cols), line(["-" * w for w in widths])]
    for r, b in zip(rows, body):
        out.append(line(b))
        if r.get("kind") == "baseline" and r is rows[1]:
            out.append(line(["-" * w for w in widths]))
    return out


def calibration_lines(cal: dict) -> list[str]:
    out = [
        f"False-alarm calibration: ert={cal['ert']:,.0f}, window {cal['window']}, stride "
        f"{cal['stride']}, reference {cal['reference_size']:,} N(0,1); "
        f"{cal['n_values']:,} stationary values per reference (fresh N(0,1) draws)",
        f"expected false alarms per reference: {cal['n_values']:,} / {cal['ert']:,.0f} = "
        f"{cal['expected']:g}",
    ]
    for d in cal["detectors"].values():
        rows = d["per_reference"]
        first = rows[0]
        seeds = ("calibration_seed=0 (default) for every reference" if d["seed_mode"] == "default"
                 else "calibration_seed=" + ",".join(str(row["calibration_seed"]) for row in rows)
                 + " (one per reference)")
        out.append(f"  {d['detector']}, {seeds}")
        out.append(
            f"    reference 0: observed {first['observed']}, ratio observed/asked "
            f"{first['ratio']:.2f}; threshold {first['threshold']:.4g}, {first['n_tests']:,} tests"
        )
        out.append(
            f"    pooled over {len(rows)} references: observed {d['pooled_observed']} / expected "
            f"{d['pooled_expected']:g} = ratio {d['pooled_ratio']:.2f}"
        )
        out.append("    per reference, observed (ratio, threshold): " + ", ".join(
            f"{row['observed']} ({row['ratio']:.2f}, {row['threshold']:.4g})" for row in rows))
        out.append(
            f"    calibration time (construction with ert=): mean "
            f"{d['calibration_seconds_mean']:.2f} s, per reference "
            + ", ".join(f"{row['calibration_seconds']:.2f}" for row in rows)
            + f" s; again with the calibration cached: "
            f"{d['cached_construction_seconds_mean'] * 1e3:.1f} ms"
        )
        out.append(f"    feeding {cal['n_values']:,} values took "
                   + ", ".join(f"{row['feed_seconds']:.2f}" for row in rows) + " s")
    return out


# ---------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--n", type=int, help="values per detector (default 1,000,000; --quick 100,000)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many passes where cheap")
    p.add_argument("--kswin-n", type=int,
                   help="values for the KSWIN detectors, best of 2 passes (default 20,000; --quick 2,000)")
    p.add_argument("--ert", type=float, default=20_000, help="expected run length for calibration")
    p.add_argument("--cal-refs", type=int, help="independent reference samples (default 5; --quick 2)")
    p.add_argument("--cal-values", type=int,
                   help="stationary values per reference (default 1,000,000; --quick 200,000)")
    p.add_argument("--no-calibration", action="store_true", help="skip the calibration section")
    p.add_argument("--no-seed-variation", action="store_true",
                   help="calibration: only the default calibration_seed, not one per reference")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="also write the results as JSON to PATH (or stdout with no PATH / '-')")
    opts = p.parse_args(argv)
    q = opts.quick
    opts.n = opts.n or (100_000 if q else 1_000_000)
    opts.kswin_n = opts.kswin_n or (2_000 if q else 20_000)
    opts.cal_refs = opts.cal_refs or (2 if q else 5)
    opts.cal_values = opts.cal_values or (200_000 if q else 1_000_000)
    opts.kswin_repeats = 2
    opts.warmup = 20_000
    opts.full_seconds = 2.0  # time the whole stream when one pass takes at most this ...
    opts.prefix_seconds = 0.7  # ... else a prefix of about this long per pass
    opts.mem_values = 100_000
    opts.mem_min_values = 2_000
    opts.mem_seconds = 0.25
    return opts


def main(argv=None) -> int:
    opts = parse_args(argv)
    started = time.perf_counter()
    for line in header_lines(opts):
        print(line)
    print(flush=True)

    data = make_data(opts.n, SEED)
    rows = []
    for case in build_cases(data, opts):
        try:
            rows.append(run_case(case, opts.n, opts))
        except Exception as e:  # report and go on: one broken detector shouldn't hide the rest
            if tracemalloc.is_tracing():
                tracemalloc.stop()
            rows.append({"name": case.name, "kind": case.kind, "input": case.input,
                         "error": f"{type(e).__name__}: {e}"})
        print(f"  timed {case.name} [{case.input}]", file=sys.stderr, flush=True)
    kswin = next(r for r in rows if r["name"] == "River KSWIN (raw)")["rate"]
    adwin = next(r for r in rows if r["name"] == "River ADWIN (raw)")["rate"]
    for r in rows:
        if "rate" in r:
            r["vs_river_kswin"] = r["rate"] / kswin
            r["vs_river_adwin"] = r["rate"] / adwin

    for line in table(rows, kswin, adwin):
        print(line)
    print()
    print("Notes: values/s is best-of-'reps' passes over 'values timed' values (construction not "
          "timed);\n'(prefix)' marks detectors too slow for the whole stream, timed on its first "
          "values (stationary\nstreams, so the rate holds); 'pickle' is len(det.snapshot()) after "
          "the timed pass (raw River: pickle.dumps);\n'tracemalloc peak' covers construction + "
          "feeding of the first '/Nk' values\n(for list batches it includes one 10,000-value "
          "slice of the input); 'alarms' is n_detections\nof the timed pass "
          "(thresholds 0.1 for PSI/KS and 1e9 for ChiSquare, River defaults). Targets are "
          "informational.")
    decay_note = ("PerformanceDecay: present" if PerformanceDecay is not None
                  else "PerformanceDecay: detectors/decay.py not found, skipped")
    print(decay_note)
    print(flush=True)

    cal = None
    if not opts.no_calibration:
        cal = run_calibration(opts)
        for line in calibration_lines(cal):
            print(line)
        print()

    print("Targets (informational):")
    for r in rows:
        if "target" in r:
            print(f"  {r['name']} [{r['input']}]: {fmt_int(r['rate'])} values/s vs target "
                  f"{fmt_int(r['target'])}: {'PASS' if r['meets_target'] else 'BELOW'} "
                  f"({r['rate'] / r['target']:.2f} of target; {fmt_ratio(r['vs_river_kswin'])} "
                  f"River KSWIN, {fmt_ratio(r['vs_river_adwin'])} River ADWIN)")
    print()
    elapsed = time.perf_counter() - started
    print(f"total run time {elapsed:.1f} s; load average at end: {_loadavg()}")
    if opts.json:
        doc = {
            "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "river": river.__version__,
            "cpu_count": os.cpu_count(), "n": opts.n, "seed": SEED, "quick": opts.quick,
            "river_kswin_rate": kswin, "river_adwin_rate": adwin,
            "results": rows, "calibration": cal, "run_seconds": elapsed,
        }
        text = json.dumps(doc, indent=2, default=float)
        if opts.json == "-":
            print(text)
        else:
            Path(opts.json).write_text(text + "\n")
            print(f"JSON written to {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
