"""One deployment's side of a federation: publish updates, merge globals, and aggregate
when elected. See daemon/federation/__init__.py for the protocol.

:class:`Federation` is driven by the daemon's loop: ``after_batch(states)`` once per loop
turn (also without input, so that rounds time out). All its Kafka calls but the election's
are made from that call; the election runs in a thread of its own, so that the group's
heartbeats and rebalances never wait for a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from daemon.kafka import leaving
from learners import federated as fed

from .messages import Rejected, decode, encode

log = logging.getLogger("driftd.federation.client")


class FederationError(RuntimeError):
    """The federation cannot run as configured (e.g. its topic has more than one partition)."""


class _Slot:
    """One federated learner of one model: the participant's and the aggregator's state."""

    def __init__(self):
        self.round = 0                       # the last global round applied
        self.base = {"weights": {}, "intercept": 0.0}  # its parameters
        self.counted: dict = {}              # partition -> n_learned already in a global
        self.sent: dict = {}                 # partition -> (params, n_learned) at the last publication
        self.pulled: dict = {}               # partition -> n_learned at the last proximal pull
        self.published_at: float | None = None
        self.last_n_published = 0            # events since the last publication are counted from here
        self.pending: dict = {}              # aggregator: participant -> (n, delta) for round + 1
        self.opened: float | None = None     # when the first update of round + 1 arrived
        self.round_rejected: Counter = Counter()
        self.closing_since: float | None = None  # a global for round + 1 was sent, not yet read back


class Federation:
    """A participant of federation ``settings.group`` (a :class:`daemon.config.FederationConfig`).

    ``slots``: the ``(model, learner)`` pairs federated here; ``key``: the HMAC key (bytes)
    every participant shares; ``consumer``: extra kafka-python consumer settings (session
    timeout, ...); ``client``: TLS/SASL settings; ``metrics``: a
    :class:`daemon.web.metrics.Metrics` or None. Counters for tests and /status:
    ``rejected`` (by reason), ``rounds`` (globals applied, their bodies), ``published``.
    """

    def __init__(self, settings, slots, key: bytes, bootstrap: str, consumer: dict | None = None,
                 client: dict | None = None, metrics=None, clock=time.monotonic, create_topics: bool = True):
        self.settings = settings
        self.name = settings.group
        self.me = settings.participant
        self.key = key
        self.bootstrap = bootstrap
        self.slots = {tuple(s): _Slot() for s in slots}
        self._consumer_settings = dict(consumer or {})
        self._client = dict(client or {})
        self.metrics = metrics
        self.clock = clock
        self._create = create_topics
        self.rejected: Counter = Counter()
        self.rounds: list[dict] = []
        self.published = 0
        self.is_aggregator = False
        self._stop = threading.Event()
        self._elector: threading.Thread | None = None
        self._producer = self._reader = None
        self._catching_up = False

    # -- life -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Create the two one-partition topics if missing, connect, read the topic from its
        beginning (the last global of each learner is where this participant starts) and
        join the election."""
        s = self.settings
        if self._create:
            from daemon.kafka.embedded_broker import create_topics

            create_topics(self.bootstrap, {s.topic: 1, s.election_topic: 1}, **self._client)
        self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0, **self._client)
        self._reader = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                     fetch_max_wait_ms=self._consumer_settings.get("fetch_max_wait_ms", 100),
                                     **self._client)
        partitions = self._reader.partitions_for_topic(s.topic) or {0}
        if partitions != {0}:
            raise FederationError(f"federation.topic {s.topic!r} has {len(partitions)} partitions; it needs exactly 1 "
                                  "(every participant must read the rounds in the same order)")
        tp = TopicPartition(s.topic, 0)
        self._reader.assign([tp])
        self._reader.seek_to_beginning()
        # Catch up before touching any learner: the last global of each learner is where this
        # participant starts (a restart: its checkpointed learners are reset to it, see _adopt),
        # and the history's refusals were counted when they happened.
        end = self._reader.end_offsets([tp])[tp]
        self._catching_up = True
        try:
            while self._reader.position(tp) < end:
                self._read({}, self.clock())
        finally:
            self._catching_up = False
        self._elector = threading.Thread(target=self._elect, name=f"federation-election-{self.me}", daemon=True)
        self._elector.start()

    def close(self) -> None:
        """Leave the election group (another participant takes over aggregating; on the
        embedded broker perhaps only after the session timeout, see daemon.kafka.leaving)
        and disconnect."""
        self._stop.set()
        if self._elector is not None:
            self._elector.join(timeout=10)
        for client in (self._reader, self._producer):
            if client is not None:
                client.close()

    def _elect(self) -> None:
        """The member of group ``settings.group`` given partition 0 of the one-partition
        election topic aggregates: the consumer-group protocol elects it, and elects
        another when it leaves or stops heartbeating (session timeout)."""
        settings = {k: v for k, v in self._consumer_settings.items() if k != "fetch_max_wait_ms"}
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.settings.group,
                                 enable_auto_commit=False, **settings, **self._client)
        consumer.subscribe([self.settings.election_topic])
        try:
            while not self._stop.is_set():
                try:
                    consumer.poll(timeout_ms=200)
                    leader = any(tp.partition == 0 for tp in consumer.assignment())
                except Exception as e:  # noqa: BLE001 - a broker problem: not the aggregator until it passes
                    log.warning("federation election: %s", e)
                    leader = False
                    self._stop.wait(1.0)
                if leader != self.is_aggregator:
                    log.info("federation %s: %s %s the aggregator", self.name, self.me, "is now" if leader else "is no longer")
                    self.is_aggregator = leader
                    if self.metrics is not None:
                        self.metrics.federation_aggregator.labels(self.name).set(1 if leader else 0)
        finally:
            self.is_aggregator = False
            leaving.close(consumer)  # never wedges the embedded broker's election group

    # -- each loop turn -----------------------------------------------------------------------
    def after_batch(self, states: dict, now: float | None = None) -> None:
        """One turn: ``states`` is the daemon's ``{partition: PartitionState}``; the
        federated learners are found in each partition's models' lifecycles."""
        learners = {}
        for partition, state in states.items():
            for model, pipeline in getattr(state, "models", {}).items():
                lifecycle = getattr(pipeline, "lifecycle", None)
                for name, learner in (lifecycle.learners.items() if lifecycle is not None else ()):
                    if (model, name) in self.slots:
                        learners[(partition, model, name)] = learner
        try:
            self.step(learners, now)
        except KafkaError as e:  # the shared cluster is away: learning goes on locally, rounds resume later
            log.error("federation %s: %s; retrying next turn", self.name, e)
            if self.metrics is not None:
                self.metrics.kafka_errors.labels("federation").inc()

    def step(self, learners: dict, now: float | None = None) -> None:
        """One turn over ``learners``: ``{(partition, model, learner name): Learner}``
        (:class:`learners.progressive.Learner`). Reads the topic, merges new globals,
        applies the proximal term, publishes due updates, and closes due rounds if this
        participant is the aggregator."""
        now = self.clock() if now is None else now
        by_slot: dict = {}
        for (partition, model, name), learner in learners.items():
            by_slot.setdefault((model, name), {})[partition] = learner
        for key, parts in by_slot.items():
            self._adopt(self.slots[key], parts)
        self._read(by_slot, now)
        for key, parts in by_slot.items():
            slot = self.slots[key]
            self._pull(slot, parts)
            self._maybe_publish(key, slot, parts, now)
        if self.is_aggregator:
            for key, slot in self.slots.items():
                self._maybe_close(key, slot, now)
        self._producer.flush(timeout=10)
        if self.metrics is not None:
            for (model, name), parts in by_slot.items():
                scores = [lr.recent_score for lr in parts.values() if lr.recent_score is not None]
                if scores:
                    self.metrics.federation_score.labels(model, name).set(sum(scores) / len(scores))

    # -- participant ---------------------------------------------------------------------------
    def _adopt(self, slot: _Slot, parts: dict) -> None:
        """A learner seen for the first time (a new partition, a restart) starts from the
        current global parameters, if there is one yet (what it learned before is dropped:
        the global holds it, or holds something newer); before the first global, everything
        it learned is its update."""
        for partition, learner in parts.items():
            if partition not in slot.counted:
                if slot.round > 0:
                    fed.set_params(learner.estimator, slot.base)
                slot.counted[partition] = learner.n_learned if slot.round > 0 else 0
                slot.pulled[partition] = learner.n_learned

    def _pull(self, slot: _Slot, parts: dict) -> None:
        mu = self.settings.proximal_mu
        for partition, learner in parts.items():
            steps = learner.n_learned - slot.pulled.get(partition, learner.n_learned)
            slot.pulled[partition] = learner.n_learned
            if mu > 0 and steps > 0:
                lr = fed.learning_rate(learner.estimator)
                fed.set_params(learner.estimator, fed.proximal_pull(fed.params_of(learner.estimator), slot.base, mu, lr, steps))

    def _maybe_publish(self, key, slot: _Slot, parts: dict, now: float) -> None:
        n_total = sum(lr.n_learned - slot.counted.get(p, lr.n_learned) for p, lr in parts.items())
        n_new = sum(lr.n_learned for lr in parts.values()) - slot.last_n_published
        if slot.published_at is None:
            slot.published_at = now  # the first period starts now
            slot.last_n_published = sum(lr.n_learned for lr in parts.values()) - n_total
            n_new = n_total
        due = n_new >= self.settings.every_events or (n_new > 0 and now - slot.published_at >= self.settings.every_seconds)
        if not due or n_total <= 0:
            return
        current = {p: fed.params_of(lr.estimator) for p, lr in parts.items()}
        weights = [(lr.n_learned - slot.counted.get(p, lr.n_learned), current[p]) for p, lr in parts.items()]
        update = fed.delta(fed.average(weights), slot.base)
        body = {"kind": "update", "federation": self.name, "participant": self.me, "model": key[0], "learner": key[1],
                "round": slot.round + 1, "n": int(n_total), "delta": update}
        self._producer.send(self.settings.topic, key=self.me.encode(), value=encode(self.key, body))
        slot.sent = {p: (current[p], lr.n_learned) for p, lr in parts.items()}
        slot.published_at, slot.last_n_published = now, sum(lr.n_learned for lr in parts.values())
        self.published += 1

    def _read(self, by_slot: dict, now: float) -> None:
        while True:
            batch = self._reader.poll(timeout_ms=100 if self._catching_up else 0, max_records=1000)
            if not batch:
                return
            for records in batch.values():
                for record in records:
                    self._handle(record.value, by_slot, now)

    def _reject(self, reason: str, slot: _Slot | None = None) -> None:
        if self._catching_up:
            return
        self.rejected[reason] += 1
        if slot is not None:
            slot.round_rejected[reason] += 1
        if self.metrics is not None:
            self.metrics.federation_rejected.labels(reason).inc()

    def _handle(self, raw: bytes, by_slot: dict, now: float) -> None:
        try:
            body = decode(self.key, raw)
        except Rejected as e:
            log.warning("federation %s: message refused: %s", self.name, e)
            self._reject(e.reason)
            return
        if body["federation"] != self.name:
            return  # another federation sharing the topic
        if self.settings.participants and body["participant"] not in self.settings.participants:
            log.warning("federation %s: message from unknown participant %r refused", self.name, body["participant"])
            self._reject("unknown_participant")
            return
        key = (body["model"], body["learner"])
        slot = self.slots.get(key)
        if slot is None:
            return  # a learner federated elsewhere, not here
        if body["kind"] == "global":
            if body["round"] <= slot.round:
                return  # a second aggregator's during a rebalance: the first one read wins everywhere
            # A global is a weighted mean of updates clipped to clip_norm (or refused above
            # max_update_norm), so it cannot move further per round: one that does was not made so.
            limit = self.settings.clip_norm or self.settings.max_update_norm
            moved = fed.norm(fed.delta(body["params"], slot.base))
            if limit > 0 and moved > limit * (body["round"] - slot.round) * (1 + 1e-9):
                log.warning("federation %s: global round %d of %s/%s from %s refused: it moves the parameters by %.3g",
                            self.name, body["round"], *key, body["participant"], moved)
                self._reject("global_norm", slot)
                return
            self._apply(key, slot, body, by_slot.get(key, {}), now)
            return
        if body["round"] != slot.round + 1:
            self._reject("stale", slot)  # made from an older global: it would pull the model back
            return
        length = fed.norm(body["delta"])
        if self.settings.max_update_norm > 0 and length > self.settings.max_update_norm:
            log.warning("federation %s: update of %s for %s/%s refused: norm %.3g above federation.max_update_norm %g",
                        self.name, body["participant"], *key, length, self.settings.max_update_norm)
            self._reject("norm", slot)
            return
        if body["n"] < 1:
            self._reject("no_events", slot)
            return
        slot.pending[body["participant"]] = (body["n"], body["delta"])  # a later update replaces an earlier one
        if slot.opened is None:
            slot.opened = now

    def _apply(self, key, slot: _Slot, body: dict, parts: dict, now: float) -> None:
        """Merge global ``body`` into every local copy of the learner: ``global + (local -
        reference)``, the reference being what the global already holds of this copy (its
        published parameters if its update went in, else the previous global): progress
        made since is kept, nothing is counted twice."""
        included = self.me in body["participants"]
        new = body["params"]
        for partition, learner in parts.items():
            sent = slot.sent.get(partition)
            reference, n_in = sent if (included and sent is not None) else (slot.base, slot.counted.get(partition, 0))
            local = fed.params_of(learner.estimator)
            fed.set_params(learner.estimator, fed.add(new, fed.delta(local, reference)))
            slot.counted[partition] = n_in
        slot.sent = {}
        slot.base, slot.round = new, body["round"]
        slot.pending, slot.opened, slot.closing_since = {}, None, None
        slot.round_rejected = Counter()
        self.rounds.append(body)
        if self.metrics is not None:
            self.metrics.federation_rounds.labels(*key).inc()
            self.metrics.federation_participants.labels(*key).set(len(body["participants"]))
        log.info("federation %s: %s/%s round %d from %d participants (%d labelled events)", self.name, *key,
                 body["round"], len(body["participants"]), body["n"])

    # -- aggregator ----------------------------------------------------------------------------
    def _maybe_close(self, key, slot: _Slot, now: float) -> None:
        s = self.settings
        if slot.closing_since is not None:
            if now - slot.closing_since < s.round_timeout_seconds:
                return  # its global is on the way back
            slot.closing_since = None  # lost (broker trouble): close again
        if not slot.pending or slot.opened is None:
            return
        complete = bool(s.participants) and set(s.participants) <= set(slot.pending)
        timed_out = now - slot.opened >= s.round_timeout_seconds and len(slot.pending) >= s.min_participants
        if not (complete or timed_out):
            return
        updates = [slot.pending[p] for p in sorted(slot.pending)]
        try:
            params = fed.aggregate(slot.base, updates, clip_norm=s.clip_norm, max_norm=s.max_update_norm)
        except fed.NoUpdates:
            slot.pending, slot.opened = {}, None
            return
        body = {"kind": "global", "federation": self.name, "participant": self.me, "model": key[0], "learner": key[1],
                "round": slot.round + 1, "n": int(sum(n for n, _ in updates)), "params": params,
                "participants": sorted(slot.pending), "rejected": dict(slot.round_rejected)}
        self._producer.send(s.topic, key=self.me.encode(), value=encode(self.key, body))
        slot.closing_since = now
        if not complete:
            log.warning("federation %s: %s/%s round %d closed after %.0f s with %d of %s participants", self.name, *key,
                        slot.round + 1, now - slot.opened, len(updates), len(s.participants) or "?")
