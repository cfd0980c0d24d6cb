"""Meta-learned challengers (learners/meta.py): the bandit, the solution library, the hooks
in the lifecycle, and the closed loop on recurring and novel concepts (bench/meta.py's
world, smaller). Recovery is counted in events, never timed."""

from __future__ import annotations

import pickle
import random

import pytest
from river import linear_model, utils

from bench import meta as bench
from learners.gate import PromotionGate
from learners.lifecycle import ChampionChallenger
from learners.meta import UCB1, MetaLearner, SolutionLibrary, average, averageable, loss, recurs
from learners.replay import ReplayBuffer
from learners.retraining import RetrainPolicy
from learners.spec import build


# -- the bandit ---------------------------------------------------------------------------------
def test_ucb1_plays_every_arm_once_then_the_best_mean():
    b = UCB1(["a", "b", "c"], c=0.5)
    order = []
    for reward in (0.2, 0.9, 0.5):
        arm = b.select()
        order.append(arm)
        b.update(arm, reward)
    assert order == ["a", "b", "c"]
    for _ in range(20):  # full information: every arm observed each round, b stays best
        for arm, r in zip("abc", (0.2, 0.9, 0.5)):
            b.update(arm, r)
    assert b.select() == "b"


def test_ucb1_explores_an_arm_seen_rarely():
    b = UCB1(["a", "b"], c=1.0)
    b.update("a", 0.80)
    b.update("b", 0.79)
    for _ in range(50):
        b.update("a", 0.80)
    assert b.select() == "b"  # close means, b seen once: its bonus wins


def test_ucb1_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one arm"):
        UCB1([])
    b = UCB1(["a"])
    with pytest.raises(ValueError, match="unknown arm"):
        b.update("z", 1.0)
    with pytest.raises(ValueError, match="finite"):
        b.update("a", float("nan"))


def test_ucb1_rewards_of_any_scale():
    b = UCB1(["a", "b"], c=0.1)  # regression rewards: minus the MAE, large numbers
    for _ in range(5):
        b.update("a", -120.0)
        b.update("b", -80.0)
    assert b.select() == "b"


# -- the library ---------------------------------------------------------------------------------
def _linear(w: dict, b: float = 0.0):
    m = linear_model.LogisticRegression()
    m._weights = utils.VectorDict(w)
    m.intercept = b
    return m


def _events(w: dict, n: int, seed: int) -> list:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {k: rng.uniform(-1, 1) for k in ("p", "q")}
        out.append((x, sum(w[k] * x[k] for k in w) > 0))
    return out


def test_library_is_bounded_and_finds_the_concept_that_came_back():
    lib = SolutionLibrary(capacity=3)
    a, b = {"p": 4.0, "q": 0.0}, {"p": 0.0, "q": 4.0}
    for w in (a, b, a, b):
        lib.add("lr", _linear(w), loss=0.05)
    assert len(lib) == 3 and len(lib.solutions("lr")) == 3 and lib.solutions("other") == []
    found, how = lib.best_fit("classification", "lr", _events(b, 50, seed=1))
    assert how == "library" and loss("classification", found, _events(b, 200, seed=2)) < 0.05
    found, how = lib.best_fit("classification", "lr", _events({"p": -4.0, "q": 0.0}, 50, seed=3))
    assert (found, how) == (None, None)  # a novel concept (-a): nothing stored fits, no init


def test_library_stores_copies():
    lib = SolutionLibrary()
    m = _linear({"p": 1.0})
    lib.add("lr", m, loss=0.1)
    m.learn_one({"p": 1.0}, False)
    assert dict(lib.solutions("lr")[0].weights) == {"p": 1.0}
    with pytest.raises(ValueError):
        SolutionLibrary(capacity=0)


def test_average_is_the_mean_of_linear_parameters_and_refuses_trees():
    pipes = [build(["StandardScaler", "LogisticRegression"]) for _ in range(2)]
    for pipe, (x, y) in zip(pipes, [({"p": 1.0}, True), ({"q": 1.0}, False)]):
        for _ in range(5):
            pipe.learn_one(x, y)
    mean = average(pipes)
    w0, w1, wm = (p["LogisticRegression"].weights for p in (*pipes, mean))
    assert set(wm) == {"p", "q"}
    assert wm["p"] == pytest.approx((w0.get("p", 0.0) + w1.get("p", 0.0)) / 2)
    assert mean["LogisticRegression"].intercept == pytest.approx(
        (pipes[0]["LogisticRegression"].intercept + pipes[1]["LogisticRegression"].intercept) / 2)
    assert not averageable(build("HoeffdingTreeClassifier")) and average([build("HoeffdingTreeClassifier")]) is None
    assert average([]) is None


def test_recurs_is_a_noise_band_around_the_stored_loss():
    assert recurs("classification", 0.0, 0.0, 50)
    assert not recurs("classification", 0.2, 0.0, 50)
    assert recurs("classification", 0.5, None, 50)


def test_meta_learner_rejects_bad_settings():
    with pytest.raises(ValueError):
        MetaLearner(["a"], k=0)
    with pytest.raises(ValueError):
        MetaLearner(["a"], margin=1.0)


# -- in the lifecycle --------------------------------------------------------------------------
def _cc(warm_start: str) -> ChampionChallenger:
    return ChampionChallenger.from_specs(
        "classification", {"lr": ["StandardScaler", "LogisticRegression"], "nb": "GaussianNB"},
        buffer=ReplayBuffer(300, 200, seed=0), policy=RetrainPolicy(cooldown=200, min_events=100, warm_start=warm_start),
        gate=PromotionGate("classification", margin=0.02, min_events=100, min_interval=100), gate_window=500,
        check_every=50)


def _drive(cc: ChampionChallenger, concepts: list, per: int = 600) -> list:
    """Labels of alternating concepts, a drift signal 30 labels after each switch."""
    rng = random.Random(5)
    done = []
    for k, w in enumerate(concepts):
        for i in range(per):
            x = {c: rng.uniform(-1, 1) for c in ("p", "q")}
            y = sum(w[c] * x[c] for c in w) > 0
            r = cc.update(x, y, champion_prediction=True, now=float(k * per + i))
            if k and i == 30:
                r = cc.on_signal(drift=True) or r
            if r is not None:
                done.append((r.reason, r.learner, r.parent, r.init))
    return done


A, B = {"p": 4.0, "q": 0.0}, {"p": 0.0, "q": 4.0}


def test_meta_reinitialises_from_the_library_when_a_concept_recurs_and_pickles():
    cc = _cc("meta")
    done = _drive(cc, [A, B, A, B])
    inits = [d[3] for d in done]
    assert inits.count("warm") == 3            # every drift retrains as without meta-learning ...
    assert inits.count("library") >= 1         # ... and a concept seen before is re-initialised
    assert done == _drive(_cc("meta"), [A, B, A, B])  # deterministic: a function of the stream
    clone = pickle.loads(pickle.dumps(cc))     # the checkpoint: library, bandit and all
    assert len(clone.meta.library) == len(cc.meta.library) == 3
    assert clone.meta.bandit.counts == cc.meta.bandit.counts and sum(cc.meta.bandit.counts.values()) == 3 * 2  # both arms, each retrain


def test_a_reused_solution_is_shown_in_status_and_at_the_end_of_a_replay():
    """A trial's finding: a stored solution replacing a challenger showed nowhere (not in
    /status, the metrics, the logs nor the replay's lines), only its retrain was counted."""
    from types import SimpleNamespace

    from daemon.offline.command import _learning_lines
    from daemon.web.status import _learning

    cc = _cc("meta")
    reused = [d[3] for d in _drive(cc, [A, B, A, B])].count("library")
    assert reused >= 1
    pipeline = SimpleNamespace(lifecycle=cc, learning_errors=0)
    assert _learning(pipeline)["meta_inits"] == {"library": reused, "average": 0, "kept": 3 - reused}
    line = _learning_lines("m", pipeline)[-1]
    assert f", {reused} of the challengers replaced by a stored solution of an earlier concept;" in line, line
    without = SimpleNamespace(lifecycle=_cc("auto"), learning_errors=0)
    assert _learning(without)["meta_inits"] is None


def test_without_meta_nothing_changes_and_old_checkpoints_load():
    cc = _cc("auto")
    assert cc.meta is None
    assert [d[3] for d in _drive(cc, [A, B, A])] == ["warm", "warm"]
    old = _cc("meta")
    del old.meta  # a checkpoint written before meta-learning existed
    assert [d[3] for d in _drive(old, [A, B, A])] == ["warm", "warm"]


def test_meta_with_trees_and_regression_runs_and_pickles():
    """Trees cannot be averaged, but they are stored whole; regression scores by MAE."""
    cc = ChampionChallenger.from_specs(
        "regression", {"tree": {"HoeffdingAdaptiveTreeRegressor": {"seed": 1}}, "lin": ["StandardScaler", "LinearRegression"]},
        buffer=ReplayBuffer(300, 200, seed=0), policy=RetrainPolicy(cooldown=200, min_events=100, warm_start="meta"),
        gate=PromotionGate("regression", min_events=100, min_interval=100), gate_window=500, check_every=50)
    rng = random.Random(2)
    inits = []
    for k, sign in enumerate((1, -1, 1, -1)):
        for i in range(500):
            x = {"p": rng.uniform(-1, 1)}
            r = cc.update(x, sign * 3 * x["p"], champion_prediction=0.0, now=float(k * 500 + i))
            if k and i == 30:
                r = cc.on_signal(drift=True) or r
            if r is not None:
                inits.append(r.init)
            cc.maybe_promote(now=float(k * 500 + i))
    assert inits.count("warm") + inits.count("fresh") == 3 and set(inits) <= {"warm", "fresh", "library", "average"}
    assert len(cc.meta.library) == 3 and sum(cc.meta.bandit.counts.values()) == 3 * 2
    assert pickle.loads(pickle.dumps(cc)).meta.bandit.counts == cc.meta.bandit.counts


def test_retrain_warm_start_meta_from_the_config():
    from daemon.config import ModelConfig
    from daemon.stream.learning import build_lifecycle

    cc = build_lifecycle(ModelConfig(learners={"lr": ["StandardScaler", "LogisticRegression"]},
                                     retrain_warm_start="meta"), "models.m")
    assert isinstance(cc.meta, MetaLearner) and cc.meta.bandit.arms == ["lr"]


# -- closed loop (bench/meta.py's world, smaller) ---------------------------------------------
def _recovery(kind: str, warm_start: str) -> list:
    stream = bench.make_stream(kind, concepts=5, segment=1500, seed=3)
    return [t for t, _ in bench.recovery(stream, bench.run(stream, warm_start)["predictions"])]


def test_closed_loop_recurring_concepts_recover_faster_from_the_third_switch():
    warm, meta = _recovery("recurring", "auto"), _recovery("recurring", "meta")
    assert sum(meta[2:]) <= 0.8 * sum(warm[2:]), (warm, meta)
    assert all(m <= w for m, w in zip(meta[2:], warm[2:])), (warm, meta)


def test_closed_loop_novel_concepts_are_not_worse():
    warm, meta = _recovery("novel", "auto"), _recovery("novel", "meta")
    assert sum(meta) <= 1.05 * sum(warm), (warm, meta)
