"""Federated averaging on the real broker: three participants on non-IID slices of one
concept, the round protocol, attacks, a participant and the aggregator disappearing, and
what travels on the federation topic.

The three participants are three :class:`daemon.federation.Federation` objects in this
process, each with its own producer, reader and election consumer (its own group member),
stepped in turn from this thread; participant ``c`` goes through ``after_batch`` with a
real :class:`learners.lifecycle.ChampionChallenger`, as the daemon's hook does. Three full
driftd processes would each need their reference, joins and event topics before learning
anything, which is minutes on the two shared cores, for no more of the federation code.

The concept: ``y = b - a + 0.3 > 0`` over ``a, b`` in [-3, 3]. Participant ``a`` only sees
``a`` in [-3, -2], ``b`` in [-0.5, 0.5], ``c`` in [2, 3] (``b`` everywhere): none sees how the
boundary moves with ``a`` across the whole range. The held-out stream covers it all.
"""

from __future__ import annotations

import json
import random
import threading
import time
from types import SimpleNamespace

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from river import linear_model, optim

from daemon.config import FederationConfig
from daemon.federation import Federation
from daemon.federation.messages import FIELDS, SIGNATURE, encode
from daemon.web.metrics import Metrics
from learners import federated as fed
from learners.lifecycle import ChampionChallenger
from learners.progressive import Learner

KEY = b"federation-test-key"
LR, ROUND_EVENTS, EVENTS = 0.05, 50, 3000
SLICES = {"a": (-3.0, -2.0), "b": (-0.5, 0.5), "c": (2.0, 3.0)}
SPEC = [{"LogisticRegression": {"optimizer": {"SGD": {"lr": LR}}}}]
SLOT = ("m", "lr")


def concept(x) -> bool:
    return x["b"] - x["a"] + 0.3 > 0


def events(rng, lo, hi, n):
    out = []
    for _ in range(n):
        x = {"a": rng.uniform(lo, hi), "b": rng.uniform(-3.0, 3.0)}
        out.append((x, concept(x)))
    return out


def model():
    return linear_model.LogisticRegression(optimizer=optim.SGD(LR))


def accuracy(estimator, stream) -> float:
    return sum(estimator.predict_one(x) == y for x, y in stream) / len(stream)


class Participant:
    """One deployment: its data slice, its learner, its Federation."""

    def __init__(self, name, settings, bootstrap, consumer, via_lifecycle=False):
        self.name = name
        # c goes the daemon's way: learners in a lifecycle, metrics in the daemon's registry
        self.metrics = Metrics({}, threading.Lock()) if via_lifecycle else None
        self.federation = Federation(settings, [SLOT], KEY, bootstrap, consumer=consumer, metrics=self.metrics)
        if via_lifecycle:
            self.cc = ChampionChallenger.from_specs("classification", {"lr": SPEC}, max_retrained=0)
            self.learner = self.cc.learners["lr"]
            self.states = {0: SimpleNamespace(models={"m": SimpleNamespace(lifecycle=self.cc)})}
        else:
            self.cc, self.learner = None, Learner("lr", model())
        self.alive = True

    def learn(self, batch):
        for x, y in batch:
            if self.cc is not None:
                self.cc.update(x, y, champion_prediction=None)
            else:
                self.learner.update(x, y)

    def step(self):
        if self.cc is not None:
            self.federation.after_batch(self.states)
        else:
            self.federation.step({(0, *SLOT): self.learner})

    @property
    def round(self):
        return self.federation.slots[SLOT].round


def step_until(participants, done, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in participants:
            p.step()
        if done():
            return
        time.sleep(0.02)
    raise AssertionError(f"not done after {timeout} s: rounds {[p.round for p in participants]}")


@pytest.fixture(scope="module")
def run(kafka_broker):
    """Three participants, 60 lockstep rounds of 50 events each; yields what the tests need."""
    if not kafka_broker.running():
        kafka_broker.start()
    suffix = f"{random.getrandbits(32):08x}"
    consumer = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "max_poll_interval_ms": 10000,
                "fetch_max_wait_ms": 50}

    def settings(name):
        return FederationConfig(enabled=True, participant=name, participants=list(SLICES),
                                topic=f"fed-{suffix}", election_topic=f"fed-election-{suffix}", group=f"fed-{suffix}",
                                every_events=ROUND_EVENTS, every_seconds=3600.0, round_timeout_seconds=1.5,
                                clip_norm=10.0, max_update_norm=100.0)

    rng = random.Random(1)
    data = {name: events(rng, lo, hi, EVENTS) for name, (lo, hi) in SLICES.items()}
    held_out = events(random.Random(2), -3.0, 3.0, 4000)
    participants = [Participant(name, settings(name), kafka_broker.bootstrap, consumer, via_lifecycle=name == "c")
                    for name in SLICES]
    for p in participants:
        p.federation.start()
    deadline = time.monotonic() + 20
    while not any(p.federation.is_aggregator for p in participants):
        assert time.monotonic() < deadline, "no aggregator elected"
        time.sleep(0.05)
    for r in range(EVENTS // ROUND_EVENTS):
        for p in participants:
            p.learn(data[p.name][r * ROUND_EVENTS:(r + 1) * ROUND_EVENTS])
        step_until(participants, lambda: all(p.round == r + 1 for p in participants))
    yield SimpleNamespace(participants=participants, data=data, held_out=held_out, settings=settings,
                          bootstrap=kafka_broker.bootstrap, topic=f"fed-{suffix}", rng=rng)
    for p in participants:
        if p.alive:
            p.federation.close()


def test_federated_model_is_near_centralised_and_above_every_local_only_model(run):
    rounds = run.participants[0].federation.rounds
    assert len(rounds) == EVENTS // ROUND_EVENTS
    assert all(r["participants"] == ["a", "b", "c"] and r["n"] == 3 * ROUND_EVENTS for r in rounds)
    # Every participant merged the same global models.
    assert all(p.federation.rounds == rounds for p in run.participants)
    c = run.participants[2]
    sample = c.metrics.registry.get_sample_value
    assert sample("driftd_federation_rounds_total", {"model": "m", "learner": "lr"}) == len(rounds)
    assert sample("driftd_federation_round_participants", {"model": "m", "learner": "lr"}) == 3
    assert sample("driftd_federation_score", {"model": "m", "learner": "lr"}) == c.learner.recent_score > 0.8
    federated = model()
    fed.set_params(federated, run.participants[0].federation.slots[SLOT].base)
    local = {}
    for name, stream in run.data.items():
        alone = model()
        for x, y in stream:
            alone.learn_one(x, y)
        local[name] = accuracy(alone, run.held_out)
    pooled = [e for stream in run.data.values() for e in stream]
    random.Random(3).shuffle(pooled)
    central = model()
    for x, y in pooled:
        central.learn_one(x, y)
    scores = {"federated": accuracy(federated, run.held_out), "centralised": accuracy(central, run.held_out),
              **{f"local {k}": v for k, v in local.items()}}
    print("held-out accuracy:", {k: round(v, 4) for k, v in scores.items()})
    assert scores["federated"] >= scores["centralised"] - 0.02
    assert scores["federated"] > max(local.values())


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def read_all(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning()
    end = consumer.end_offsets([tp])[tp]
    records = []
    while consumer.position(tp) < end:
        for batch in consumer.poll(timeout_ms=500).values():
            records += batch
    consumer.close()
    return records


def test_only_parameter_changes_and_counts_are_on_the_federation_topic(run):
    records = read_all(run.bootstrap, run.topic)
    assert len(records) >= 4 * EVENTS // ROUND_EVENTS     # 3 updates and a global per round
    raw_values = {v for stream in run.data.values() for x, _ in stream for v in x.values()}
    allowed_names = {"a", "b"}                            # feature names, never values
    kinds = set()
    for record in records:
        message = json.loads(record.value)
        assert set(message) == {"body", SIGNATURE}
        body = message["body"]
        kinds.add(body["kind"])
        assert set(body) == FIELDS[body["kind"]]
        assert body["participant"] in SLICES and record.key.decode() == body["participant"]
        params = body["delta" if body["kind"] == "update" else "params"]
        assert set(params) == {"weights", "intercept"} and set(params["weights"]) <= allowed_names
        assert all(isinstance(v, float) for v in [*params["weights"].values(), params["intercept"]])
        if body["kind"] == "global":
            assert set(body["participants"]) <= set(SLICES) and body["rejected"] == {}
        # No label (booleans), no feature value, nothing else with a value in it.
        text = record.value.decode()
        assert "true" not in text and "false" not in text
        assert not raw_values & set(_numbers(body))
        assert all(isinstance(v, int) for v in (body["round"], body["n"]))
    assert kinds == {"update", "global"}


def test_forged_poisoned_and_unknown_messages_are_counted_and_ignored(run):
    ps = run.participants
    before = ps[0].federation.slots[SLOT].base
    r = ps[0].round
    producer = KafkaProducer(bootstrap_servers=run.bootstrap)
    group = ps[0].federation.name

    def update(participant, delta):
        return {"kind": "update", "federation": group, "participant": participant, "model": "m", "learner": "lr",
                "round": r + 1, "n": 10_000, "delta": delta}

    huge = {"weights": {"a": 1e6, "b": -1e6}, "intercept": 0.0}
    producer.send(run.topic, key=b"a", value=encode(b"a guessed key", update("a", huge)))      # forged
    producer.send(run.topic, key=b"b", value=encode(KEY, update("b", huge)))                   # poisoned
    producer.send(run.topic, key=b"mallory", value=encode(KEY, update("mallory", huge)))       # unknown
    altered = json.loads(encode(KEY, update("c", {"weights": {"a": 0.01}, "intercept": 0.0})))
    altered["body"]["delta"] = huge                                                           # altered in transit
    producer.send(run.topic, key=b"c", value=json.dumps(altered).encode())
    fake_global = {"kind": "global", "federation": group, "participant": "a", "model": "m", "learner": "lr",
                   "round": r + 1, "n": 1, "params": huge, "participants": ["a"], "rejected": {}}
    producer.send(run.topic, key=b"a", value=encode(KEY, fake_global))   # right key, not an aggregate
    producer.flush()
    producer.close()
    batch = run.data["a"][:ROUND_EVENTS]
    for p in ps:
        p.learn(batch)
    step_until(ps, lambda: all(p.round == r + 1 for p in ps))
    for p in ps:
        assert p.federation.rejected == {"signature": 2, "norm": 1, "unknown_participant": 1, "global_norm": 1}
    for reason, count in {"signature": 2, "norm": 1, "unknown_participant": 1, "global_norm": 1, "stale": None}.items():
        assert ps[2].metrics.registry.get_sample_value("driftd_federation_rejected_updates_total", {"reason": reason}) == count
    after = ps[0].federation.slots[SLOT].base
    assert ps[0].federation.rounds[-1]["participants"] == ["a", "b", "c"]
    assert ps[0].federation.rounds[-1]["rejected"] == {"norm": 1, "global_norm": 1}
    assert fed.norm(fed.delta(after, before)) < 1.0        # a normal round's step, not 1e6


def test_a_participant_and_then_the_aggregator_disappearing_do_not_stall_rounds(run):
    ps = run.participants
    aggregator = next(p for p in ps if p.federation.is_aggregator)
    victim = next(p for p in ps if p is not aggregator)
    r = ps[0].round
    # The victim learns its share of the round, then dies before sending its update.
    victim.learn(run.data[victim.name][:ROUND_EVENTS])
    victim.federation.close()
    victim.alive = False
    alive = [p for p in ps if p.alive]
    for p in alive:
        p.learn(run.data[p.name][:ROUND_EVENTS])
    step_until(alive, lambda: all(p.round == r + 1 for p in alive))
    last = alive[0].federation.rounds[-1]
    assert last["participants"] == sorted(p.name for p in alive)     # partial aggregation after the timeout
    # Now the aggregator goes too: the last one left is elected and closes rounds alone.
    aggregator.federation.close()
    aggregator.alive = False
    (survivor,) = [p for p in ps if p.alive]
    for k in (2, 3):
        survivor.learn(run.data[survivor.name][:ROUND_EVENTS])
        step_until([survivor], lambda: survivor.round == r + k, timeout=20.0)
    assert survivor.federation.is_aggregator
    assert survivor.federation.rounds[-1]["participants"] == [survivor.name]


MEMBER = """
import json, sys, time
from daemon.config import FederationConfig
from daemon.federation import Federation
settings = FederationConfig(**json.loads(sys.argv[1]))
federation = Federation(settings, [("m", "lr")], sys.argv[2].encode(), sys.argv[3], consumer=json.loads(sys.argv[4]))
federation.start()
print("started", flush=True)
while True:                       # no learner of its own: it only takes part in the election
    federation.step({})
    time.sleep(0.02)
"""


def test_a_participant_killed_with_sigkill_does_not_stall_rounds(kafka_bootstrap, unique_name):
    """Participant c is a separate process killed with SIGKILL mid-round: no goodbye to the
    group. If it was the aggregator, the group elects another after the session timeout."""
    import os
    import signal
    import subprocess
    import sys

    names = {"topic": unique_name("fed"), "election_topic": unique_name("fed-election"), "group": unique_name("fed")}
    consumer = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "max_poll_interval_ms": 10000}

    def settings(name):
        return {"enabled": True, "participant": name, "participants": ["a", "b", "c"], **names,
                "every_events": ROUND_EVENTS, "every_seconds": 3600.0, "round_timeout_seconds": 1.5}

    member = subprocess.Popen([sys.executable, "-c", MEMBER, json.dumps(settings("c")), KEY.decode(), kafka_bootstrap,
                               json.dumps(consumer)], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ps = []
    try:
        assert member.stdout.readline().strip() == "started"
        ps = [Participant(n, FederationConfig(**settings(n)), kafka_bootstrap, {**consumer, "fetch_max_wait_ms": 50})
              for n in "ab"]
        for p in ps:
            p.federation.start()
        rng = random.Random(5)
        for p in ps:
            p.learn(events(rng, *SLICES[p.name], ROUND_EVENTS))
        step_until(ps, lambda: all(p.round == 1 for p in ps), timeout=20.0)   # c sends nothing: partial
        for p in ps:
            p.learn(events(rng, *SLICES[p.name], ROUND_EVENTS))
            p.step()                                    # a and b send their updates for round 2 ...
        c_aggregated = not any(p.federation.is_aggregator for p in ps)
        member.send_signal(signal.SIGKILL)              # ... and c dies, aggregator or not
        member.wait(timeout=10)
        step_until(ps, lambda: all(p.round == 2 for p in ps), timeout=20.0)
        print("c was the aggregator" if c_aggregated else "c was not the aggregator")
        last = ps[0].federation.rounds[-1]
        assert last["participants"] == ["a", "b"] and last["participant"] in ("a", "b")
        assert any(p.federation.is_aggregator for p in ps)
    finally:
        if member.poll() is None:
            member.kill()
            member.wait(timeout=10)
        for p in ps:
            p.federation.close()
