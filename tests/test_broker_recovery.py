"""/readyz after a broker outage, on the real (embedded Tansu) broker: the daemon in a
thread, the broker stopped and started again on the same port.

What the design promises (README "Probes"): while the broker is away /readyz says 503
"broker not answering"; once it answers again /readyz turns back within about
1.2 x ``kafka.reconnect_backoff_max_seconds`` + 3 s (every client's reconnect backoff, then
the loop's broker probe), plus the rejoin and state restore a broker that lost the group
asks for. Before, only the group consumer had the configured backoff: the producers and the
state reader kept kafka-python's 30 s, and /readyz lagged ~25 s behind a broker back after a
90 s outage (measured with the shipped settings).
"""

from __future__ import annotations

import time

from daemon.config import from_dict
from daemon.kafka.embedded_broker import EmbeddedBroker
from daemon.runtime import wiring

from .daemon_harness import daemon_config, get, running_daemon, wait_until

#: Long enough for every client's reconnect backoff to grow to its cap (2 s by default:
#: 50 ms doubled at each failed attempt reaches it after ~3 s of failures).
OUTAGE_SECONDS = 15.0


def test_readyz_follows_a_restarted_broker_within_the_reconnect_backoff(unique_name, tmp_path):
    config = daemon_config("127.0.0.1:1", unique_name, tmp_path / "state")
    # The shipped reconnect backoff and checkpoint interval: what operators get.
    config["state"].pop("checkpoint_interval_seconds")
    topics = wiring.topics(from_dict(config))
    # The broker's topics are created on every start, so also after the restart (it comes
    # back empty: Tansu keeps everything in memory).
    with EmbeddedBroker(topics=topics) as broker:
        config["kafka"]["bootstrap_servers"] = broker.bootstrap
        with running_daemon(config) as daemon:
            wait_until(lambda: get(daemon, "/readyz")[0] == 200, timeout=60, what="/readyz 200 at start")

            # Every Kafka client of the daemon reconnects with the configured backoff, not
            # kafka-python's 30 s (which the producers and the state reader had).
            backoff_ms = int(from_dict(config).kafka.reconnect_backoff_max_seconds * 1000)
            state_consumer = daemon.state_reader._make_consumer()
            try:
                clients = {"group consumer": daemon._consumer, "producer": daemon._producer,
                           "state producer": daemon._state_producer, "state reader": state_consumer}
                assert {name: c.config["reconnect_backoff_max_ms"] for name, c in clients.items()} == \
                    {name: backoff_ms for name in clients}
            finally:
                state_consumer.close()

            broker.stop()
            wait_until(lambda: get(daemon, "/readyz")[0] == 503, timeout=30, what="/readyz 503 with the broker away")
            time.sleep(OUTAGE_SECONDS)
            code, body = get(daemon, "/readyz")
            assert (code, body) == (503, b"broker not answering\n")
            assert get(daemon, "/livez")[0] == 200

            broker.start()  # same port, empty, the topics created again
            back = time.monotonic()
            # Generous: a bound on hanging, not a performance figure (printed below).
            wait_until(lambda: get(daemon, "/readyz")[0] == 200, timeout=60, interval=0.2,
                       what="/readyz 200 after the broker came back")
            print(f"/readyz 200 again {time.monotonic() - back:.1f} s after the broker came back "
                  f"(outage {OUTAGE_SECONDS:.0f} s, reconnect backoff {backoff_ms} ms)")
