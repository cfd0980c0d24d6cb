"""Alerts: episode logic, and delivery to a real local HTTP receiver and a real Kafka topic.

No HTTP mocks: a tiny http.server on 127.0.0.1 records what it was sent and
answers as scripted (503 with Retry-After, 500, 400, slow). Backoffs are tiny
so the file stays fast.
"""

from __future__ import annotations

import base64
import email.utils
import json
from datetime import datetime, timezone
import logging
import os
import pickle
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from daemon.alerting.sender import (AlertSender, KafkaSink, PermanentError, RetryableError, WebhookSink,
                                   parse_retry_after)
from daemon.alerting.episodes import Alert, Episodes, alert_id, info

KEY = ("fraud", "KS", "amount")
DETAIL = {"statistic": 0.21, "threshold": 0.07, "p_value": 0.001}
FAST = {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def feed(episodes: Episodes, key, flags, start: float = 0.0, step: float = 1.0) -> list:
    """Observe drift flags at event times start, start+step, ...; returns (time, alert) pairs."""
    out = []
    for i, flag in enumerate(flags):
        t = start + i * step
        alert = episodes.observe(key, flag, t, DETAIL)
        if alert is not None:
            out.append((t, alert))
    return out


def firing_alert(model: str = "fraud") -> Alert:
    return Episodes().observe((model, "KS", "amount"), True, 1763891000.0, DETAIL)


# --- episodes ---------------------------------------------------------------------------


def test_one_firing_and_one_resolved_per_episode():
    alerts = feed(Episodes(clear_after=3, cooldown_seconds=0), KEY, [True] * 5 + [False] * 6 + [True] * 2)
    assert [(t, a.status, a.episode) for t, a in alerts] == [
        (0.0, "firing", 1), (7.0, "resolved", 1), (11.0, "firing", 2)]
    firing, resolved = alerts[0][1], alerts[1][1]
    assert (firing.model, firing.detector, firing.feature) == KEY
    assert firing.detail == DETAIL and firing.event_time == 0.0
    assert resolved.detail["started_at"] == 0.0
    assert resolved.event_type == "driftd.alert.resolved"


def test_one_clean_observation_does_not_resolve():
    episodes = Episodes(clear_after=3)
    flags = [True, False, True, False, False, True, False, False]  # never 3 clean in a row
    assert [a.status for _, a in feed(episodes, KEY, flags)] == ["firing"]
    assert episodes.active(KEY)
    assert episodes.observe(KEY, False, 100.0, DETAIL).status == "resolved"
    assert not episodes.active(KEY)


def test_cooldown_is_event_time_and_silent_episodes_stay_silent():
    # The whole test runs in milliseconds of wall time: only event time can matter.
    episodes = Episodes(clear_after=3, cooldown_seconds=100.0)
    first = feed(episodes, KEY, [True, False, False, False])            # resolves at t=3
    assert [a.status for _, a in first] == ["firing", "resolved"]
    silent = feed(episodes, KEY, [True, True, False, False, False], start=50.0)
    assert silent == []                  # neither the firing nor the resolve of a muted episode
    assert not episodes.active(KEY)
    # The silent resolve at t=54 did not restart the cooldown (which ends at 3 + 100).
    again = feed(episodes, KEY, [True, False, False, False], start=104.0)
    assert [(a.status, a.episode) for _, a in again] == [("firing", 2), ("resolved", 2)]


def test_silent_episode_still_drifting_after_cooldown_is_announced():
    episodes = Episodes(clear_after=2, cooldown_seconds=10.0)
    feed(episodes, KEY, [True, False, False])                            # resolves at t=2
    assert episodes.observe(KEY, True, 5.0, DETAIL) is None              # muted (before t=12)
    assert episodes.observe(KEY, True, 11.0, DETAIL) is None
    late = episodes.observe(KEY, True, 12.0, DETAIL)
    assert (late.status, late.episode, late.event_time) == ("firing", 2, 12.0)
    end = feed(episodes, KEY, [False, False], start=13.0)
    assert [(a.status, a.episode) for _, a in end] == [("resolved", 2)]


def random_observations(seed: int, n: int = 400):
    rng = random.Random(seed)
    keys = [("fraud", "KS", "amount"), ("fraud", "PSI", "country"), ("churn", "ADWIN", "")]
    return [(rng.choice(keys), rng.random() < 0.4, float(i)) for i in range(n)]


def run(episodes: Episodes, observations) -> list[Alert]:
    return [a for k, d, t in observations if (a := episodes.observe(k, d, t, DETAIL))]


def test_ids_are_deterministic_across_instances():
    observations = random_observations(seed=7)
    a = run(Episodes(clear_after=2, cooldown_seconds=5.0), observations)
    b = run(Episodes(clear_after=2, cooldown_seconds=5.0), observations)
    assert len(a) > 10
    assert a == b and [x.id for x in a] == [x.id for x in b]
    assert len({x.id for x in a}) == len(a)            # no two alerts share an id
    for x in a:
        assert x.id == alert_id(x.model, x.detector, x.feature, x.status, *x.origin)


def test_ids_come_from_what_opened_the_episode():
    """The same episode numbers after a state reset (a fresh tracker) or for a new model
    version are other episodes, opened by other events: other ids. The same events
    replayed give the same ids, and a resolve shares its firing's origin."""
    def episode(origin_offset, start):
        episodes = Episodes(clear_after=1, cooldown_seconds=0)  # a fresh state each time
        fired = episodes.observe(KEY, True, start, DETAIL, origin=("predictions", 0, origin_offset, start))
        resolved = episodes.observe(KEY, False, start + 1, DETAIL, origin=("predictions", 0, origin_offset + 100, start + 1))
        return fired, resolved

    first, again, later = episode(41, 10.0), episode(41, 10.0), episode(5041, 510.0)
    assert [a.episode for a in first + later] == [1, 1, 1, 1]  # what the old ids were made of
    assert [a.id for a in first] == [a.id for a in again]      # a replay: the same ids
    assert {a.id for a in first}.isdisjoint(a.id for a in later)
    assert first[0].id != first[1].id and first[1].origin == first[0].origin == ["predictions", 0, 41, 10.0]
    assert first[1].event_time == 11.0                          # the resolving decision's own time


def test_episodes_pickle_mid_stream_and_continue_identically():
    observations = random_observations(seed=11)
    original = Episodes(clear_after=3, cooldown_seconds=4.0)
    run(original, observations[:200])
    restored = pickle.loads(pickle.dumps(original))
    tail = observations[200:]
    assert run(restored, tail) == run(original, tail)
    assert restored.active_keys() == original.active_keys()


def test_info_alert_ids_come_from_the_callers_key():
    a = info("fraud", "model_promoted", {"version": "8"}, 10.0, key="v8")
    b = info("fraud", "model_promoted", {"version": "8"}, 99.0, key="v8")
    c = info("fraud", "model_promoted", {"version": "9"}, 10.0, key="v9")
    assert a.id == b.id != c.id
    assert (a.status, a.kind, a.event_type) == ("info", "model_promoted", "driftd.info.model_promoted")


def test_detail_is_made_json_safe():
    detail = {"statistic": np.float64(0.5), "n": np.int64(3), "p_value": float("nan")}
    alert = Episodes().observe(KEY, True, 1.0, detail)
    assert alert.detail == {"statistic": 0.5, "n": 3, "p_value": None}
    assert type(alert.detail["n"]) is int
    json.dumps(alert.to_dict(), allow_nan=False)
    assert Alert.from_dict(alert.to_dict()) == alert


# --- a real HTTP receiver -------------------------------------------------------------


class Receiver:
    """Records POSTs; answers with ``script`` (consumed in order), then ``default``."""

    def __init__(self, port: int = 0):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.default: tuple[int, dict] = (200, {})
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers = receiver.script.pop(0) if receiver.script else receiver.default
                receiver.requests.append({"t": time.monotonic(), "path": self.path, "status": status,
                                          "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                time.sleep(receiver.delay)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


class Outcomes(list):
    """``on_outcome`` callback that records (sink, outcome) pairs."""

    def __call__(self, sink: str, outcome: str) -> None:
        self.append((sink, outcome))


@pytest.fixture
def sender_factory():
    senders = []

    def make(sinks, **kwargs) -> tuple[AlertSender, Outcomes]:
        outcomes = Outcomes()
        sender = AlertSender(sinks, on_outcome=outcomes, **{**FAST, **kwargs})
        senders.append(sender)
        return sender, outcomes

    yield make
    for s in senders:
        s.close(timeout=0)


def test_webhook_is_signed_per_standard_webhooks(receiver, secret, sender_factory):
    sender, outcomes = sender_factory([WebhookSink(receiver.url, secret, name="hook")])
    alert = firing_alert()
    sender.send(alert)
    sender.close(timeout=5)                             # close() flushes what is pending
    assert outcomes == [("hook", "sent")] and sender.pending() == []
    (req,) = receiver.requests
    payload = Webhook(secret).verify(req["body"], req["headers"])
    assert req["headers"]["webhook-id"] == alert.id
    assert payload["type"] == "driftd.alert.firing"
    assert payload["timestamp"] == "2025-11-23T09:43:20Z"
    assert payload["data"] == alert.to_dict()
    tampered = req["body"].replace(b"0.21", b"0.01")
    assert tampered != req["body"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, req["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another key").decode()).verify(req["body"], req["headers"])


def test_raw_secret_is_used_as_the_key_bytes(receiver, sender_factory):
    sender, _ = sender_factory([WebhookSink(receiver.url, "not-base64 raw secret!")])
    sender.send(firing_alert())
    assert wait_for(lambda: receiver.requests)
    req = receiver.requests[0]
    Webhook(b"not-base64 raw secret!").verify(req["body"], req["headers"])
    Webhook("whsec_" + base64.b64encode(b"not-base64 raw secret!").decode()).verify(
        req["body"], req["headers"])


def test_retry_after_is_honoured(receiver, secret, sender_factory):
    receiver.script = [(503, {"Retry-After": "1"})]
    sender, outcomes = sender_factory([WebhookSink(receiver.url, secret, name="hook")], max_backoff_seconds=2.0)
    alert = firing_alert()
    sender.send(alert)
    assert wait_for(lambda: ("hook", "sent") in outcomes, timeout=5)
    first, second = receiver.requests
    assert second["t"] - first["t"] >= 1.0              # backoff alone would be ~0.01 s
    assert outcomes == [("hook", "failed_retrying"), ("hook", "sent")]
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == alert.id
    assert first["body"] == second["body"]
    Webhook(secret).verify(second["body"], second["headers"])


def test_parse_retry_after_seconds_and_http_date():
    now = 1763891000.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_gives_up_after_the_configured_time(receiver, sender_factory, caplog):
    receiver.default = (500, {})
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")],
                                      give_up_after_seconds=0.5, initial_backoff_seconds=0.05)
    alert = firing_alert()
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="driftd.alerting.sender"):
        sender.send(alert)
        assert wait_for(lambda: ("hook", "gave_up") in outcomes, timeout=3)
    assert 0.5 <= time.monotonic() - started < 1.5
    assert len(receiver.requests) >= 3
    assert outcomes[-1] == ("hook", "gave_up")
    assert set(outcomes[:-1]) == {("hook", "failed_retrying")}
    assert sender.pending() == []
    assert any(alert.id in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_a_retry_after_beyond_the_deadline_pauses_the_sink_for_retry_max_at_most(receiver, sender_factory):
    """A trial's finding: a 429 with a Retry-After of 28 h made driftd give up at once
    ("after 0 attempts") on every queued alert and on every alert created later, for the
    whole 28 h. The pause is capped at the longest backoff (alerts.retry_max_seconds)."""
    receiver.script = [(429, {"Retry-After": "100000"})]
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")], give_up_after_seconds=30.0,
                                      max_backoff_seconds=0.5)
    started = time.monotonic()
    sender.send(firing_alert("a"))
    assert wait_for(lambda: outcomes, timeout=3)
    sender.send(firing_alert("b"))                     # created during the server's pause
    assert wait_for(lambda: len(outcomes) == 3, timeout=5)
    assert outcomes == [("hook", "failed_retrying"), ("hook", "sent"), ("hook", "sent")]
    assert time.monotonic() - started >= 0.5           # the pause was honoured, up to its cap
    sent = [json.loads(r["body"])["data"]["model"] for r in receiver.requests]
    assert sorted(sent[1:]) == ["a", "b"] and sender.pending() == []


def test_an_alert_is_given_up_only_after_its_give_up_time_and_never_untried(receiver, sender_factory):
    receiver.default = (503, {"Retry-After": "100000"})
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")], give_up_after_seconds=1.0,
                                      max_backoff_seconds=0.2)
    started = time.monotonic()
    sender.send(firing_alert("a"))
    time.sleep(0.5)
    sender.send(firing_alert("b"))                     # queued behind the server's pause
    assert wait_for(lambda: outcomes.count(("hook", "gave_up")) == 2, timeout=5)
    assert time.monotonic() - started >= 1.5           # b too had its whole second of trying
    tried = [json.loads(r["body"])["data"]["model"] for r in receiver.requests]
    assert tried.count("a") >= 2 and tried.count("b") >= 2, tried
    assert sender.pending() == []


def test_after_an_outage_each_episode_reaches_a_sink_in_order(sender_factory):
    """A trial's finding: after an outage, each alert retried on its own jittered backoff,
    92 of 181 resolved alerts reached the receiver before their firing ones."""
    down = Receiver()
    port = down.server.server_address[1]
    down.close()                                       # nothing listens: connections refused
    sender, outcomes = sender_factory([WebhookSink(f"http://127.0.0.1:{port}/hook", name="hook")],
                                      initial_backoff_seconds=0.05, max_backoff_seconds=0.4)
    expected = []
    for i in range(12):
        episodes = Episodes(clear_after=1, cooldown_seconds=0)
        key = (f"m{i % 3}", "ks", f"f{i}")
        pair = [episodes.observe(key, True, 1.0 + i, DETAIL), episodes.observe(key, False, 2.0 + i, DETAIL)]
        expected += pair
        for alert in pair:
            sender.send(alert)
    assert wait_for(lambda: outcomes.count(("hook", "failed_retrying")) >= 24, timeout=10)
    time.sleep(0.6)                                    # every alert on its own backoff by now
    up = Receiver(port)
    try:
        assert wait_for(lambda: outcomes.count(("hook", "sent")) == 24, timeout=10)
        delivered = [json.loads(r["body"])["data"]["id"] for r in up.requests if r["status"] == 200]
        assert sorted(delivered) == sorted(a.id for a in expected)
        for firing, resolved in zip(expected[::2], expected[1::2]):
            assert delivered.index(firing.id) < delivered.index(resolved.id), firing.feature
    finally:
        up.close()


def test_a_failing_sink_logs_a_few_summaries_not_a_line_per_alert_per_attempt(receiver, sender_factory, caplog,
                                                                              monkeypatch):
    """A trial's finding: 362 pending alerts wrote 2,000 INFO lines a minute, one per alert
    per attempt, and nothing at WARNING while the sink was down."""
    from daemon.alerting import sender as module

    monkeypatch.setattr(module, "LOG_EVERY_SECONDS", 0.5)
    receiver.default = (503, {})
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")])
    with caplog.at_level(logging.INFO, logger="driftd.alerting.sender"):
        for i in range(20):
            sender.send(firing_alert(f"m{i}"))
        assert wait_for(lambda: outcomes.count(("hook", "failed_retrying")) >= 200, timeout=10)
        time.sleep(0.6)
        receiver.default = (200, {})
        assert wait_for(lambda: outcomes.count(("hook", "sent")) == 20, timeout=5)
    lines = [r for r in caplog.records if r.name == "driftd.alerting.sender"]
    assert 3 <= len(lines) <= 2 + 2 * 5, [r.getMessage() for r in lines]  # a summary per 0.5 s at most
    assert all(r.levelno == logging.WARNING for r in lines)
    assert lines[0].getMessage().startswith("alert sink hook failing, retrying with backoff: HTTP 503")
    assert "still failing" in lines[1].getMessage() and "attempt(s) failed" in lines[1].getMessage()
    assert lines[-1].getMessage().startswith("alert sink hook delivers again after")


def test_timeout_seconds_bounds_the_whole_request_not_each_read():
    """A trial's finding: a receiver trickling its answer, a byte every 2 s, held a sink for
    ever (the timeout bounded each socket read)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
            while not stop.wait(0.3):               # well within each read's timeout
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    threading.Thread(target=trickle, daemon=True).start()
    sink = WebhookSink(f"http://127.0.0.1:{server.getsockname()[1]}/hook", timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(RetryableError, match="timed out"):
            sink.deliver(firing_alert())
        assert time.monotonic() - started < 5.0     # about 1 s; the trickle takes 12
    finally:
        stop.set()
        server.close()


def test_redirects_keep_the_signed_post_or_are_rejected_saying_why(receiver, secret):
    target = Receiver()
    try:
        alert = firing_alert()
        for code in (301, 302, 307, 308):
            receiver.script = [(code, {"Location": target.url})]
            WebhookSink(receiver.url, secret).deliver(alert)
            last = target.requests[-1]
            assert last["headers"]["webhook-id"] == alert.id and json.loads(last["body"])["data"] == alert.to_dict()
            Webhook(secret).verify(last["body"], last["headers"])
        assert len(target.requests) == 4
        receiver.script = [(303, {"Location": target.url})]   # "GET it there": not a webhook's answer
        with pytest.raises(PermanentError, match="HTTP 303 redirect not followed"):
            WebhookSink(receiver.url, secret).deliver(alert)
        receiver.default = (307, {"Location": receiver.url})  # a loop
        with pytest.raises(PermanentError, match="redirect not followed"):
            WebhookSink(receiver.url, secret).deliver(alert)
        assert len(target.requests) == 4
    finally:
        target.close()


def test_400_is_rejected_without_retry(receiver, sender_factory):
    receiver.default = (400, {})
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")])
    sender.send(firing_alert())
    assert wait_for(lambda: outcomes)
    time.sleep(0.3)                                     # many backoffs' worth
    assert outcomes == [("hook", "rejected")]
    assert len(receiver.requests) == 1
    assert sender.pending() == []


def test_an_alert_json_cannot_carry_is_rejected_not_retried(receiver, sender_factory):
    bad = Alert("x1", "firing", "fraud", "KS", "amount", "warning", 1.0, 1, {"p_value": float("nan")})
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")])
    sender.send(bad)
    assert wait_for(lambda: outcomes)
    assert outcomes == [("hook", "rejected")] and receiver.requests == []


def test_slack_format(receiver, secret, sender_factory):
    sender, _ = sender_factory([WebhookSink(receiver.url, secret, format="slack")])
    episodes = Episodes(clear_after=1)
    sender.send(episodes.observe(KEY, True, 1.0, DETAIL))
    sender.send(episodes.observe(KEY, False, 2.0, {"statistic": 0.03, "threshold": 0.07}))
    assert wait_for(lambda: len(receiver.requests) == 2)
    texts = [json.loads(r["body"]) for r in receiver.requests]
    assert texts[0] == {"text": ":rotating_light: [FIRING] fraud: KS drift on feature amount "
                                "(statistic 0.21 &gt; threshold 0.07, p-value 0.001)"}
    assert texts[1] == {"text": ":white_check_mark: [RESOLVED] fraud: KS drift on feature amount "
                                "ended (statistic 0.03 &lt;= threshold 0.07)"}
    Webhook(secret).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])


def test_send_never_waits_for_the_receiver(receiver, sender_factory):
    receiver.delay = 0.5
    sender, outcomes = sender_factory([WebhookSink(receiver.url)])
    started = time.monotonic()
    sender.send(firing_alert("a"))
    sender.send(firing_alert("b"))
    assert time.monotonic() - started < 0.05
    assert len(sender.pending()) == 2                   # in pending() as soon as send() returns


def test_pending_alert_survives_a_restart_with_the_same_id(receiver, secret, sender_factory):
    receiver.default = (503, {})
    sink = WebhookSink(receiver.url, secret, name="hook")
    sender, _ = sender_factory([sink], initial_backoff_seconds=30.0)
    alert = firing_alert()
    sender.send(alert)
    assert wait_for(lambda: receiver.requests)
    sender.close(timeout=0.1)
    checkpoint = pickle.dumps(sender.pending())         # what the daemon would checkpoint
    assert pickle.loads(checkpoint) == [alert]

    receiver.default = (200, {})
    resumed, outcomes = sender_factory([sink], pending=pickle.loads(checkpoint))
    assert wait_for(lambda: outcomes == [("hook", "sent")])
    last = receiver.requests[-1]
    assert last["headers"]["webhook-id"] == alert.id
    assert Webhook(secret).verify(last["body"], last["headers"])["data"]["id"] == alert.id
    assert resumed.pending() == []


def test_an_alert_handed_over_again_after_its_delivery_is_not_sent_twice(receiver, sender_factory, monkeypatch):
    """A new user's finding: after a kill -9, a restarted daemon re-sent each undelivered
    alert from its local checkpoint, then again from the state topic's once the first
    was delivered (only a pending id was ignored): a Slack channel got every alert twice."""
    from daemon.alerting import sender as module

    monkeypatch.setattr(module, "MAX_FINISHED_IDS", 2)
    alert = firing_alert()
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")], pending=[alert])
    assert wait_for(lambda: outcomes == [("hook", "sent")])
    sender.send(alert)  # the state topic's copy
    others = [firing_alert(model=f"other-{i}") for i in range(2)]
    for k, other in enumerate(others):
        sender.send(other)
        assert wait_for(lambda: len(outcomes) == 2 + k)  # the sink has finished with it
    sender.send(alert)  # remembered no longer (2 ids at most here): sent again
    assert wait_for(lambda: len(outcomes) == 4)
    assert [json.loads(r["body"])["data"]["id"] for r in receiver.requests] == [alert.id, *(o.id for o in others), alert.id]


def test_alert_is_pending_until_every_sink_is_done(sender_factory):
    up, down = Receiver(), Receiver()
    try:
        down.default = (503, {})
        sender, outcomes = sender_factory(
            [WebhookSink(up.url, name="up"), WebhookSink(down.url, name="down")],
            initial_backoff_seconds=30.0)
        alert = firing_alert()
        sender.send(alert)
        assert wait_for(lambda: ("up", "sent") in outcomes and ("down", "failed_retrying") in outcomes)
        assert sender.pending() == [alert]
    finally:
        up.close()
        down.close()


def test_a_restart_sends_a_pending_alert_only_to_the_sinks_not_done_with_it(sender_factory):
    """A trial's finding: a restart re-sent every pending alert to every sink, healthy
    ones that had acknowledged it too (the checkpoint kept the alert, not which sinks
    were done)."""
    up, down = Receiver(), Receiver()
    try:
        down.default = (503, {})
        sinks = [WebhookSink(up.url, name="up"), WebhookSink(down.url, name="down")]
        sender, outcomes = sender_factory(sinks, initial_backoff_seconds=30.0)
        alert = firing_alert()
        sender.send(alert)
        assert wait_for(lambda: ("up", "sent") in outcomes and ("down", "failed_retrying") in outcomes)
        sender.close(timeout=0.1)
        alerts, delivery = sender.pending_records()       # what the daemon checkpoints
        assert alerts == [alert] and delivery[alert.id]["done"] == ["up"]
        checkpoint = pickle.dumps(([a.to_dict() for a in alerts], delivery))

        down.default = (200, {})
        saved, records = pickle.loads(checkpoint)
        resumed, outcomes = sender_factory(sinks, pending=saved, delivery=records)
        assert wait_for(lambda: outcomes == [("down", "sent")])
        time.sleep(0.2)
        assert outcomes == [("down", "sent")] and len(up.requests) == 1 and resumed.pending() == []

        # A checkpoint of an earlier driftd has no records: every sink, as then.
        again, outcomes = sender_factory(sinks, pending=[firing_alert("old")])
        assert wait_for(lambda: sorted(outcomes) == [("down", "sent"), ("up", "sent")])
    finally:
        up.close()
        down.close()


def test_the_give_up_clock_runs_from_when_the_alert_was_first_due_across_a_restart(receiver, sender_factory):
    receiver.default = (503, {})
    alert = firing_alert()
    record = {alert.id: {"done": [], "first_due": time.time() - 3600.0}}  # due for an hour already
    sender, outcomes = sender_factory([WebhookSink(receiver.url, name="hook")], pending=[alert], delivery=record,
                                      give_up_after_seconds=3600.0)
    assert wait_for(lambda: outcomes, timeout=3)
    assert outcomes == [("hook", "gave_up")] and len(receiver.requests) == 1  # tried once more, then given up


def test_sink_repr_hides_secrets():
    secret = "whsec_" + base64.b64encode(b"super secret key").decode()
    sink = WebhookSink("https://hooks.example.com/services/T0/B0/TOKEN123", secret, format="slack")
    for text in (repr(sink), str(sink), repr(AlertSender([sink]))):
        assert secret not in text and "super" not in text and "TOKEN123" not in text
    assert "hooks.example.com" in repr(sink)


def test_kafka_sink_delivers_to_a_real_topic(kafka_bootstrap, unique_name, sender_factory):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from daemon.kafka.embedded_broker import create_topics

    topic = unique_name("alerts")
    create_topics(kafka_bootstrap, {topic: 1})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        sender, outcomes = sender_factory([KafkaSink(producer, topic)])
        alert = firing_alert()
        sender.send(alert)
        sender.close(timeout=10)
        assert outcomes == [("kafka", "sent")]

        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = []
        assert wait_for(lambda: records.extend(consumer.poll(timeout_ms=100).get(tp, [])) or records)
        (record,) = records
        assert record.key == b"fraud"
        assert dict(record.headers)["alert-id"] == alert.id.encode()
        value = json.loads(record.value)
        when = datetime.fromtimestamp(alert.event_time, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        assert value["timestamp"].startswith(when) and value["timestamp"].endswith("Z")  # the alert's event time
        assert value == {"type": "driftd.alert.firing", "timestamp": value["timestamp"], "data": alert.to_dict()}
    finally:
        consumer.close()
        producer.close(timeout=5)


def test_the_daemons_sinks_warn_of_a_key_shorter_than_the_spec_asks_without_showing_it(tmp_path, caplog):
    from daemon.config import from_dict
    from daemon.runtime.wiring import alert_sinks

    (tmp_path / "short").write_text("tiny-key-123\n")
    (tmp_path / "long").write_text(base64.b64encode(os.urandom(32)).decode())
    config = from_dict({"alerts": {"sinks": [{"type": "webhook", "url": "http://127.0.0.1:9/a",
                                              "secret": {"file": str(tmp_path / "short")}},
                                             {"type": "webhook", "url": "http://127.0.0.1:9/b",
                                              "secret": {"file": str(tmp_path / "long")}}]}})
    with caplog.at_level(logging.WARNING, logger="driftd"):
        sinks = alert_sinks(config, producer=None)
    assert len(sinks) == 2
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [warned[0]] and warned[0].startswith("alerts.sinks[0].secret: its key is 12 bytes;"), warned
    assert "tiny-key" not in warned[0]
