"""Recurring concepts: meta-learned challengers against warm start and from-scratch retraining.

Run from the repository root::

    PYTHONPATH=. python bench/meta.py                 # 2 streams x 7 concepts x 3,000 events (~1 min)
    PYTHONPATH=. python bench/meta.py --segment 2000 --label-delay 200 --json out.json

The world: ten numeric features uniform in [-1, 1]; a concept labels an event True when a
linear function of them is positive (a fixed random hyperplane through the origin, ``--noise``
of the labels flipped). Two streams of ``--concepts`` segments of ``--segment`` events:

- ``recurring``: concepts A, B, A, B, ... (B's hyperplane at 90 degrees to A's: they agree
  on half the events); a switch at every segment boundary (6 switches by default);
- ``novel``: a new random hyperplane in every segment (no concept comes back).

The loop is closed as in ``bench/retraining.py``, in process (no broker: the object under
test is the lifecycle, :class:`learners.lifecycle.ChampionChallenger`, which the daemon runs
unchanged per model): a model server serves its current model, whose predictions are
the champion's; each label arrives ``--label-delay`` events after its prediction and goes to
the lifecycle with the champion's prediction; ADWIN on the champion's error stream (the
daemon's default error detector) signals a drift; every ``--chunk`` events the server serves
the newest promoted model (and the detector restarts, as the daemon restarts its detectors
on a new ``model_version``). The deployed model at the start is the learner pipeline trained
offline on 2,000 events of the first concept. Three runs on the same events, differing only
in ``retrain_warm_start``:

(a) **warm**: ``auto`` (today's default: a challenger warm-started from the best learner,
    trained on the replay buffer);
(b) **scratch**: ``never`` (a fresh model trained on the replay buffer);
(c) **meta**: ``meta`` (bandit selection over the learners, initialisation from the library
    of past solutions when one fits the latest labels clearly better, else as (a)).

Learners: a logistic regression (``[StandardScaler, LogisticRegression]``) and a Gaussian
naive Bayes, so the bandit has two arms. Recovery of a switch: the events from the switch to
the first event from which the accuracy of the predictions served over the next ``--window``
events is within 2 points of the accuracy over the ``--window`` events before the switch
(a segment's length when it never gets there: censored, marked ``>``). Goal (printed, never
failed on): (c) at least 30 % faster than (a) in total from the third switch on, on the
recurring stream; on the novel stream (c) no slower than (a) (``--tolerance``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from river import drift

from learners.gate import PromotionGate
from learners.lifecycle import ChampionChallenger
from learners.replay import ReplayBuffer
from learners.retraining import RetrainPolicy
from learners.spec import build

LEARNERS = {"lr": ["StandardScaler", "LogisticRegression"], "nb": "GaussianNB"}
MODES = {"warm": "auto", "scratch": "never", "meta": "meta"}
POINTS = 0.02  # recovered: within this of the pre-switch accuracy
PRETRAIN = 2000


def hyperplane(rng: random.Random, d: int) -> list:
    w = [rng.gauss(0, 1) for _ in range(d)]
    norm = math.sqrt(sum(v * v for v in w))
    return [v / norm for v in w]


def orthogonal(rng: random.Random, w: list) -> list:
    """A random unit vector at 90 degrees to ``w`` (the two concepts agree on half the events)."""
    v = hyperplane(rng, len(w))
    dot = sum(a * b for a, b in zip(v, w))
    v = [a - dot * b for a, b in zip(v, w)]
    norm = math.sqrt(sum(a * a for a in v))
    return [a / norm for a in v]


def make_stream(kind: str, concepts: int, segment: int, d: int = 10, noise: float = 0.02, seed: int = 7) -> dict:
    """``{"rows": [(x, y)], "changes": [event index of each switch], "pretrain": [(x, y)]}``."""
    rng = random.Random(seed)
    a = hyperplane(rng, d)
    if kind == "recurring":
        b = orthogonal(rng, a)
        planes = [a if i % 2 == 0 else b for i in range(concepts)]
    elif kind == "novel":
        planes = [a] + [hyperplane(rng, d) for _ in range(concepts - 1)]
    else:
        raise ValueError(f"unknown stream {kind!r}")

    def event(w):
        x = {f"x{j}": rng.uniform(-1, 1) for j in range(d)}
        y = sum(w[j] * x[f"x{j}"] for j in range(d)) > 0
        return x, (not y) if rng.random() < noise else y

    pretrain = [event(a) for _ in range(PRETRAIN)]
    rows = [event(w) for w in planes for _ in range(segment)]
    return {"kind": kind, "rows": rows, "changes": [i * segment for i in range(1, concepts)], "pretrain": pretrain}


def lifecycle(warm_start: str) -> ChampionChallenger:
    """The lifecycle as the daemon builds it (daemon/stream/learning.py), bench settings."""
    return ChampionChallenger.from_specs(
        "classification", LEARNERS, buffer=ReplayBuffer(1000, 500, seed=0),
        policy=RetrainPolicy(cooldown=300, min_events=200, warm_start=warm_start),
        gate=PromotionGate("classification", margin=0.02, min_events=200, alpha=0.01, min_interval=300.0),
        gate_window=1000, check_every=50, max_retrained=2)


def run(stream: dict, warm_start: str, delay: int = 100, chunk: int = 50) -> dict:
    """One closed loop: the predictions served, the events where a promoted model started
    being served, and what the lifecycle did (retrains by how they started, gate decisions)."""
    served = build(LEARNERS["lr"])
    for x, y in stream["pretrain"]:
        served.learn_one(x, y)
    cc = lifecycle(warm_start)
    detector, version, pending = drift.ADWIN(), 0, []
    rows, predictions, versions, promotions, inits = stream["rows"], [], [], [], {}
    for i in range(len(rows) + delay):
        if i % chunk == 0 and pending and i < len(rows):  # the server loads the newest promotion
            served, version = pending[-1]
            pending.clear()
            detector = drift.ADWIN()  # a new model_version: the daemon restarts its detectors
            promotions.append(i)
        if i < len(rows):
            predictions.append(served.predict_one(rows[i][0]))
            versions.append(version)
        j = i - delay
        if j < 0:
            continue
        x, y = rows[j]
        current = versions[j] == version
        done = cc.update(x, y, predictions[j], now=float(j), champion_version=versions[j], paired=current)
        if current:
            detector.update(0.0 if predictions[j] == y else 1.0)
            if detector.drift_detected:
                done = cc.on_signal(drift=True) or done
        if done is not None:
            inits[done.init] = inits.get(done.init, 0) + 1
        promotion = cc.maybe_promote(now=float(j))
        if promotion is not None:
            pending.append((promotion.estimator, version + len(promotions) + len(pending) + 1))
    return {"predictions": predictions, "promotions": promotions, "inits": inits,
            "retrains": dict(cc.retrains), "decisions": dict(cc.decisions),
            "bandit": None if cc.meta is None else dict(cc.meta.bandit.counts)}


def recovery(stream: dict, predictions: list, window: int = 300) -> list:
    """Per switch: ``(events to recover, censored)`` (see the module docs)."""
    rows, changes = stream["rows"], stream["changes"]
    hits = [float(p == y) for p, (_, y) in zip(predictions, rows)]
    prefix = [0.0, *itertools.accumulate(hits)]
    out = []
    for k, c in enumerate(changes):
        end = changes[k + 1] if k + 1 < len(changes) else len(rows)
        pre = (prefix[c] - prefix[c - window]) / window
        t = next((t for t in range(c, end - window + 1) if (prefix[t + window] - prefix[t]) / window >= pre - POINTS), None)
        out.append((end - c, True) if t is None else (t - c, False))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", type=int, default=7, help="segments per stream (switches: one fewer)")
    parser.add_argument("--segment", type=int, default=3000, help="events per segment")
    parser.add_argument("--label-delay", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=50, help="events between the server's checks for a promotion")
    parser.add_argument("--window", type=int, default=300, help="events in the accuracy windows of recovery")
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--tolerance", type=float, default=0.05, help="novel stream: (c) within this fraction of (a)")
    parser.add_argument("--seeds", default="7", help="comma-separated stream seeds")
    parser.add_argument("--json", help="write the results as JSON to this file ('-' for stdout)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for kind in ("recurring", "novel"):
            stream = make_stream(kind, args.concepts, args.segment, noise=args.noise, seed=seed)
            res = {"stream": kind, "seed": seed, "runs": {}}
            print(f"\n== {kind} (seed {seed}): {args.concepts} concepts x {args.segment:,} events, labels "
                  f"{args.label_delay} events late; events from each switch to within {POINTS * 100:.0f} points ==")
            for name, warm_start in MODES.items():
                out = run(stream, warm_start, args.label_delay, args.chunk)
                rec = recovery(stream, out["predictions"], args.window)
                later = sum(t for t, _ in rec[2:])
                acc = sum(p == y for p, (_, y) in zip(out["predictions"], stream["rows"])) / len(stream["rows"])
                res["runs"][name] = {"recovery": rec, "from_third": later, "accuracy": round(acc, 4),
                                     "promotions": len(out["promotions"]), "inits": out["inits"],
                                     "decisions": out["decisions"], "bandit": out["bandit"]}
                cells = " ".join(f"{'>' if cens else ''}{t:,}".rjust(7) for t, cens in rec)
                print(f"  ({'abc'[list(MODES).index(name)]}) {name:8} {cells}   from 3rd: {later:>6,}   "
                      f"accuracy {acc:.3f}, {len(out['promotions'])} promotions, challengers {out['inits']}"
                      + (f", bandit {out['bandit']}" if out["bandit"] else ""))
            a, c = res["runs"]["warm"]["from_third"], res["runs"]["meta"]["from_third"]
            gain = 1 - c / a if a else 0.0
            if kind == "recurring":
                res["target"] = {"meta_faster_from_third": round(gain, 3), "pass": gain >= 0.30}
                print(f"  target: (c) {gain * 100:+.0f} % faster than (a) from the 3rd switch (>= 30 %): "
                      f"{'PASS' if gain >= 0.30 else 'BELOW'}")
            else:
                total_a = sum(t for t, _ in res["runs"]["warm"]["recovery"])
                total_c = sum(t for t, _ in res["runs"]["meta"]["recovery"])
                ok = total_c <= total_a * (1 + args.tolerance)
                res["target"] = {"meta_total": total_c, "warm_total": total_a, "pass": ok}
                print(f"  target: (c) total {total_c:,} vs (a) {total_a:,} events, not worse "
                      f"(within {args.tolerance * 100:.0f} %): {'PASS' if ok else 'WORSE'}")
            results.append(res)
    print(f"\ntotal {time.monotonic() - t0:.0f} s")
    if args.json:
        text = json.dumps({"args": vars(args), "results": results}, indent=2)
        print(text) if args.json == "-" else Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
