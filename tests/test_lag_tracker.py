"""LagTracker (daemon.kafka.lag) on its own: what the lag gauge is computed from, with a
clock and high watermarks the test sets. The broker-facing half (the probe, the daemon's
gauge against the true lag) is tested on the real broker in tests/test_lag.py."""

from __future__ import annotations

from kafka.structs import TopicPartition

from daemon.kafka.lag import COMMITTED, LagTracker

P0 = TopicPartition("predictions", 0)
L0 = TopicPartition("labels", 0)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tracker(refresh: float = 5.0):
    clock = Clock()
    return LagTracker(refresh, clock=clock), clock


def test_a_response_being_worked_through_is_probed_once_its_end_is_older_than_the_refresh():
    lag, clock = tracker()
    highwater = {P0: 10_000}
    # A large fetch response: its high watermark stands still while the batches of it are handled.
    for processed in (1_000, 4_000, 7_000):
        lag.update({P0: processed}, highwater.get)
        assert lag.lags() == {P0: 10_000 - processed}
        assert lag.due()[0] == []
        clock.now += 2
    clock.now += 1  # 6 s since the consumer's end last changed, still behind
    lag.update({P0: 9_000}, highwater.get)
    due, starts, generations = lag.due()
    assert due == [P0] and starts == {}
    assert lag.due()[0] == []  # asked: not again until the refresh has passed
    lag.probed({P0: 25_000}, {}, generations)
    assert lag.lags() == {P0: 16_000}
    # The consumer's older high watermark does not take the probe's back.
    lag.update({P0: 10_000}, highwater.get)
    assert lag.lags() == {P0: 15_000}


def test_a_caught_up_partition_is_not_probed():
    lag, clock = tracker()
    for _ in range(5):
        clock.now += 10  # the consumer fetches it again and again, its high watermark unchanged
        lag.update({P0: 500}, {P0: 500}.get)
    assert lag.due()[0] == [] and lag.lags() == {P0: 0}


def test_the_consumers_high_watermark_is_read_when_scraped():
    """A fetch response parsed with the batch in hand counts before that batch is done:
    the gauge shows the records of the batch being processed."""
    lag, _ = tracker()
    highwater = {P0: 1_000}
    lag.update({P0: 1_000}, highwater.get)
    assert lag.lags() == {P0: 0}
    highwater[P0] = 41_000  # poll() handed out a batch of a new response
    assert lag.lags() == {P0: 40_000}


def test_a_paused_partition_is_probed_and_counted():
    lag, clock = tracker()
    lag.update({P0: 2_000}, {}.get, paused={P0})  # assigned, waiting for its state: no high watermark
    assert lag.lags() == {}
    due, _, generations = lag.due()
    assert due == [P0]
    lag.probed({P0: 9_000}, {}, generations)
    assert lag.lags() == {P0: 7_000}
    clock.now += 6
    lag.update({P0: 2_000}, {}.get, paused={P0})
    assert lag.due()[0] == [P0]  # still paused: read again


def test_a_topic_not_read_yet_counts_from_the_start_of_its_log():
    lag, _ = tracker()
    lag.update({P0: 300, L0: None}, {P0: 300}.get)
    due, starts, generations = lag.due()
    assert due == [L0] and starts == {L0: "first"}
    lag.probed({L0: 1_200}, {L0: 200}, generations)
    assert lag.lags() == {P0: 0, L0: 1_000}


def test_a_partition_held_for_its_state_counts_from_the_groups_committed_offset():
    """Assigned, waiting for its state (paused): the lag counts from where that state
    stopped, the group's committed offset, which the probe reads; once the state is here,
    from its own offset."""
    lag, clock = tracker()
    lag.update({P0: COMMITTED}, {}.get, {P0})
    assert lag.lags() == {}  # nothing known yet: no made-up value
    due, starts, generations = lag.due()
    assert due == [P0] and starts == {P0: COMMITTED}
    lag.probed({P0: 1_000}, {P0: 700}, generations)
    assert lag.lags() == {P0: 300}
    clock.now += 6  # the end probed again (paused: the consumer renews nothing), not the offset
    due, starts, generations = lag.due()
    assert due == [P0] and starts == {}
    lag.probed({P0: 1_050}, {}, generations)
    assert lag.lags() == {P0: 350}
    lag.update({P0: 700}, {}.get)  # restored
    assert lag.lags() == {P0: 350}


def test_a_partition_given_up_is_forgotten():
    lag, _ = tracker()
    lag.update({P0: 10, L0: 5}, {P0: 20, L0: 5}.get)
    assert lag.lags() == {P0: 10, L0: 0}
    lag.update({L0: 5}, {L0: 5}.get)
    assert lag.lags() == {L0: 0}


def test_a_log_read_again_forgets_the_old_logs_end():
    lag, _ = tracker()
    lag.update({P0: 5_000}, {}.get)  # no end known yet: a probe starts
    due, _, generations = lag.due()
    assert due == [P0]
    lag.update({P0: 0}, {P0: 300}.get)  # meanwhile the topic was re-created: read from the beginning
    assert lag.lags() == {P0: 300}
    lag.probed({P0: 5_000}, {}, generations)  # the answer about the old log comes late
    assert lag.lags() == {P0: 300}


def test_a_high_watermark_below_the_processed_offset_is_no_end():
    lag, _ = tracker()
    lag.update({P0: 5_000}, {P0: 5_000}.get)
    lag.update({P0: 5_000}, {P0: 200}.get)  # the log ends before: the loop re-reads it
    assert lag.lags() == {P0: 0}  # the live read: never negative


def test_a_consumer_that_no_longer_has_the_partition_does_not_break_a_scrape():
    lag, _ = tracker()

    def highwater(tp):
        raise RuntimeError("Partition is not assigned")

    lag.update({P0: 10}, {P0: 30}.get)
    lag._highwater = highwater  # a rebalance between the loop's update and the scrape
    assert lag.lags() == {P0: 20}
