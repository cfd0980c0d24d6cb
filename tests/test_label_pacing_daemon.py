"""The daemon's label pacing against the real (embedded Tansu) broker: a label waiting for
its prediction stops holding its place only once every prediction produced before it was
read, known from the broker's end offset, not from the highwater of the consumer's last
fetch.

A trial's finding: a live daemon's learners ended in other states than a replay's of the
same topics, and than another live run's (promotions differed). The daemon reads the
labels topic ahead of the predictions (kafka-python fetches a partition again only once
its fetched records were handed out, so the labels, handled faster, were fetched anew
while the predictions waited in line); once a model had ``MAX_HELD_LABELS`` labels behind
one waiting for its prediction, the daemon took the predictions for read to their end as
soon as it reached the highwater of their last fetch, older than the labels read since:
the waiting label stopped holding its place while its prediction was still on its way,
and joined later, after thousands of labels behind it (5,091 of 20,000 learned out of
order in one run), by timing.
"""

from __future__ import annotations

import json

from kafka import KafkaConsumer, TopicPartition

from daemon.config import from_dict
from daemon.kafka.embedded_broker import create_topics
from daemon.runtime.service import Daemon
from daemon.stream import labelorder
from daemon.stream.partition import PartitionState

from .daemon_harness import daemon_config, produce

HELD = 20  # MAX_HELD_LABELS here (the code path of 10,000, sooner)


def _prediction(i: int) -> bytes:
    return json.dumps({"model": "fraud", "id": f"p{i}", "ts": 1_700_000_000 + i, "prediction": i % 2,
                       "features": {"x": i % 7}}).encode()


def _label(i: int) -> bytes:
    return json.dumps({"model": "fraud", "id": f"p{i}", "ts": 1_700_000_010 + i, "label": i % 2}).encode()


def _poll_all(consumer, tp, n: int) -> list:
    records = []
    for _ in range(30):
        records += consumer.poll(timeout_ms=1000).get(tp, [])
        if len(records) >= n:
            return records
    raise AssertionError(f"{tp}: {len(records)} of {n} records read")


def test_labels_hold_their_places_while_predictions_produced_before_them_are_unread(
        kafka_bootstrap, unique_name, tmp_path, monkeypatch):
    monkeypatch.setattr(labelorder, "MAX_HELD_LABELS", HELD)
    config = from_dict(daemon_config(kafka_bootstrap, unique_name, tmp_path / "state"))
    predictions = TopicPartition(config.kafka.predictions_topic, 0)
    labels = TopicPartition(config.kafka.labels_topic, 0)
    create_topics(kafka_bootstrap, {predictions.topic: 1, labels.topic: 1})
    produce(kafka_bootstrap, [(predictions.topic, b"fraud", _prediction(i)) for i in range(10)])
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    daemon = Daemon(config)
    state = daemon.states[0] = PartitionState(0, config)
    dead = []
    try:
        consumer.assign([predictions])
        state.handle_predictions(_poll_all(consumer, predictions, 10), lambda *a: dead.append(a))
        state.advance(predictions.topic, 0, 9)
        assert consumer.highwater(predictions) == 10  # read to the highwater of the last fetch
        # 40 more predictions, then the labels of all 50: written before the labels, but
        # not fetched yet (the consumer's highwater stays 10) while the labels are read.
        produce(kafka_bootstrap, [(predictions.topic, b"fraud", _prediction(i)) for i in range(10, 50)])
        produce(kafka_bootstrap, [(labels.topic, b"fraud", _label(i)) for i in range(50)])
        consumer.assign([predictions, labels])
        consumer.pause(predictions)
        state.handle_labels(_poll_all(consumer, labels, 50), lambda *a: dead.append(a))
        state.advance(labels.topic, 0, 49)
        assert consumer.highwater(predictions) == 10 and state.labels_full  # p10 waits, 39 behind it
        daemon._consumer = consumer
        daemon._pace_labels()  # before: "read to the end" by the stale highwater
        state.handle_labels([], lambda *a: dead.append(a))  # (a release, as the next batch makes)
        assert state.label_order.held("fraud") == 40, "label p10 stopped holding its place with its prediction unread"
        assert labels in consumer.paused(), "the labels were not paused while their predictions were unread"

        consumer.resume(predictions)
        state.handle_predictions(_poll_all(consumer, predictions, 40), lambda *a: dead.append(a))
        state.advance(predictions.topic, 10, 49)
        daemon._pace_labels()
    finally:
        consumer.close()
    assert not dead and state.label_order.held("fraud") == 0 and labels not in consumer.paused()
    assert state.join.counts[("fraud", "joined")] == 50
