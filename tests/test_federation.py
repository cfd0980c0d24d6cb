"""Federated averaging, the pure parts: weights, proximal term, clipping, refusals, message
signing and checking, configuration rules. The round protocol on a real broker is in
tests/test_federation_kafka.py."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from river import linear_model, optim, preprocessing, tree

from daemon.config import ConfigError, FederationConfig, from_dict
from daemon.federation import Federation, messages
from learners import federated as fed
from learners.progressive import Learner
from learners.spec import build


def p(intercept=0.0, **weights):
    return {"weights": dict(weights), "intercept": intercept}


def test_average_is_weighted_by_labelled_events():
    base = p(x=1.0)
    updates = [(100, p(1.0, x=1.0)), (300, p(0.0, x=-1.0, z=2.0))]
    new = fed.aggregate(base, updates)
    assert new["weights"] == pytest.approx({"x": 1.0 + (100 * 1 - 300 * 1) / 400, "z": 300 * 2 / 400})
    assert new["intercept"] == pytest.approx(0.25)
    # equal counts: the plain mean; one participant: its own update
    assert fed.aggregate(base, [(5, p(x=2.0)), (5, p(x=0.0))])["weights"]["x"] == pytest.approx(2.0)
    assert fed.aggregate(base, [(7, p(x=2.0))])["weights"]["x"] == pytest.approx(3.0)


def test_clipping_bounds_each_update_and_huge_norms_are_refused():
    base = p()
    big = p(x=30.0, z=40.0)               # norm 50
    assert fed.norm(fed.clip(big, 5.0)) == pytest.approx(5.0)
    assert fed.clip(big, 0.0) is big and fed.clip(p(x=1.0), 5.0)["weights"] == {"x": 1.0}
    kept, clipped, refused = fed.screen([(10, big), (10, p(x=1.0)), (10, p(x=1e9)), (0, p(x=1.0)),
                                         (10, p(x=math.nan))], clip_norm=5.0, max_norm=100.0)
    assert [fed.norm(u) for _, u in kept] == pytest.approx([5.0, 1.0])
    assert clipped == 1 and refused == {"norm": 1, "no_events": 1, "not_finite": 1}
    new = fed.aggregate(base, [(10, big), (10, p(x=1e9))], clip_norm=5.0, max_norm=100.0)
    assert fed.norm(new) == pytest.approx(5.0)   # the poisoned one had no effect, the big one is bounded
    with pytest.raises(fed.NoUpdates, match="norm"):
        fed.aggregate(base, [(10, p(x=1e9))], max_norm=100.0)


def test_proximal_term_pulls_towards_the_global_model():
    anchor, local = p(x=1.0), p(2.0, x=3.0)
    assert fed.proximal_pull(local, anchor, mu=0.0, lr=0.1, steps=10) is local   # FedAvg
    one = fed.proximal_pull(local, anchor, mu=1.0, lr=0.1, steps=1)
    assert one["weights"]["x"] == pytest.approx(1.0 + 2.0 * 0.9) and one["intercept"] == pytest.approx(1.8)
    many = fed.proximal_pull(local, anchor, mu=1.0, lr=0.1, steps=50)
    assert many["weights"]["x"] == pytest.approx(1.0 + 2.0 * 0.9 ** 50)
    # it equals that many explicit gradient steps of mu/2 ||w - anchor||^2
    w = 3.0
    for _ in range(50):
        w -= 0.1 * 1.0 * (w - 1.0)
    assert many["weights"]["x"] == pytest.approx(w)


def test_parameters_round_trip_through_river_models():
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    with pytest.raises(fed.NotFederable, match="StandardScaler"):
        fed.params_of(model)
    model = build([{"Numeric": {}}, {"LogisticRegression": {"optimizer": {"SGD": {"lr": 0.05}}}}])
    for i in range(20):
        model.learn_one({"a": float(i % 5), "b": 1.0}, i % 2 == 0)
    before = fed.params_of(model)
    assert set(before["weights"]) == {"a", "b"}
    fed.set_params(model, p(0.5, a=2.0, c=-1.0))
    assert fed.params_of(model) == p(0.5, a=2.0, c=-1.0)
    assert model.predict_proba_one({"a": 1.0, "c": 0.0})[True] > 0.9   # the new weights are used
    assert fed.learning_rate(model) == pytest.approx(0.05)


@pytest.mark.parametrize("estimator, reason", [
    (tree.HoeffdingTreeClassifier(), "not a vector"),
    (build("ARFClassifier"), "not a vector"),
    (build("GaussianNB"), "only LogisticRegression"),
    (build("SoftmaxRegression"), "multiclass"),
    (build(["StandardScaler", "LogisticRegression"]), "StandardScaler"),
    (build(["OneHotEncoder", "LogisticRegression"]), "category values"),
])
def test_non_averageable_learners_are_refused_with_the_reason(estimator, reason):
    assert reason in fed.federable(estimator)
    with pytest.raises(fed.NotFederable, match=reason):
        fed.check(estimator)
    for ok in (linear_model.LogisticRegression(), linear_model.Perceptron(), linear_model.LinearRegression(),
               build([{"Discard": {"features": ["id"]}}, "LinearRegression"])):
        assert fed.federable(ok) is None


def _update(**over):
    body = {"kind": "update", "federation": "f", "participant": "eu", "model": "m", "learner": "lr", "round": 3,
            "n": 50, "delta": p(0.1, x=0.5)}
    return {**body, **over}


def test_messages_are_signed_and_checked_field_by_field():
    raw = messages.encode(b"key", _update())
    assert messages.decode(b"key", raw) == _update()
    with pytest.raises(messages.Rejected) as e:
        messages.decode(b"other key", raw)
    assert e.value.reason == "signature"
    altered = json.loads(raw)
    altered["body"]["n"] = 5000                    # more weight, same tag
    with pytest.raises(messages.Rejected, match="^signature"):
        messages.decode(b"key", json.dumps(altered).encode())
    for bad in (_update(features={"x": 1.0}), _update(delta={"weights": {"x": "1"}, "intercept": 0.0}),
                _update(delta={"weights": {"x": True}, "intercept": 0.0}), _update(n=-1), _update(label=True)):
        with pytest.raises(messages.Rejected, match="^malformed"):
            messages.encode(b"key", bad)          # never sent ...
        forged = json.dumps({"body": bad, "hmac_sha256": messages._tag(b"key", bad)}).encode()
        with pytest.raises(messages.Rejected, match="^malformed"):
            messages.decode(b"key", forged)      # ... nor accepted, even correctly signed
    with pytest.raises(messages.Rejected, match="^malformed"):
        messages.decode(b"key", b"\x80pickle")


def _config(model_learners, **federation):
    return {"federation": {"enabled": True, "participant": "eu", **federation},
            "models": {"fraud": {"learners": model_learners}}}


def test_config_refuses_a_tree_learner_naming_the_key(monkeypatch):
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "r")
    monkeypatch.setenv("DRIFTD_FEDERATION_KEY", "f")
    learners = {"lr": [{"LogisticRegression": {}}], "tree": {"HoeffdingTreeClassifier": {}}}
    with pytest.raises(ConfigError, match=r"^models\.fraud\.learners\.tree: cannot be federated: .*tree"):
        from_dict(_config(learners))
    config = from_dict(_config(learners, learners=["lr"]))     # federate only the linear one
    assert config.federation.learners == ["lr"]
    with pytest.raises(ConfigError, match=r"^federation\.participant"):
        from_dict(_config(learners, participant="", learners=["lr"]))
    with pytest.raises(ConfigError, match=r"^federation\.max_update_norm"):
        from_dict(_config(learners, learners=["lr"], max_update_norm=-1.0))
    with pytest.raises(ConfigError, match=r"^federation\.participants"):
        from_dict(_config(learners, learners=["lr"], participants=["us", "asia"]))
    monkeypatch.delenv("DRIFTD_FEDERATION_KEY")
    with pytest.raises(ConfigError, match=r"^federation\.key_env"):
        from_dict(_config(learners, learners=["lr"]))
    assert not from_dict({}).federation.enabled              # off by default, no key needed


# -- the participant's bookkeeping, on an in-memory topic (the broker: test_federation_kafka.py) --

class _Topic:
    def __init__(self):
        self.records = []


class _Producer:
    def __init__(self, topic):
        self.topic = topic

    def send(self, topic, key=None, value=None):
        self.topic.records.append(SimpleNamespace(key=key, value=value))

    def flush(self, timeout=None):
        pass


class _Reader:
    def __init__(self, topic):
        self.topic, self.position = topic, 0

    def poll(self, timeout_ms=0, max_records=1000):
        new = self.topic.records[self.position:]
        self.position = len(self.topic.records)
        return {0: new} if new else {}


def _participant(topic, name="a", **settings):
    defaults = {"participants": [name], "every_events": 1000, "every_seconds": 10.0}
    f = Federation(FederationConfig(enabled=True, participant=name, **{**defaults, **settings}), [("m", "lr")], b"k",
                   "unused:9092", create_topics=False)
    f._producer, f._reader = _Producer(topic), _Reader(topic)
    return f


def _learner(n, sign=1.0):
    learner = Learner("lr", linear_model.LogisticRegression(optimizer=optim.SGD(0.1)))
    for i in range(n):
        learner.learn_one({"x": sign * (1.0 + i % 3)}, i % 2 == 0)
    return learner


def _bodies(topic, kind):
    return [json.loads(r.value)["body"] for r in topic.records if json.loads(r.value)["body"]["kind"] == kind]


def test_an_update_is_sent_after_every_seconds_with_the_events_behind_it():
    topic = _Topic()
    f = _participant(topic)
    learner = _learner(5)
    f.step({(0, "m", "lr"): learner}, now=0.0)
    f.step({(0, "m", "lr"): learner}, now=9.0)
    assert _bodies(topic, "update") == []                    # under every_events, before every_seconds
    f.step({(0, "m", "lr"): learner}, now=10.0)
    (update,) = _bodies(topic, "update")
    assert update["n"] == 5 and update["round"] == 1
    assert update["delta"] == fed.params_of(learner.estimator)   # from the zero model


def test_partitions_are_averaged_by_events_and_merging_keeps_later_progress():
    topic = _Topic()
    f = _participant(topic, every_events=20)
    f.is_aggregator = True
    parts = {(0, "m", "lr"): _learner(10), (1, "m", "lr"): _learner(30, sign=-1.0)}
    sent = {k: fed.params_of(lr.estimator) for k, lr in parts.items()}
    f.step(parts, now=0.0)                                   # update sent
    (update,) = _bodies(topic, "update")
    expected = fed.average([(10, sent[(0, "m", "lr")]), (30, sent[(1, "m", "lr")])])
    assert update["n"] == 40
    assert update["delta"]["weights"]["x"] == pytest.approx(expected["weights"]["x"])
    f.step(parts, now=1.0)                                   # read back; all participants in: closed
    (glob,) = _bodies(topic, "global")
    assert glob["participants"] == ["a"] and glob["n"] == 40
    for i in range(7):                                       # partition 0 learns on meanwhile
        parts[(0, "m", "lr")].learn_one({"x": 2.0}, True)
    progress = fed.delta(fed.params_of(parts[(0, "m", "lr")].estimator), sent[(0, "m", "lr")])
    f.step(parts, now=2.0)                                   # global merged
    assert f.slots[("m", "lr")].round == 1
    merged0 = fed.params_of(parts[(0, "m", "lr")].estimator)
    assert merged0["weights"]["x"] == pytest.approx(glob["params"]["weights"]["x"] + progress["weights"]["x"])
    assert fed.params_of(parts[(1, "m", "lr")].estimator)["weights"]["x"] == pytest.approx(glob["params"]["weights"]["x"])
    for i in range(13):
        parts[(1, "m", "lr")].learn_one({"x": -2.0}, False)
    f.step(parts, now=3.0)
    second = _bodies(topic, "update")[-1]
    assert second["round"] == 2 and second["n"] == 20        # only what the first global did not hold


def test_updates_for_another_round_are_refused_as_stale():
    topic = _Topic()
    f = _participant(topic, participants=["a", "b"])
    other = _participant(topic, name="b", participants=["a", "b"])
    other.slots[("m", "lr")].round = 4                       # b works from a global a never saw
    learner = _learner(5)
    other.step({(0, "m", "lr"): learner}, now=0.0)
    for i in range(5):
        learner.learn_one({"x": 1.0}, True)
    other.step({(0, "m", "lr"): learner}, now=10.0)
    assert _bodies(topic, "update")[0]["round"] == 5
    f.step({(0, "m", "lr"): _learner(1)}, now=0.0)
    assert f.rejected == {"stale": 1} and not f.slots[("m", "lr")].pending


def test_the_daemon_builds_its_participant_from_the_configuration(monkeypatch):
    from daemon.federation import from_config

    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "r")
    monkeypatch.setenv("DRIFTD_FEDERATION_KEY", "shared")
    assert from_config(from_dict({})) is None
    config = from_dict({**_config({"lr": ["Numeric", "LogisticRegression"], "tree": "HoeffdingTreeClassifier"},
                                  learners=["lr"], bootstrap_servers="shared:9092"),
                        "kafka": {"bootstrap_servers": "local:9092"}})
    f = from_config(config)
    assert set(f.slots) == {("fraud", "lr")} and f.bootstrap == "shared:9092" and f.key == b"shared"
    assert f.me == "eu" and not f._create                     # kafka.create_topics is 0: the admins create them
