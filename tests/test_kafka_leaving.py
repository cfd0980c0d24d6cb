"""Closing a group consumer on the embedded broker never wedges its group
(daemon/kafka/leaving.py), on the test broker over the wire.

On Tansu 0.6.0 a LeaveGroup from the group's leader while the group rebalances leaves the
group without a working leader for good: nobody is given a partition again. With a plain
``consumer.close()`` the first test below wedged in 10 of 10 runs, the second in 5 of 5;
``leaving.close`` lets the leader expire at its session timeout instead (0 of 10 and 0 of 5).

Each member polls in a thread of its own, as each daemon does: polled in turn from one
thread, two members took up to 30 s and more to share the partitions.
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer

from daemon.kafka import leaving
from daemon.kafka.embedded_broker import create_topics

from .test_daemon_process import group_members

PARTITIONS = 4
LIVENESS_S = 30.0  # generous: a handoff by session expiry takes ~4 s here


class Member:
    """A group member polling in its own thread until :meth:`close`."""

    def __init__(self, bootstrap: str, group: str, topic: str, config: dict):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, **config)
        self.consumer.subscribe([topic])
        self.polls = 0
        self.assigned: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.consumer.poll(timeout_ms=100)
            self.assigned = set(self.consumer.assignment())
            self.polls += 1

    def close(self, close=lambda consumer: leaving.close(consumer, autocommit=False)) -> None:
        """Stop polling, then close the consumer with ``close`` (a consumer is not thread-safe)."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            close(self.consumer)


def _wait(done, timeout: float = LIVENESS_S) -> float | None:
    """Seconds until ``done()``, or None at the timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if done():
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def _share_all(*members) -> bool:
    """Every partition is owned, by exactly one of ``members``, and each owns some."""
    owned = [m.assigned for m in members]
    return all(owned) and sum(map(len, owned)) == PARTITIONS and len(set().union(*owned)) == PARTITIONS


def leader_leaves_while_a_member_joins(bootstrap: str, group: str, topic: str, config: dict, close):
    """The group's only member (its leader) is closed with ``close`` while a second member's
    join is in flight: (the second member, left running for the caller to close; seconds
    from the close until it owned every partition, or None: wedged)."""
    leader = Member(bootstrap, group, topic, config)
    try:
        assert _wait(lambda: _share_all(leader)) is not None, "the leader never joined"
        assert leaving.is_embedded(leader.consumer)
        newcomer = Member(bootstrap, group, topic, config)
        assert _wait(lambda: newcomer.polls >= 3) is not None  # its JoinGroup is in: the group rebalances
    finally:
        leader.close(close)
    return newcomer, _wait(lambda: _share_all(newcomer))


def test_the_leader_closed_while_a_member_joins_does_not_wedge_the_group(kafka_bootstrap, unique_name,
                                                                         fast_consumer_config):
    topic, group = unique_name("topic"), unique_name("group")
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    newcomer, handoff = leader_leaves_while_a_member_joins(
        kafka_bootstrap, group, topic, fast_consumer_config, lambda c: leaving.close(c, autocommit=False))
    later = None
    try:
        assert handoff is not None, f"the remaining member got no partitions within {LIVENESS_S:g} s: wedged"
        later = Member(kafka_bootstrap, group, topic, fast_consumer_config)
        assert _wait(lambda: _share_all(newcomer, later)) is not None, \
            f"a member joining afterwards got no share within {LIVENESS_S:g} s"
    finally:
        for member in (newcomer, later):
            if member is not None:
                member.close()


def test_the_leader_closed_during_its_first_join_does_not_wedge_the_group(kafka_bootstrap, unique_name,
                                                                          fast_consumer_config):
    topic, group = unique_name("topic"), unique_name("group")
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    first = Member(kafka_bootstrap, group, topic, fast_consumer_config)
    assert _wait(lambda: first.polls >= 3) is not None  # its JoinGroup is in, not yet answered (~1 s here)
    first.close()
    second = Member(kafka_bootstrap, group, topic, fast_consumer_config)
    try:
        assert _wait(lambda: _share_all(second)) is not None, \
            f"the next member got no partitions within {LIVENESS_S:g} s: wedged"
    finally:
        second.close()


@pytest.mark.parametrize("who, embedded", [("follower", None), ("leader", False)],
                         ids=["a stable follower, the embedded broker seen", "the leader, embedded=False"])
def test_a_member_that_may_leave_leaves_at_once(kafka_bootstrap, unique_name,
                                                                   fast_consumer_config, who, embedded):
    """A stable follower leaves (LeaveGroup) on the embedded broker; on another broker
    (``embedded=False``) even the leader does, as with a plain close. Either way it is out
    of the group at once (a member that did not leave stays listed: Tansu expires members
    lazily, at the next join after their session timeout), and its partitions move."""
    config = dict(fast_consumer_config, session_timeout_ms=4000, heartbeat_interval_ms=400)
    topic, group = unique_name("topic"), unique_name("group")
    create_topics(kafka_bootstrap, {topic: PARTITIONS})
    leader = Member(kafka_bootstrap, group, topic, config)
    members = [leader]
    try:
        assert _wait(lambda: _share_all(leader)) is not None, "the leader never joined"
        follower = Member(kafka_bootstrap, group, topic, config)
        members.append(follower)
        assert _wait(lambda: _share_all(leader, follower)) is not None, "the group never split"
        going, staying = (follower, leader) if who == "follower" else (leader, follower)
        going.close(lambda c: leaving.close(c, embedded=embedded, autocommit=False))
        state, listed = group_members(kafka_bootstrap, group)
        assert len(listed) == 1, f"the {who} did not leave: {listed} ({state})"
        assert _wait(lambda: _share_all(staying)) is not None, "the partitions never moved"
    finally:
        for member in members:
            member.close()
