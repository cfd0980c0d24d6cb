"""Which log an offset points into: the cluster id and the topic id.

An offset means something only in the log it was read from. A topic deleted and created
again, or a broker that came back empty (or was replaced), starts a new log at offset 0
under the same topic name: restoring the old offsets into it would silently skip its first
events. Kafka names each log: the cluster id (Metadata v2+) and, per topic, a topic id
(KIP-516, Metadata v10+, Kafka 2.8+) that a re-created topic does not keep. Both come with
every metadata response the consumer already gets; driftd stores them with each
checkpoint and compares them whenever partitions are assigned and before every batch.

An identity is a string ``"<cluster id>/<topic id>"``, ``?`` standing for a part the
broker does not report; :func:`same_log` compares only the parts both sides know.

>>> same_log("c1/t1", "c1/t2"), same_log("c1/t1", "c2/?"), same_log("c1/?", "c1/t9")
(False, False, True)
>>> same_log(None, "c1/t1"), same_log("?/?", "c1/t1")
(True, True)
"""

from __future__ import annotations

UNKNOWN = "?"


def identity(cluster, topic: str) -> str | None:
    """The identity of ``topic``'s log in kafka-python's ``ClusterMetadata`` as last
    refreshed; None if the metadata knows neither id (too old a broker, or not fetched)."""
    cluster_id = getattr(cluster, "cluster_id", None)
    topic_id = cluster.topic_id(topic) if hasattr(cluster, "topic_id") else None
    if cluster_id is None and topic_id is None:
        return None
    return f"{cluster_id or UNKNOWN}/{topic_id or UNKNOWN}"


def same_log(saved: str | None, current: str | None) -> bool:
    """False only if a part known on both sides differs; unknown parts never do."""
    if not saved or not current:
        return True
    return all(a == b or UNKNOWN in (a, b) for a, b in zip(saved.rsplit("/", 1), current.rsplit("/", 1)))


def metadata(consumer):
    """The consumer's ``ClusterMetadata`` (kafka-python 3: ``_cluster``; 2: ``_client.cluster``)."""
    cluster = getattr(consumer, "_cluster", None)
    return cluster if cluster is not None else consumer._client.cluster
