"""Federation inside running daemons: two deployments (each its own topics, group and
state) on one broker share a federation topic; their learners take part in rounds and
merge the global model (the hook in daemon/runtime/service.py, end to end)."""

from __future__ import annotations

from . import streams
from .daemon_harness import daemon_config, get, produce, running_daemon, wait_until

LEARNER = {"linear": ["Numeric", {"LogisticRegression": {"optimizer": {"SGD": {"lr": 0.05}}}}]}


def _series(daemon, name: str) -> float:
    total = 0.0
    for line in get(daemon, "/metrics")[1].decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_deployments_federate_their_learner(kafka_bootstrap, unique_name, tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTD_FEDERATION_KEY", "a key every participant holds")
    shared = {"topic": unique_name("fed"), "election_topic": unique_name("fed-election"), "group": unique_name("fed"),
              "participants": ["eu", "us"], "every_events": 100, "every_seconds": 1,
              # Long enough that a busy machine (a slow second deployment) still makes a round of both.
              "round_timeout_seconds": 30}
    configs = []
    for name in ("eu", "us"):
        config = daemon_config(kafka_bootstrap, unique_name, tmp_path / name, models={"m": {"learners": LEARNER}},
                               federation={"enabled": True, "participant": name, **shared})
        config["registry"] = {"dir": str(tmp_path / name / "registry"), "model_updated_topic": ""}
        configs.append(config)
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "registry key")
    with running_daemon(configs[0]) as eu, running_daemon(configs[1]) as us:
        for config, seed in zip(configs, (1, 2)):
            kafka = config["kafka"]
            produce(kafka_bootstrap, streams.records(1500, kafka["predictions_topic"], kafka["labels_topic"], seed=seed,
                                                     data_shift=None, accuracy_drop=None))
        # The stream comes in a burst: a round or more, each with both deployments' updates.
        wait_until(lambda: _series(eu, "driftd_federation_rounds_total") >= 1
                   and _series(us, "driftd_federation_rounds_total") >= 1, timeout=90, what="federated rounds")
        assert _series(eu, "driftd_federation_round_participants") == _series(us, "driftd_federation_round_participants") == 2
        assert _series(eu, "driftd_federation_aggregator") + _series(us, "driftd_federation_aggregator") == 1
        assert _series(eu, "driftd_federation_rejected_updates_total") == 0
