"""driftd against NannyML before the labels come: estimated performance (and, in its own
part, reconstruction drift), on the same streams, in one run.

Run from the repository root::

    .venv/bin/python bench/label_free.py                     # every part
    .venv/bin/python bench/label_free.py --part estimation   # one part

One function per part (``estimation_part``, ...), each printing its table; ``main`` runs
those asked for.

**Estimation part.** Streams of ``ROWS`` events from ``tests/estimation_streams.py`` (a
fixed model, inputs that move, labels from a rule that stays or changes), the change at
row ``CHANGE``; both tools get the first ``REFERENCE`` rows with their labels (NannyML's
reference period; driftd's ``decay_reference_size``) and the rest without:

- ``binary``: covariate shift towards the decision boundary (accuracy ~0.89 -> ~0.77);
- ``multiclass``: 3 classes, covariate shift to the uncertain middle;
- ``binary-concept``: the labelling rule changes, the inputs do not (neither tool can see
  it: the estimate error there is the size of the limitation);
- ``regression``: covariate shift towards inputs with larger errors (MAE ~0.29 -> ~0.47);
- ``regression-concept``: the truth shifts, the inputs do not.

NannyML (its own virtual environment, ``bench/.venv-nannyml``, created by ``bench/peer.py``'s
``ensure_nannyml`` with pip on the first run): ``CBPE`` (classification; accuracy, ROC AUC)
or ``DLE`` (regression; MAE, RMSE), chunks of ``CHUNK`` rows; timed ``fit`` + ``estimate``.
driftd: one model version's :class:`daemon.stream.estimation.ModelEstimation` at
``ModelConfig()`` defaults but ``decay_reference_size=REFERENCE``, ``decay_window=CHUNK``:
the labelled reference pairs, then the other rows as predictions in batches of 500, the
estimate's decay test calibrated when asked (``calibrate_now``), as the daemon's worker
would; timed from the first pair to the last prediction, calibration included.

Figures: **estimate error**, the mean over the analysis windows of ``CHUNK`` rows (the same
rows for both tools) of |estimated - realised| (accuracy; MAE for regression), the realised
value computed from the withheld labels; **detection delay**, rows after the change until
the first alarm (driftd: the prediction that completed the estimate's decay test that
entered drift; NannyML: the end of the first chunk whose estimated accuracy, or MAE, is
flagged), with alarms before the change counted as false alarms; **rows/s**, all rows
(reference and analysis) over the wall-clock seconds; **rows/CPU s**, over the CPU seconds
of the process (NannyML's LightGBM threads counted together), steadier than the wall clock
when other work shares the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import feeding  # noqa: E402
import peer  # noqa: E402 - its NannyML environment
from tests import estimation_streams as streams  # noqa: E402

ROWS, REFERENCE, CHANGE, CHUNK, BATCH = 40_000, 10_000, 25_000, 1_000, 500
SEED = 20_251_201
STREAMS = ("binary", "multiclass", "binary-concept", "regression", "regression-concept")


# -- estimation part: the streams ------------------------------------------------------------

def make_stream(name: str, path: Path) -> None:
    """Write stream ``name`` as arrays: x (rows, features), y_pred, y_true, and score (binary:
    P(class 1)) or proba (multiclass: one column per class)."""
    if name in ("binary", "binary-concept"):
        x, score, y_pred, y_true = streams.binary(ROWS, CHANGE, "concept" if "concept" in name else "covariate", seed=SEED)
        np.savez(path, x=x, score=score, y_pred=y_pred, y_true=y_true)
    elif name == "multiclass":
        x0, scores, y_pred, y_true = streams.multiclass(ROWS, CHANGE, seed=SEED)
        proba = np.array([[s["0"], s["1"], s["2"]] for s in scores])
        np.savez(path, x=x0[:, None], proba=proba, y_pred=y_pred, y_true=y_true)
    else:
        x, y_pred, y_true = streams.regression(ROWS, CHANGE, "concept" if "concept" in name else "covariate", seed=SEED)
        np.savez(path, x=x, y_pred=y_pred, y_true=y_true)


def realised(name: str, t) -> list[float]:
    """The realised metric (accuracy; MAE for regression) per analysis window."""
    out = []
    for a in range(REFERENCE, ROWS, CHUNK):
        p, y = t["y_pred"][a:a + CHUNK], t["y_true"][a:a + CHUNK]
        out.append(float(np.mean(np.abs(y - p))) if name.startswith("regression") else float(np.mean(p == y)))
    return out


# -- estimation part: NannyML ----------------------------------------------------------------

NANNYML_ESTIMATION = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import nannyml as nml
t = np.load(sys.argv[1]); kind = sys.argv[2]
reference_rows, chunk = %(reference)d, %(chunk)d
x = t["x"]
frame = pd.DataFrame({f"x{k}": x[:, k] for k in range(x.shape[1])})
features = list(frame.columns)
if kind == "regression":
    frame["y_pred"], frame["y_true"] = t["y_pred"], t["y_true"]
    est = nml.DLE(feature_column_names=features, y_pred="y_pred", y_true="y_true", metrics=["mae", "rmse"],
                  chunk_size=chunk)
    metric = "mae"
elif kind == "multiclass":
    classes = [str(k) for k in range(t["proba"].shape[1])]
    for k, c in enumerate(classes):
        frame[f"p{c}"] = t["proba"][:, k]
    frame["y_pred"], frame["y_true"] = t["y_pred"].astype(str), t["y_true"].astype(str)
    est = nml.CBPE(y_pred_proba={c: f"p{c}" for c in classes}, y_pred="y_pred", y_true="y_true",
                   problem_type="classification_multiclass", metrics=["accuracy", "roc_auc"], chunk_size=chunk)
    metric = "accuracy"
else:
    frame["score"], frame["y_pred"], frame["y_true"] = t["score"], t["y_pred"], t["y_true"]
    est = nml.CBPE(y_pred_proba="score", y_pred="y_pred", y_true="y_true", problem_type="classification_binary",
                   metrics=["accuracy", "roc_auc"], chunk_size=chunk)
    metric = "accuracy"
reference = frame.iloc[:reference_rows]
analysis = frame.iloc[reference_rows:].drop(columns=["y_true"]).reset_index(drop=True)
wall, cpu = time.perf_counter(), time.process_time()
est.fit(reference)
result = est.estimate(analysis)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
data = result.filter(period="analysis").to_df()
print(json.dumps({"wall": wall, "cpu": cpu, "values": [float(v) for v in data[(metric, "value")]],
                  "alerts": [bool(a) for a in data[(metric, "alert")]],
                  "ends": [int(e) + reference_rows + 1 for e in data[("chunk", "end_index")]],
                  "version": nml.__version__}))
"""


def run_nannyml_estimation(python: Path, path: Path, name: str) -> dict:
    kind = "regression" if name.startswith("regression") else "multiclass" if name == "multiclass" else "binary"
    code = NANNYML_ESTIMATION % {"reference": REFERENCE, "chunk": CHUNK}
    done = subprocess.run([python, "-c", code, str(path), kind], capture_output=True, text=True, env=peer._nannyml_env())
    if done.returncode:
        raise RuntimeError(f"NannyML run failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    alarms = [end for end, alert in zip(out["ends"], out["alerts"]) if alert]  # the row after the chunk's last
    out["alarm_rows"] = alarms
    return out


# -- estimation part: driftd -----------------------------------------------------------------

def run_driftd_estimation(path: Path, name: str) -> dict:
    """In a fresh interpreter (no calibration cached from an earlier stream)."""
    done = subprocess.run([sys.executable, __file__, "--estimation-child", str(path), name], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"driftd run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def driftd_estimation_child(path: Path, name: str) -> dict:
    from types import SimpleNamespace as Event

    from daemon.config import ModelConfig
    from daemon.stream.estimation import ModelEstimation

    t = np.load(path)
    regression = name.startswith("regression")
    feats = streams.features(t["x"])
    y_pred, y_true = t["y_pred"].tolist(), t["y_true"].tolist()
    if regression:
        scores = [None] * ROWS
    elif "proba" in t:
        scores = [{str(k): float(p) for k, p in enumerate(row)} for row in t["proba"]]
    else:
        scores = t["score"].tolist()
    config = ModelConfig(task="regression" if regression else "classification", decay_reference_size=REFERENCE,
                         decay_window=CHUNK, decay_metrics=["mae"] if regression else ["accuracy"])
    pairs = [((y_pred[i], scores[i], None, float(i), feats[i]), y_true[i]) for i in range(REFERENCE)]
    events = [Event(features=feats[i], prediction=y_pred[i], score=scores[i], ts=float(i)) for i in range(ROWS)]
    values, observations = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    est = ModelEstimation(config, None)
    est.observe_labels(pairs)
    calibration = time.perf_counter()
    est.calibrate_now()  # the daemon's worker does this off the loop; counted here
    calibration = time.perf_counter() - calibration
    for a in range(REFERENCE, ROWS, BATCH):
        est.observe_predictions(events[a:a + BATCH], list(range(a, min(a + BATCH, ROWS))))
        observations += est.drain()
        if (a + BATCH - REFERENCE) % CHUNK == 0:
            values.append(est.metrics()["mae" if regression else "accuracy"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    alarms, was = [], False
    for o in observations:  # entries into drift, at the prediction that completed the test
        if o.drift and not was:
            alarms.append(o.offset + 1)
        was = o.drift
    return {"wall": wall, "cpu": cpu, "calibration": calibration, "values": values, "alarm_rows": alarms}


# -- estimation part: the table --------------------------------------------------------------

def _delay(alarm_rows: list) -> tuple[str, int]:
    """(rows after the change to the first alarm at or after it, or "-"; false alarms before it)."""
    after = [r for r in alarm_rows if r > CHANGE]
    return (f"{after[0] - CHANGE:,}" if after else "-"), sum(r <= CHANGE for r in alarm_rows)


#: Fresh processes per tool and stream in the estimation part; the fastest is kept.
ESTIMATION_REPEATS = 3


def estimation_part(python: Path, repeats: int = ESTIMATION_REPEATS) -> dict:
    print(f"Estimated performance: {ROWS:,} rows, the first {REFERENCE:,} labelled (reference), change at row "
          f"{CHANGE:,}, windows of {CHUNK:,}; rows/s the best of {repeats} fresh processes per tool, interleaved "
          f"(driftd's including the calibration of its decay test; in brackets without it; by CPU time of the "
          f"process in the last column: less sensitive to a busy machine)")
    print(f"{'stream':<20} {'tool':<16} {'est. error':>10} {'after change':>12} {'delay':>7} {'false':>5} "
          f"{'rows/s':>9} {'(w/o calibration)':>17} {'rows/CPU s':>10}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="driftd-label-free-") as tmp:
        for name in STREAMS:
            path = Path(tmp) / f"{name}.npz"
            make_stream(name, path)
            t = np.load(path)
            truth = realised(name, t)
            tools = {"NannyML " + ("DLE" if name.startswith("regression") else "CBPE"): [], "driftd": []}
            for _ in range(repeats):  # interleaved, so that a busy spell hits both alike
                for tool, runs_of in tools.items():
                    runs_of.append(run_driftd_estimation(path, name) if tool == "driftd"
                                   else run_nannyml_estimation(python, path, name))
            runs = {tool: min(r, key=lambda run: run["wall"]) for tool, r in tools.items()}
            for tool, run in runs.items():
                errors = np.abs(np.array(run["values"]) - np.array(truth))
                after = errors[(CHANGE - REFERENCE) // CHUNK:]
                delay, false = _delay(run["alarm_rows"])
                rate = ROWS / run["wall"]
                cpu_rate = ROWS / min(r["cpu"] for r in tools[tool])
                results[(name, tool)] = {"error": float(errors.mean()), "error_after": float(after.mean()),
                                         "delay": delay, "false": false, "rows_per_s": rate, "rows_per_cpu_s": cpu_rate}
                extra = f"({ROWS / (run['wall'] - run['calibration']):,.0f})" if "calibration" in run else ""
                print(f"{name:<20} {tool:<16} {errors.mean():>10.4f} {after.mean():>12.4f} {delay:>7} {false:>5} "
                      f"{rate:>9,.0f} {extra:>17} {cpu_rate:>10,.0f}")
            nannyml, mine = (results[(name, tool)] for tool in tools)
            print(f"{'':<20} driftd / NannyML rows/s: {mine['rows_per_s'] / nannyml['rows_per_s']:.2f}x wall, "
                  f"{mine['rows_per_cpu_s'] / nannyml['rows_per_cpu_s']:.2f}x CPU")
    return results


# -- reconstruction part ---------------------------------------------------------------------
# Streams of RECON_ROWS events, 6 numeric features: x0 and x1 standard normals with
# correlation +0.8 that changes at RECON_CHANGE (to -0.8, "flip"; to +0.4, "weaken") while
# both stay standard normals; x2 normal, x3 lognormal, x4 uniform, x5 a Poisson count,
# independent and stationary. Both tools learn from the first RECON_REFERENCE rows.
RECON_ROWS, RECON_REFERENCE, RECON_CHANGE, RECON_CHUNK = 40_000, 10_000, 25_000, 1_000
RECON_STREAMS = {"flip": -0.8, "weaken": 0.4}
RECON_FEATURES = [f"x{k}" for k in range(6)]

NANNYML_RECONSTRUCTION = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import nannyml as nml
x = np.load(sys.argv[1])["x"]
names = %(names)r
frame = pd.DataFrame({name: x[:, k] for k, name in enumerate(names)})
reference, analysis = frame.iloc[:%(reference)d], frame.iloc[%(reference)d:].reset_index(drop=True)
wall, cpu = time.perf_counter(), time.process_time()
calc = nml.DataReconstructionDriftCalculator(column_names=names, chunk_size=%(chunk)d)
calc.fit(reference)
result = calc.calculate(analysis)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
data = result.filter(period="analysis").to_df()
print(json.dumps({"wall": wall, "cpu": cpu, "alerts": [bool(a) for a in data[("reconstruction_error", "alert")]],
                  "ends": [int(e) + %(reference)d + 1 for e in data[("chunk", "end_index")]],
                  "version": nml.__version__}))
"""


def make_reconstruction_stream(rho_after: float, path: Path) -> None:
    """Write the stream whose x0-x1 correlation goes from 0.8 to ``rho_after`` (array x)."""
    rng = np.random.default_rng(SEED + 12)
    n = RECON_ROWS
    rho = np.where(np.arange(n) < RECON_CHANGE, 0.8, rho_after)
    a, b = rng.normal(size=(2, n))
    x = np.column_stack([a, rho * a + np.sqrt(1 - rho ** 2) * b, rng.normal(5, 2, n), rng.lognormal(0, 1, n),
                         rng.uniform(-1, 1, n), rng.poisson(4, n).astype(float)])
    np.savez(path, x=x)


def run_nannyml_reconstruction(python: Path, path: Path) -> dict:
    code = NANNYML_RECONSTRUCTION % {"names": RECON_FEATURES, "reference": RECON_REFERENCE, "chunk": RECON_CHUNK}
    done = subprocess.run([python, "-c", code, str(path)], capture_output=True, text=True, env=peer._nannyml_env())
    if done.returncode:
        raise RuntimeError(f"NannyML run failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["alarm_rows"] = [end for end, alert in zip(out["ends"], out["alerts"]) if alert]  # the row after the chunk
    return out


def run_driftd_reconstruction(path: Path, alone: bool) -> dict:
    """In a fresh interpreter (no calibration cached from an earlier stream)."""
    args = [sys.executable, __file__, "--reconstruction-child", str(path), "alone" if alone else "model"]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"driftd run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def driftd_reconstruction_child(path: Path, how: str) -> dict:
    """driftd on the stream at ``ModelConfig()`` defaults but ``reference_size`` (window 1,000,
    stride 100, ert 10^8), calibration computed as soon as the reference is complete (the
    daemon's worker does it off the loop; counted here, and its seconds returned apart). ``how``: ``model``, the model's
    whole pipeline (every test of its columns, reconstruction among them), or ``alone``,
    the reconstruction detector by itself at the ert share it gets in that model. Timed
    from the first row to the last, events decoded before the clock starts."""
    from daemon.config import ModelConfig
    from daemon.stream.columns import ALL
    from detectors import calibration
    from detectors.reconstruction import Reconstruction

    x = np.load(path)["x"]
    config = ModelConfig(reference_size=RECON_REFERENCE, features={"<prediction>": "ignore"})
    alarms, others = [], []
    if how == "model":
        events = feeding.predictions("recon", {n: x[:, k] for k, n in enumerate(RECON_FEATURES)}, np.zeros(len(x), int))
        wall, cpu = time.perf_counter(), time.process_time()
        fed = feeding.Fed("recon", config)
        for a in range(0, len(x), BATCH):
            for d in fed.feed(events[a:a + BATCH]):
                (alarms if d.test == "reconstruction" else others).append(d.at + 1 if d.test == "reconstruction"
                                                                          else f"{d.test}/{d.column}@{d.at + 1}")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        tests = fed.pipeline.watch.tests
        share = tests.ert_of("reconstruction", ALL)
        return {"wall": wall, "cpu": cpu, "alarm_rows": alarms, "ert_share": share, "others": others,
                "calibration": fed.cpu["calibration"],
                "contributions": tests.columns[ALL].tests["reconstruction"].contributions}
    share = _reconstruction_share(x, config)
    wall, cpu = time.perf_counter(), time.process_time()
    test = Reconstruction(x[:RECON_REFERENCE], window=config.window, stride=config.stride, ert=share,
                          names=RECON_FEATURES, defer_calibration=True)
    calibrating = time.perf_counter()
    test.set_thresholds(*calibration.calibrate(test.null_model(), share))
    calibrating = time.perf_counter() - calibrating
    was = False
    for a in range(RECON_REFERENCE, len(x), BATCH):
        test.update_many(x[a:a + BATCH])
        for d in test.pop_decisions():  # entries into drift, at the row that completed the test
            if d.drift and not was:
                alarms.append(RECON_REFERENCE + d.at)
            was = d.drift
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": wall, "cpu": cpu, "alarm_rows": alarms, "threshold": test.threshold, "ert_share": share,
            "calibration": calibrating}


def _reconstruction_share(x, config) -> float:
    """The ert the reconstruction test gets in the model of this stream (not timed)."""
    from collections import Counter

    from daemon.stream.columns import ALL, DataTests
    from daemon.stream.reference import ReferenceSample

    sample = ReferenceSample(RECON_REFERENCE, config.features, config.max_features)
    for row in x[:RECON_REFERENCE].tolist():
        sample.add(dict(zip(RECON_FEATURES, row)), prediction=0, score=None)
    return DataTests(sample, config, Counter()).ert_of("reconstruction", ALL)


#: Fresh processes per tool and stream in the reconstruction part; the fastest is kept.
RECONSTRUCTION_REPEATS = 3


def reconstruction_part(python: Path, repeats: int = RECONSTRUCTION_REPEATS) -> dict:
    print(f"Reconstruction drift: {RECON_ROWS:,} rows of 6 numeric features, the first {RECON_REFERENCE:,} the "
          f"reference; at row {RECON_CHANGE:,} the x0-x1 correlation goes from +0.8 to -0.8 (flip) or +0.4 "
          f"(weaken), every marginal unchanged; NannyML chunks of {RECON_CHUNK:,}, driftd window 1,000 stride 100; "
          f"rows/s the best of {repeats} fresh processes per tool, interleaved (wall clock; by CPU time of the process "
          f"in the last column: less sensitive to a busy machine)")
    print(f"{'stream':<8} {'tool':<34} {'delay':>7} {'false':>5} {'rows/s':>9} {'w/o calibration':>15} {'rows/CPU s':>10}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="driftd-label-free-") as tmp:
        for name, rho in RECON_STREAMS.items():
            path = Path(tmp) / f"{name}.npz"
            make_reconstruction_stream(rho, path)
            tools = {"NannyML DataReconstructionDrift": lambda: run_nannyml_reconstruction(python, path),
                     "driftd (whole model)": lambda: run_driftd_reconstruction(path, alone=False),
                     "driftd (reconstruction alone)": lambda: run_driftd_reconstruction(path, alone=True)}
            tried = {tool: [] for tool in tools}
            for _ in range(repeats):  # interleaved, so that a busy spell hits every tool alike
                for tool, go in tools.items():
                    tried[tool].append(go())
            runs = {tool: min(r, key=lambda run: run["wall"]) for tool, r in tried.items()}
            for tool, run in runs.items():
                after = [r for r in run["alarm_rows"] if r > RECON_CHANGE]
                delay = f"{after[0] - RECON_CHANGE:,}" if after else "-"
                false = sum(r <= RECON_CHANGE for r in run["alarm_rows"])
                rate = RECON_ROWS / run["wall"]
                cpu_rate = RECON_ROWS / min(r["cpu"] for r in tried[tool])
                # driftd calibrates once per reference, off the loop: the rate without it too.
                steady = RECON_ROWS / (run["wall"] - run["calibration"]) if "calibration" in run else rate
                results[(name, tool)] = {"delay": delay, "false": false, "rows_per_s": rate, "steady_rows_per_s": steady,
                                         "rows_per_cpu_s": cpu_rate,
                                         **{k: run[k] for k in ("contributions", "ert_share", "threshold") if k in run}}
                print(f"{name:<8} {tool:<34} {delay:>7} {false:>5} {rate:>9,.0f} {steady:>15,.0f} {cpu_rate:>10,.0f}")
            nannyml = results[(name, "NannyML DataReconstructionDrift")]
            for tool in ("driftd (whole model)", "driftd (reconstruction alone)"):
                mine = results[(name, tool)]
                print(f"         {tool} / NannyML rows/s: {mine['rows_per_s'] / nannyml['rows_per_s']:.2f}x wall, "
                      f"{mine['rows_per_cpu_s'] / nannyml['rows_per_cpu_s']:.2f}x CPU")
            model = runs["driftd (whole model)"]
            print("         driftd contributions at the end: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in (model["contributions"] or {}).items())
                  + f"; other tests of the model that fired: {', '.join(model['others']) or 'none'}")
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["estimation", "reconstruction", "all"], default="all")
    p.add_argument("--estimation-child", nargs=2, metavar=("STREAM_FILE", "NAME"), help=argparse.SUPPRESS)
    p.add_argument("--reconstruction-child", nargs=2, metavar=("STREAM_FILE", "HOW"), help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.reconstruction_child:
        print(json.dumps(driftd_reconstruction_child(Path(opts.reconstruction_child[0]), opts.reconstruction_child[1])))
        return 0
    if opts.estimation_child:
        print(json.dumps(driftd_estimation_child(Path(opts.estimation_child[0]), opts.estimation_child[1])))
        return 0
    print(feeding.machine_line())
    python = peer.ensure_nannyml()
    if opts.part in ("estimation", "all"):
        estimation_part(python)
    if opts.part in ("reconstruction", "all"):
        reconstruction_part(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
