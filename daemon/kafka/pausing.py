"""Pausing and resuming partitions, with kafka-python 3.0's parked records taken care of.

The daemon pauses a partition while it is not to be read: assigned partitions until their
state is restored (:mod:`daemon.runtime.handoff`), a partition's labels while its
predictions catch up (:meth:`daemon.runtime.service.Daemon._pace_labels`).

kafka-python 3.0 keeps records already fetched for a partition when it is paused (its port
of KAFKA-7548), parked until the partition is resumed, and fetches nothing more for it
while they are parked. It hands them back only when no other partition's records are in
line, and after any record was read another partition's emptied records stay in line: a
partition paused with records parked was never read again after its resume (seen on
3.0.12: the labels stopped at their 50th record for good). :func:`resume` therefore drops
what is parked for the partitions it resumes: their position never moved past those
records, so they are fetched again from there. Nothing is lost or read twice; one fetch
is repeated.
"""

from __future__ import annotations


def pause(consumer, *partitions) -> None:
    """Stop fetching ``partitions`` (TopicPartitions, assigned): ``consumer.pause``."""
    if partitions:
        consumer.pause(*partitions)


def resume(consumer, *partitions) -> None:
    """Fetch ``partitions`` again from their positions: ``consumer.resume``, then drop the
    records kafka-python parked for them while paused (see the module docs). A consumer
    without those internals (another version) is only resumed."""
    if not partitions:
        return
    consumer.resume(*partitions)
    parked = getattr(getattr(consumer, "_fetcher", None), "_paused_partition_records", None)
    if isinstance(parked, dict):
        for tp in partitions:
            records = parked.pop(tp, None)
            if records is not None and hasattr(records, "drain"):
                records.drain()
