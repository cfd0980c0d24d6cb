"""Replicas of one consumer group: a partition's state follows it through the state topic
(issue 10). Real ``driftd run`` processes on the real broker, stopped with real signals.

- **Stale file**: a replica that gets a partition back restores the newer state another
  replica wrote to the state topic, not its own older local file, and counts nothing twice.
- **Fenced replica**: a replica paused (SIGSTOP) past the session timeout while another
  took its partitions over, then resumed, cannot make its older state the one restored.
- **3 replicas, 6 partitions, 30 models**, a stream with drifts, late, missing and
  duplicate labels and invalid events: a SIGKILL mid-stream, a rolling restart, scaling
  1 -> 3 -> 1. In each case, once the stream is processed: the sum over live replicas of
  every counter equals what was produced, and every model's detectors (statistics,
  thresholds, detections) and the alerts sent equal those of one replica that processed
  the same stream without interruption (:func:`reference`, on topics of its own).
- In process, the condition those rest on: a model's detectors and alerts do not depend on
  how its stream was cut into batches (replicas cut it elsewhere than one uninterrupted
  replica does).

Every test uses topics, group and state topic of its own; replicas share the state key
(``DRIFTD_STATE_KEY``) so that they can read each other's checkpoints.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from daemon.config import from_dict
from daemon.kafka.checkpoint import Checkpoints
from daemon.kafka.statetopic import Epoch
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.partition import PartitionState
from daemon.web.status import partition_models

from .daemon_harness import wait_until
from .replica_harness import (STATE_KEY, Replica, Stream, alert_ids, alert_keys, alerts, complete, create, produce, replica_config,
                              scope_of, state_topic_records, topic_names, view)

# Small references and windows and a short ERT: calibration takes ~0.3 s per model and
# detectors fire within a few hundred events.
MODEL_DEFAULTS = {"reference_size": 300, "window": 100, "stride": 50, "ert": 1000, "label_ert": 1000,
                  "decay_reference_size": 150, "decay_window": 100}
MODELS = [f"m{i:02d}" for i in range(30)]
PARTITIONS = 6
STREAM = Stream(MODELS, PARTITIONS, n_events=600, label_delay=30)
WANT = STREAM.expected()


def _names(request) -> dict:
    return topic_names(f"rep-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}")


class Deployment:
    """Replicas of one group on their own topics; each replica has its own state directory."""

    def __init__(self, bootstrap: str, names: dict, models: list, partitions: int, tmp_path, **sections):
        self.bootstrap, self.names, self.models, self.partitions = bootstrap, names, models, partitions
        self.tmp_path = tmp_path
        self.sections = sections
        self.replicas: dict[str, Replica] = {}
        create(bootstrap, names, partitions)

    def replica(self, name: str) -> Replica:
        if name not in self.replicas:
            path = replica_config(self.tmp_path / f"{name}.yaml", self.bootstrap, self.names, self.models,
                                  self.tmp_path / f"state-{name}", MODEL_DEFAULTS, **self.sections)
            self.replicas[name] = Replica(name, path, self.tmp_path)
        return self.replicas[name]

    def live(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.alive()]

    def view(self):
        return view(self.live())

    def produce(self, records: list) -> None:
        produce(self.bootstrap, self.names, records)

    def wait_complete(self, want: dict, timeout: float = 120, replicas: list | None = None) -> dict:
        """Wait until the live replicas (or ``replicas``) show ``want`` processed, one owner
        per partition and nothing pending; then again after a pause (an event counted twice
        shows by then)."""
        last = {}

        def done():
            nonlocal last
            last = view(replicas if replicas is not None else self.live()) or last
            _never_above(last, want)
            return complete(last, want, self.names, self.partitions)

        try:
            wait_until(done, timeout=timeout, interval=0.5, what="the stream processed")
        except AssertionError:
            raise AssertionError(f"not complete in {timeout} s: {_diff(last, want, self.names)}\n"
                                 f"{self.logs_tail()}") from None
        time.sleep(1.5)  # several checkpoint intervals and polls
        wait_until(done, timeout=30, interval=0.5, what="the stream still processed once")
        return last

    def wait_owned(self, replicas: list, timeout: float = 60) -> None:
        """Wait until each of ``replicas`` (the live ones) owns partitions and together they
        own each partition once: the group has settled after a change."""

        def settled():
            seen = view(replicas)
            return (seen is not None and sorted(seen["owners"]) == list(range(self.partitions))
                    and all(len(o) == 1 for o in seen["owners"].values())
                    and {n for o in seen["owners"].values() for n in o} == {r.name for r in replicas})

        wait_until(settled, timeout=timeout, interval=0.3, what=f"partitions spread over {[r.name for r in replicas]}")

    def logs_tail(self) -> str:
        return "\n".join(f"--- {r.name} (run {r.runs}, alive {r.alive()}):\n{r.log()[-3000:]}" for r in self.replicas.values())

    def close(self) -> None:
        for r in self.replicas.values():
            r.kill()


def _never_above(seen: dict, want: dict) -> None:
    """Fail at once (not at the timeout) when a counter went past what was produced or a
    dead letter of an unexpected reason came: waiting longer cannot mend either."""
    if not seen or any(len(o) != 1 for o in seen["owners"].values()):
        return  # mid-rebalance, two replicas may show a partition for a moment
    above = {k: (v, want["processed"].get(k, 0)) for k, v in seen["processed"].items() if v > want["processed"].get(k, 0)}
    dead = {k: (v, want["dead"].get(k, 0)) for k, v in seen["dead"].items() if v > want["dead"].get(k, 0)}
    assert not above and not dead, f"counted more than produced (seen, produced): {above} {dead}"


def _diff(seen: dict, want: dict, names: dict) -> str:
    if not seen:
        return "no view"
    processed = {k: (seen["processed"].get(k), v) for k, v in want["processed"].items() if seen["processed"].get(k) != v}
    return (f"owners {seen['owners']}, settled {seen['settled']}, dead {seen['dead']} (want {want['dead']}), "
            f"processed differing (seen, want): {dict(list(processed.items())[:8])} ({len(processed)} in all)")


@pytest.fixture
def deployment(kafka_bootstrap, tmp_path, request):
    made = []

    def make(models=MODELS, partitions=PARTITIONS, **sections) -> Deployment:
        d = Deployment(kafka_bootstrap, _names(request), models, partitions, tmp_path, **sections)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


# -- the reference: one replica, no interruption ----------------------------------------------

@pytest.fixture(scope="module")
def reference(kafka_broker, tmp_path_factory):
    """What one replica that processed :data:`STREAM` from start to end without any
    interruption shows: its view (:func:`view`) and the alerts it sent. On topics, group
    and state topic of its own, shared by the tests of this module (it is the same
    stream; its result does not depend on the topics' names)."""
    if not kafka_broker.running():
        kafka_broker.start()
    tmp_path = tmp_path_factory.mktemp("reference")
    d = Deployment(kafka_broker.bootstrap, topic_names(f"rep-reference-{uuid.uuid4().hex[:8]}"), MODELS, PARTITIONS, tmp_path)
    try:
        d.produce(STREAM.records)
        d.replica("ref").start()
        seen = d.wait_complete(WANT, timeout=150)
        found = _alerts(d, at_least=1)
        assert d.replica("ref").terminate() == 0
    finally:
        d.close()
    return {"view": seen, "alerts": found}


def _alerts(d: Deployment, at_least: int | set, timeout: float = 20) -> list:
    """The alerts of deployment ``d`` once there are ``at_least`` (a number, or a set of
    :func:`alert_keys` that must all be there)."""
    found = []

    def enough():
        nonlocal found
        found = alerts(d.bootstrap, d.names["alerts"], d.names, timeout_ms=1000)
        if isinstance(at_least, set):
            return at_least <= alert_keys(found)
        return len(found) >= at_least

    try:
        wait_until(enough, timeout=timeout, interval=0.5, what="alerts")
    except AssertionError:
        pass  # compared by the caller, with the difference shown
    return found


def _check_against_reference(d: Deployment, seen: dict, reference: dict) -> None:
    """The live replicas' counters add up to the stream, and every model's /status (detectors
    included) and the alerts equal the reference's."""
    ref = reference["view"]
    assert seen["processed"] == WANT["processed"]
    assert seen["dead"] == WANT["dead"]
    for model in MODELS:
        assert seen["join"][(model, "joined")] == WANT["joined"][model], model
        assert seen["join"][(model, "duplicate_label")] == WANT["duplicate_label"][model], model
    assert seen["join"] == ref["join"]
    assert {m: len(o) for m, o in seen["owners_of_model"].items()} == {m: 1 for m in MODELS}
    differing = {m for m in MODELS if seen["models"][m] != ref["models"][m]}
    assert not differing, _model_diff(seen, ref, sorted(differing))
    want_alerts = alert_keys(reference["alerts"])
    got = alert_keys(_alerts(d, want_alerts))
    assert got == want_alerts, (f"alerts missing: {sorted(want_alerts - got)[:5]} ({len(want_alerts - got)}); "
                                f"extra: {sorted(got - want_alerts)[:5]} ({len(got - want_alerts)})")


def _model_diff(seen: dict, ref: dict, models: list) -> str:
    lines = [f"{len(models)} models differ from the reference: {models}"]
    for m in models[:4]:
        a, b = seen["models"][m], ref["models"][m]
        for key in sorted(set(a) | set(b)):
            if key == "detectors":
                for det in sorted(set(a[key]) | set(b[key])):
                    if a[key].get(det) != b[key].get(det):
                        lines.append(f"  {m} {det}: {a[key].get(det)}\n  {' ' * len(m)} ref: {b[key].get(det)}")
            elif a.get(key) != b.get(key):
                lines.append(f"  {m} {key}: {a.get(key)!r} ref {b.get(key)!r}")
    return "\n".join(lines)


# -- 1. a stale local file ------------------------------------------------------------------

SMALL_MODELS = ["a0", "a1", "a2", "a3"]  # model i on partition i % 2
SMALL = Stream(SMALL_MODELS, 2, n_events=600, label_delay=30, seed=1)


def _ends(want: dict, names: dict, partition: int) -> dict:
    return {names[side]: n for (side, p), n in want["ends"].items() if p == partition}


def test_a_returning_replica_restores_the_newer_state_from_the_topic_not_its_stale_file(deployment):
    d = deployment(models=SMALL_MODELS, partitions=2)
    a = d.replica("a").start()
    d.wait_owned([a])
    parts = SMALL.chunks(3)
    d.produce(parts[0])
    d.wait_complete(SMALL.expected(parts[0]))  # also two checkpoints since

    b = d.replica("b").start()
    d.wait_owned([a, b])
    (moved,) = [p for p, owners in d.view()["owners"].items() if owners == ["b"]]
    d.produce(parts[1])
    upto_b = SMALL.expected(parts[0] + parts[1])
    d.wait_complete(upto_b)
    # A's own file of the partition B holds: as A left it when B joined (A no longer writes it).
    stale = Checkpoints(d.tmp_path / "state-a", scope_of(d.names), key=STATE_KEY.encode()).restore_sections(moved)
    assert stale is not None, "A wrote no local file of the partition it gave up"
    stale_offsets = stale[0].offsets
    newer = _ends(upto_b, d.names, moved)
    assert stale_offsets == _ends(SMALL.expected(parts[0]), d.names, moved) != newer

    assert b.terminate() == 0, b.log()[-3000:]
    d.wait_owned([a])
    offsets, source = a.restored(moved)[-1]
    assert offsets == newer, f"A restored partition {moved} at {offsets} from {source}; B left it at {newer}"
    assert source.startswith("the state topic"), source
    d.wait_complete(upto_b)  # nothing B counted is counted again
    d.produce(parts[2])
    seen = d.wait_complete(SMALL.expected())
    assert seen["processed"] == SMALL.expected()["processed"]
    assert a.restored(moved)[-1] == (offsets, source)  # and it kept going from there


# -- 2. a fenced replica ---------------------------------------------------------------------

def test_a_replica_paused_past_its_session_cannot_overwrite_the_newer_state(deployment):
    d = deployment(models=SMALL_MODELS, partitions=2)
    a, b = d.replica("a").start(), d.replica("b").start()
    d.wait_owned([a, b])
    parts = SMALL.chunks(3)
    d.produce(parts[0])
    d.wait_complete(SMALL.expected(parts[0]))
    (taken,) = [p for p, owners in d.view()["owners"].items() if owners == ["a"]]

    scope = scope_of(d.names)
    a.signal(signal.SIGSTOP)  # past the session timeout (2 s): B takes its partition over
    time.sleep(0.5)  # what A had sent is in by then
    written = [m for m in state_topic_records(d.bootstrap, d.names["state"], scope, 2) if m["partition"] == taken]
    a_epoch = max(m["epoch"] for m in written)  # A's, as A owns the partition
    last_seq = max(m["seq"] for m in written if m["epoch"] == a_epoch)
    d.wait_owned([b])
    d.produce(parts[1])
    upto = SMALL.expected(parts[0] + parts[1])
    d.wait_complete(upto, replicas=[b])  # (A answers nothing while stopped)
    newest = _ends(upto, d.names, taken)
    wait_until(lambda: any(m["partition"] == taken and m["offsets"] == newest and m["epoch"] > a_epoch
                           for m in state_topic_records(d.bootstrap, d.names["state"], scope, 2)),
               timeout=30, what="B's checkpoint of the partition taken over")

    # Now B is paused and A wakes up, believing it still owns the partition: it writes its
    # older state (the last write to the topic), rejoins, and once B's session is over gets
    # both partitions. It must restore B's newer state, not what it wrote itself.
    b.signal(signal.SIGSTOP)
    a.signal(signal.SIGCONT)
    d.wait_owned([a])
    after = state_topic_records(d.bootstrap, d.names["state"], scope, 2)
    stale = [m for m in after if m["partition"] == taken and m["epoch"] == a_epoch and m["seq"] > last_seq]
    print(f"A (epoch {a_epoch}) wrote {len(stale)} checkpoints of partition {taken} after waking up: "
          f"{[(m['seq'], m['offsets']) for m in stale]}")
    # (Before it learns that it lost the partition, A may even process some of what B
    # processed meanwhile: a zombie's work, under its old epoch too.)
    assert stale, "A wrote nothing after waking up: the fence was not put to the test"
    for p in range(2):
        offsets, source = a.restored(p)[-1]
        assert offsets == _ends(upto, d.names, p) and source.startswith("the state topic"), (p, offsets, source)
        if p == taken:
            assert _epoch(source) > a_epoch, f"partition {p} restored from A's fenced checkpoint: {source}"
    d.wait_complete(upto, replicas=[a])  # nothing counted twice

    b.signal(signal.SIGCONT)  # a zombie in turn; fenced by A's new epoch
    d.wait_owned([a, b])
    d.produce(parts[2])
    d.wait_complete(SMALL.expected())
    assert a.terminate() == 0
    # B leaves only once it has taken A's partitions: the embedded broker (Tansu) leaves
    # the group stuck for every later member when its last member leaves mid-rebalance.
    d.wait_owned([b])
    assert b.terminate() == 0

    # A fresh replica restores everything from the state topic: the newest state, counted once.
    c = d.replica("c").start()
    seen = d.wait_complete(SMALL.expected())
    assert seen["processed"] == SMALL.expected()["processed"]
    for p in range(2):
        offsets, source = c.restored(p)[-1]
        assert offsets == _ends(SMALL.expected(), d.names, p) and source.startswith("the state topic"), (p, offsets, source)
        assert p != taken or _epoch(source) > a_epoch, source


def _epoch(source: str) -> Epoch:
    """The epoch of the checkpoint a "restored ... from the state topic (checkpoint E/S)" names."""
    return Epoch.parse(re.search(r"checkpoint ([0-9.]+)/", source).group(1))


# -- alerts still being delivered when their replica leaves ------------------------------------

class _FlakyWebhook:
    """A local webhook receiver answering 503 (retry later) until :meth:`heal`; ``ids`` are
    the alert ids (``webhook-id``) it accepted."""

    def __init__(self):
        self.failing = True
        self.ids: set = set()
        self.attempts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                if not hook.failing:
                    hook.ids.add(self.headers["webhook-id"])
                self.send_response(503 if hook.failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def heal(self) -> None:
        self.failing = False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_alert_still_being_retried_when_its_replica_leaves_is_delivered_by_the_next_owner(deployment):
    """Scaling down (SIGTERM, the pod and its disk gone) while the webhook is down: the
    alerts the leaving replica had not delivered yet belong to its partitions' state, and
    the replica that takes them over delivers them (ids are stable: receivers de-duplicate)."""
    hook = _FlakyWebhook()
    try:
        d = deployment(models=SMALL_MODELS, partitions=2)
        d.sections["alerts"] = {  # the Kafka sink gets every alert decided at once
            "sinks": [{"type": "kafka", "topic": d.names["alerts"]}, {"type": "webhook", "url": hook.url}],
            "retry_initial_seconds": 0.2, "retry_max_seconds": 0.5}
        a, b = d.replica("a").start(), d.replica("b").start()
        d.wait_owned([a, b])
        d.produce(SMALL.records)
        seen = d.wait_complete(SMALL.expected())
        (leaving,) = [p for p, owners in seen["owners"].items() if owners == ["b"]]
        decided = wait_until(lambda: _decided(d, leaving), timeout=20, what="alerts of B's partition")
        wait_until(lambda: hook.attempts > 0, timeout=20, what="delivery attempts")

        assert b.terminate() == 0  # scaled down; its state directory goes with it
        d.wait_owned([a])
        hook.heal()
        kept = _decided(d, 1 - leaving)  # A's own, still pending with A: delivered once the webhook is back
        assert kept, "no alert on A's partition: the webhook's recovery would go unchecked"
        wait_until(lambda: set(kept) <= hook.ids, timeout=20, what="the alerts of A's partition delivered")
        try:
            wait_until(lambda: set(decided) <= hook.ids, timeout=10, what="the alerts of B's partition delivered")
        except AssertionError:
            lost = sorted(set(decided) - hook.ids)
            raise AssertionError(
                f"{len(lost)} of the {len(decided)} alerts of partition {leaving} (decided by B, still being retried "
                f"when B left) never reached the webhook: "
                f"{[(decided[i]['status'], decided[i]['model'], decided[i]['detector'], decided[i]['feature']) for i in lost[:4]]}"
            ) from None
    finally:
        hook.close()


def _decided(d: Deployment, partition: int) -> dict:
    """{id: alert} of the alerts decided for ``partition`` (all of them reach the Kafka sink)."""
    return {i: a for i, a in alert_ids(d.bootstrap, d.names["alerts"], timeout_ms=1000).items()
            if a["origin"] and a["origin"][1] == partition}


# -- 3. three replicas, six partitions, thirty models -----------------------------------------

def test_a_models_detector_state_does_not_depend_on_how_its_stream_was_batched():
    """Replicas read the same stream in other batches than one uninterrupted replica (a
    restore, a rebalance or a slower poll cuts them elsewhere): what a model shows must
    not depend on that. In process, fast: two partitions' records of :data:`STREAM`
    through a partition state as one batch per topic, and in batches of 1 to 50 records,
    the topics interleaved at random; thresholds calibrated at each batch end (the
    daemon's worker hands them over at some batch end)."""
    config = from_dict({"kafka": {"bootstrap_servers": "unused:9092", "predictions_topic": "predictions",
                                  "labels_topic": "labels"},
                        "models": {m: {} for m in MODELS}, "model_defaults": MODEL_DEFAULTS})
    differing = {}
    for partition in (1, 2):  # (each model is alike: two partitions, ten models, are enough)
        whole, whole_alerts = _run_partition(config, partition, max_batch=0)
        cut, cut_alerts = _run_partition(config, partition, max_batch=50)
        assert sorted(cut_alerts) == sorted(whole_alerts)
        for model in whole:
            for name, detector in whole[model]["detectors"].items():
                if cut[model]["detectors"].get(name) != detector:
                    differing[f"{model} {name}"] = (cut[model]["detectors"].get(name), detector)
            assert {k: v for k, v in cut[model].items() if k not in ("detectors", "state")} == \
                   {k: v for k, v in whole[model].items() if k not in ("detectors", "state")}, model
    assert not differing, "\n".join(f"{k}: in batches {a}\n{' ' * len(k)}  at once    {b}"
                                    for k, (a, b) in list(differing.items())[:6])


def _run_partition(config, partition: int, max_batch: int) -> tuple[dict, list]:
    """(status of every model, ids of the alerts) after ``partition``'s records of
    :data:`STREAM`, in batches of 1 to ``max_batch`` records (0: each topic at once)."""
    records = {"predictions": [], "labels": []}
    for side, p, key, value in STREAM.records:
        if p == partition:
            records[side].append(SimpleNamespace(topic=side, partition=p, key=key, value=value,
                                                 offset=len(records[side]), timestamp=-1))
    state = PartitionState(partition, config)
    rng, at, alert_ids = random.Random(partition), {"predictions": 0, "labels": 0}, []
    while any(at[side] < len(records[side]) for side in at):
        side = rng.choice([s for s in at if at[s] < len(records[s])])
        batch = records[side][at[side]:at[side] + (max_batch and rng.randint(1, max_batch) or len(records[side]))]
        at[side] += len(batch)
        (state.handle_predictions if side == "predictions" else state.handle_labels)(batch, lambda *_: None)
        alert_ids += [a.id for a in state.finish_batch()]
        calibrate_now(state)
        alert_ids += [a.id for a in state.alerts()]
    return partition_models(state), alert_ids


def test_sigkill_of_one_replica_mid_stream(deployment, reference):
    d = deployment()
    replicas = [d.replica(n).start() for n in ("r1", "r2", "r3")]
    d.wait_owned(replicas)
    first, second, rest = _thirds(STREAM.records)
    d.produce(first)
    victim = replicas[1]
    d.produce(second)
    # Killed mid-stream (the last third is not even produced yet), while processing the
    # second: what it did since its last checkpoint is done again by the others.
    wait_until(lambda: _progress(victim, d.names, STREAM.expected(first)) > 0, timeout=60, interval=0.05,
               what="the victim processing the second part")
    at_kill = wait_until(victim.status, timeout=10, what="the victim's status")["partitions"]
    victim.signal(signal.SIGKILL)
    assert victim.proc.wait(10) == -signal.SIGKILL
    d.produce(rest)
    seen = d.wait_complete(WANT)
    for p in map(int, at_kill):  # its partitions went on elsewhere, from the state topic
        (owner,) = [d.replicas[name] for name in seen["owners"][p]]
        offsets, source = owner.restored(p)[-1]
        assert source.startswith("the state topic"), source
        print(f"partition {p}: killed at {at_kill[str(p)]} or later, taken over by {owner.name} at {offsets}")
    _check_against_reference(d, seen, reference)


def _thirds(records: list) -> list:
    n = len(records) // 3
    return [records[:n], records[n:2 * n], records[2 * n:]]


def _progress(replica: Replica, names: dict, before: dict) -> int:
    """Records ``replica`` has read past ``before``'s ends, on the partitions it owns."""
    status = replica.status()
    if status is None:
        return 0
    total = 0
    for p, offsets in status["partitions"].items():
        for side in ("predictions", "labels"):
            total += offsets.get(names[side], 0) - before["ends"].get((side, int(p)), 0)
    return total


def test_rolling_restart_of_all_three(deployment, reference):
    d = deployment()
    replicas = [d.replica(n).start() for n in ("r1", "r2", "r3")]
    d.wait_owned(replicas)
    parts = STREAM.chunks(4)
    for replica, part in zip(replicas, parts):
        d.produce(part)  # the group is busy with it while one of them restarts
        assert replica.terminate() == 0, replica.log()[-3000:]
        assert "final checkpoint failed" not in replica.log()
        replica.start()
        d.wait_owned(replicas)
    d.produce(parts[3])
    seen = d.wait_complete(WANT)
    for replica in replicas:  # each came back, restoring from the state topic
        assert any(r[1].startswith("the state topic") for p in range(PARTITIONS) for r in replica.restored(p)), replica
    _check_against_reference(d, seen, reference)


def test_scale_one_to_three_to_one(deployment, reference):
    d = deployment()
    first = d.replica("r1").start()
    d.wait_owned([first])
    parts = STREAM.chunks(3)
    d.produce(parts[0])
    more = [d.replica(n).start() for n in ("r2", "r3")]  # while the first is busy with it
    d.wait_owned([first, *more])
    d.produce(parts[1])
    wait_until(lambda: all(_progress(r, d.names, STREAM.expected(parts[0])) > 0 for r in more), timeout=60,
               interval=0.1, what="the new replicas processing the second part")
    for r in more:
        r.signal(signal.SIGTERM)
    for r in more:
        assert r.proc.wait(30) == 0, r.log()[-3000:]
    d.wait_owned([first])
    d.produce(parts[2])
    seen = d.wait_complete(WANT)
    _check_against_reference(d, seen, reference)
