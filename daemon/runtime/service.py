"""The daemon: Kafka in, detectors, metrics and alerts out, restart-safe.

One event's way: ``poll`` hands a batch of records per partition → the partition's state
decodes and checks each (bad ones go to the dead-letter topic), joins labels to
predictions and feeds the model's detectors (:mod:`daemon.stream.partition`) → after the batch,
detectors that took a new decision are shown to the alert episodes, whose firing and
resolve alerts go to the sender's background threads (:mod:`daemon.alerting.sender`) → Prometheus
reads the state when it scrapes (:mod:`daemon.web.metrics`). Every
``checkpoint_interval_seconds`` the dead-letter sends are confirmed, each partition's
state is written with its offsets to the state topic (:mod:`daemon.kafka.statetopic`)
and to the local cache file (:mod:`daemon.kafka.checkpoint`), then the offsets are
committed to Kafka (:mod:`daemon.runtime.checkpointing`). A partition assigned to this replica stays paused until its state is
restored from the state topic and its offsets sought (:mod:`daemon.runtime.handoff`).
"""

from __future__ import annotations

import gc
import logging
import math
from collections import Counter
import threading
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaConfigurationError, KafkaError
from kafka.structs import TopicPartition

from learners.registry import Registry

from daemon.alerting.sender import OUTCOMES as ALERT_OUTCOMES
from daemon import federation
from daemon.alerting.sender import AlertSender
from daemon.kafka import connecting, lag, leaving, pausing
from daemon.kafka.checkpoint import Checkpoints
from daemon.kafka.statetopic import Changelog
from daemon.runtime.calibrator import Calibrator
from daemon.runtime import allocator, blas, wiring
from daemon.runtime.checkpointing import BROKER_WAIT_SECONDS, Checkpointing
from daemon.runtime.handoff import PartitionHandoff, Rebalance
from daemon.config import Config, ConfigError
from daemon.kafka.deadletter import DeadLetters
from daemon.web.http import HttpServer
from daemon.web.status import configured_models, partition_models
from daemon.stream.learning import Publisher
from daemon.web.metrics import LOCK_WAIT_SECONDS, Metrics
from daemon.stream.partition import PartitionState

log = logging.getLogger("driftd")

#: While the broker is taken for down, how often the loop asks it whether it is back
#: (:meth:`Daemon._probe_broker`), and how long it waits for the answer. With the clients'
#: reconnect backoff this bounds how long /readyz lags behind a broker that came back
#: (README "Probes"); short, as the loop has nothing else to do while the broker is away.
BROKER_PROBE_SECONDS = 1.0
BROKER_PROBE_WAIT_SECONDS = 2.0


class Daemon(Checkpointing, PartitionHandoff):
    """``run()`` blocks until :meth:`stop`; construct, run in a thread in tests."""

    def __init__(self, config: Config):
        self.config = config
        self.lock = threading.Lock()
        self.states: dict[int, PartitionState] = {}
        self.metrics = Metrics(self.states, self.lock, config.metrics)
        self.http_port: int | None = None
        self.bootstrap: str | None = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._last_loop = time.monotonic()
        self._broker_ok = False
        self._broker_failures = 0  # (since the start: before the first, /readyz says it is joining)
        self._restoring = False
        self._connect_grace = 0.0
        self._probe_at = 0.0  # the next broker probe while it is taken for down (_probe_broker)
        self._logs: dict[int, dict] = {}  # partition -> {topic: identity of the log its offset is in}
        self._unverified: set = set()  # assigned, paused until fresh metadata names their logs
        self._to_restore: set = set()  # partition numbers assigned, paused until their state is restored
        self._labels_paused: set = set()  # labels partitions paused while their predictions catch up
        # partition -> (end offset of its predictions topic, its labels read when asked): see _pace_labels
        self._predictions_ends: dict[int, tuple[int, int]] = {}
        self._refused: dict[int, int] = {}  # partition -> checkpoints refused (another key): waiting
        self._layout_problem: str | None = None  # the input topics' partition counts differ (handoff.py)
        self._restore_retry_at = 0.0
        self._generation = -1  # the consumer group generation of the last assignment
        self.state_writer = self.state_reader = self._state_producer = None
        self._changelogs: dict[int, Changelog] = {}
        self._metadata_wait = None
        self._embedded = None
        self._consumer = None
        self._producer = None
        self.alerts = None
        # /status while the loop holds the lock: the last one answered (stale: true); before
        # any, every configured model waiting, as a status without events says.
        self._last_status: dict = {"ready": False, "partitions": {}, "dead_letters": {}, "pending_alerts": 0,
                                   "calibrations_pending": 0, "models": configured_models(config, {})}
        self._batch_failed = False
        self.publisher = None
        self.federation = None  # model updates shared with other deployments (daemon.federation)
        self._publish_retry_at = 0.0
        self.metrics.ready.set_function(lambda: float(self.health()[1]))
        self.calibrator = Calibrator()  # thresholds off the loop (daemon.runtime.calibrator)
        self.metrics.calibration_pending.set_function(lambda: self.calibrator.pending)

    # -- life cycle -------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def wait_started(self, timeout: float) -> bool:
        return self._started.wait(timeout)

    def run(self) -> None:
        kafka = self.config.kafka
        allocator.tune()  # many models' state: large temporaries must not pin the heap
        blas.limit_threads()  # small matrices: a second BLAS thread only spins
        wiring.check_codecs()
        # HTTP first: probes and metrics answer (live, not ready) while the broker is being
        # reached; a port that cannot be bound stops the start here (http.ListenError).
        http = HttpServer(self.config.http.host, self.config.http.port, self.metrics.registry, self.health, self.status)
        http.start()
        self.http_port = http.port
        log.info("HTTP on %s:%d: /metrics, /livez, /readyz, /status", self.config.http.host, self.http_port)
        try:
            # Creating topics needs the broker too: retried like the clients below.
            reached = self._connect("topics", lambda: wiring.bootstrap(self.config))
            if reached is None:
                return
            self.bootstrap, self._embedded = reached
            client = wiring.client_settings(kafka)
            self._producer = self._connect("producer", lambda: KafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, max_block_ms=5000,
                # Not idempotent: an idempotent producer never recovers from a broker that
                # lost its producer ids (a restarted broker), and dead letters carry their
                # source offset for receivers to de-duplicate anyway.
                enable_idempotence=False, retries=5, **client))
            if self._producer is None:
                return
            self._set_up_outputs()
            self.federation = federation.from_config(self.config, self.metrics)
            if self.federation is not None:
                self.federation.start()
            self._consumer = self._connect("consumer", lambda: KafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=kafka.group_id, enable_auto_commit=False,
                auto_offset_reset="earliest", partition_assignment_strategy=[RangePartitionAssignor],
                max_poll_records=kafka.poll_max_records, fetch_max_bytes=64 * 1024 * 1024,
                fetch_max_wait_ms=kafka.fetch_max_wait_ms, max_partition_fetch_bytes=8 * 1024 * 1024,
                session_timeout_ms=kafka.session_timeout_ms,
                heartbeat_interval_ms=max(100, kafka.session_timeout_ms // 10), request_timeout_ms=30_000, **client))
            if self._consumer is None:
                return
            self._consumer.subscribe([kafka.predictions_topic, kafka.labels_topic], listener=Rebalance(self))
            log.info("driftd consuming %s and %s from %s; metrics on port %d",
                     kafka.predictions_topic, kafka.labels_topic, self.bootstrap, self.http_port)
            # Imported modules' objects live as long as the process: keep them out of the
            # cyclic collector's full passes (measured: ~10% of wall time otherwise).
            gc.freeze()
            self.calibrator.start()
            self._started.set()
            self._connect_grace = 0.0
            self._loop()
        finally:
            self._shutdown(http)

    def _connect(self, what: str, make):
        """Build a Kafka client, retrying with backoff while the broker cannot be reached
        (a pod may start before Kafka answers); None if stopped meanwhile."""
        delay = 0.5
        client = self.config.kafka.client
        # One attempt may wait kafka-python's bootstrap timeout (30 s by default) and a
        # request's (30 s): /livez allows for that, so a broker that does not answer never makes
        # driftd look stuck (a restart would not bring the broker back).
        self._connect_grace = (client.get("bootstrap_timeout_ms", 30_000) + 30_000) / 1000
        while not self._stop.is_set():
            self._last_loop = time.monotonic()
            try:
                # In a thread of its own: a stop asked meanwhile must not wait for
                # kafka-python's bootstrap timeout (daemon.kafka.connecting).
                return connecting.attempt(make, self._stop)
            except KafkaConfigurationError as e:
                # kafka-python refused its settings: no retry would change them.
                raise ConfigError("kafka", f"kafka-python refuses the {what}'s settings: {e}") from None
            except KafkaError as e:
                self._broker_failed(f"connect_{what}", e)
                log.error("cannot reach the broker for the %s (%s); retrying in %.0f s", what, e, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.kafka.reconnect_backoff_max_seconds)
        return None

    def _set_up_outputs(self) -> None:
        """Dead letters, checkpoints, alert sinks and the model registry."""
        kafka = self.config.kafka
        self.dead_letters = DeadLetters(
            self._producer, kafka.dead_letter_topic, confirm_timeout=BROKER_WAIT_SECONDS,
            max_bytes=kafka.dead_letter_max_bytes, on_failure=lambda kind: self.metrics.kafka_errors.labels(kind).inc())
        scope = wiring.checkpoint_scope(kafka)
        self.checkpoints = Checkpoints(self.config.state.dir, scope, key_env=self.config.state.key_env)
        if self.config.state.topic:
            self._set_up_state_topic(scope)
        sinks = wiring.alert_sinks(self.config, self._producer)
        pending, delivery = self.checkpoints.load_pending()
        self.alerts = AlertSender(
            sinks, on_outcome=lambda sink, outcome: self.metrics.alerts_sent.labels(sink, outcome).inc(),
            pending=pending, delivery=delivery,
            give_up_after_seconds=self.config.alerts.give_up_after_seconds,
            initial_backoff_seconds=self.config.alerts.retry_initial_seconds,
            max_backoff_seconds=self.config.alerts.retry_max_seconds)
        self.metrics.alert_sender = self.alerts
        for sink in sinks:  # every series from the start, so rate() sees the first failure
            for outcome in ALERT_OUTCOMES:
                self.metrics.alerts_sent.labels(sink.name, outcome)
        if self.config.has_learners:
            registry = self.config.registry
            self.publisher = Publisher(Registry.from_env(registry.dir, registry.key_env, registry.keep),
                                       self._producer, registry.model_updated_topic, self.alerts)

    def _loop(self) -> None:
        kafka = self.config.kafka
        next_checkpoint = time.monotonic() + self.config.state.checkpoint_interval_seconds
        while not self._stop.is_set():
            self._last_loop = time.monotonic()
            try:
                batch = self._consumer.poll(timeout_ms=kafka.poll_timeout_ms, max_records=kafka.poll_max_records)
            except KafkaError as e:
                self._broker_failed("poll", e)
                self._stop.wait(1.0)
                continue
            self._probe_broker()
            self._restore_assigned()
            self._calibrate()  # at a batch boundary, also without input
            if batch:
                with self.metrics.batch_seconds.time(), self.lock:
                    try:
                        self._process(batch)
                    except BaseException as e:
                        # Records and models are contained (partition.py): this is a failure
                        # around them. Half a batch is in the state: it is never checkpointed,
                        # on any path (see _checkpoint). The daemon stops; restarted, it
                        # resumes from the last good checkpoint.
                        self._batch_failed = True
                        log.critical("batch failed (%s: %s): stopping without a checkpoint; a restart resumes "
                                     "from the last one", type(e).__name__, e)
                        raise
            self._publish_promotions()  # also without new input: a failed publish is retried
            if self.federation is not None:
                with self.lock:
                    self.federation.after_batch(self.states)
            self._update_lag()
            self._pace_labels()
            if time.monotonic() >= next_checkpoint:
                self._checkpoint()
                next_checkpoint = time.monotonic() + self.config.state.checkpoint_interval_seconds

    def _process(self, batch: dict) -> None:
        predictions = self.config.kafka.predictions_topic
        touched = set()
        for tp, records in batch.items():
            state = self.states.get(tp.partition)
            if state is None or not records:
                continue  # revoked during this poll
            if self._follow_log(state, tp):
                continue  # records of another log: it is read again from its beginning
            self.metrics.batch_records.labels(tp.topic).inc(len(records))
            if tp.topic == predictions:
                state.handle_predictions(records, self.dead_letters.send)
            else:
                state.handle_labels(records, self.dead_letters.send)
            state.advance(tp.topic, records[0].offset, records[-1].offset)
            touched.add(state)
        for state in touched:
            self._send_alerts(state.partition, state.finish_batch())

    def _send_alerts(self, partition: int, alerts) -> None:
        for alert in alerts:
            log.warning("alert %s %s/%s/%s (id %s)", alert.status, alert.model, alert.detector, alert.feature, alert.id,
                        extra={"model": alert.model, "partition": partition})
            self.alerts.send(alert)

    def _pace_labels(self) -> None:
        """Read a partition's predictions first while its labels wait for them: pause its
        labels while a model's label order is full (see
        :attr:`daemon.stream.partition.PartitionState.labels_full`), resume them when it has
        room. A backlog read with the labels ahead (a catch-up) then gives the label side
        what a replay gives it.

        A label waiting in a full order may stop holding its place only once every
        prediction produced before it was read: when an order fills, the predictions
        topic's end offset is asked of the broker (once), with the labels read by then;
        when the predictions have been read to that offset, those labels may stop holding
        their places (:attr:`~daemon.stream.partition.PartitionState.predictions_read_below`).
        The highwater of the consumer's last fetch was not enough: it can be older than the
        labels read since (a producer writing both topics as driftd reads them), and
        labels whose predictions were still on their way lost their places, so the
        learners' order depended on timing."""
        kafka = self.config.kafka
        assigned = self._consumer.assignment()
        self._labels_paused &= assigned
        with self.lock:
            to_ask = []
            for partition in self._predictions_ends.keys() - self.states.keys():
                del self._predictions_ends[partition]  # revoked
            for partition, state in self.states.items():
                if TopicPartition(kafka.predictions_topic, partition) not in assigned:
                    state.predictions_read_below = math.inf  # a partition number the predictions topic lacks
                    continue
                if not state.labels_full:
                    self._predictions_ends.pop(partition, None)
                    continue
                target = self._predictions_ends.get(partition)
                if target is None:
                    to_ask.append((partition, state.offsets.get(kafka.labels_topic, 0)))
                elif state.offsets.get(kafka.predictions_topic, 0) >= target[0]:
                    self._read_below(partition, state, target[1])
        for partition, labels_read in to_ask:
            predictions = TopicPartition(kafka.predictions_topic, partition)
            try:  # (outside the lock: a request to the broker)
                end = self._consumer.end_offsets([predictions])[predictions]
            except (KafkaError, KeyError) as e:
                log.debug("partition %d: end offset of %s not known (%s); asked again", partition,
                          kafka.predictions_topic, e)
                continue
            with self.lock:
                state = self.states.get(partition)
                if state is None:
                    continue  # revoked meanwhile
                self._predictions_ends[partition] = (end, labels_read)
                if state.offsets.get(kafka.predictions_topic, 0) >= end:
                    self._read_below(partition, state, labels_read)
        with self.lock:
            for partition, state in self.states.items():
                labels = TopicPartition(kafka.labels_topic, partition)
                if labels not in assigned:
                    continue
                if state.labels_full and labels not in self._labels_paused:
                    pausing.pause(self._consumer, labels)
                    self._labels_paused.add(labels)
                elif not state.labels_full and labels in self._labels_paused:
                    self._labels_paused.discard(labels)
                    if labels not in self._unverified and partition not in self._to_restore:
                        pausing.resume(self._consumer, labels)

    def _read_below(self, partition: int, state, labels_read: int) -> None:
        """Every prediction produced before the labels at offsets below ``labels_read`` was
        read: those still waiting may stop holding their places (see :meth:`_pace_labels`)."""
        self._predictions_ends.pop(partition, None)
        state.predictions_read_below = max(state.predictions_read_below, labels_read)
        state.release_overflowed(self.dead_letters.send)
        self._send_alerts(partition, state.alerts())

    def _calibrate(self) -> None:
        """Hand finished threshold calibrations to their models (held tests are then
        decided, in order: their alerts go out now), and ask for those newly needed. The
        loop never waits for one (see daemon.runtime.calibrator)."""
        with self.lock:
            for (partition, model, build, _), job, thresholds, error in self.calibrator.done():
                state = self.states.get(partition)
                if state is None:
                    continue  # revoked meanwhile: its new owner asks again
                state.apply_calibration((model, build), job, thresholds, error)
                self._send_alerts(partition, state.alerts())
            for state in self.states.values():
                for (model, build), job in state.calibration_jobs(new_only=True):
                    self.calibrator.submit((state.partition, model, build, job.column), job)

    def _publish_promotions(self) -> None:
        """Publish what the gate promoted in the last batch (at least once: a promotion
        leaves the pending list only once published, and the list is checkpointed)."""
        if self.publisher is None or time.monotonic() < self._publish_retry_at:
            return
        with self.lock:
            pending = [(p, model) for s in self.states.values() for model in s.models.values() for p in model.pending_promotions]
        for (promotion, when), model in pending:
            try:
                self.publisher.publish(model.name, promotion, when)
            except Exception as e:  # noqa: BLE001 - a registry or broker problem: retried next batch
                log.error("model %s: publishing %s failed (%s); will retry", model.name, promotion.id, e,
                          extra={"model": model.name})
                self.metrics.kafka_errors.labels("publish").inc()
                self._publish_retry_at = time.monotonic() + BROKER_WAIT_SECONDS
                continue
            with self.lock:
                model.pending_promotions.remove((promotion, when))

    def _broker_failed(self, operation: str, error: Exception) -> None:
        self._broker_failures += 1
        self.metrics.kafka_errors.labels(operation).inc()
        if self._broker_ok:
            log.error("broker unavailable (%s: %s); retrying with backoff", operation, error)
        self._broker_ok = False

    def _broker_answered(self) -> None:
        if not self._broker_ok:
            log.info("broker answers")
        self._broker_ok = True

    def _probe_broker(self) -> None:
        """While the broker is taken for down (after a failure: a start says it is joining
        until the group answers), ask its group coordinator something cheap
        every :data:`BROKER_PROBE_SECONDS`, so that /readyz turns back as soon as it
        answers. Before, only the next successful checkpoint (every
        ``state.checkpoint_interval_seconds``) or a new assignment said so.

        Not hammering: one request at most every BROKER_PROBE_SECONDS, through the group
        consumer's connection, whose reconnect backoff (``kafka.reconnect_backoff_max_seconds``)
        bounds the connection attempts to a broker that is down. A failed probe is not
        counted as a Kafka error (the failure that made the broker taken for down was):
        counted, the rate of errors would be the probe's rate."""
        if self._broker_ok or not self._broker_failures or time.monotonic() < self._probe_at:
            return
        try:
            self._consumer.committed(TopicPartition(self.config.kafka.predictions_topic, 0),
                                     timeout_ms=int(BROKER_PROBE_WAIT_SECONDS * 1000))
        except KafkaError as e:
            log.debug("broker probe: no answer (%s)", e)
        else:
            self._broker_answered()
        self._probe_at = time.monotonic() + BROKER_PROBE_SECONDS

    def _update_lag(self) -> None:
        self._verify_logs()
        with self.lock:
            positions = [(s, topic, offset) for s in self.states.values() for topic, offset in s.offsets.items()]
        assigned = None
        for state, topic, offset in positions:
            tp = TopicPartition(topic, state.partition)
            # highwater() is the last fetch response's high watermark: no extra request.
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            if high < offset:
                # The log ends before the offset we hold: the topic was re-created or
                # truncated (e.g. a broker that came back empty). Kafka answers such a
                # fetch with OFFSET_OUT_OF_RANGE and the consumer resets to the earliest
                # offset; Tansu answers with no records and no error, so the consumer
                # waited at the old offset for ever and then silently skipped every record
                # below it. Do what Kafka would: read the new log from its beginning.
                if assigned is None:
                    assigned = self._consumer.assignment()
                if tp in assigned:
                    log.warning("%s[%d] ends at %d, before offset %d: re-created or truncated; "
                                "reading it from the beginning", topic, state.partition, high, offset)
                    with self.lock:
                        if state.offsets.get(topic) == offset:
                            self._reread(state, tp)
                continue
        # Lag from the broker's view (daemon.kafka.lag), computed when Prometheus scrapes:
        # every owned partition of both topics with the offset processed up to (None: none
        # read yet), the consumer's high watermarks, and a probe of its own for the ends
        # the consumer leaves standing (while it works through a fetch, or is paused).
        # A partition held back until its state comes counts from the group's committed
        # offset (where that state stopped): nobody processes it meanwhile, and the lag
        # rules must see that.
        topics = (self.config.kafka.predictions_topic, self.config.kafka.labels_topic)
        with self.lock:
            processed = {TopicPartition(t, p): lag.COMMITTED for p in self._to_restore for t in topics}
            processed.update({TopicPartition(t, p): s.offsets.get(t) for p, s in self.states.items() for t in topics})
        self.metrics.lag.follow(self._consumer, processed, self.bootstrap,
                                lambda: wiring.client_settings(self.config.kafka), self._stop,
                                group_id=self.config.kafka.group_id)

    # -- health -----------------------------------------------------------------------------
    def health(self) -> tuple[bool, bool, str]:
        """(live, ready, reason). Live while the loop goes round (or a start-up attempt to
        reach the broker is under way): a broker that does not answer never fails /livez,
        it makes /readyz say so. See README "Probes"."""
        # One turn may wait for an absent broker, each wait bounded by BROKER_WAIT_SECONDS:
        # dead-letter confirmation, commit (5 s each) and a promotion's publish (10 s).
        window = max(self.config.http.liveness_timeout_seconds, 5 * self.config.kafka.poll_timeout_ms / 1000,
                     4 * BROKER_WAIT_SECONDS)
        live = time.monotonic() - self._last_loop < window + self._connect_grace
        if not self._started.is_set():
            return live, False, "starting: connecting to the broker"
        if not self._broker_ok:
            # Before the group's first answer it is joining, not failing (a broker that
            # fails later turns this back to False with the reason logged).
            return live, False, ("broker not answering" if self._broker_failures else
                                 "starting: joining the consumer group")
        if self._restoring:
            return live, False, "restoring state"
        if self._refused:
            return live, False, (f"partitions {sorted(self._refused)}: their state in the state topic is sealed with "
                                 f"another key; set DRIFTD_STATE_KEY to the group's key (see the log)")
        if self._to_restore:
            return live, False, "restoring state from the state topic"
        if self._unverified:
            return live, False, "checking the topics' identity"
        if self._layout_problem:
            return live, False, self._layout_problem
        if not self.states:
            return live, False, "no partitions assigned"
        return live, True, "ok"

    def status(self) -> dict:
        if not self.lock.acquire(timeout=LOCK_WAIT_SECONDS):
            return {**self._last_status, "stale": True}
        try:
            self._last_status = self._status()
        finally:
            self.lock.release()
        return self._last_status

    def _status(self) -> dict:
        states = list(self.states.values())
        models: dict = {}
        for state in states:
            for name, model in partition_models(state).items():
                if name in models:  # a model on several partitions (events not keyed by model)
                    _add_counts(models[name], model)
                else:
                    models[name] = model
        return {
            "as_of": time.time(),  # (a stale answer is this one again: its age shows)
            "ready": self.health()[1],
            # Copies: a stale answer must not show today's offsets beside older counts.
            "partitions": {s.partition: dict(s.offsets) for s in states},
            "dead_letters": dict(sum((s.dead_letters for s in states), start=Counter())),
            "pending_alerts": self.alerts.pending_count() if self.alerts else 0,
            "calibrations_pending": self.calibrator.pending,
            # Partitions whose labels wait while their predictions catch up (_pace_labels).
            "labels_paused": sorted(tp.partition for tp in self._labels_paused),
            "models": configured_models(self.config, models),
        }

    # -- set-up and tear-down ---------------------------------------------------------------
    def _shutdown(self, http) -> None:
        log.info("stopping: final checkpoint")
        try:
            if self._consumer is not None:
                if not self._batch_failed:
                    self._checkpoint()
                # Leaves the group (partitions move at once), except where leaving could wedge
                # the embedded broker's group: a `driftd broker` started apart is told by its
                # cluster id (daemon.kafka.leaving).
                leaving.close(self._consumer, embedded=True if self._embedded is not None else None, autocommit=False)
        except Exception as e:  # noqa: BLE001 - shut down the rest whatever happened
            log.error("final checkpoint failed: %s", e)
        if self.federation is not None:
            self.federation.close()
        if self.alerts is not None:
            self.alerts.close(timeout=3.0)
            with self.lock:
                self._save_pending_alerts()
        if self._producer is not None:
            try:
                self._producer.close(timeout=3)
            except KafkaError as e:  # the checkpoint is written; a stuck send must not fail the exit
                log.error("producer did not close cleanly: %s", e)
        if self.state_reader is not None:
            self.state_reader.close()
        if self._state_producer is not None:
            try:
                self._state_producer.close(timeout=3)
            except KafkaError as e:
                log.error("state producer did not close cleanly: %s", e)
        self.calibrator.close()
        http.stop()
        if self._embedded is not None:
            self._embedded.close()


def _add_counts(total: dict, more: dict) -> None:
    for section in ("processed", "join"):
        for key, value in more[section].items():
            total[section][key] += value
