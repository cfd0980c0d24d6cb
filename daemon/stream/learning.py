"""The model lifecycle in the daemon: learners per model, and publishing promotions.

:func:`build_lifecycle` turns a model's settings into a :class:`learners.ChampionChallenger`
(the pure part: learners, replay buffer, retrain policy, promotion gate). A promotion is
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

log = logging.getLogger("driftd.stream.learning")


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


class Publisher:
    """Registry write, then "model updated" event, then info alert, for each promotion."""

    def __init__(self, registry, producer, topic: str, alerts):
        self.registry = registry
        self._producer = producer
        self.topic = topic
        self._alerts = alerts

    def publish(self, model: str, promotion, event_time: float) -> dict:
        manifest = self.registry.publish(model, promotion.estimator, {**promotion.manifest, "idempotency_key": promotion.id})
        event = {
            "type": "driftd.model.updated", "id": promotion.id, "model": model,
            "version": manifest["version"], "parent_version": manifest.get("parent_version"),
            "learner": promotion.learner, "path": manifest.get("path"),
            "metrics": {"champion": promotion.decision.champion_score, "challenger": promotion.decision.challenger_score,
                        "p_value": promotion.decision.p_value, "events": promotion.decision.n},
        }
        if self.topic:
            future = self._producer.send(self.topic, key=model.encode(), value=json.dumps(event, default=str).encode(),
                                         headers=[("driftd-id", promotion.id.encode())])
            future.get(timeout=10)
        self._alerts.send(info(model, "promotion", event, event_time, key=promotion.id))
        log.warning("model %s: %s promoted as version %s", model, promotion.learner, manifest["version"],
                    extra={"model": model})
        return manifest
