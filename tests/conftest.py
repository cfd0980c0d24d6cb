"""Shared fixtures: one real Kafka-compatible broker (Tansu) per test session.

Tests that take ``kafka_broker`` (directly or through ``kafka_bootstrap``)
get the ``kafka`` marker automatically, so ``pytest -m "not kafka"`` skips
them. Tests share the broker, so they must use their own topic and group
names (``topic_name``, ``unique_name``). A test that restarts or breaks the
broker takes ``private_kafka_broker`` instead.
"""

from __future__ import annotations

import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from daemon.kafka.embedded_broker import EmbeddedBroker

# Consumer settings for tests against Tansu. Tansu answers the first
# JoinGroup after about ceil(session_timeout_ms / 2000) seconds (measured:
# 1000-2000 ms -> ~1.05 s, 2500-3000 ms -> ~2.05 s, kafka-python default
# 10000 ms -> ~5 s), so 2000 ms is the sweet spot; group membership stayed
# stable over long polls and a two-member rebalance with these values.
FAST_CONSUMER_CONFIG = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 300,    # well under a third of the session timeout
    "max_poll_interval_ms": 10000,   # also sent as the rebalance timeout; no effect on join time
    "fetch_max_wait_ms": 100,        # return sooner from an empty fetch
    "reconnect_backoff_max_ms": 500,  # reconnect quickly after a broker restart
    "auto_offset_reset": "earliest",  # topics are fresh per test
    "enable_auto_commit": False,
}


def pytest_configure(config):
    # kafka-python 3.0 loads its protocol schemas with deprecated importlib.resources calls.
    for message in ("read_text is deprecated", "open_text is deprecated"):
        config.addinivalue_line("filterwarnings", f"ignore:{message}:DeprecationWarning")


def pytest_collection_modifyitems(items):
    for item in items:
        names = getattr(item, "fixturenames", ())
        if {"kafka_broker", "kafka_bootstrap", "private_kafka_broker"} & set(names):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker():
    """The session's broker; started once (about 0.1 s), stopped at the end."""
    broker = EmbeddedBroker()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture
def kafka_bootstrap(kafka_broker) -> str:
    """``bootstrap_servers`` for the shared broker (restarted if a test left it down)."""
    if not kafka_broker.running():
        kafka_broker.start()
    return kafka_broker.bootstrap


@pytest.fixture
def private_kafka_broker():
    """A broker of the test's own, for tests that restart or stop it."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def unique_name(request):
    """Factory for collision-free topic / group names: ``unique_name("labels")``."""
    test = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:80]

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def topic_name(unique_name) -> str:
    return unique_name("topic")


@pytest.fixture
def fast_consumer_config() -> dict:
    """A fresh copy of FAST_CONSUMER_CONFIG, safe to modify in the test."""
    return dict(FAST_CONSUMER_CONFIG)


@pytest.fixture
def webhook():
    """A local HTTP receiver: yields its URL and the list of (body, headers) it was sent."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append((self.rfile.read(int(self.headers["Content-Length"])), dict(self.headers.items())))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
