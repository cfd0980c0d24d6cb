"""Closing a group consumer without wedging the embedded broker's consumer group.

Why: on the embedded broker (Tansu 0.6.0) a LeaveGroup from the group's *leader* while the
group rebalances (a newcomer joining, or the leader's own first join) wedges the group for
good: Tansu drops the member but keeps it as the leader, every SyncGroup answers
REBALANCE_IN_PROGRESS and no timeout ends it (reproduced with bare kafka-python 3.0.12
consumers, 10 of 10). A member that stops *without* leaving is dropped at its session
timeout and a new leader is chosen; a stable follower that leaves is dropped at once.

What: :func:`close` closes a kafka-python ``KafkaConsumer``. On the embedded broker it lets
the member send LeaveGroup only when it is a stable follower (joined, nothing to rejoin,
not the leader, no join in flight); otherwise it forgets its membership first, so that
kafka-python sends no LeaveGroup and the broker expires the member instead. A member's own
view cannot tell whether the broker has begun a rebalance it has not heard of yet, so a
leader never leaves there, even from a group that looks stable.

Cost: when the member does not leave, its partitions move to the others only after its
session timeout (``session_timeout_ms``) and their rejoin, instead of at once. On any other
broker (a Kafka cluster) nothing changes: the member always leaves.
"""

from __future__ import annotations

import logging

from kafka.errors import KafkaError
from kafka.structs import MemberState

from daemon.kafka.embedded_broker import CLUSTER_ID_PREFIX

log = logging.getLogger(__name__)

__all__ = ["close", "is_embedded"]


def close(consumer, embedded: bool | None = None, autocommit: bool = True, timeout_ms: int | None = None) -> None:
    """Close ``consumer`` (a kafka-python ``KafkaConsumer``), leaving its group unless that
    could wedge the embedded broker's group (see the module docs).

    ``embedded``: whether the consumer is connected to driftd's embedded broker; None (the
    default) asks the consumer's cluster metadata (:func:`is_embedded`). ``autocommit`` and
    ``timeout_ms`` are ``KafkaConsumer.close``'s (defaults True and None: its request
    timeout). Raises what ``KafkaConsumer.close`` raises.
    """
    if embedded is None:
        embedded = is_embedded(consumer)
    if embedded and not _may_leave(consumer):
        if autocommit and consumer.config.get("enable_auto_commit"):
            # kafka-python's own auto-commit at close needs the membership forgotten below.
            _commit(consumer, timeout_ms if timeout_ms is not None else consumer.config["request_timeout_ms"])
        autocommit = False
        if _forget_membership(consumer):
            log.info("closing without leaving group %s: the embedded broker expires the member "
                     "after its session timeout (%d ms)", consumer.config.get("group_id"),
                     consumer.config.get("session_timeout_ms", 0))
    consumer.close(autocommit=autocommit, timeout_ms=timeout_ms)


def is_embedded(consumer) -> bool:
    """True if ``consumer`` has seen the cluster id of driftd's embedded broker (it starts
    with ``driftd-``, :class:`daemon.kafka.embedded_broker.EmbeddedBroker`); False when it
    is another or unknown (no metadata yet, or another kafka-python without these internals)."""
    # kafka-python has no public accessor for the cluster metadata of a consumer.
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    cluster_id = getattr(cluster, "cluster_id", None)
    return isinstance(cluster_id, str) and cluster_id.startswith(CLUSTER_ID_PREFIX)


def _may_leave(consumer) -> bool:
    """True if the member is a stable follower of its group, or if that cannot be told (no
    group, or kafka-python internals other than 3.0's): then it leaves as before."""
    if consumer.config.get("group_id") is None:
        return True
    coordinator = getattr(consumer, "_coordinator", None)
    try:  # kafka-python 3.0 internals: ``_is_leader`` is set by the member that assigned
        return (coordinator.state is MemberState.STABLE and not coordinator.need_rejoin()
                and not coordinator._is_leader and coordinator._join_task is None)
    except AttributeError:
        return True


def _forget_membership(consumer) -> bool:
    """Reset the member's generation: kafka-python then has no membership to leave (its
    ``maybe_leave_group`` sends LeaveGroup only for a joined member). False if this
    kafka-python has no ``reset_generation``: the close then leaves as before."""
    reset = getattr(getattr(consumer, "_coordinator", None), "reset_generation", None)
    if reset is None:
        return False
    reset()
    return True


def _commit(consumer, timeout_ms: int) -> None:
    """Commit the consumed offsets, as ``KafkaConsumer.close(autocommit=True)`` would: a
    failure is logged, not raised (the member is going anyway)."""
    try:
        consumer.commit(timeout_ms=timeout_ms)
    except KafkaError as e:
        log.warning("offset commit before closing failed: %s (records may be read twice)", e)
