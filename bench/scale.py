"""Many models in one process: memory, time to ready and per-event cost against the number of
models; then scale-out on the embedded broker (``bench/scale_out.py``): throughput of 1, 2 and
3 replicas of one group, takeover time, state-topic bytes, series per model, RSS per replica.

Run from the repository root::

    .venv/bin/python bench/scale.py            # 1, 10, 100, 1,000 models, then scale-out (~10 min)
    .venv/bin/python bench/scale.py --quick    # 1, 10, 100 models, a shorter steady phase, quick scale-out
    .venv/bin/python bench/scale.py --models 1,50 --only models
    .venv/bin/python bench/scale.py --only takeover,series
    .venv/bin/python bench/scale.py --only models --events scored   # with a score and labels only

Each count of models runs in a fresh interpreter (so memory does not carry over), with
``daemon.stream.pipeline.ModelPipeline`` objects fed directly (no broker; see ``bench/feeding.py``),
every model at ``ModelConfig()``'s defaults with 20 numeric features ``x0..x19`` (normal,
each its own mean and scale; fresh draws per model; full-precision floats, or rounded to
``--decimals`` digits as JSON values often are), and two kinds of events (``--events``):

- **unscored**: a predicted class, no score and no label: the data tests alone (the
  label tests and the estimated performance never run);
- **scored**: the predicted class with a score, the probability of class 1 (calibrated:
  each label is 1 with it), and every prediction's label (fed after its batch of
  predictions, as the label join gives them), so that the label tests (error stream,
  accuracy decay) and the estimated performance run: fitted on the first
  ``decay_reference_size`` labels, then estimating every later prediction, its decay test
  calibrated to ``label_ert``. Each count runs twice, ``estimation: auto`` (the default) and
  ``off``, in the same run, for the estimate's own share: RSS per model, time to ready
  (its calibration part apart), CPU per prediction and its label, and the estimate's pickled
  state. Timings and RSS go through the same steps as below, labels included:

1. **baseline**: the interpreter with numpy and driftd imported, the C allocator tuned as
   ``driftd run`` tunes it (``daemon/runtime/allocator.py``), after ``gc.collect()``: VmRSS
   is the "interpreter" that the memory figures are measured above;
2. **collecting**: model after model, its reference (``reference_size`` predictions, decoded
   beforehand, not timed) but its last prediction is fed in batches of 500; with every
   model one prediction short of its reference (the most a reference holds), VmRSS above
   the baseline after ``gc.collect()`` is the collecting phase's memory;
3. **to ready**: model after model, the last prediction of its reference, which builds its
   tests, then its pending calibrations are computed: the CPU time of this thread from
   the first reference event to a calibrated model (both steps). The first model pays for
   what later ones share (null tables of continuous features, which depend on sizes and
   settings only);
4. **per event**: every model's windows are filled (``window`` stationary predictions,
   untimed), then batches of ``stride`` predictions (each batch runs every test of the model
   once), model after model, round after round, at least ``--steady`` predictions in all:
   CPU microseconds per prediction. Flat means the cost does not grow with the number of
   models;
5. **memory**, after the steady phase (``gc.collect()``): VmRSS above the baseline, per
   model, and the marginal cost of a model, ``(RSS above at N - at 1) / (N - 1)``, which
   leaves out one-off costs (lazy imports, shared null tables, allocator arenas); each
   model's pickled size (``pickle.dumps(pipeline)``, what a checkpoint holds for it; every
   model for up to 100, else 100 of them). VmHWM (the peak) is printed too.

Then ``bench/scale_out.py`` (see its docstring) with real ``driftd run`` replicas, and the RSS
of a replica with 1,000 models x 20 features at the defaults, put together from two
measurements of this run: a daemon process with no model yet (started, partitions assigned)
plus 1,000 models' RSS above the interpreter from step 4 (a daemon's own RSS is measured in
the scale-out part only with 100 small models: 1,000 default references and windows, 6
million predictions of 20 features, about 3 GB of JSON in the broker's memory, would take
longer than this whole run). Without 1,000 in
``--models`` (``--quick``), the 1,000 models are extrapolated from the marginal cost at the
largest count, and said so.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import feeding  # noqa: E402

N_FEATURES = 20
SEED = 20_251_203
FEED_BATCH = 500  # predictions per batch while the reference fills
POOL = 2_000  # stationary predictions shared by every model in the steady phase
MEANS = np.linspace(-5, 5, N_FEATURES)
SCORE_SLOPE = 2.0  # scored events: P(class 1) = 1 / (1 + exp(-SCORE_SLOPE * z)), about 86% right
LABEL_DELAY = 1.0  # scored events: seconds from a prediction to its label (100 predictions later)
#: Kinds of events: without a score or labels (the estimate never runs), and with both,
#: estimation on (the default) and off.
EVENTS = {"unscored": {}, "scored": {}, "scored-off": {"estimation": "off"}}
SCALES = np.linspace(0.5, 3, N_FEATURES)


def rows(rng: np.random.Generator, n: int, model: str, start: int = 0, decimals: int | None = None,
         scored: bool = False):
    """``n`` predictions of ``model``; ``scored``: ``(predictions, labels)``, each prediction
    with a score (the probability of class 1, calibrated: each label is 1 with it)."""
    x = rng.normal(size=(n, N_FEATURES)) * SCALES + MEANS
    if decimals is not None:
        x = np.round(x, decimals)  # "12.34" in the JSON
    z = (x[:, 0] - MEANS[0]) / SCALES[0] + (x[:, 1] - MEANS[1]) / SCALES[1]
    prediction = (z > 0).astype(int)
    columns = {f"x{k}": x[:, k] for k in range(N_FEATURES)}
    if not scored:
        return feeding.predictions(model, columns, prediction, start=start)
    score = 1.0 / (1.0 + np.exp(-SCORE_SLOPE * z))
    labels = (rng.uniform(size=n) < score).astype(int).tolist()
    return feeding.predictions(model, columns, prediction, score=score, start=start), labels


def vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(n_models: int, steady: int, decimals: int | None = None, events: str = "unscored") -> dict:
    from daemon.config import ModelConfig
    from daemon.runtime import allocator, blas

    allocator.tune()  # as `driftd run` does
    blas.limit_threads()
    config = ModelConfig(**EVENTS[events])
    scored = events != "unscored"
    gc.collect()
    baseline = vm("VmRSS")
    models: list[feeding.Fed] = []
    ready_cpu, last = [], []
    for m in range(n_models):
        rng = np.random.default_rng([SEED, m])
        reference = rows(rng, config.reference_size, f"m{m}", decimals=decimals, scored=scored)
        if scored:
            reference, labels = reference
        fed = feeding.Fed(f"m{m}", config)
        t = time.thread_time()
        for i in range(0, len(reference) - 1, FEED_BATCH):
            batch = slice(i, min(i + FEED_BATCH, len(reference) - 1))
            fed.feed(reference[batch])
            if scored:  # each batch's labels right after it
                fed.feed_labels(reference[batch], labels[batch], LABEL_DELAY)
        ready_cpu.append(time.thread_time() - t)
        models.append(fed)
        last.append((reference[-1], labels[-1]) if scored else reference[-1])
        del reference
    gc.collect()
    collecting_rss = vm("VmRSS")
    collecting_peak = vm("VmHWM")
    collecting_bytes = [sum(c.nbytes for c in fed.pipeline.reference.columns()) for fed in models]
    pickled_collecting = [len(pickle.dumps(f.pipeline, protocol=pickle.HIGHEST_PROTOCOL))
                          for f in (models if n_models <= 100 else models[::n_models // 100])]
    for m, fed in enumerate(models):
        t = time.thread_time()
        if scored:
            fed.feed([last[m][0]])
            fed.feed_labels([last[m][0]], [last[m][1]], LABEL_DELAY)
        else:
            fed.feed([last[m]])
        if not fed.ready:
            fed.calibrate()
        ready_cpu[m] += time.thread_time() - t
        if not fed.ready:
            raise RuntimeError(f"model m{m} not ready after its reference and calibration")
        estimation = fed.pipeline.estimation
        if scored and estimation.enabled and not (estimation.fitted and estimation.settled):
            raise RuntimeError(f"model m{m}: the estimate is not running ({estimation.skipped or 'not fitted'})")
    del last
    gc.collect()
    ready_rss = vm("VmRSS")
    calibration_cpu = [fed.cpu["calibration"] for fed in models]

    pool = rows(np.random.default_rng([SEED, 1, 0]), POOL, "steady", start=10**9, decimals=decimals, scored=scored)
    pool, pool_labels = pool if scored else (pool, None)
    window = max(config.window, config.decay_window) if scored else config.window
    step = config.stride  # each batch completes one test of every test
    fill = slice(0, window)
    batches = [slice(i, i + step) for i in range(window, POOL, step)]

    def feed(fed: feeding.Fed, part: slice) -> int:
        found = len(fed.feed(pool[part]))
        if scored:
            found += len(fed.feed_labels(pool[part], pool_labels[part], LABEL_DELAY))
        return found

    # Untimed: fill every model's windows (and labelled windows), so that each timed batch
    # of ``stride`` values completes one test of every test of the model.
    for fed in models:
        feed(fed, fill)
    rounds = max(1, math.ceil(steady / (n_models * step)))
    n_events = detections = 0
    tests_before = n_tests(models)
    t = time.thread_time()
    for r in range(rounds):
        batch = batches[r % len(batches)]
        for fed in models:
            detections += feed(fed, batch)
        n_events += (batch.stop - batch.start) * n_models
    steady_cpu = time.thread_time() - t
    tests_run = n_tests(models) - tests_before
    del pool, pool_labels, batches
    gc.collect()
    steady_rss = vm("VmRSS")
    scrapes = {mode: scrape_seconds(models, mode) for mode in ("alerting", "all")} if not scored else None
    sample = models if n_models <= 100 else [models[i] for i in np.linspace(0, n_models - 1, 100).astype(int)]
    pickled = [len(pickle.dumps(f.pipeline, protocol=pickle.HIGHEST_PROTOCOL)) for f in sample]
    pickled_estimates = [len(pickle.dumps(f.pipeline.estimates, protocol=pickle.HIGHEST_PROTOCOL)) for f in sample]
    pickled_labels = [len(pickle.dumps(f.pipeline.labels, protocol=pickle.HIGHEST_PROTOCOL)) for f in sample]
    return {
        "events": events, "pickled_estimates": float(np.mean(pickled_estimates)),
        "pickled_labels": float(np.mean(pickled_labels)),
        "calibration_cpu_first": calibration_cpu[0],
        "calibration_cpu_rest_mean": float(np.mean(calibration_cpu[1:])) if n_models > 1 else None,
        "models": n_models, "baseline_rss": baseline, "ready_rss": ready_rss, "steady_rss": steady_rss,
        "collecting_rss": collecting_rss, "collecting_peak": collecting_peak,
        "collecting_bytes": float(np.mean(collecting_bytes)), "pickled_collecting": float(np.mean(pickled_collecting)),
        "peak_rss": vm("VmHWM"), "tests_run": tests_run, "pickled_mean": float(np.mean(pickled)), "pickled_max": max(pickled),
        "ready_cpu_first": ready_cpu[0], "ready_cpu_rest_mean": float(np.mean(ready_cpu[1:])) if n_models > 1 else None,
        "ready_cpu_total": float(sum(ready_cpu)), "steady_events": n_events, "steady_rounds": rounds,
        "steady_cpu": steady_cpu, "steady_detections": detections, "scrapes": scrapes,
        "columns": sorted({c for _, c in models[0].pipeline.data_detectors}),
        "tests": len(models[0].pipeline.data_detectors),
        "config": {"reference_size": config.reference_size, "window": config.window, "stride": config.stride,
                   "ert": config.ert},
    }


class _TimedLock:
    """The loop's lock, timing how long each holder keeps it."""

    def __init__(self):
        self._lock = threading.Lock()
        self.held: list[float] = []

    def acquire(self, timeout: float = -1) -> bool:
        ok = self._lock.acquire(timeout=timeout)
        self._since = time.perf_counter()
        return ok

    def release(self) -> None:
        self.held.append(time.perf_counter() - self._since)
        self._lock.release()


def scrape_seconds(models: list, per_feature: str, n: int = 3) -> dict:
    """Median seconds of one /metrics scrape of every model (one partition), and of the part
    of it that holds the loop's lock (the loop waits that long), with ``metrics.per_feature``;
    and the peak of the Python memory one more scrape allocates (``tracemalloc``, untimed:
    it slows what it traces), the working memory a scrape adds to the process for a moment."""
    import tracemalloc

    from prometheus_client import generate_latest

    from daemon.config import from_dict
    from daemon.stream.partition import PartitionState
    from daemon.web.metrics import Metrics

    config = from_dict({"auto_register_models": True, "metrics": {"per_feature": per_feature}})
    state = PartitionState(0, config)
    for fed in models:
        state.models[fed.pipeline.name] = fed.pipeline
    lock = _TimedLock()
    metrics = Metrics({0: state}, lock, config.metrics)
    whole = []
    for _ in range(n):
        t = time.perf_counter()
        generate_latest(metrics.registry)
        whole.append(time.perf_counter() - t)
    gc.collect()
    tracemalloc.start()
    text = generate_latest(metrics.registry)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"whole": float(np.median(whole)), "lock": float(np.median(lock.held)), "peak": peak, "bytes": len(text)}


def n_tests(models: list) -> int:
    """Tests run so far by every test of every model (data, labels, the estimate's)."""
    return sum(d.n_tests for fed in models for _, _, d in fed.pipeline.detectors())


def run(n_models: int, steady: int, decimals: int | None = None, events: str = "unscored") -> dict:
    args = [sys.executable, __file__, "--child", str(n_models), "--steady", str(steady), "--child-events", events]
    if decimals is not None:
        args += ["--decimals", str(decimals)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{n_models} models ({events}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def mb(b: float, digits: int = 1) -> str:
    return f"{b / 2**20:,.{digits}f} MB"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1, 10 and 100 models, 20,000 steady predictions")
    p.add_argument("--models", help="comma-separated counts of models (default 1,10,100,1000)")
    p.add_argument("--steady", type=int, help="steady-phase predictions at least (default 100,000; --quick 20,000)")
    p.add_argument("--only", help="comma-separated parts among models (in one process), throughput, takeover, "
                                  "series (default: all)")
    p.add_argument("--decimals", type=int, help="feature values rounded to this many decimals (as JSON values "
                                                "often are; default: full-precision floats)")
    p.add_argument("--events", default="unscored,scored",
                   help="comma-separated kinds of events among unscored (a predicted class: no score, no labels) "
                        "and scored (a score and every label, estimation on and off) (default: both)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--child-events", default="unscored", choices=sorted(EVENTS), help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    steady = opts.steady or (20_000 if opts.quick else 100_000)
    if opts.child is not None:
        print(json.dumps(child(opts.child, steady, opts.decimals, opts.child_events)))
        return 0
    kinds = [k.strip() for k in opts.events.split(",")]
    if set(kinds) - {"unscored", "scored"}:
        p.error(f"unknown --events {sorted(set(kinds) - {'unscored', 'scored'})}: choose among unscored, scored")
    import scale_out  # not in the children: their baseline is the interpreter with numpy and driftd only
    counts = [int(c) for c in opts.models.split(",")] if opts.models else ([1, 10, 100] if opts.quick else [1, 10, 100, 1000])
    parts = ["models", *scale_out.PARTS] if not opts.only else [x.strip() for x in opts.only.split(",")]
    unknown = set(parts) - {"models", *scale_out.PARTS}
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}: choose among models, {', '.join(scale_out.PARTS)}")
    started = time.perf_counter()
    above = None
    if "models" in parts and "unscored" in kinds:
        above = in_process(counts, steady, opts.decimals)
    if "models" in parts and "scored" in kinds:
        if above is not None:
            print()
        in_process_scored(counts, steady, opts.decimals)
    out = [x for x in parts if x in scale_out.PARTS]
    failed = False
    if out:
        print()
        results = scale_out.run(opts.quick, out)
        scale_out.report(results)
        failed = bool(results.get("errors"))
        if above is not None and "series" in results:
            replica_rss(above, results["series"])
    print(f"total run time {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


def replica_rss(above: dict, series: dict) -> None:
    """RSS of a replica with 1,000 models x 20 features: a daemon with no model plus 1,000
    models above the interpreter (measured, or extrapolated from the marginal cost)."""
    idle = min(series["idle_rss"])
    one, biggest = min(above), max(above)
    if 1000 in above:
        models, how = above[1000], "measured at 1,000 models"
    elif biggest > one:
        marginal = (above[biggest] - above[one]) / (biggest - one)
        models = above[biggest] + (1000 - biggest) * marginal
        how = f"extrapolated: {biggest} models + {1000 - biggest} x the marginal {mb(marginal, 2)}"
    else:
        models, how = above[one] / one * 1000, f"extrapolated from {one} model(s)"
    print()
    print(f"RSS of a replica with 1,000 models x {N_FEATURES} features at ModelConfig() defaults, references complete and "
          f"windows full: about {mb(idle + models, 0)} = a daemon with no model {mb(idle, 0)} + the models' RSS above the "
          f"interpreter {mb(models, 0)} ({how}, in one process, above)")
    for value, counted in zip(series["values"], series["counts"]):
        label = "" if value is None else f" with metrics.per_feature: {value}"
        print(f"series of such a replica{label}: about {counted['per_model'] * 1000 + counted['other']:,.0f} "
              f"({counted['per_model']:.0f} per model x 1,000 + {counted['other']} of the process)")


def in_process(counts: list, steady: int, decimals: int | None = None) -> dict:
    """Steps 1-5 (see the docstring) for each count of models, printed; RSS above the
    interpreter by count."""
    started = time.perf_counter()
    print("driftd with many models in one process (pipelines fed directly, no broker)")
    print(feeding.machine_line())
    print("feature values: " + ("full-precision floats" if decimals is None else f"rounded to {decimals} decimals"))
    results = []
    for n in counts:
        results.append(run(n, steady, decimals))
        print(f"  {n} models: done", file=sys.stderr, flush=True)
    first = results[0]
    print(f"each model: ModelConfig() defaults {first['config']}; {N_FEATURES} numeric features + the prediction; "
          f"{first['tests']} data tests on {len(first['columns'])} columns {first['columns']}")
    print(f"baseline (interpreter with numpy and driftd imported): {mb(first['baseline_rss'])} VmRSS")
    print()
    above = {r["models"]: r["steady_rss"] - r["baseline_rss"] for r in results}
    cost = {r["models"]: r["steady_cpu"] / r["steady_events"] * 1e6 for r in results}
    one = results[0]["models"]
    head = (f"{'models':>6} {'RSS above':>11} {'per model':>10} {'marginal':>10} {'pickled/model':>14} {'peak RSS':>10} "
            f"{'ready CPU 1st':>13} {'ready CPU next':>14} {'ready CPU all':>13} {'us/event':>9} {'vs ' + str(one):>7}")
    print(head)
    print("-" * len(head))
    for r in results:
        n = r["models"]
        marginal = "-" if n == one else mb((above[n] - above[one]) / (n - one), 2)
        rest = "-" if r["ready_cpu_rest_mean"] is None else f"{r['ready_cpu_rest_mean']:.3f} s"
        print(f"{n:>6} {mb(above[n]):>11} {mb(above[n] / n, 2):>10} {marginal:>10} {r['pickled_mean'] / 1024:>11,.0f} kB "
              f"{mb(r['peak_rss']):>10} {r['ready_cpu_first']:>11.2f} s {rest:>14} {r['ready_cpu_total']:>11.1f} s "
              f"{cost[n]:>9.1f} {cost[n] / cost[one]:>6.2f}x")
    print()
    print("RSS above: VmRSS minus the baseline with every model ready and its windows full (after the steady phase);\n"
          f"marginal: (RSS above at N - at {one}) / (N - {one}); pickled: mean len(pickle.dumps(pipeline)) after the "
          "steady phase;\nready CPU: reference feeding + building + calibration, first model and mean of the others;\n"
          f"us/event: CPU per prediction in the steady phase, windows full, batches of {first['config']['stride']} (one test of each test per batch): "
          + "; ".join(f"{r['models']} models: {r['steady_events']:,} predictions, {r['tests_run']:,} tests, "
                      f"{r['steady_detections']} detections" for r in results))
    print()
    head = (f"{'models':>6} {'scrape, alerting':>17} {'lock held':>10} {'memory':>9} {'scrape, all':>12} {'lock held':>10} "
            f"{'memory':>9} {'text, all':>10}")
    print(head)
    print("-" * len(head))
    for r in results:
        a, b = r["scrapes"]["alerting"], r["scrapes"]["all"]
        print(f"{r['models']:>6} {a['whole']:>15.3f} s {a['lock']:>8.3f} s {mb(a['peak']):>9} {b['whole']:>10.3f} s "
              f"{b['lock']:>8.3f} s {mb(b['peak']):>9} {mb(b['bytes']):>10}")
    print()
    print("scrape: one /metrics scrape of every model (median of 3) with metrics.per_feature alerting (the default;\n"
          "no feature is alerting here) and all; lock held: the part of it the consumer loop waits for; memory: the\n"
          "peak of what one scrape allocates (tracemalloc), the working memory it adds for a moment; text: its size")
    print()
    collecting = {r["models"]: r["collecting_rss"] - r["baseline_rss"] for r in results}
    head = f"{'models':>6} {'collecting RSS above':>21} {'per model':>10} {'marginal':>10} {'values kept/model':>18} {'pickled/model':>14} {'peak RSS':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        n = r["models"]
        marginal = "-" if n == one else mb((collecting[n] - collecting[one]) / (n - one), 2)
        print(f"{n:>6} {mb(collecting[n]):>21} {mb(collecting[n] / n, 2):>10} {marginal:>10} "
              f"{r['collecting_bytes'] / 1024:>15,.0f} kB {r['pickled_collecting'] / 1024:>11,.0f} kB {mb(r['collecting_peak']):>10}")
    print()
    print("collecting: every model one prediction short of its reference (the most it holds); values kept: bytes of\n"
          "the reference's columns (numbers and codes); pickled: mean len(pickle.dumps(pipeline)) at that moment")
    print()
    # The marginal cost at the largest count is the most precise (allocator noise spreads
    # over the most models).
    biggest = max(above)
    per_model = (above[biggest] - above[one]) / (biggest - one) if biggest > one else above[one] / one
    pickled = max(r["pickled_mean"] for r in results)
    collecting_per_model = ((collecting[biggest] - collecting[one]) / (biggest - one) if biggest > one
                            else collecting[one] / one)
    pickled_collecting = max(r["pickled_collecting"] for r in results)
    print("Goals (informational)")
    print(f"  <= 0.5 MB per model of 20 numeric features: RSS {mb(per_model, 2)} per model (marginal at {biggest} models), "
          f"pickled {pickled / 2**20:.2f} MB: {'PASS' if max(per_model, pickled) <= 0.5 * 2**20 else 'BELOW'}")
    print(f"  the same while references are collected: RSS {mb(collecting_per_model, 2)} per model (marginal at "
          f"{biggest} models), pickled {pickled_collecting / 2**20:.2f} MB: "
          f"{'PASS' if max(collecting_per_model, pickled_collecting) <= 0.5 * 2**20 else 'BELOW'}")
    if 1000 in above:
        print(f"  1,000 models within 600 MB RSS above the interpreter: {mb(above[1000])}: "
              f"{'PASS' if above[1000] <= 600 * 2**20 else 'BELOW'}")
    last = results[-1]["models"]
    print(f"  per-event cost flat in the number of models: {' / '.join(f'{c:.1f}' for c in cost.values())} us "
          f"({last} models / {one}: {cost[last] / cost[one]:.2f}x)")
    print(f"in-process run time {time.perf_counter() - started:.0f} s")
    return above


def in_process_scored(counts: list, steady: int, decimals: int | None = None) -> None:
    """Steps 1-5 for events with a score and their labels, estimation on and off, printed."""
    started = time.perf_counter()
    print("driftd with many models in one process, events with a score and their labels (pipelines fed directly)")
    print(feeding.machine_line())
    results = {}
    for n in counts:
        for events in ("scored", "scored-off"):
            results[n, events] = run(n, steady, decimals, events)
        print(f"  {n} models, scored: done", file=sys.stderr, flush=True)
    first = results[counts[0], "scored"]
    print(f"each model: ModelConfig() defaults {first['config']}; {N_FEATURES} numeric features, the prediction and "
          f"its score, P(class 1) = 1 / (1 + exp(-{SCORE_SLOPE:g} z)); every prediction labelled "
          f"({LABEL_DELAY:g} s later, fed after its batch), each label 1 with that probability; estimation: auto "
          "(the estimate fitted on the first decay_reference_size labels, then run on every later prediction) "
          "and off")
    print()
    one = counts[0]
    above = {key: r["steady_rss"] - r["baseline_rss"] for key, r in results.items()}
    collecting = {key: r["collecting_rss"] - r["baseline_rss"] for key, r in results.items()}
    cost = {key: r["steady_cpu"] / r["steady_events"] * 1e6 for key, r in results.items()}
    head = (f"{'models':>6} {'estimation':>10} {'RSS above':>11} {'per model':>10} {'marginal':>10} "
            f"{'collecting':>10} {'pickled/model':>14} {'of it estimate':>14} {'peak RSS':>10} {'ready CPU 1st':>13} "
            f"{'ready CPU next':>14} {'of it calib.':>12} {'us/event':>9} {'vs ' + str(one):>7} {'vs off':>7}")
    print(head)
    print("-" * len(head))
    for n in counts:
        for events in ("scored", "scored-off"):
            r, key = results[n, events], (n, events)
            marginal = "-" if n == one else mb((above[key] - above[one, events]) / (n - one), 2)
            rest = "-" if r["ready_cpu_rest_mean"] is None else f"{r['ready_cpu_rest_mean']:.3f} s"
            calibration = r["calibration_cpu_rest_mean"] if r["calibration_cpu_rest_mean"] is not None else r["calibration_cpu_first"]
            print(f"{n:>6} {'off' if events == 'scored-off' else 'auto':>10} {mb(above[key]):>11} {mb(above[key] / n, 2):>10} "
                  f"{marginal:>10} {mb(collecting[key] / n, 2):>10} {r['pickled_mean'] / 1024:>11,.0f} kB "
                  f"{r['pickled_estimates'] / 1024:>11,.0f} kB {mb(r['peak_rss']):>10} {r['ready_cpu_first']:>11.2f} s "
                  f"{rest:>14} {calibration:>10.3f} s {cost[key]:>9.1f} {cost[key] / cost[one, events]:>6.2f}x "
                  f"{cost[key] / cost[n, 'scored-off']:>6.2f}x")
    print()
    print("as above, per model: collecting: RSS above per model one prediction short of the reference; of it estimate:\n"
          "mean len(pickle.dumps(pipeline.estimates)); of it calib.: the calibration part of ready CPU (mean of the\n"
          f"models after the first); us/event: CPU per prediction and its label, batches of {first['config']['stride']} "
          "predictions, then their labels;\nvs off: against estimation off at the same number of models, same run: "
          + "; ".join(f"{n} models: {results[n, e]['steady_events']:,} predictions and labels, "
                      f"{results[n, e]['tests_run']:,} tests, {results[n, e]['steady_detections']} detections ({'auto' if e == 'scored' else 'off'})"
                      for n in counts for e in ("scored", "scored-off")))
    print()
    biggest = max(counts)
    for events in ("scored", "scored-off"):
        key = (biggest, events)
        marginal = (above[key] - above[one, events]) / (biggest - one) if biggest > one else above[key] / one
        print(f"  estimation {'off' if events == 'scored-off' else 'auto'}: {mb(marginal, 2)} RSS per model (marginal at "
              f"{biggest} models), {' / '.join(f'{cost[n, events]:.1f}' for n in counts)} us per prediction and its label")
    on = (above[biggest, "scored"] - above[one, "scored"]) / (biggest - one) if biggest > one else above[one, "scored"] / one
    off = (above[biggest, "scored-off"] - above[one, "scored-off"]) / (biggest - one) if biggest > one else above[one, "scored-off"] / one
    print(f"  the estimate's own: {mb(on - off, 2)} RSS per model, {cost[biggest, 'scored'] / cost[biggest, 'scored-off']:.2f}x "
          f"the CPU per prediction and label at {biggest} models")
    print(f"in-process run time (scored) {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
