"""learners.lifecycle and learners.retraining: champion vs challengers, retrains, promotions."""

from __future__ import annotations

import itertools
import pickle

import pytest
from river import drift, tree
from river.datasets import synth

from learners import (ChampionChallenger, Learner, PromotionGate, Registry, ReplayBuffer, RetrainPolicy,
                      build, can_transfer, load_model, retrain)


def agrawal(function, seed, n):
    return list(synth.Agrawal(classification_function=function, seed=seed).take(n))


@pytest.fixture(scope="module")
def old_champion():
    """The deployed model: a Hoeffding tree trained on concept 0, then frozen."""
    model = tree.HoeffdingTreeClassifier()
    for x, y in agrawal(0, 1, 5000):
        model.learn_one(x, y)
    return model


def make(**kw):
    kw = {"buffer": ReplayBuffer(1000, 500, seed=0), "policy": RetrainPolicy(cooldown=500),
          "gate": PromotionGate("classification", margin=0.02, min_events=300, alpha=0.01, min_interval=3600),
          "check_every": 50} | kw
    return ChampionChallenger.from_specs("classification", {"ht": ["HoeffdingTreeClassifier"]}, **kw)


def test_concept_change_drift_retrain_promotion(old_champion, tmp_path):
    cc = make()
    stream = agrawal(0, 2, 3000) + agrawal(2, 3, 2500)  # concept 0, then 2 from event 3000
    adwin = drift.ADWIN()
    retrains, promotions = [], []
    for i, (x, y) in enumerate(stream):
        y_champ = old_champion.predict_one(x)
        cc.update(x, y, y_champ, now=float(i), champion_version="7")
        adwin.update(int(y_champ != y))  # the daemon's concept-drift detector on the champion's errors
        if adwin.drift_detected:
            retrains.append((i, cc.on_signal(drift=True)))
        promotion = cc.maybe_promote(now=float(i))
        if promotion:
            promotions.append((i, promotion))

    assert all(i >= 3000 for i, _ in retrains), "no drift, no retrain before the change"
    (at, first), = retrains[:1]
    assert at < 3300 and first.reason == "drift" and first.learner == "retrained-1" and first.parent == "ht"
    assert first.warm_start is False  # a plain Hoeffding tree cannot unlearn its splits: fresh
    assert cc.retrains["drift"] >= 1

    assert promotions, "the retrained challenger should have been promoted"
    when, promotion = promotions[0]
    assert at < when < at + 1500
    assert promotion.learner == "retrained-1" and promotion.id == f"retrained-1@{when + 1}"
    d = promotion.decision
    assert d.promote and d.n >= 300 and d.p_value < 0.01 and d.challenger_score >= d.champion_score + 0.02
    assert len(promotions) == 1, "rate limit: one promotion per hour of event time"
    assert cc.decisions["promoted"] == 1 and cc.decisions["rate_limited"] >= 1
    assert cc.scores()["champion"] < 0.6 < cc.scores()["retrained-1"]

    # The promoted snapshot beats the old champion on fresh events of the new concept.
    fresh = agrawal(2, 4, 1000)
    new_acc = sum(promotion.estimator.predict_one(x) == y for x, y in fresh) / 1000
    old_acc = sum(old_champion.predict_one(x) == y for x, y in fresh) / 1000
    assert new_acc > old_acc + 0.1

    # Published and loaded back the way a model server would.
    manifest = Registry(tmp_path, b"key" * 11).publish("fraud", promotion.estimator, promotion.manifest)
    assert manifest["learner"] == "retrained-1" and manifest["parent_learner"] == "ht"
    assert manifest["replaces_model_version"] == "7" and manifest["idempotency_key"] == promotion.id
    window = manifest["training_window"]
    assert window["first_event_time"] < 3000 <= window["last_event_time"] == when
    assert manifest["metrics"]["gate"]["p_value"] == d.p_value
    loaded, _ = load_model(tmp_path / "fraud", key=b"key" * 11)
    assert [loaded.predict_one(x) for x, _ in fresh[:100]] == [promotion.estimator.predict_one(x) for x, _ in fresh[:100]]


def test_no_promotion_of_an_equal_learner(old_champion):
    cc = make()
    for i, (x, y) in enumerate(agrawal(0, 5, 3000)):
        cc.update(x, y, old_champion.predict_one(x), now=float(i))
        assert cc.maybe_promote(now=float(i)) is None
    assert cc.decisions["promoted"] == 0 and cc.decisions["not_significant"] > 0


def run(cc, events, champion, start, signal_at=None):
    trace = []
    for i, (x, y) in enumerate(events, start):
        retrain_ = cc.update(x, y, champion.predict_one(x), now=float(i))
        if i == signal_at:
            retrain_ = cc.on_signal(drift=True)
        promotion = cc.maybe_promote(now=float(i))
        trace.append((retrain_, promotion and (promotion.id, promotion.decision), cc.scores()))
    return trace


def test_checkpoint_mid_stream_gives_identical_behaviour(old_champion):
    specs = {"hat": [{"HoeffdingAdaptiveTreeClassifier": {"seed": 3, "grace_period": 100}}],
             "lr": [{"Union": [["Numeric", "StandardScaler"], ["Categorical", "OneHotEncoder"]]}, "LogisticRegression"]}
    cc = ChampionChallenger.from_specs("classification", specs, buffer=ReplayBuffer(500, 200, seed=4),
                                       policy=RetrainPolicy(cooldown=200, every=700), check_every=50,
                                       gate=PromotionGate("classification", min_events=200, min_interval=300))
    stream = agrawal(0, 6, 1200) + agrawal(2, 7, 1800)
    run(cc, stream[:1500], old_champion, 0)
    restored = pickle.loads(pickle.dumps(cc))
    a = run(cc, stream[1500:], old_champion, 1500, signal_at=1600)
    b = run(restored, stream[1500:], old_champion, 1500, signal_at=1600)
    assert a == b
    assert any(r for r, _, _ in a) and any(p for _, p, _ in a), "the replayed part retrains and promotes"
    assert cc.buffer.sample() == restored.buffer.sample()
    assert cc.buffer._rng.getstate() == restored.buffer._rng.getstate()


def test_retrained_challenger_is_scored_only_on_events_after_its_creation():
    cc = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]},
                                       policy=RetrainPolicy(min_events=50, cooldown=0), check_every=10**9)
    events = [({"x": float(i % 10)}, i % 10 > 4) for i in range(120)]
    for x, y in events[:100]:
        cc.update(x, y, True)
    assert cc.on_signal(decay=True).reason == "decay"
    assert len(cc.pairs["retrained-1"][0]) == 0 and len(cc.pairs["nb"][0]) == 100
    assert cc.learners["retrained-1"].n_learned == 100 + 100  # warm: its parent's 100, then the buffer
    for x, y in events[100:]:
        cc.update(x, y, True)
    assert len(cc.pairs["retrained-1"][1]) == 20


def test_signals_wait_for_the_buffer_and_the_cooldown():
    cc = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]}, max_retrained=2,
                                       policy=RetrainPolicy(min_events=30, cooldown=50, every=None))
    feed = ((({"x": float(i % 3)}, i % 3 == 0)) for i in itertools.count())
    for _ in range(10):
        cc.update(*next(feed), champion_prediction=False)
    assert cc.on_signal(drift=True) is None  # 10 events buffered, 30 needed: stays pending
    retrains = [cc.update(*next(feed), champion_prediction=False) for _ in range(20)]
    assert [r.reason for r in retrains if r] == ["drift"] and retrains[-1].at == 30
    assert cc.on_signal(decay=True) is None  # cooldown
    retrains = [cc.update(*next(feed), champion_prediction=False) for _ in range(50)]
    assert [(r.reason, r.at, r.learner) for r in retrains if r] == [("decay", 80, "retrained-2")]
    for _ in range(5):
        for _ in range(50):
            cc.update(*next(feed), champion_prediction=False)
        cc.on_signal(drift=True)
    assert set(cc.learners) == {"nb", "retrained-1", "retrained-2"}  # bounded slots
    assert cc.retrains == {"drift": 6, "decay": 1}


def test_schedule_policy():
    policy = RetrainPolicy(on_drift=False, on_decay=False, every=100, cooldown=0)
    assert policy.should_retrain(True, True, 50) is None
    assert policy.should_retrain(False, False, 100) == "schedule"
    assert policy.should_retrain(False, False, 199) is None
    assert policy.should_retrain(False, False, 200) == "schedule"
    with pytest.raises(ValueError, match="warm_start must be one of"):
        RetrainPolicy(warm_start="sometimes")
    with pytest.raises(ValueError, match="every must be"):
        RetrainPolicy(every=0)


def test_transfer_rules_and_retrain():
    assert not can_transfer(build("HoeffdingTreeClassifier"))
    assert not can_transfer(build(["StandardScaler", "HoeffdingTreeRegressor"]))
    assert can_transfer(build("HoeffdingAdaptiveTreeClassifier"))
    assert can_transfer(build(["StandardScaler", "LogisticRegression"]))
    best = Learner("lr", build(["StandardScaler", "LogisticRegression"]))
    buf = ReplayBuffer(100, 20, seed=0)
    for i in range(300):
        x, y = {"x": float(i % 10)}, i % 10 > 4
        best.update(x, y)
        buf.update(x, y)
    warm = retrain(best, buf, "w", warm_start=True)
    cold = retrain(best, buf, "c", warm_start=False)
    assert warm.estimator is not best.estimator and best.n_learned == 300
    assert warm.n_learned == 300 + len(buf) and cold.n_learned == len(buf)
    assert warm.parent == cold.parent == "lr" and not warm.recent
    assert RetrainPolicy(warm_start="never").transfer(best) is False
    assert RetrainPolicy(warm_start="always").transfer(Learner("ht", build("HoeffdingTreeClassifier"))) is True


def test_champion_version_change_restarts_the_comparison():
    cc = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]})
    for i in range(30):
        cc.update({"x": float(i)}, i % 2 == 0, False, champion_version="1")
    assert len(cc.pairs["nb"][0]) == 30
    cc.update({"x": 1.0}, True, True, champion_version="2")
    assert len(cc.pairs["nb"][0]) == 1 and cc.champion_version == "2"


def test_a_failing_learner_is_counted_and_skipped():
    cc = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"], "ht": ["HoeffdingTreeClassifier"]})
    for i in range(20):
        cc.update({"country": ["DE", "FR"][i % 2]}, i % 2 == 0, False)
    assert cc.errors == {"nb": 20} and "TypeError" in cc.last_error["nb"]
    assert len(cc.pairs["ht"][0]) == 20 and len(cc.pairs["nb"][0]) == 0
    with pytest.raises(ValueError, match="feature 'bad'"):
        cc.update({"bad": [1]}, True, False)


def test_regression_lifecycle():
    cc = ChampionChallenger.from_specs(
        "regression", {"lin": ["StandardScaler", {"LinearRegression": {"optimizer": {"SGD": {"lr": 0.05}}}}]},
        gate=PromotionGate("regression", margin=0.2, min_events=300, min_interval=0), check_every=100)
    promoted = []
    for i in range(800):
        x = {"a": (i * 37 % 101) / 10, "b": (i * 53 % 97) / 10}
        y = 3 * x["a"] - 2 * x["b"] + 1
        cc.update(x, y, champion_prediction=5.0, now=float(i))  # a constant champion
        p = cc.maybe_promote(now=float(i))
        if p:
            promoted.append(p)
    assert promoted and promoted[0].learner == "lin"
    assert promoted[0].manifest["metrics"]["metric"] == "mae"
    assert promoted[0].decision.challenger_score < 0.8 * promoted[0].decision.champion_score


def test_configuration_errors_name_the_key():
    with pytest.raises(ValueError, match=r"^models\.fraud\.learners\.lr\[1\]: unknown class 'LogReg'"):
        ChampionChallenger.from_specs("classification", {"lr": ["StandardScaler", "LogReg"]}, key="models.fraud.learners")
    with pytest.raises(ValueError, match=r"^models\.fraud\.learners\.lin: learner 'lin': the model does regression"):
        ChampionChallenger.from_specs("classification", {"lin": ["LinearRegression"]}, key="models.fraud.learners")
    with pytest.raises(ValueError, match="must be unique and not start with 'retrained-'"):
        ChampionChallenger.from_specs("classification", {"retrained-1": ["GaussianNB"]})
    with pytest.raises(ValueError, match="the gate is for regression"):
        ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]}, gate=PromotionGate("regression"))
    with pytest.raises(ValueError, match=r"gate_window \(100\) is smaller than the gate's min_events \(500\)"):
        ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]}, gate_window=100)


def test_a_retrain_that_fails_is_counted_and_leaves_the_learners_as_they_were():
    """A new user's finding: a River model that takes numbers only (GaussianNB here; a
    HoeffdingTreeRegressor's linear leaves in the report), given a string feature, failed
    at every event (counted) and then at the retrain a drift asked for, which raised out of
    the lifecycle: the daemon's whole batch of labels became internal_error dead letters."""
    cc = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]},
                                       policy=RetrainPolicy(min_events=10, cooldown=0, every=None))
    for i in range(20):
        cc.update({"country": ["DE", "FR"][i % 2]}, i % 2 == 0, False)
    assert cc.on_signal(drift=True) is None  # no retrain, and no exception
    assert cc.errors == {"nb": 21} and cc.last_error["nb"].startswith("retraining: TypeError")
    assert set(cc.learners) == {"nb"} and cc.retrains == {}
    cc.update({"country": "DE"}, True, False)  # and it goes on
    assert cc.errors == {"nb": 22} and cc.n_labelled == 21


def test_a_learner_that_never_learns_is_never_the_best_one_to_retrain_from():
    """A new user's finding: GaussianNB given a string feature predicted (from its empty
    state) but never learned; its predictions were scored all the same, its score came out
    above the tree's, so every retrain started from it and failed: no retrain at all. An
    event a learner cannot learn is not scored now; a failed retrain is counted by reason."""
    cc = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"], "tree": ["HoeffdingTreeClassifier"]},
                                       policy=RetrainPolicy(min_events=20, cooldown=0, every=50))
    for i in range(120):
        cc.update({"country": ["DE", "FR"][i % 2], "x": float(i % 7)}, i % 2 == 0, False)
    assert cc.learners["nb"].recent_score is None and cc.learners["nb"].n_learned == 0
    assert cc.best().name == "tree"
    assert cc.retrains == {"schedule": 2} and not cc.failed_retrains and cc.errors["nb"] == 120

    lone = ChampionChallenger.from_specs("classification", {"nb": ["GaussianNB"]},
                                         policy=RetrainPolicy(min_events=20, cooldown=0, every=50))
    for i in range(120):
        lone.update({"country": ["DE", "FR"][i % 2]}, i % 2 == 0, False)
    assert lone.retrains == {} and lone.failed_retrains == {"schedule": 2}


def test_a_lifecycle_saved_before_failed_retrains_were_counted_loads_with_none():
    cc = make()
    cc.failed_retrains["drift"] += 1
    state = pickle.dumps(cc)
    del cc.__dict__["failed_retrains"]
    old = pickle.loads(pickle.dumps(cc))
    assert old.failed_retrains == {} and pickle.loads(state).failed_retrains == {"drift": 1}
    old.failed_retrains["decay"] += 1  # counted as a new one would be
