"""driftd against a peer: NannyML's univariate drift calculator on the same table, same run.

Run from the repository root::

    .venv/bin/python bench/peer.py            # best of 3 fresh processes each
    .venv/bin/python bench/peer.py --quick    # one process each

The table: 100,000 rows of 6 numeric columns (normal, log-normal, uniform, exponential,
an integer count with ties, a bimodal mixture) and 3 string categoricals (5, 20 and 50
levels); from row 75,000 on ``n0`` shifts by 0.5 sigma and ``c0``'s first level doubles
its share, so that both tools have something to find.

- **NannyML** (its own virtual environment, ``bench/.venv-nannyml``, created here with pip
  on the first run: NannyML pins libraries driftd does not use): ``UnivariateDriftCalculator``
  with Kolmogorov-Smirnov + Jensen-Shannon on the numeric columns, chi-square +
  Jensen-Shannon on the categoricals, chunks of 5,000; ``fit`` on the first 50,000 rows
  (10 chunks: NannyML's thresholds come from the spread of the reference chunks),
  ``calculate`` on the other 50,000. Timed: ``fit`` + ``calculate`` (the DataFrame is built
  before the clock starts).
- **driftd**: one model's ``daemon.stream.pipeline.ModelPipeline`` at ``ModelConfig()``'s defaults
  but ``reference_size=50,000`` (the same first rows) and the column types declared
  (``features:``; the prediction, constant here, ``ignore``), fed the 100,000 rows as
  prediction events in batches of 5,000 (the daemon's ``kafka.poll_max_records``: a backlog
  such as this table is read in full polls), its calibrations computed as soon as the
  reference is complete (see ``bench/feeding.py``). Timed: feeding, building the tests from
  the reference and calibrating them (the events are decoded before the clock starts, then
  kept out of the garbage collector's full passes as a daemon's long-lived objects are;
  their decoding rate is printed apart). Then a second model on the same rows in the same
  process: calibrations are cached by then, the rate without calibration. Three
  configurations, each in fresh processes:

  - *univariate* (the comparison with NannyML's univariate calculator, the headline ratio):
    ``reconstruction: off``. NannyML's ``UnivariateDriftCalculator`` tests each column
    alone; driftd's reconstruction test (column ``<all>``, how well each feature is
    predicted from the others) is multivariate, which NannyML does in another calculator.
    Every univariate test of the defaults stays on (for the numeric columns more than
    NannyML runs: PSI and KS and whatever else the defaults hold; the missing-value,
    unseen-level and unknown-feature rate tests).
  - *univariate, polls of 500*: the same in batches of 500 events (a stream read as it
    comes, in smaller polls: a cost per batch is paid ten times as often).
  - *defaults*: reconstruction on, as a model runs out of the box.

Each tool runs in fresh processes (no cache carried between repetitions); the best of
``--repeats`` is kept. Rates are rows/s, wall clock, with the CPU seconds beside; the
ratios are given by wall clock and by CPU seconds (on a shared machine the wall clock
also counts the time other processes held the CPU).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import feeding  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-nannyml"
NANNYML = ["nannyml==0.13.1", "statsmodels>=0.14", "pandas>=2.0,<3"]  # it imports statsmodels undeclared
ROWS, REFERENCE, CHUNK = 100_000, 50_000, 5_000
CHANGE = 75_000
NUMERIC = [f"n{k}" for k in range(6)]
CATEGORICAL = ["c0", "c1", "c2"]
LEVELS = {"c0": 5, "c1": 20, "c2": 50}
SEED = 20_251_202
MODEL = "peer"


def make_table(path: Path) -> None:
    rng = np.random.default_rng(SEED)
    n = ROWS
    numeric = np.column_stack([
        rng.normal(10, 2, n), rng.lognormal(0, 1, n), rng.uniform(-1, 1, n),
        rng.exponential(3, n), rng.poisson(4, n).astype(float),
        np.where(rng.random(n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(3, 1, n)),
    ])
    numeric[CHANGE:, 0] += 0.5 * 2  # 0.5 sigma
    cats = {}
    for name, k in LEVELS.items():
        p = rng.dirichlet(np.full(k, 5.0))
        codes = rng.choice(k, size=n, p=p)
        if name == "c0":
            q = np.concatenate([[2 * p[0]], p[1:] * (1 - 2 * p[0]) / (1 - p[0])])
            codes[CHANGE:] = rng.choice(k, size=n - CHANGE, p=q)
        cats[name] = np.array([f"{name}-level-{i}" for i in range(k)])[codes]
    np.savez(path, numeric=numeric, **cats)


# -- NannyML, in its own environment --------------------------------------------------------

NANNYML_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import nannyml as nml
t = np.load(sys.argv[1])
numeric, cats = %(numeric)r, %(categorical)r
frame = pd.DataFrame({**{c: t["numeric"][:, i] for i, c in enumerate(numeric)}, **{c: t[c] for c in cats}})
for c in cats:
    frame[c] = frame[c].astype("category")
reference, analysis = frame.iloc[:%(reference)d], frame.iloc[%(reference)d:]
wall, cpu = time.perf_counter(), time.process_time()
calc = nml.UnivariateDriftCalculator(
    column_names=numeric + cats, treat_as_categorical=cats,
    continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
    categorical_methods=["chi2", "jensen_shannon"], chunk_size=%(chunk)d)
calc.fit(reference)
result = calc.calculate(analysis)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
data = result.filter(period="analysis").to_df()
alerts = {}
for column in numeric + cats:
    for method in ("kolmogorov_smirnov", "jensen_shannon", "chi2"):
        key = (column, method, "alert")
        if key in data.columns:
            alerts[f"{method}/{column}"] = int(data[key].sum())
print(json.dumps({"wall": wall, "cpu": cpu, "alerts": alerts, "chunks": int(len(data)),
                  "version": nml.__version__, "pandas": pd.__version__}))
"""


def ensure_nannyml() -> Path:
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import nannyml"], capture_output=True,
                                          env=_nannyml_env()).returncode == 0:
        return python
    print(f"creating {VENV} and installing {' '.join(NANNYML)} (once; takes a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *NANNYML], check=True)
    return python


def _nannyml_env() -> dict:
    # NannyML reports usage over the network unless told not to.
    return {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}


def run_nannyml(python: Path, table: Path) -> dict:
    code = NANNYML_CHILD % {"numeric": NUMERIC, "categorical": CATEGORICAL, "reference": REFERENCE, "chunk": CHUNK}
    done = subprocess.run([python, "-c", code, str(table)], capture_output=True, text=True, env=_nannyml_env())
    if done.returncode:
        raise RuntimeError(f"NannyML run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- driftd, in a fresh interpreter of its own -----------------------------------------------

#: driftd's configurations (see the module docs): name -> (``reconstruction`` setting, events
#: per batch). The daemon reads a backlog such as this table in polls of
#: ``kafka.poll_max_records`` (5,000 by default); a stream that comes in slowly, in smaller ones.
CONFIGS = {"univariate": ("off", 5000), "univariate, polls of 500": ("off", 500), "defaults": (None, 5000)}


def driftd_child(table: Path, reconstruction: str | None = None, batch: int = 5000) -> dict:
    """driftd's run in this process: ``first`` (calibrating) and ``cached`` (a second
    model, calibrations cached), each with wall and CPU seconds, CPU by phase, detections
    by test and the tests. ``reconstruction``: the model's setting (None: the default);
    ``batch``: events per batch (a poll of the daemon)."""
    from daemon.config import from_dict
    from daemon.runtime import blas

    blas.limit_threads()  # as `driftd run` does
    t = np.load(table)
    columns = {c: t["numeric"][:, i] for i, c in enumerate(NUMERIC)} | {c: t[c] for c in CATEGORICAL}
    start = time.perf_counter()
    events = feeding.predictions(MODEL, columns, np.zeros(ROWS, dtype=int))
    decode = time.perf_counter() - start
    # The 100,000 decoded events stay in memory through both runs, as a daemon's never do
    # (it holds one poll at a time): kept out of the cyclic collector's full passes, as
    # `driftd run` keeps its long-lived objects (gc.freeze), lest a pass over them be
    # counted as driftd's.
    gc.freeze()
    out = {"decode_wall": decode}
    # Types declared, as NannyML is told which columns are categorical; the prediction
    # (constant here: the table has none) is not watched, as NannyML does not watch it.
    types = {**{c: "numeric" for c in NUMERIC}, **{c: "categorical" for c in CATEGORICAL}, "<prediction>": "ignore"}
    model = {"reference_size": REFERENCE, "features": types}
    if reconstruction is not None:
        model["reconstruction"] = reconstruction
    config = from_dict({"models": {MODEL: model}}).models[MODEL]
    for run in ("first", "cached"):
        fed = feeding.Fed(MODEL, config)
        detections = []
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, ROWS, batch):
            detections += fed.feed(events[i:i + batch])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        alerts = {}
        for d in detections:
            alerts[f"{d.test}/{d.column}"] = alerts.get(f"{d.test}/{d.column}", 0) + 1
        out[run] = {"wall": wall, "cpu": cpu, "phases": fed.cpu, "alerts": alerts,
                    "tests": sorted(f"{a}/{b}" for a, b in fed.pipeline.data_detectors)}
    return out


def run_driftd(table: Path, reconstruction: str | None = None, batch: int = 5000) -> dict:
    extra = ["--batch", str(batch)] + (["--reconstruction", reconstruction] if reconstruction is not None else [])
    done = subprocess.run([sys.executable, __file__, "--driftd-child", str(table), *extra], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"driftd run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------

def phases(run: dict) -> str:
    names = {"reference": f"collecting the {REFERENCE:,}-row reference", "build": "building the tests",
             "calibration": "calibrating", "tests": f"testing the other {ROWS - REFERENCE:,} rows",
             "labels": "feeding labels"}
    # A phase this table has no events for (it has no labels) is left out.
    return ", ".join(f"{names[k]} {v:.2f} s" for k, v in run["phases"].items() if v or k != "labels")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one process per tool instead of the best of 3")
    p.add_argument("--repeats", type=int, help="fresh processes per tool, best kept (default 3; --quick 1)")
    p.add_argument("--driftd-child", metavar="TABLE", help=argparse.SUPPRESS)
    p.add_argument("--reconstruction", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=5000, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.driftd_child:
        print(json.dumps(driftd_child(Path(opts.driftd_child), opts.reconstruction, opts.batch)))
        return 0
    repeats = opts.repeats or (1 if opts.quick else 3)
    print("driftd against NannyML's UnivariateDriftCalculator, same table, same run")
    print(feeding.machine_line())
    python = ensure_nannyml()
    with tempfile.TemporaryDirectory(prefix="driftd-peer-") as tmp:
        table = Path(tmp) / "table.npz"
        make_table(table)
        print(f"table: {ROWS:,} rows, numeric {NUMERIC}, categorical {CATEGORICAL} "
              f"({', '.join(str(LEVELS[c]) for c in CATEGORICAL)} levels); change at row {CHANGE:,} in n0 and c0; "
              f"reference the first {REFERENCE:,} rows; best of {repeats} fresh process(es) per tool")
        print(flush=True)
        nml_runs, drift_runs = [], {name: [] for name in CONFIGS}
        for _ in range(repeats):  # interleaved, so that a busy spell hits all alike
            nml_runs.append(run_nannyml(python, table))
            for name, (reconstruction, batch) in CONFIGS.items():
                drift_runs[name].append(run_driftd(table, reconstruction, batch))
    nml = min(nml_runs, key=lambda r: r["wall"])
    rate = lambda r: ROWS / r["wall"]  # noqa: E731

    print(f"NannyML {nml['version']} (pandas {nml['pandas']}): KS + Jensen-Shannon (numeric), chi2 + Jensen-Shannon "
          f"(categorical), chunk {CHUNK:,}; {nml['chunks']} analysis chunks")
    print(f"  fit + calculate: {nml['wall']:.2f} s wall, {nml['cpu']:.2f} s CPU = {rate(nml):,.0f} rows/s; "
          f"all runs {[round(r['wall'], 2) for r in nml_runs]} s")
    print(f"  alerts (chunks): {nml['alerts']}")
    ratios = {}
    for name, runs in drift_runs.items():
        first = min((r["first"] for r in runs), key=lambda r: r["wall"])
        cached = min((r["cached"] for r in runs), key=lambda r: r["wall"])
        decode = min(r["decode_wall"] for r in runs)
        reconstruction, batch = CONFIGS[name]
        setting = "reconstruction off" if reconstruction == "off" else "reconstruction on"
        print(f"driftd, {name} ({setting}, batches of {batch:,} events), reference_size {REFERENCE:,}, types declared; "
              f"tests {first['tests']}")
        print(f"  including building and calibration: {first['wall']:.2f} s wall, {first['cpu']:.2f} s CPU = "
              f"{rate(first):,.0f} rows/s; CPU by phase: {phases(first)}; "
              f"all runs {[round(r['first']['wall'], 2) for r in runs]} s")
        print(f"  calibrations cached (second model, same process): {cached['wall']:.2f} s wall, {cached['cpu']:.2f} s CPU "
              f"= {rate(cached):,.0f} rows/s; CPU by phase: {phases(cached)}")
        print(f"  detections: {first['alerts']}")
        print(f"  (decoding the {ROWS:,} events beforehand: {decode:.2f} s = {ROWS / decode:,.0f} events/s, not included)")
        ratios[name] = (rate(first) / rate(nml), rate(cached) / rate(nml), nml["cpu"] / first["cpu"], nml["cpu"] / cached["cpu"])
    print()
    for name, (wall, wall_cached, cpu, cpu_cached) in ratios.items():
        print(f"Ratio driftd ({name}) / NannyML rows/s: including calibration {wall:.2f}x wall clock, {cpu:.2f}x CPU; "
              f"calibrations cached {wall_cached:.2f}x wall clock, {cpu_cached:.2f}x CPU")
    # Both tools' times vary from run to run (NannyML's by up to 2x on this kind of
    # machine): the medians say how much the best-of ratio owes to one lucky run.
    median = lambda runs: float(np.median(runs))  # noqa: E731
    nml_median = median([r["wall"] for r in nml_runs])
    for name, runs in drift_runs.items():
        first = median([r["first"]["wall"] for r in runs])
        print(f"Ratio driftd ({name}) / NannyML, medians of {repeats} runs each: including calibration "
              f"{nml_median / first:.2f}x wall clock (NannyML {nml_median:.2f} s, driftd {first:.2f} s)")
    wall = ratios["univariate"][0]
    print(f"Goal (informational): >= 2x NannyML including calibration (univariate, wall clock): "
          f"{'PASS' if wall >= 2 else 'BELOW'} ({wall:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
