"""A stop asked while a Kafka client is being made (the broker down at start-up) returns
at once, not after kafka-python's bootstrap timeout.

A new user's finding: SIGTERM 8 s after `driftd run` with the broker unreachable took
29.6 s to stop (the admin client creating topics waited its 30 s bootstrap timeout), as
long as many orchestrators' grace period before they kill. Real parts: the daemon in a
thread, kafka-python trying a loopback port nothing listens on.
"""

from __future__ import annotations

import socket
import threading
import time

from daemon.config import from_dict
from daemon.kafka import connecting
from daemon.runtime.service import Daemon


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_stop_during_a_connection_attempt_returns_without_waiting_for_the_bootstrap_timeout(tmp_path):
    # A bootstrap timeout of 10 minutes: before, the stop waited for all of it.
    config = from_dict({"kafka": {"bootstrap_servers": f"127.0.0.1:{_free_port()}", "create_topics": 1,
                                  "client": {"bootstrap_timeout_ms": 600_000}},
                        "http": {"port": 0}, "state": {"dir": str(tmp_path)}, "models": {"m": {}}})
    daemon = Daemon(config)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    time.sleep(3)  # well into the first attempt
    assert thread.is_alive()
    daemon.stop()
    thread.join(120)
    assert not thread.is_alive(), "the daemon waited for kafka-python's bootstrap timeout"


def test_a_client_made_after_its_caller_gave_up_is_closed():
    stop, release, closed = threading.Event(), threading.Event(), threading.Event()

    class Client:
        def close(self):
            closed.set()

    def make():
        release.wait(10)
        return Client(), "bootstrap"

    stop.set()
    assert connecting.attempt(make, stop, poll_seconds=0.01) is None
    release.set()
    assert closed.wait(10)


def test_an_attempts_error_is_raised_to_its_caller():
    def make():
        raise ValueError("no broker")

    try:
        connecting.attempt(make, threading.Event())
    except ValueError as e:
        assert str(e) == "no broker"
    else:
        raise AssertionError("the error was not raised")


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (its SigCgt mask in /proc)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught >> (signum - 1) & 1)


def test_sigterm_while_driftd_run_loads_is_a_clean_exit_before_anything_starts(tmp_path):
    """A trial's finding: SIGTERM in the first ~2 s of ``driftd run`` (its modules loading,
    its configuration checked) killed it with status 143, as if it had crashed. A stop
    asked then is now a clean exit (0), and nothing starts (not a line logged)."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "driftd.yaml"
    path.write_text(f"kafka: {{bootstrap_servers: '127.0.0.1:{_free_port()}'}}\n"
                    f"http: {{port: 0}}\nstate: {{dir: '{tmp_path}'}}\nmodels: {{m: {{}}}}\n")
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _catches(process.pid, signal.SIGTERM):  # its first handler: the stop is heard from here on
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert err == ""


def test_the_command_hears_a_stop_before_it_loads_kafka_python():
    """The second trial's finding: the first ~0.25 s of ``driftd run`` (importing the
    configuration, which loads kafka-python) still died of SIGTERM (143). The command's
    module loads neither; ``run`` installs its handler first."""
    import subprocess
    import sys

    code = "import sys, daemon.cli; print(sorted(m for m in ('kafka', 'daemon.config', 'numpy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded


def test_settings_kafka_python_refuses_stop_the_daemon_as_a_configuration_error(tmp_path):
    """A trial's finding: kafka-python refused the consumer's settings (a heartbeat above
    the session timeout) and driftd logged "cannot reach the broker" and retried for ever.
    Its refusal is now the configuration's error (driftd run: status 2, the reason)."""
    import pytest
    from kafka.errors import KafkaConfigurationError

    from daemon.config import ConfigError

    daemon = Daemon(from_dict({"http": {"port": 0}, "state": {"dir": str(tmp_path)}, "models": {"m": {}}}))

    def refused():
        raise KafkaConfigurationError("Heartbeat interval must be lower than the session timeout")

    with pytest.raises(ConfigError, match="kafka-python refuses the consumer's settings: .*Heartbeat interval"):
        daemon._connect("consumer", refused)
