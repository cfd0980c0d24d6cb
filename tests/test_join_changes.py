"""The join's compact memory of joined ids (an ageing Bloom filter) and its incremental
checkpoints: how long an id is remembered, the false-positive bound, memory, the same
bits in every process, old checkpoints, and snapshot + changes rebuilding the same join."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.stream.join import LabelJoin
from daemon.stream.seen import SeenIds

TTL, GRACE = 3600.0, 60.0


def state(join: LabelJoin) -> dict:
    """Everything the join holds, its buffers with their order (which expiry relies on)."""
    s = join.__getstate__()
    # Each model's buffer in its order; the models' order is not part of the state.
    return {**s, "_predictions": sorted((m, list(ids.items())) for m, ids in s["_predictions"].items() if ids),
            "_labels": sorted((m, list(ids.items())) for m, ids in s["_labels"].items() if ids),
            "counts": {k: v for k, v in s["counts"].items() if v}}


# -- how long a joined id is remembered ----------------------------------------------------------

def test_an_id_is_remembered_for_the_ttl_and_forgotten_within_a_quarter_more():
    def joined_then_label_watermark_at(wm: float) -> LabelJoin:
        join = LabelJoin(ttl=TTL, grace=10 * TTL, max_pending=1000, watermark_rank=1)
        join.add_prediction("m", "a", 1000.0, "p")
        join.add_label("m", "a", 1100.0, 1)
        join.add_label("m", "clock", wm, 1)  # moves the label watermark ...
        join.add_prediction("m", "clock-p", wm, "p")  # ... and the prediction one: both are past it
        return join

    at_ttl = joined_then_label_watermark_at(1000.0 + TTL)
    assert at_ttl.add_label("m", "a", 1000.0 + TTL, 1) is None
    assert at_ttl.counts[("m", "duplicate_label")] == 1 and at_ttl.pending == 2  # only the clocks wait

    past = joined_then_label_watermark_at(1000.0 + TTL * 1.25 + 1)
    assert past.add_label("m", "a", 1000.0 + TTL * 1.25 + 1, 1) is None
    assert past.counts[("m", "duplicate_label")] == 0 and past.pending == 3  # forgotten: "a" waits as new


def test_a_label_whose_prediction_waits_joins_even_when_the_filter_says_seen():
    """The exact buffers come first: a false positive of the filter (forced here) cannot
    keep a waiting prediction from its label, or a waiting label from its prediction."""
    join = LabelJoin(ttl=TTL, grace=GRACE, max_pending=100, watermark_rank=1)
    join.add_prediction("m", "a", 1000.0, "p")
    join._settled_labels.add("m", "a", 1001.0)
    assert join.add_label("m", "a", 1001.0, 1) == ("m", "p", 1, 1.0)
    join.add_label("m", "b", 1002.0, 0)
    join._settled_predictions.add("m", "b", 1001.0)
    assert join.add_prediction("m", "b", 1001.0, "q") == ("m", "q", 0, 1.0)
    assert join.counts[("m", "joined")] == 2
    assert join.counts[("m", "duplicate_label")] == join.counts[("m", "duplicate_prediction")] == 0


# -- the false-positive bound and memory ---------------------------------------------------------------

def test_a_lookup_of_a_new_id_is_a_false_positive_with_probability_at_most_p():
    """With the filter at its limit (max_ids - 1 ids, spread over buckets so that it has
    generations of several sizes), the share of new ids taken for seen stays below p: the
    generations' rates add up to p, not p per generation."""
    p, limit = 0.005, 20_000
    seen = SeenIds(ttl=4000.0, max_ids=limit + 1, false_positive_rate=p)
    for i in range(limit):
        seen.add("m", f"in-{i}", 1000.0 + (i * 7919) % 4000)  # prediction times over 4 buckets
    seen.expire(float("-inf"))
    assert seen.count == limit and len({g.capacity for g in seen._generations}) >= 3
    lookups = 100_000
    rate = sum(seen.has("m", f"out-{i}") for i in range(lookups)) / lookups
    # At the limit the expected rate is just under p; 1.15 p is 3 standard errors above it.
    assert rate < 1.15 * p
    assert rate > p / 10  # and the bits are not wasted on a far lower rate than asked


def test_an_empty_join_allocates_no_filter_and_a_first_join_a_small_one():
    join = LabelJoin(ttl=86_400.0, grace=600.0, max_pending=500_000)
    filters = (join._settled_predictions, join._settled_labels)
    assert sum(f.nbytes() for f in filters) == 0
    join.add_prediction("m", "a", 1000.0, "p")
    join.add_label("m", "a", 1001.0, 1)
    assert all(0 < f.nbytes() <= 2 * 1024 for f in filters)


def test_joined_ids_take_a_few_bytes_each():
    """The dict this replaced kept about 230 bytes per joined id (a joined pair is
    remembered in each stream's filter: under 12 bytes in each)."""
    join = LabelJoin(ttl=86_400.0, grace=600.0, max_pending=500_000)
    n = 60_000
    for i in range(n):
        ts = 1_700_000_000.0 + i * 0.2
        join.add_prediction("fraud", f"prediction-{i:09d}", ts, None)
        join.add_label("fraud", f"prediction-{i:09d}", ts + 5.0, 1)
    filters = (join._settled_predictions, join._settled_labels)
    assert join.counts[("fraud", "joined")] == n and all(f.count == n for f in filters)
    assert all(f.nbytes() / n < 12 for f in filters)
    assert len(pickle.dumps(join)) / n < 26


def test_the_rate_is_checked():
    for p in (0.0, 0.01, -1e-9, 0.5):
        with pytest.raises(ValueError, match="false_positive_rate"):
            LabelJoin(ttl=TTL, grace=GRACE, max_pending=10, false_positive_rate=p)


# -- determinism, pickles, old checkpoints ----------------------------------------------------------

_FEED = """
import hashlib, pickle, sys
from daemon.stream.join import LabelJoin
join = LabelJoin(ttl=600.0, grace=60.0, max_pending=5000)
for i in range(3000):
    join.add_prediction("m", f"id-{i}", 1000.0 + i, i)
    if i % 3:
        join.add_label("m", f"id-{i}", 1000.0 + i + (i % 700), 1)
sys.stdout.write(hashlib.sha256(pickle.dumps(join.__getstate__())).hexdigest())
"""


def test_the_same_events_give_the_same_filter_bits_in_every_process():
    """Python salts str hashes per process; the filter's hash is not salted, so what the
    join concludes is a function of the events alone."""
    digests = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _FEED], env=env, capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), check=True)
        digests.add(out.stdout)
    namespace: dict = {}
    exec(_FEED.replace("sys.stdout.write(", "result = ("), namespace)
    digests.add(namespace["result"])
    assert len(digests) == 1


def test_a_join_pickled_whole_comes_back_the_same():
    join = LabelJoin(ttl=100.0, grace=10.0, max_pending=50, watermark_rank=1)
    for i in range(200):
        join.add_prediction("m", f"p{i}", 1000.0 + i, i)
        if i % 4:
            join.add_label("m", f"p{i - 3}", 1000.0 + i, 1)
    copy = pickle.loads(pickle.dumps(join))
    assert state(copy) == state(join)
    for j in (join, copy):
        assert j.add_label("m", "p100", 1200.0, 1) is None  # joined earlier: a duplicate
        assert j.add_prediction("m", "p199", 1199.0, 199) is False
    assert state(copy) == state(join)


def test_a_checkpoint_from_before_the_filter_keeps_its_joined_ids():
    join = LabelJoin(ttl=TTL, grace=GRACE, max_pending=1000, watermark_rank=1)
    old = {k: v for k, v in vars(join).items() if k not in ("_settled_predictions", "_settled_labels", "_log")}
    old["_joined"] = {("m", "a"): 1000.0, ("m", "b"): 1500.0}
    restored = LabelJoin.__new__(LabelJoin)
    restored.__setstate__(old)
    assert restored.add_label("m", "a", 1600.0, 1) is None
    assert restored.add_prediction("m", "b", 1500.0, "p") is False
    assert restored.counts[("m", "duplicate_label")] == restored.counts[("m", "duplicate_prediction")] == 1
    assert restored.pending == 0
    restored.add_label("m", "clock", 1500.0 + TTL * 1.25 + 1, 1)  # both now past ttl and a quarter,
    restored.add_prediction("m", "clock-p", 1500.0 + TTL * 1.25 + 1, "p")  # on both streams
    assert restored._settled_predictions.count == restored._settled_labels.count == 0
    pickle.loads(pickle.dumps(restored))


def _without_models(filter_state: dict) -> dict:
    """A filter's state as saved before generations had a model."""
    return {**filter_state, "generations": [g[:6] for g in filter_state["generations"]]}


def test_a_checkpoint_from_before_the_filters_were_per_model_keeps_what_they_held():
    """Saved with one partition-wide filter of joined ids (by prediction time) and one each
    of expired predictions and orphaned labels, and incremental records of them: restored,
    a copy of each is still a duplicate, until the partition's clocks age them out."""
    join = LabelJoin(ttl=TTL, grace=GRACE, max_pending=1000, watermark_rank=1)
    seen, expired, orphaned = (SeenIds(TTL, 1001, 5e-10) for _ in range(3))
    seen.add("m", "a", 1000.0)
    expired.add("m", "e", 1000.0)
    orphaned.add("m", "o", 1000.0)
    old = {k: v for k, v in join.__getstate__().items() if k not in ("_settled_predictions", "_settled_labels")}
    old.update(_seen=_without_models(seen.__getstate__()), _settled=_without_models(expired.__getstate__()),
               _orphaned=_without_models(orphaned.__getstate__()))
    seen.track()
    seen.add("m", "b", 1001.0)  # joined after the snapshot: in an old incremental record
    record = seen.changes()
    record["created"] = [c[:3] for c in record["created"]]
    change = {"predictions": {}, "labels": {}, "counts": {}, "newest": ([], []), "seen": record}
    restored = LabelJoin.restore(old, [change])
    for id in ("a", "b", "e"):
        assert restored.add_prediction("m", id, 1000.0, "p") is False, id
    for id in ("a", "b", "o"):
        assert restored.add_label("m", id, 1000.0, 1) is None, id
    assert restored.counts[("m", "duplicate_prediction")] == 3 and restored.counts[("m", "duplicate_label")] == 3
    assert restored.pending == 0
    restored.add_label("m", "clock", 1001.0 + TTL * 1.25 + 1, 1)  # the partition's clocks past them
    restored.add_prediction("m", "clock-p", 1001.0 + TTL * 1.25 + 1, "p")
    assert restored._settled_predictions.count == restored._settled_labels.count == 0
    assert pickle.loads(pickle.dumps(restored))._old_filters is None


# -- snapshot, changes, restore -------------------------------------------------------------------

def _events(rng: random.Random, n: int, start: int, ids: int, checkpoints: float) -> list:
    """n events of two models: predictions and labels of random ids (duplicates, labels
    first, labels never) at times that drift forward by 0.5 s an event, give or take 30 s
    (out of order; the TTL of 50 s is passed several times over), some expire() calls,
    and snapshot() or changes() with probability ``checkpoints`` each."""
    events = []
    for k in range(start, start + n):
        roll = rng.random()
        if roll < checkpoints:
            kind = rng.choice(["changes", "changes", "snapshot"])
        elif roll < checkpoints + 0.05:
            kind = "expire"
        else:
            kind = rng.choice(["prediction", "label"])
        events.append((kind, rng.choice("mn"), rng.randrange(ids), 1000.0 + k * 0.5 + rng.uniform(-30, 30)))
    return events


def _apply(join: LabelJoin, event, records: list | None = None):
    kind, model, i, ts = event
    if kind == "prediction":
        return join.add_prediction(model, f"id-{i}", ts, (i, ts))
    if kind == "label":
        return join.add_label(model, f"id-{i}", ts, i % 2)
    if kind == "expire":
        return join.expire()
    taken = join.snapshot() if kind == "snapshot" else join.changes()
    if records is not None:
        records.append((kind, taken))
    return taken


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), before=st.integers(0, 600), after=st.integers(0, 150),
       ids=st.integers(3, 300), checkpoints=st.sampled_from([0.0, 0.01, 0.1, 0.3]),
       max_pending=st.integers(1, 60), rank=st.integers(1, 3))
def test_a_join_restored_from_a_snapshot_and_its_changes_is_the_same_join(
        seed, before, after, ids, checkpoints, max_pending, rank):
    """Restored from its last snapshot and the changes taken after it (through pickles, as
    a state topic would carry them), the join equals the original and the original pickled
    whole, and goes on to answer every further event as they do."""
    rng = random.Random(seed)
    join = LabelJoin(ttl=50.0, grace=20.0, max_pending=max_pending, watermark_rank=rank)
    records = [("snapshot", join.snapshot())]
    for event in _events(rng, before, 0, ids, checkpoints):
        _apply(join, event, records)
    last = max(i for i, (kind, _) in enumerate(records) if kind == "snapshot")
    snapshot, changes = records[last][1], [r for _, r in records[last + 1:]] + [join.changes()]
    restored = LabelJoin.restore(pickle.loads(pickle.dumps(snapshot)), pickle.loads(pickle.dumps(changes)))
    whole = pickle.loads(pickle.dumps(join))
    assert state(restored) == state(join) == state(whole)
    for event in _events(rng, after, before, ids, checkpoints):
        if event[0] in ("changes", "snapshot"):  # the two tracked since the same point
            assert _apply(join, event) == _apply(restored, event)
            continue
        results = [_apply(j, event) for j in (join, restored, whole)]
        assert results[0] == results[1] == results[2]
        assert state(join) == state(restored) == state(whole)
        assert join.pending == restored.pending == whole.pending
        assert join.label_watermark == restored.label_watermark
        assert join.prediction_watermark == restored.prediction_watermark


def test_events_of_a_reused_id_waiting_together_come_back_from_a_checkpoint():
    """Predictions (or labels) of an id reused more than the TTL later wait together, the
    oldest first: a snapshot and its changes, or a pickle, bring them back in that order."""
    join = LabelJoin(ttl=TTL, grace=GRACE, max_pending=1000, watermark_rank=1)
    snapshot, changes = join.snapshot(), []
    for ts in (1000.0, 1000.0 + 1.5 * TTL, 1000.0 + 3 * TTL):
        join.add_prediction("m", f"clock-{ts}", ts - 1, None)  # the stream moves past the id's last
        assert join.add_prediction("m", "a", ts, f"p-{ts}") is None
        join.add_label("n", "b", ts, 1)
        join.add_label("n", f"clock-{ts}", ts + TTL / 2, 1)
        changes.append(join.changes())
    assert join.pending_of("m") == 6 and join.waiting_labels("n", "b") == (1, 1, 1)
    for restored in (LabelJoin.restore(snapshot, pickle.loads(pickle.dumps(changes))),
                     pickle.loads(pickle.dumps(join))):
        assert state(restored) == state(join) and restored.pending == join.pending == 12
        assert restored.add_label("m", "a", 1000.0 + 1.5 * TTL + 1, 1) == ("m", f"p-{1000.0 + 1.5 * TTL}", 1, 1.0)
        assert restored.pending_of("m") == 3  # the first clock and a expired by the label, the second a joined


def test_changes_grow_with_the_events_since_not_with_what_waits():
    join = LabelJoin(ttl=86_400.0, grace=600.0, max_pending=200_000)
    for i in range(100_000):
        join.add_prediction("fraud", f"prediction-{i:09d}", 1_700_000_000.0 + i * 0.1, (1, 0.9, "v1"))
        if i % 2:
            join.add_label("fraud", f"prediction-{i:09d}", 1_700_000_000.0 + i * 0.1 + 1.0, 1)
    snapshot = pickle.dumps(join.snapshot())
    sizes = {}
    for k in (10, 100, 1000):
        for i in range(k):
            j = 100_000 + i
            join.add_prediction("fraud", f"prediction-{j:09d}", 1_700_010_000.0 + i * 0.1, (1, 0.9, "v1"))
            join.add_label("fraud", f"prediction-{j - 50:09d}", 1_700_010_000.0 + i * 0.1, 1)
        sizes[k] = len(pickle.dumps(join.changes()))
    assert len(snapshot) > 2_000_000  # 100,000 waiting predictions, 50,000 joined ids
    assert sizes[10] < 2_000  # 10 predictions and 10 labels
    assert sizes[1000] < 100 * 1000  # tens of bytes an event, whatever waits
    assert sizes[1000] > 5 * sizes[100] and sizes[100] > 3 * sizes[10]


def test_the_first_changes_and_an_uncollected_log_give_the_whole_state():
    """Before any snapshot there is nothing to diff against; and a log nobody collects stops
    growing once it would outweigh the state: changes() then gives the state, which is
    smaller than the events since."""
    join = LabelJoin(ttl=TTL, grace=GRACE, max_pending=1000)
    join.add_prediction("m", "a", 1000.0, "p")
    first = join.changes()
    assert set(first) == {"snapshot"}
    assert state(LabelJoin.restore(first["snapshot"], [])) == state(LabelJoin.restore(first, [])) == state(join)
    for i in range(20_000):  # joins at once: little state, much activity
        join.add_prediction("m", f"p{i}", 1000.0 + i * 0.01, "p")
        join.add_label("m", f"p{i}", 1000.0 + i * 0.01, 1)
    assert join._log.overflowed and not join._log.predictions and join._settled_labels._log is None
    later = join.changes()
    assert set(later) == {"snapshot"}
    assert state(LabelJoin.restore(first["snapshot"], [later])) == state(join)
    assert len(pickle.dumps(later)) < 200_000
    join.add_label("m", "late", 2000.0, 1)
    assert set(join.changes()) >= {"predictions", "labels", "settled_predictions", "settled_labels"}  # tracked again
