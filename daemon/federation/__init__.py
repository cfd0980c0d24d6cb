"""Federated averaging across deployments: one model learnt from several driftd deployments
that never share their events.

Each participant (a driftd with ``federation.enabled``, its own Kafka and topics for
events) also connects to a cluster the participants share (``federation.bootstrap_servers``)
and its one-partition topic ``federation.topic``. On it go only signed messages
(:mod:`daemon.federation.messages`), per federated learner of each model:

- **updates**: after ``every_events`` new labelled events (or ``every_seconds`` with at
  least one), a participant sends ``delta`` = its learner's parameters less the last
  global ones, and ``n``, the labelled events behind it, for round ``r + 1``;
- **globals**: the aggregator closes round ``r + 1`` when every participant in
  ``federation.participants`` sent an update, or ``round_timeout_seconds`` after the first
  one (partial aggregation: a participant that disappeared does not stall the others), and
  sends the FedAvg of the updates (:func:`learners.federated.aggregate`: weighted by ``n``,
  each clipped to ``clip_norm``). Each participant merges it into its learner
  (``global + what it learnt since its update``) and keeps learning locally.

**Aggregator**: every participant joins consumer group ``federation.group`` on the
one-partition ``federation.election_topic``; the member the group protocol gives partition
0 aggregates. When it leaves, or stops heartbeating for the session timeout, the group
gives the partition to another: no coordinator beyond Kafka's own. Every participant reads
the whole topic and tracks the pending updates, so the new aggregator has them; if two
aggregators overlap in a rebalance, the first global of a round on the (ordered, one
partition) topic wins at every participant and the other is ignored.

**Refused and counted** (``driftd_federation_rejected_updates_total{reason}``):
``signature`` (HMAC does not match: forged or altered), ``malformed``,
``unknown_participant``, ``norm`` (an update longer than ``max_update_norm``: poisoned or
broken), ``global_norm`` (a global that moves the parameters further than clipped updates
can: not made by an honest aggregator), ``stale`` (made from an older global), ``no_events``.

The key is shared: a valid tag proves a message comes from a holder of the key, not which
participant sent it. Ids are checked against ``participants`` and norms bound what any one
message can do, but a participant that leaks the key can speak for the others.

The daemon drives it with one call per loop turn, :meth:`Federation.after_batch`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from daemon.config import Config, ConfigError

from .client import Federation, FederationError
from .messages import Rejected

__all__ = ["Federation", "FederationError", "Rejected", "check", "federated_learners", "from_config", "problems"]


def federated_learners(config: Config) -> list[tuple[str, str, object]]:
    """``(model, learner, spec)`` of every learner federated under ``config``."""
    wanted = set(config.federation.learners)
    return [(model, name, spec) for model, settings in config.models.items()
            for name, spec in settings.learners.items() if not wanted or name in wanted]


def check(config: Config) -> None:
    """The federation's configuration rules; :class:`ConfigError` naming the key: every
    broken rule (:func:`problems`), as one."""
    ConfigError.raise_any(ConfigError.collect(problems(config)))


def problems(config: Config, learners: bool = True) -> Iterator[ConfigError]:
    """A :class:`ConfigError` for each federation rule ``config`` breaks, naming the key.
    ``learners``: whether to build the federated learners to see that each can be averaged
    (False while the models' own rules fail: the learners are theirs to check first).

    A learner that cannot be averaged fails with its key and the reason, e.g.
    ``models.fraud.learners.tree: cannot be federated: HoeffdingTreeClassifier: a tree is a
    structure of splits, ...; list the learners to federate in federation.learners``."""
    fed = config.federation
    if not fed.enabled:
        return
    if not fed.participant:
        yield ConfigError("federation.participant", "needed when federation.enabled: this deployment's id")
    elif fed.participants and fed.participant not in fed.participants:
        yield ConfigError("federation.participants", f"does not list this deployment ({fed.participant!r})")
    for key in ("every_events", "every_seconds", "round_timeout_seconds", "min_participants"):
        if getattr(fed, key) <= 0:
            yield ConfigError(f"federation.{key}", "must be above 0")
    for key in ("clip_norm", "max_update_norm", "proximal_mu"):
        if getattr(fed, key) < 0:
            yield ConfigError(f"federation.{key}", "must not be negative")
    if fed.topic == fed.election_topic or fed.topic in (config.kafka.predictions_topic, config.kafka.labels_topic):
        yield ConfigError("federation.topic", "must differ from federation.election_topic and the event topics")
    if not os.environ.get(fed.key_env):
        yield ConfigError("federation.key_env", f"federation messages are signed: set {fed.key_env}")
    if learners:
        yield from _unfederable(config)


def _unfederable(config: Config) -> Iterator[ConfigError]:
    """Each federated learner that cannot be averaged (or none to federate)."""
    from learners.federated import federable
    from learners.spec import build

    found = federated_learners(config)
    if not found:
        yield ConfigError("federation.learners", "no model has a learner to federate")
    for model, name, spec in found:
        reason = federable(build(spec, f"models.{model}.learners.{name}"))
        if reason is not None:
            yield ConfigError(f"models.{model}.learners.{name}", f"cannot be federated: {reason}; list the learners "
                                                                  "to federate in federation.learners")


def from_config(config: Config, metrics=None) -> Federation | None:
    """The daemon's :class:`Federation` (not started), or None if not enabled."""
    fed = config.federation
    if not fed.enabled:
        return None
    from daemon.runtime.wiring import client_settings

    kafka = config.kafka
    return Federation(fed, [(m, n) for m, n, _ in federated_learners(config)], os.environ[fed.key_env].encode(),
                      fed.bootstrap_servers or kafka.bootstrap_servers,
                      consumer={"session_timeout_ms": kafka.session_timeout_ms, "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
                                "heartbeat_interval_ms": max(100, kafka.session_timeout_ms // 10)},
                      client=client_settings(kafka), metrics=metrics, create_topics=kafka.create_topics > 0)
