"""What an operator meets: strict JSON, a port in use, probes during a Kafka outage, sealed
state files, secrets in logs, and a broker that comes back empty under the daemon.

Real parts: ``driftd run`` and ``driftd demo`` as processes, the real broker (stopped,
restarted empty), real sockets, real files. Pure-logic pieces (the JSON sanitizer, the
redactor, sealing) also get small unit tests.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from daemon.kafka.checkpoint import Checkpoints, StateKeyError, Tampered, seal, state_key, unseal
from daemon.kafka.embedded_broker import EmbeddedBroker
from daemon.web.http import HttpServer, ListenError, json_body
from daemon.runtime.logs import MASK, Redactor, _redact_record

from .daemon_harness import daemon_config, get, running_daemon, wait_until
from .daemon_harness import produce as produce_records
from .test_daemon_process import (
    ROOT, DaemonProcess, checkpointed_offsets, expected, produce, sim_records, write_config)


def strict_json(body: bytes):
    """RFC 8259: no NaN, Infinity or -Infinity (Python's json accepts them by default)."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(body, parse_constant=refuse)


# -- 1. every JSON endpoint is strict JSON ---------------------------------------------------

def test_json_body_turns_non_finite_values_into_null():
    status = {"precision": float("nan"), "up": float("inf"), "down": -np.inf, "f32": np.float32("nan"),
              "nested": [{"x": (1.5, np.float64("inf"))}], 3: np.int64(7), "flag": np.bool_(True)}
    parsed = strict_json(json_body(status))
    assert parsed == {"precision": None, "up": None, "down": None, "f32": None,
                      "nested": [{"x": [1.5, None]}], "3": 7, "flag": True}
    with pytest.raises(ValueError):  # the checker itself refuses what the old /status wrote
        strict_json(json.dumps({"p": float("nan")}).encode())


def test_status_endpoint_is_strict_json_over_http():
    server = HttpServer("127.0.0.1", 0, None, lambda: (True, True, "ok"),
                        lambda: {"models": {"m": {"detectors": {"decay/precision": {"statistic": float("nan")}}}}})
    server.start()
    try:
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/status", timeout=5) as r:
            assert r.headers["Content-Type"] == "application/json"
            assert strict_json(r.read())["models"]["m"]["detectors"]["decay/precision"]["statistic"] is None
    finally:
        server.stop()


def test_status_of_a_daemon_with_a_0_over_0_precision_is_strict_json(kafka_bootstrap, unique_name, tmp_path):
    """A model that never predicts the positive class: its precision baseline is 0/0."""
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path,
                           models={"fraud": {"decay_metrics": ["precision", "accuracy"]}})
    kafka = config["kafka"]
    now = time.time()
    records = []
    for i in range(1200):
        event = {"model": "fraud", "id": f"e{i}", "ts": now + i * 0.001, "features": {"x": float(i % 17)}, "prediction": 0}
        records.append((kafka["predictions_topic"], b"fraud", json.dumps(event).encode()))
        label = {"model": "fraud", "id": f"e{i}", "ts": now + i * 0.001, "label": i % 2}
        records.append((kafka["labels_topic"], b"fraud", json.dumps(label).encode()))
    with running_daemon(config) as daemon:
        produce_records(kafka_bootstrap, records)

        def labels_done():
            code, body = get(daemon, "/status")
            model = strict_json(body).get("models", {}).get("fraud")  # strict on every read
            return model and model["processed"]["label"] == 1200
        wait_until(labels_done, timeout=60, what="1200 labels processed")
        status = strict_json(get(daemon, "/status")[1])
        decay = {k: v for k, v in status["models"]["fraud"]["detectors"].items() if "precision" in k}
        assert decay, status["models"]["fraud"]["detectors"].keys()
        # What the endpoint had to clean (the detector may report its 0/0 as NaN or None).
        print("non-finite values in the raw status:", _non_finite(daemon.status()))


def _non_finite(value) -> int:
    if isinstance(value, dict):
        return sum(_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_non_finite(v) for v in value)
    return int(isinstance(value, float) and not np.isfinite(value))


# -- 2. port in use --------------------------------------------------------------------------

@pytest.fixture
def busy_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def _cli(*args, timeout=60, env=None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, env=env)
    return result, time.monotonic() - started


def test_http_server_names_the_address_it_cannot_bind(busy_port):
    with pytest.raises(ListenError, match=rf"cannot listen on 127\.0\.0\.1:{busy_port} for HTTP: address already in use"):
        HttpServer("127.0.0.1", busy_port, None, None, None)


def test_run_on_a_port_in_use_says_so_in_one_line_and_exits_at_once(tmp_path, unique_name, busy_port):
    # No broker is needed: the port is bound before anything else.
    path, _ = write_config(tmp_path, "127.0.0.1:9", unique_name, http={"port": busy_port})
    result, took = _cli("run", "--config", str(path))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(busy_port) in lines[0] and "address already in use" in lines[0] and "http.port" in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    print(f"driftd run on a busy port: exit {result.returncode} after {took:.1f} s: {lines[0]}")


def test_run_on_the_embedded_broker_and_a_port_in_use_prints_no_broker_address(tmp_path, unique_name, busy_port):
    """A new user's finding: the embedded broker's address came first on stdout, then the
    failure: a script waiting for that line took it for a start."""
    path, _ = write_config(tmp_path, "embedded", unique_name, http={"port": busy_port})
    result, _ = _cli("run", "--config", str(path))
    assert result.returncode != 0
    assert result.stdout == "", result.stdout
    assert str(busy_port) in result.stderr and "address already in use" in result.stderr, result.stderr


def test_demo_on_a_port_in_use_says_so_and_exits_at_once(busy_port):
    result, took = _cli("demo", "--port", str(busy_port), "--events", "16000")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"127.0.0.1:{busy_port}" in out and "address already in use" in out and "--port" in out, out
    assert "Traceback" not in out
    assert took < 30, f"the demo took {took:.0f} s to fail"  # it used to wait 60 s for the daemon
    print(f"driftd demo on a busy port: exit {result.returncode} after {took:.1f} s")


# -- 3. /livez and /readyz while the broker is stopped ---------------------------------------

def status_counts(daemon: DaemonProcess) -> dict:
    """Processed events and joins of model fraud, from /status (read as strict JSON)."""
    model = strict_json(daemon.get("/status")[1]).get("models", {}).get("fraud")
    if not model:
        return {}
    return {**model["processed"], "joined": model["join"]["joined"], "duplicate_label": model["join"]["duplicate_label"]}


def wait_status_counts(daemon: DaemonProcess, want: dict, timeout: float) -> None:
    last = {}

    def check():
        nonlocal last
        counts = status_counts(daemon)
        last = {k: counts.get(k) for k in want}
        return last == want
    try:
        wait_until(check, timeout=timeout, what="counts")
    except AssertionError:
        raise AssertionError(f"counts did not reach {want} in {timeout} s; last saw {last}") from None


def saved_offsets(config: dict) -> dict | None:
    try:
        return checkpointed_offsets(config)
    except AssertionError:  # no checkpoint yet
        return None


class Started(DaemonProcess):
    """A daemon process that may start while the broker is away: the HTTP port comes
    from the first log line, before any broker is reached."""

    def start(self, timeout: float = 30) -> "Started":
        self.launch()
        match = wait_until(lambda: re.search(r"HTTP on [^:]+:(\d+)", self.log()) or self.proc.poll() is not None,
                           timeout=timeout, what="the HTTP line")
        assert self.proc.poll() is None, self.log()
        self.port = int(match.group(1))
        return self


def test_livez_stays_200_while_the_broker_is_stopped_and_readyz_says_why(unique_name, tmp_path):
    """A Kafka outage must not get driftd restarted (it would not bring Kafka back): /livez
    answers 200 for longer than its window while the broker is stopped -- at start and
    while running -- and /readyz 503 with the reason; the daemon carries on afterwards."""
    predictions, labels, dead = unique_name("predictions"), unique_name("labels"), unique_name("dead")
    broker = EmbeddedBroker(topics={predictions: 1, labels: 1, dead: 1}).start()
    broker.stop()  # keeps its port: the daemon starts with the broker away
    daemon = None
    try:
        path, config = write_config(tmp_path, broker.bootstrap, unique_name, kafka={
            "predictions_topic": predictions, "labels_topic": labels, "dead_letter_topic": dead,
            # one start-up attempt gives up after 1 s (kafka-python: 30 s), then it is retried
            "client": {"bootstrap_timeout_ms": 1000}},
            http={"host": "127.0.0.1", "port": 0, "liveness_timeout_seconds": 20})  # the least allowed
        daemon = Started(path, tmp_path).start()

        def watch(seconds: float, reasons: tuple) -> None:
            """/livez 200 and /readyz 503 for one of ``reasons`` throughout."""
            start = time.monotonic()
            while time.monotonic() < start + seconds:
                assert daemon.alive(), daemon.log()
                assert daemon.get("/livez")[0] == 200, daemon.log()[-3000:]
                code, body = daemon.get("/readyz")
                assert code == 503 and body.decode().strip() in reasons, (code, body)
                time.sleep(0.25)

        def unready() -> bool:
            assert daemon.get("/livez")[0] == 200, daemon.log()[-3000:]
            return daemon.get("/readyz")[0] == 503

        watch(6, ("starting: connecting to the broker",))  # several failed attempts
        assert "cannot reach the broker" in daemon.log()

        broker.start()
        wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=60, what="ready once the broker is there")
        before = sim_records(config, 1000)
        produce(broker.bootstrap, before)
        want = expected(config, before)
        wait_status_counts(daemon, want, timeout=30)

        broker.stop()
        # Noticed at the next checkpoint's commit (about 5 s); then watched until the outage
        # is longer than the whole liveness window (at least 20 s), the loop turning.
        outage = time.monotonic()
        wait_until(unready, timeout=15, what="/readyz 503 once the broker is gone", interval=0.25)
        watch(max(5.0, 25 - (time.monotonic() - outage)), ("broker not answering",))
        broker.start()  # back empty: the topics are created again
        wait_until(lambda: daemon.get("/readyz")[0] == 200, timeout=60, what="ready after the outage")
        after = sim_records(config, 500, id_prefix="r-", seed=3)
        produce(broker.bootstrap, after)
        more = expected(config, after)
        wait_status_counts(daemon, {k: want[k] + more[k] for k in ("prediction", "label")}, timeout=30)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(20) == 0, daemon.log()
    finally:
        if daemon is not None:
            daemon.kill()
        broker.close()


# -- 4. sealed checkpoints and pending alerts -------------------------------------------------

class _Boom:
    """A pickle that, if ever loaded, creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class _State:
    def __init__(self, partition: int):
        self.partition = partition
        self.offsets = {"t": 42}


def test_seal_refuses_any_change_and_any_other_key():
    data = seal(b"key", "checkpoint s p0", {"a": 1})
    assert unseal(b"key", "checkpoint s p0", data) == {"a": 1}
    for i in range(len(data)):  # any single flipped bit, anywhere
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        with pytest.raises(Tampered):
            unseal(b"key", "checkpoint s p0", bytes(flipped))
    with pytest.raises(Tampered):
        unseal(b"key", "checkpoint s p1", data)  # another partition's file renamed
    with pytest.raises(Tampered):
        unseal(b"other", "checkpoint s p0", data)


def test_a_tampered_checkpoint_is_refused_set_aside_and_never_unpickled(tmp_path, caplog):
    checkpoints = Checkpoints(tmp_path, "scope", key=b"k" * 32)
    checkpoints.save(_State(0), logs={"t": "c/x"})
    state, logs = checkpoints.restore(0)
    assert state.offsets == {"t": 42} and logs == {"t": "c/x"}

    marker = tmp_path / "code-ran"
    path = tmp_path / "scope-p0.ckpt"
    # An attacker's pickle in place of the checkpoint: bare, and behind a forged header.
    for forged in (pickle.dumps(_Boom(marker)), seal(b"guessed key", "checkpoint scope p0", _Boom(marker))):
        path.write_bytes(forged)
        with caplog.at_level(logging.ERROR):
            assert checkpoints.restore(0) is None
        assert not marker.exists(), "a refused checkpoint was unpickled"
        assert not path.exists() and (tmp_path / "scope-p0.ckpt.corrupt").exists()
        assert "refused" in caplog.text and ("tag does not match" in caplog.text or "not a sealed" in caplog.text)

    checkpoints.save_alerts([{"id": "a1"}])
    assert checkpoints.load_alerts() == [{"id": "a1"}]
    checkpoints.alerts_path.write_bytes(pickle.dumps(_Boom(marker)))
    assert checkpoints.load_alerts() == []
    assert not marker.exists() and Path(str(checkpoints.alerts_path) + ".corrupt").exists()


def test_state_key_is_generated_private_or_taken_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFTD_TEST_STATE_KEY", raising=False)
    key, source = state_key(tmp_path, "DRIFTD_TEST_STATE_KEY")
    info = os.stat(tmp_path / "state.key")
    assert stat.S_IMODE(info.st_mode) == 0o600 and len(key) == 64 and "generated" in source
    assert state_key(tmp_path, "DRIFTD_TEST_STATE_KEY")[0] == key  # the same key next time

    os.chmod(tmp_path / "state.key", 0o644)
    with pytest.raises(StateKeyError, match="readable by it alone"):
        state_key(tmp_path, "DRIFTD_TEST_STATE_KEY")

    monkeypatch.setenv("DRIFTD_TEST_STATE_KEY", "from-the-secret-store")
    assert state_key(tmp_path, "DRIFTD_TEST_STATE_KEY") == (b"from-the-secret-store", "environment variable DRIFTD_TEST_STATE_KEY")
    # A checkpoint sealed with one key is refused with another.
    Checkpoints(tmp_path / "a", "s", key=b"one").save(_State(1))
    assert Checkpoints(tmp_path / "a", "s", key=b"two").restore(1) is None


def test_daemon_refuses_a_tampered_checkpoint_and_goes_on_from_committed_offsets(kafka_bootstrap, unique_name, tmp_path):
    # Local files only (no state topic): the file is the state. A forged state-topic
    # checkpoint is refused the same way (tests/test_statetopic.py).
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "state", state={"topic": ""})
    kafka = config["kafka"]
    first = sim_records(config, 1500)
    want = expected(config, first)
    with running_daemon(config) as daemon:
        produce_records(kafka_bootstrap, first)
        wait_until(lambda: get(daemon, "/status")[0] == 200 and
                   strict_json(get(daemon, "/status")[1]).get("models", {}).get("fraud", {}).get("processed", {}).get("label") == want["label"],
                   timeout=60, what="first stream processed")
    saved = checkpointed_offsets(config)
    assert saved == {kafka["predictions_topic"]: want["prediction"], kafka["labels_topic"]: want["label"]}

    marker = tmp_path / "code-ran"
    (ckpt,) = (tmp_path / "state").glob("*-p0.ckpt")
    ckpt.write_bytes(pickle.dumps(_Boom(marker)))
    second = sim_records(config, 300, id_prefix="q-", seed=4)
    more = expected(config, second)
    with running_daemon(config) as daemon:
        produce_records(kafka_bootstrap, second)

        def counted():
            model = strict_json(get(daemon, "/status")[1]).get("models", {}).get("fraud")
            return model and model["processed"]["label"] == more["label"] and model["processed"]["prediction"] == more["prediction"]
        # Fresh state from the committed offsets: only the new events, none of the old again.
        wait_until(counted, timeout=60, what="only the second stream counted")
    assert not marker.exists()
    assert list((tmp_path / "state").glob("*-p0.ckpt.corrupt"))


# -- 5. no secret in any log, at DEBUG -------------------------------------------------------

PASSWORD = "pw-3f9c'Q\"x\\ü-sasl"  # quotes, a backslash, non-ASCII: every escaping repr/JSON does


def test_redactor_masks_a_secret_in_every_form_a_log_line_shows_it():
    redact = Redactor([PASSWORD, ""])
    auth = b"\x00alice\x00" + PASSWORD.encode()
    lines = [
        f"password {PASSWORD}",
        repr({"sasl_plain_password": PASSWORD}),
        f"SaslAuthenticateRequest(auth_bytes={auth!r})",
        f"Send: {bytearray(auth)!r}",
        json.dumps({"p": PASSWORD}),
        json.dumps({"p": PASSWORD}, ensure_ascii=False),
        repr(PASSWORD.encode("utf-8")),
    ]
    for line in lines:
        masked = redact(line)
        assert MASK in masked, line
        assert "3f9c" not in masked and "-sasl" not in masked, (line, masked)


def test_log_records_are_redacted_with_their_traceback():
    redact = Redactor(["hunter2"])
    try:
        raise RuntimeError("login failed for hunter2")
    except RuntimeError:
        record = logging.getLogger("kafka.conn").makeRecord(
            "kafka.conn", logging.ERROR, __file__, 1, "config %r", ({"password": "hunter2"},), sys.exc_info())
    _redact_record(record, redact)
    text = logging.Formatter("%(message)s").format(record)
    assert "hunter2" not in text and text.count(MASK) == 3 and "RuntimeError" in text  # message, source line, error


def test_kafka_pythons_slow_task_warning_is_kept_for_debug_and_its_other_warnings_pass():
    """Its I/O thread's "ran for 0.117s ... blocking the event loop" measured the wait for
    the interpreter lock while the loop computed: it reached every demo and log."""
    from daemon.runtime import logs

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    selector = logging.getLogger(logs.SLOW_TASK_LOGGER)
    try:
        seen = []
        handler = logging.Handler()
        handler.emit = seen.append
        root.addHandler(handler)
        slow = ("Task %r ran for 0.117s (>0.100s threshold). It is blocking the event loop -- likely a tight sync "
                "loop inside a coroutine. Other pollers will time out.")
        for level_name in ("INFO", "DEBUG"):
            root.setLevel(level_name)  # pytest's handlers are there: configure() keeps the host's level
            logs.configure(level_name)
            selector.warning(slow % "<task>")
            selector.warning("Task %s left RUNNING after step; demoting to UNSCHEDULED", "<task>")
        messages = [r.getMessage() for r in seen]
        assert sum("blocking the event loop" in m for m in messages) == 1, messages  # at DEBUG only
        assert sum("left RUNNING" in m for m in messages) == 2, messages
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logs.configure(logging.getLevelName(level) if level else "WARNING")


def test_kafka_pythons_connection_errors_while_the_broker_is_away_are_kept_once_a_minute_per_kind():
    """An SRE trial's finding: a 30 s broker outage wrote 111 ERROR lines of kafka-python
    (each failed connection, lost connection and metadata refresh, again and again)."""
    from daemon.runtime import logs

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        seen = []
        handler = logging.Handler()
        handler.emit = seen.append
        root.addHandler(handler)
        logs.configure("INFO")
        _fresh_repeats(logs)  # what other tests' clients logged in the last minute counts not here
        for port in range(40000, 40030):
            logging.getLogger("kafka.net.manager").error("Connection failed: KafkaConnectionError: %d ECONNREFUSED", port)
            logging.getLogger("kafka.cluster").error("Metadata refresh: failed KafkaConnectionError: 111 ECONNREFUSED")
        logging.getLogger("kafka.net.manager").error("Connection failed: SaslAuthenticationFailedError: bad password")
        messages = [r.getMessage() for r in seen if r.name.startswith("kafka")]
        assert messages == ["Connection failed: KafkaConnectionError: 40000 ECONNREFUSED",
                            "Metadata refresh: failed KafkaConnectionError: 111 ECONNREFUSED",
                            "Connection failed: SaslAuthenticationFailedError: bad password"], messages
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logs.configure(logging.getLevelName(level) if level else "WARNING")
        _fresh_repeats(logs)  # the kinds seen here are not other tests'


def _fresh_repeats(logs) -> None:
    """Each connection logger's repeat filter, forgetting the kinds it has seen."""
    for name in logs.CONNECTION_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [logs._Repeats() if isinstance(f, logs._Repeats) else f for f in logger.filters]


def test_debug_logs_of_a_sasl_configured_daemon_never_show_the_password(kafka_bootstrap, unique_name, tmp_path):
    """SASL/PLAIN with the password from the environment and log_level DEBUG, against the
    real broker (which refuses SASL here: kafka-python still builds and logs its clients'
    configurations and requests). The password must not appear anywhere in the output."""
    path, config = write_config(tmp_path, kafka_bootstrap, unique_name, kafka={
        "client": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                   "sasl_plain_username": "alice", "sasl_plain_password": {"env": "DRIFTD_TEST_SASL_PASSWORD"},
                   "bootstrap_timeout_ms": 1000}})
    path.write_text(yaml.safe_dump({**config, "log_level": "DEBUG"}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DRIFTD_TEST_SASL_PASSWORD": PASSWORD}
    log_path = tmp_path / "driftd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "--config", str(path)], cwd=ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Several connection attempts: the clients are built, SASL is tried and refused.
        wait_until(lambda: log_path.read_text(errors="replace").count("cannot reach the broker") >= 2,
                   timeout=60, what="two connection attempts")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log_path.read_bytes().decode("utf-8", "replace")
    assert " DEBUG " in text, "DEBUG logging was not on"
    assert "SASL" in text or "Sasl" in text, "no SASL attempt in the log"
    for form in (PASSWORD, "3f9c"):
        assert form not in text, f"the password leaked: {[l for l in text.splitlines() if '3f9c' in l][:3]}"


# -- 6. a broker that comes back empty under the daemon -------------------------------------

def test_broker_back_empty_under_the_daemon_every_new_event_is_counted(unique_name, tmp_path):
    """The daemon holds offsets (and a checkpoint) of a log that no longer exists; the new
    log grows past those offsets before the daemon looks (it is paused meanwhile). The new
    log has other topic ids: the daemon reads it from its beginning and counts every new
    event once, instead of restoring the old offsets into it and skipping its start."""
    predictions, labels, dead = unique_name("predictions"), unique_name("labels"), unique_name("dead")
    with EmbeddedBroker(topics={predictions: 1, labels: 1, dead: 1}) as broker:
        path, config = write_config(tmp_path, broker.bootstrap, unique_name, kafka={
            "predictions_topic": predictions, "labels_topic": labels, "dead_letter_topic": dead})
        daemon = Started(path, tmp_path).start()
        try:
            before = sim_records(config, 2000)
            want = expected(config, before)
            produce(broker.bootstrap, before)
            wait_status_counts(daemon, want, timeout=30)
            wait_until(lambda: saved_offsets(config) == {predictions: want["prediction"], labels: want["label"]},
                       timeout=30, what="checkpoint of the first stream")

            daemon.signal(signal.SIGSTOP)  # it must not see the new log before it is longer
            try:
                broker.restart()  # empty; the topics are created again, with new ids
                after = sim_records(config, 5000, id_prefix="n-", seed=11)  # longer than the old log
                produce(broker.bootstrap, after)
            finally:
                daemon.signal(signal.SIGCONT)
            more = expected(config, after)
            total = {k: want[k] + more[k] for k in ("prediction", "label", "joined")}
            wait_status_counts(daemon, total, timeout=60)
            time.sleep(1.5)  # a count done twice would show by now
            assert {k: status_counts(daemon)[k] for k in total} == total
            assert "is another log now" in daemon.log(), daemon.log()[-3000:]
            assert daemon.status()["partitions"]["0"] == {predictions: more["prediction"], labels: more["label"]}
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(20) == 0, daemon.log()
        finally:
            daemon.kill()


def test_a_secret_too_short_to_mask_is_left_in_the_lines_and_said_once(monkeypatch, caplog):
    """A new user's finding: a webhook secret of one letter, "s", was masked in every line:
    "/metric***, /***tatu***" (every s of every line, and the secret shown all the same)."""
    from daemon.runtime import logs

    assert Redactor(["s", "longsecret"])("HTTP on 0.0.0.0: /metrics, /status; key longsecret") == \
        f"HTTP on 0.0.0.0: /metrics, /status; key {MASK}"
    monkeypatch.setattr(logs, "_secrets", [])  # this process's secrets, as a fresh daemon has them
    monkeypatch.setattr(logs, "_redact", logs._redact)
    with caplog.at_level(logging.WARNING, logger="driftd"):
        logs.configure(logging.getLevelName(logging.getLogger().getEffectiveLevel()), secrets=["s", "longsecret"])
    said = [r.getMessage() for r in caplog.records if "not masked" in r.getMessage()]
    assert said == [f"1 secret(s) shorter than {logs.MIN_MASKED} characters are not masked in the logs (masking them "
                    "would mangle every line and show them all the same): use longer ones (openssl rand -hex 32)"]
