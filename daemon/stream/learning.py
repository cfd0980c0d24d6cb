"""The model lifecycle in the daemon: learners per model, and publishing promotions.

:func:`build_lifecycle` turns a model's settings into a :class:`learners.ChampionChallenger`
(the pure part: learners, replay buffer, retrain policy, promotion gate); :class:`Learning`
feeds it a model's labelled events in label order, with the label tests' signals at the
events where they fired. A promotion is
published at least once: :class:`Publisher` writes the signed artifact to the registry
(idempotent: the promotion's deterministic id returns the existing version on a replay),
then sends the "model updated" event and an info alert.
"""

from __future__ import annotations

import json
import logging

from learners.gate import PromotionGate
from learners.lifecycle import ChampionChallenger
from learners.replay import ReplayBuffer
from learners.retraining import RetrainPolicy

from daemon.config import ModelConfig
from daemon.alerting.episodes import info
from daemon.stream.reference import level

log = logging.getLogger("driftd.stream.learning")

#: Types of values learned as numbers (a boolean is one to River: 1 or 0).
_NUMBERS = frozenset({int, float, bool})


def build_lifecycle(config: ModelConfig, key: str) -> ChampionChallenger:
    """Learners and policies of one model; ``ValueError`` naming ``key`` if a spec is bad."""
    task = config.task
    return ChampionChallenger.from_specs(
        task, config.learners, key=key,
        buffer=ReplayBuffer(config.replay_reservoir_size, config.replay_recent_size),
        policy=RetrainPolicy(on_drift=config.retrain_on_drift, on_decay=config.retrain_on_decay,
                             every=config.retrain_every or None, cooldown=config.retrain_cooldown,
                             warm_start=config.retrain_warm_start),
        gate=PromotionGate(task, margin=config.promotion_margin, min_events=config.promotion_min_events,
                           alpha=config.promotion_alpha, min_interval=config.promotion_min_interval_seconds),
        gate_window=config.promotion_window, max_retrained=config.max_retrained)


class Learning:
    """A model's learners fed with its labelled events (pickled with its pipeline).

    Batch-independent learning: a label test's signal (drift, decay) reaches the lifecycle
    at the labelled event that tipped the test, so retrains and promotions do not depend on
    how the consumer batched the input (signalling once per batch did). Labelled events
    therefore wait here while the label tests that may signal at them still wait for their
    thresholds (:meth:`release` gives them to the learners once they are decided). Learners
    learn the world, not the deployed model: they take every label, also the late ones of
    a model version no longer current, which the label tests leave out (not paired with the
    current champion).

    ``lifecycle``: the model's :class:`~learners.lifecycle.ChampionChallenger`;
    ``promotions``: (promotion, event time) waiting to be published by the daemon;
    ``errors``: labelled events a learner could not take (counted, not fatal).
    """

    def __init__(self, lifecycle: ChampionChallenger, promotions: list | None = None, errors: int = 0,
                 held: list | None = None, signals: dict | None = None, model: str = "", kinds: dict | None = None):
        self.lifecycle = lifecycle
        #: feature -> learned as a number (True) or a level (False): declared under
        #: ``features:``, else by the first value learned (see :meth:`_steady`).
        self.kinds: dict[str, bool] = kinds if kinds is not None else {}
        self.model = model  # (for the logs)
        self.promotions: list[tuple] = promotions if promotions is not None else []
        self.errors = errors
        #: (pairs, paired with the current version, their label tests, position before).
        self.held: list[tuple] = held if held is not None else []
        #: (label tests, position among their pairs) -> signals not yet learned at.
        self.signals: dict[tuple, dict] = signals if signals is not None else {}

    def observe(self, pairs: list, paired: list, tests, before: int) -> None:
        """Labelled events (join pairs, in label order), whether each was paired with the
        version of label ``tests`` (and fed to them, after ``before`` pairs); learned now
        unless those tests wait for thresholds."""
        self.held.append((pairs, paired, tests, before))
        self.release(tests)

    def signal(self, tests, position: int, signal: dict) -> None:
        """The label ``tests`` fired at their ``position``-th pair: ``{"drift": ..., "decay": ...}``."""
        self.signals[(tests, position)] = signal

    def release(self, current_tests) -> None:
        """Learn the held events, in order, up to the first of ``current_tests`` (the model's
        label tests now) while they wait for thresholds (their signals are not known yet)."""
        while self.held:
            pairs, paired, tests, before = self.held[0]
            if tests is current_tests and tests.waiting:
                return
            self.held.pop(0)
            self._learn(pairs, paired, tests, before)

    def _learn(self, pairs: list, paired: list, tests, before: int) -> None:
        """Progressive validation of the learners on each joined (prediction, label); the
        signals at the events where the tests fired; then the promotion gate."""
        lifecycle = self.lifecycle
        position = before  # among the version's pairs fed to its tests
        for ((prediction, _, version, ts, features, *_), label), is_paired in zip(pairs, paired):
            position += is_paired
            features = self._steady(features)
            signal = self.signals.pop((tests, position), None) if is_paired else None
            try:
                try:
                    lifecycle.update(features, label, prediction, now=ts, champion_version=version, paired=is_paired)
                except ValueError:
                    self.errors += 1  # features a learner cannot take
                if signal is not None:
                    lifecycle.on_signal(**signal)
                promotion = lifecycle.maybe_promote(ts)
            except Exception as e:  # noqa: BLE001 - a learner's failure costs its learning, never the labels
                self.errors += 1
                self._said(f"{type(e).__name__}: {e}", e)
                continue
            if promotion is not None:
                self.promotions.append((promotion, ts))
        for learner, message in lifecycle.last_error.items():  # the learners' own, contained there
            self._said(f"learner {learner}: {message}")

    def _steady(self, features: dict | None) -> dict | None:
        """``features`` with each value of the type the learners first learned the feature
        with: a number, or a level (a categorical value's text, as the data-drift tests'
        levels). A categorical feature's values may be numbers as well as strings (``5``
        beside ``"DE"``): River's trees keep a feature's kind from its first value and
        compare the others with it, so that one ``5`` made a learner fail on the hundreds of
        labelled events after it (TypeError: '<' not supported between int and str). A
        number keeps its place as its level; a string where numbers were learned is left
        out (missing), as the learners take a missing value. A feature declared under
        ``features:`` is learned as declared from its first value."""
        if not features:
            return features
        kinds = self.kinds
        steady = None
        for name, value in features.items():
            if value is None:
                continue
            number = type(value) in _NUMBERS
            if kinds.setdefault(name, number) == number:
                continue
            if steady is None:
                steady = dict(features)
            if number:
                steady[name] = level(value)
            else:
                del steady[name]
        return features if steady is None else steady

    def _said(self, what, error: Exception | None = None) -> None:
        """Log a learning failure once per kind (it would repeat at every event), 20 kinds
        at most a model: the count is in driftd_learner_errors_total, the last message of
        each learner in /status."""
        said = self.__dict__.setdefault("_said_errors", set())
        kind = str(what)[:200]
        if kind not in said and len(said) < 20:
            said.add(kind)
            model = self.__dict__.get("model", "")
            log.error("model %s: learning failed: %s (counted in driftd_learner_errors_total)", model, kind,
                      exc_info=error, extra={"model": model})


class Publisher:
    """Registry write, then "model updated" event, then info alert, for each promotion."""

    def __init__(self, registry, producer, topic: str, alerts):
        self.registry = registry
        self._producer = producer
        self.topic = topic
        self._alerts = alerts

    def publish(self, model: str, promotion, event_time: float) -> dict:
        manifest = self.registry.publish(model, promotion.estimator, {**promotion.manifest, "idempotency_key": promotion.id})
        event = promotion_event(model, promotion, manifest["version"], manifest.get("parent_version"),
                                self.registry.path(model, manifest["version"]))
        if self.topic:
            future = self._producer.send(self.topic, key=model.encode(), value=json.dumps(event, default=str).encode(),
                                         headers=[("driftd-id", promotion.id.encode())])
            future.get(timeout=10)
        self._alerts.send(promotion_alert(model, event, event_time))
        log.warning("model %s: %s promoted as version %s", model, promotion.learner, manifest["version"],
                    extra={"model": model})
        return manifest


def promotion_event(model: str, promotion, version=None, parent_version=None, path=None) -> dict:
    """The "model updated" event of a promotion (the body of its info alert too): the
    registry's ``version``, ``parent_version`` and ``path`` once written there (None where
    it was not: a replay), the learner, and the gate's figures (scores on the compared
    window, p-value, paired events)."""
    decision = promotion.decision
    return {
        "type": "driftd.model.updated", "id": promotion.id, "model": model,
        "version": version, "parent_version": parent_version, "learner": promotion.learner, "path": path,
        "metrics": {"champion": decision.champion_score, "challenger": decision.challenger_score,
                    "p_value": decision.p_value, "events": decision.n},
    }


def promotion_alert(model: str, event: dict, event_time: float):
    """The info alert of a promotion (:func:`promotion_event`), at the event time of the
    labelled event it was decided at; its id depends on the promotion's id only, so a daemon
    and a replay of the same stream name it alike."""
    return info(model, "promotion", event, event_time, key=event["id"])
