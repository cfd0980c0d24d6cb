"""Closing driftd's Kafka consumers while records flow logs no error (real broker).

kafka-python 3.0's ``KafkaConsumer.close()`` closed its connections from the caller's thread
while its I/O thread still ran: a response arriving then was read from a socket set to
None, and kafka-python logged an ERROR traceback (``'NoneType' object has no attribute
'recv'``, or ``Bad file descriptor``), seen at the end of ``driftd demo`` and on SIGTERM.
Measured with bare consumers built like these (60 closes while a producer writes): 6
tracebacks, 3 of them ``'NoneType' ... 'recv'``; with :class:`daemon.kafka.netclient.NetClient`
(every client driftd makes, through ``wiring.client_settings``), none. The race is narrow:
this test cannot fail on every run of the old code, only often. Nor an ERROR "Metadata
refresh: failed Cancelled" (a refresh cut by the close itself), which came at nearly every
close: driftd's logging keeps it for DEBUG (``daemon.runtime.logs``).
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, KafkaProducer

from daemon.config import from_dict
from daemon.runtime import logs, wiring

CLOSES = 30


def test_consumers_closed_while_records_flow_log_no_error(kafka_bootstrap, topic_name, unique_name, caplog):
    logs.configure("INFO")  # driftd's filters of kafka-python's lines, as `driftd run` has them
    kafka = from_dict({"kafka": {"bootstrap_servers": kafka_bootstrap}, "models": {"fraud": {}}}).kafka
    settings = wiring.client_settings(kafka)
    stop = threading.Event()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=1)

    def feed():  # responses keep coming in: one may arrive while a consumer closes
        while not stop.is_set():
            producer.send(topic_name, b"x" * 100)
            time.sleep(0.001)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with caplog.at_level(logging.ERROR, logger="kafka"):
            client_id = unique_name("closing")
            for _ in range(CLOSES):
                # A group member, as driftd's: its close (LeaveGroup) takes long enough for
                # fetch responses to come in meanwhile (with assign() it never raced).
                consumer = KafkaConsumer(topic_name, bootstrap_servers=kafka_bootstrap, group_id=unique_name("group"),
                                         client_id=client_id, session_timeout_ms=2000, heartbeat_interval_ms=200,
                                         fetch_max_wait_ms=10, **settings)
                deadline = time.monotonic() + 0.3
                while time.monotonic() < deadline:
                    consumer.poll(timeout_ms=20)
                consumer.close()
    finally:
        stop.set()
        feeder.join(5)
        producer.close(5)
    # This test's consumers only: their I/O threads (named after the client id) and this
    # thread, which closes them. A client another test in this process left connecting to
    # a broker it stopped logs its refused connections here too (CI: a test of a stop during
    # a 10-minute bootstrap leaves its abandoned attempt running for those 10 minutes).
    ours = {threading.current_thread().name, f"kafka-io-{client_id}"}
    errors = [r for r in caplog.records
              if r.name.startswith("kafka") and r.levelno >= logging.ERROR and r.threadName in ours]
    assert not errors, [f"{r.name}: {r.getMessage()} ({r.exc_info[1]!r})" if r.exc_info else r.getMessage()
                        for r in errors]
