"""Retrain and promote, end to end on the real broker.

A deployed model (the champion) is known to driftd only by the predictions in its events.
Here it is a Hoeffding tree trained on River's Agrawal generator (classification function
0) and then frozen. The world keeps function 0 (stationary) or switches abruptly to
function 2 half-way (concept change). driftd's learners learn from the joined labels; on
the change a retrain is triggered and a challenger that beats the frozen champion on the
same held-out events is promoted: a signed artifact in the registry, a "model updated"
event, an info alert, metrics. When the champion is already as good, nothing is promoted.
A daemon stopped between the retrain and the promotion promotes exactly once after its
restart, and a replay from the checkpoint before the promotion (a crash after publishing)
promotes again under the same id: still one registry version. Also without a broker: the
learners learn the late labels of a replaced model version, and a learner spec that could
never learn is refused at start.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil

import pytest
import yaml
from kafka import KafkaConsumer
from river import tree
from river.datasets import synth
from standardwebhooks import Webhook

from daemon import cli
from learners.loader import SignatureError, load_model

from .daemon_harness import calibrated, daemon_config, get, produce, running_daemon, wait_until

MODEL = "credit"
KEY_ENV = "DRIFTD_TEST_REGISTRY_KEY"
KEY = "test-registry-key-0123456789"
WEBHOOK_SECRET = "whsec_" + "bGVhcm5pbmctdGVzdHMtd2ViaG9vay1rZXk="
START_TS = 1_763_900_000.0
DELAY = 50            # a label arrives this many predictions after its prediction
CHANGE = 3000         # the world's function changes at this event (concept-change streams)
N_EVENTS = 6000

LEARNING = {
    "learners": {"tree": {"HoeffdingAdaptiveTreeClassifier": {"seed": 1}}},
    "replay_reservoir_size": 300, "replay_recent_size": 300,
    "retrain_cooldown": 300,
    "promotion_min_events": 200, "promotion_window": 600, "promotion_margin": 0.05,
    "promotion_alpha": 0.01,
    # One promotion per test: the simulated model server never loads it, so the champion
    # in the events stays the frozen model and a second promotion would be legitimate.
    "promotion_min_interval_seconds": 1e9,
    # Data drift is not the subject here: one cheap test per feature.
    "numeric_tests": ["psi"], "categorical_tests": ["psi"],
}


@pytest.fixture(scope="module")
def world():
    """Features of one Agrawal stream with both functions' labels, and the frozen
    champion's predictions (a Hoeffding tree trained on 3,000 events of function 0
    from another seed)."""
    champion = tree.HoeffdingTreeClassifier()
    for x, y in itertools.islice(synth.Agrawal(classification_function=0, seed=11), 3000):
        champion.learn_one(x, y)
    old = itertools.islice(synth.Agrawal(classification_function=0, seed=5), N_EVENTS)
    new = synth.Agrawal(classification_function=2, seed=5)
    rows = []
    for (x, y0), (x2, y2) in zip(old, new):
        assert x == x2  # same seed: same features, the labels of two functions
        rows.append((x, y0, y2, champion.predict_one(x)))
    return rows


def accuracy(rows, lo, hi, changed: bool) -> float:
    return sum(r[3] == (r[2] if changed else r[1]) for r in rows[lo:hi]) / (hi - lo)


def records(config: dict, rows, lo: int, hi: int, change: int | None, final: bool = False):
    """Predictions ``lo .. hi-1`` and the labels due meanwhile (``DELAY`` predictions
    later); ``final`` also sends the labels still due at the end."""
    kafka = config["kafka"]
    key = MODEL.encode()
    out = []
    for i in range(lo, hi + (DELAY if final else 0)):
        if i < hi:
            x, _, _, predicted = rows[i]
            event = {"model": MODEL, "model_version": "1", "id": f"e-{i}", "ts": START_TS + i,
                     "features": x, "prediction": predicted}
            out.append((kafka["predictions_topic"], key, json.dumps(event).encode()))
        j = i - DELAY
        if j >= 0 and lo <= i:
            _, y0, y2, _ = rows[j]
            truth = y2 if change is not None and j >= change else y0
            label = {"model": MODEL, "id": f"e-{j}", "ts": START_TS + i, "label": truth}
            out.append((kafka["labels_topic"], key, json.dumps(label).encode()))
    return out


def make_config(kafka_bootstrap, unique_name, tmp_path, monkeypatch, webhook_url, **model) -> dict:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("DRIFTD_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    # Alerts go to a local webhook, not a Kafka sink: kafka-python 3.0.12's producer can
    # strand a batch for its 10 s timeout when another topic is first sent to meanwhile
    # (see the report); the daemon's one producer would then fail to flush at stop.
    config = daemon_config(
        kafka_bootstrap, unique_name, tmp_path / "state", models={MODEL: {**LEARNING, **model}},
        registry={"dir": str(tmp_path / "registry"), "key_env": KEY_ENV,
                  "model_updated_topic": unique_name("model-updates")},
        alerts={"retry_initial_seconds": 0.1, "sinks": [
            {"type": "webhook", "url": webhook_url, "secret": {"env": "DRIFTD_TEST_WEBHOOK_SECRET"}}]})
    config["model_defaults"].update(decay_reference_size=300, decay_window=300)
    return config


def metric_values(daemon) -> dict:
    """``{sample line without value: value}`` from /metrics."""
    text = get(daemon, "/metrics")[1].decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def processed_counts(daemon) -> tuple[int, int]:
    with daemon.lock:
        states = list(daemon.states.values())
        return (sum(s.processed[(MODEL, "prediction")] for s in states),
                sum(s.processed[(MODEL, "label")] for s in states))


def pending_promotions(daemon) -> int:
    with daemon.lock:
        return sum(len(m.pending_promotions) for s in daemon.states.values() for m in s.models.values())


def produce_and_wait(daemon, bootstrap, batch, want: list) -> None:
    """Produce ``batch``, then wait until the daemon processed everything produced so
    far (``want``: running totals of predictions and labels) and published promotions."""
    for topic, _, _ in batch:
        want[0 if "predictions" in topic else 1] += 1
    produce(bootstrap, batch)
    # Calibrated: the learners wait for labelled events while the label tests wait for
    # their thresholds (computed in the background), so that their signals come in place.
    wait_until(lambda: processed_counts(daemon) == tuple(want) and calibrated(daemon, MODEL)
               and not pending_promotions(daemon), timeout=60, what=f"{want} events processed")


def consume_all(bootstrap: str, topic: str, timeout_ms: int = 2000) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms)
    try:
        return list(consumer)
    finally:
        consumer.close()


def versions(registry_dir) -> list[str]:
    model_dir = registry_dir / MODEL
    return sorted(p.name for p in model_dir.iterdir() if p.name.isdigit()) if model_dir.exists() else []


# -- (a) a concept change: retrain, promote, publish ----------------------------------------

def test_a_concept_change_is_retrained_promoted_and_published(world, kafka_bootstrap, unique_name, tmp_path,
                                                              monkeypatch, capsys, webhook):
    assert accuracy(world, 0, CHANGE, changed=False) > 0.95  # the champion was good ...
    assert accuracy(world, CHANGE, N_EVENTS, changed=True) < 0.7  # ... and the world moved on
    url, received = webhook
    config = make_config(kafka_bootstrap, unique_name, tmp_path, monkeypatch, url)
    registry_dir = tmp_path / "registry"
    want = [0, 0]
    with running_daemon(config) as daemon:
        produce_and_wait(daemon, kafka_bootstrap, records(config, world, 0, CHANGE, CHANGE), want)
        before = metric_values(daemon)
        produce_and_wait(daemon, kafka_bootstrap, records(config, world, CHANGE, N_EVENTS, CHANGE, final=True), want)
        metrics = metric_values(daemon)
        with daemon.lock:
            (pipeline,) = [s.models[MODEL] for s in daemon.states.values() if MODEL in s.models]
            cc = pipeline.lifecycle
            retrains, decisions = dict(cc.retrains), dict(cc.decisions)
        infos = wait_until(lambda: [b for b, _ in received if b"driftd.info.promotion" in b], timeout=10,
                           what="the promotion's info alert at the webhook")
        (info_body,) = infos
        info_headers = next(h for b, h in received if b == info_body)

    # Nothing promoted while the champion was right.
    assert before.get(f'driftd_promotions_total{{model="{MODEL}",outcome="promoted"}}') == 0.0
    assert sum(v for k, v in before.items() if k.startswith("driftd_retrains_total")) == 0, before
    # The change: retrained on the error-stream drift (or decay), then exactly one promotion.
    assert retrains.get("drift", 0) + retrains.get("decay", 0) >= 1, retrains
    assert decisions.get("promoted") == 1, decisions
    assert sum(v for k, v in metrics.items() if k.startswith(f'driftd_retrains_total{{model="{MODEL}"')) >= 1
    assert metrics[f'driftd_promotions_total{{model="{MODEL}",outcome="promoted"}}'] == 1.0
    scores = {k: v for k, v in metrics.items() if k.startswith("driftd_learner_score{")}
    assert f'driftd_learner_score{{learner="tree",model="{MODEL}"}}' in scores, scores
    assert f'driftd_learner_score{{learner="champion",model="{MODEL}"}}' in scores, scores

    # The registry: one signed version, loadable with the key, refused with another.
    assert versions(registry_dir) == ["1"]
    estimator, manifest = load_model(registry_dir / MODEL, key=KEY)
    assert manifest["model"] == MODEL and manifest["version"] == 1 and manifest["task"] == "classification"
    gate = manifest["metrics"]["gate"]
    assert gate["challenger"] >= gate["champion"] + 0.05 and gate["p_value"] < 0.01 and gate["n"] >= 200
    with pytest.raises(SignatureError):
        load_model(registry_dir / MODEL, key="not-the-key")
    # The promoted model knows the new world better than the champion does.
    fresh = list(itertools.islice(synth.Agrawal(classification_function=2, seed=77), 2000))
    promoted_acc = sum(estimator.predict_one(x) == y for x, y in fresh) / len(fresh)
    assert promoted_acc > accuracy(world, CHANGE, N_EVENTS, changed=True) + 0.1, promoted_acc

    # The "model updated" event, with the version.
    updates = [json.loads(r.value) for r in consume_all(kafka_bootstrap, config["registry"]["model_updated_topic"])]
    assert len(updates) == 1, updates
    (update,) = updates
    assert update["type"] == "driftd.model.updated" and update["model"] == MODEL and update["version"] == 1
    assert update["id"] == manifest["idempotency_key"]
    # Where the promoted model is (a new user's finding: path was null).
    assert os.path.isfile(os.path.join(update["path"], "manifest.json")), update["path"]
    # The info alert at the configured webhook, signed.
    alert = Webhook(WEBHOOK_SECRET).verify(info_body, info_headers)
    assert alert["type"] == "driftd.info.promotion", alert
    assert alert["data"]["status"] == "info" and alert["data"]["detail"]["version"] == 1
    assert alert["data"]["detail"]["path"] == update["path"]

    # driftd models list / show, with a configuration file naming the registry.
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert cli.main(["models", "list", "--config", str(config_file)]) == 0
    listed = capsys.readouterr().out
    assert f"{MODEL}\tversion 1\t" in listed, listed
    assert cli.main(["models", "list", "--json", "--config", str(config_file)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["version"]) for r in rows] == [(MODEL, 1)], rows
    assert cli.main(["models", "show", MODEL, "--config", str(config_file)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 1 and shown["idempotency_key"] == update["id"]


# -- (b) the gate: nothing better, nothing promoted -----------------------------------------

def test_b_no_promotion_when_the_champion_is_already_as_good(world, kafka_bootstrap, unique_name, tmp_path,
                                                             monkeypatch, webhook):
    # A stationary world (function 0 throughout) where the frozen champion is right; a
    # scheduled retrain every 500 labels keeps fresh challengers in front of the gate.
    config = make_config(kafka_bootstrap, unique_name, tmp_path, monkeypatch, webhook[0], retrain_every=500)
    want = [0, 0]
    with running_daemon(config) as daemon:
        produce_and_wait(daemon, kafka_bootstrap, records(config, world, 0, N_EVENTS, None, final=True), want)
        metrics = metric_values(daemon)
        with daemon.lock:
            (pipeline,) = [s.models[MODEL] for s in daemon.states.values() if MODEL in s.models]
            decisions = dict(pipeline.lifecycle.decisions)

    assert metrics.get(f'driftd_retrains_total{{model="{MODEL}",reason="schedule"}}', 0) >= 5, metrics
    assert metrics[f'driftd_promotions_total{{model="{MODEL}",outcome="promoted"}}'] == 0.0
    # The gate was asked, with enough events, and said no (not just "too few events").
    assert metrics[f'driftd_promotions_total{{model="{MODEL}",outcome="rejected"}}'] >= 10, decisions
    assert "promoted" not in decisions, decisions
    assert versions(tmp_path / "registry") == []
    assert consume_all(kafka_bootstrap, config["registry"]["model_updated_topic"], timeout_ms=1000) == []
    assert not [b for b, _ in webhook[1] if b"driftd.info.promotion" in b]


# -- (c) a restart between retrain and promotion ---------------------------------------------

def model_state(daemon):
    with daemon.lock:
        (pipeline,) = [s.models[MODEL] for s in daemon.states.values() if MODEL in s.models]
        cc = pipeline.lifecycle
        return sum(cc.retrains.values()), cc.decisions.get("promoted", 0), sorted(cc.learners)


def test_c_restart_mid_retraining_promotes_exactly_once(world, kafka_bootstrap, unique_name, tmp_path, monkeypatch,
                                                        webhook):
    config = make_config(kafka_bootstrap, unique_name, tmp_path, monkeypatch, webhook[0])
    # Local files only: a copy of the state directory is a checkpoint to go back to.
    config["state"]["topic"] = ""
    registry_dir, state_dir = tmp_path / "registry", tmp_path / "state"
    want = [0, 0]
    with running_daemon(config) as daemon:
        produce_and_wait(daemon, kafka_bootstrap, records(config, world, 0, CHANGE, CHANGE), want)
        # After the change, a few labels at a time until a retrain has started.
        at = CHANGE
        while not model_state(daemon)[0]:
            assert at < N_EVENTS - 1000, "no retrain before the end of the stream"
            produce_and_wait(daemon, kafka_bootstrap, records(config, world, at, at + 25, CHANGE), want)
            at += 25
        retrained, promoted, learners = model_state(daemon)
        assert promoted == 0, f"promoted already at event {at}: nothing to test"
        assert versions(registry_dir) == []
    # Stopped (final checkpoint). Keep that checkpoint to replay from it later.
    shutil.copytree(state_dir, tmp_path / "state-before-promotion")
    stopped_at = at

    # The same state directory and group: restart, continue the stream live (small batches).
    with running_daemon(config) as daemon:
        wait_until(lambda: daemon.health()[1], timeout=30, what="partitions assigned, state restored")
        assert model_state(daemon) == (retrained, 0, learners)  # the retrained challenger came back
        assert any(name.startswith("retrained-") for name in learners)
        for lo in range(stopped_at, N_EVENTS, 200):
            hi = min(lo + 200, N_EVENTS)
            produce_and_wait(daemon, kafka_bootstrap, records(config, world, lo, hi, CHANGE, final=hi == N_EVENTS), want)
        assert model_state(daemon)[1] == 1
        metrics = metric_values(daemon)
    assert metrics[f'driftd_promotions_total{{model="{MODEL}",outcome="promoted"}}'] == 1.0
    assert versions(registry_dir) == ["1"]
    _, manifest = load_model(registry_dir / MODEL, key=KEY)
    updates = [json.loads(r.value) for r in consume_all(kafka_bootstrap, config["registry"]["model_updated_topic"])]
    assert [u["id"] for u in updates] == [manifest["idempotency_key"]], updates

    # A crash after the promotion was published but before its checkpoint: the state goes
    # back to the pre-promotion checkpoint and the same input is replayed, now in large
    # catch-up batches. The replay promotes the same learner at the same event, under the
    # same id: the registry keeps one version; the "model updated" event may repeat, with
    # the same id.
    shutil.rmtree(state_dir)
    shutil.copytree(tmp_path / "state-before-promotion", state_dir)
    with running_daemon(config) as daemon:
        wait_until(lambda: processed_counts(daemon) == tuple(want) and calibrated(daemon, MODEL)
                   and not pending_promotions(daemon), timeout=60, what="the replay")
        assert model_state(daemon)[1] == 1
    assert versions(registry_dir) == ["1"]
    updates = [json.loads(r.value) for r in consume_all(kafka_bootstrap, config["registry"]["model_updated_topic"])]
    # Two events: the replay did promote again (from the old checkpoint), under the same id.
    assert len(updates) == 2 and {u["id"] for u in updates} == {manifest["idempotency_key"]}, updates
    assert {u["version"] for u in updates} == {1}


# -- the learners and a replaced model version (no broker) -----------------------------------

def test_learners_learn_the_late_labels_of_a_replaced_version(world):
    """After a new model version is deployed, the labels of the old version's last
    predictions still arrive (the label delay). The detectors leave them out (their
    baseline was the old version); the learners learn them, unpaired with the new
    champion. (They used to be dropped: the freshest labelled events, after each promotion.)"""
    from daemon.config import ModelConfig
    from daemon.stream.events import decode_prediction
    from daemon.stream.pipeline import ModelPipeline

    pipeline = ModelPipeline(MODEL, ModelConfig(learners=LEARNING["learners"], reference_size=50,
                                                numeric_tests=[], categorical_tests=[],  # (no calibration)
                                                promotion_min_events=20, promotion_window=100))

    def event(i, version):
        x, _, _, predicted = world[i]
        return decode_prediction(json.dumps({"model": MODEL, "model_version": version, "id": f"e-{i}",
                                             "ts": START_TS + i, "features": x, "prediction": predicted}).encode())

    def labelled(i, version):
        x, y0, _, predicted = world[i]
        return ((predicted, None, version, START_TS + i, x), y0)

    pipeline.observe_predictions([event(i, "1") for i in range(60)])
    assert pipeline.observe_labels([labelled(i, "1") for i in range(30)]) == 30
    cc = pipeline.lifecycle
    assert cc.n_labelled == 30 and len(cc.pairs["tree"][0]) == 30 and cc.champion_version == "1"
    pipeline.observe_predictions([event(i, "2") for i in range(60, 100)])  # version 2 deployed
    # The last 30 labels of version 1 arrive late, before any of version 2: the label side
    # is still version 1's (it moves at the first label of version 2), so its detectors
    # take them, and they pair with version 1, whose predictions they judge.
    assert pipeline.observe_labels([labelled(i, "1") for i in range(30, 45)]) == 15
    assert cc.n_labelled == 45 and len(cc.pairs["tree"][0]) == 45 and cc.champion_version == "1"
    assert pipeline.observe_labels([labelled(i, "2") for i in range(60, 80)]) == 20
    assert cc.champion_version == "2" and len(cc.pairs["tree"][0]) == 20  # version 2's own comparison
    # Labels of version 1 later still: no detector takes them (its baseline is gone), the
    # learners do, not paired with version 2.
    assert pipeline.observe_labels([labelled(i, "1") for i in range(45, 60)]) == 0
    assert cc.n_labelled == 80 and cc.learners["tree"].n_learned == 80 and len(cc.buffer) == 80
    assert len(cc.pairs["tree"][0]) == 20 and cc.champion_version == "2"


def test_a_learner_that_could_never_learn_is_refused_at_start(monkeypatch):
    """DriftRetrainingClassifier needs a detector with a warning zone; with ADWIN it used
    to pass the configuration check and then fail on every labelled event."""
    from daemon.config import ConfigError, from_dict

    monkeypatch.setenv(KEY_ENV, KEY)
    spec = {"DriftRetrainingClassifier": {"model": {"HoeffdingTreeClassifier": {}}, "drift_detector": {"ADWIN": {}}}}
    with pytest.raises(ConfigError, match=r"models\.credit\.learners\.drt.*drift_detector.*warning zone"):
        from_dict({"registry": {"key_env": KEY_ENV}, "models": {MODEL: {"learners": {"drt": spec}}}})
    del spec["DriftRetrainingClassifier"]["drift_detector"]  # River's default (DDM) is fine
    from_dict({"registry": {"key_env": KEY_ENV}, "models": {MODEL: {"learners": {"drt": spec}}}})
