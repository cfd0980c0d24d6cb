"""The label side (error-stream detector, decay tests) takes labelled events in the order of
their label records, whichever of a label and its prediction was read first
(daemon/stream/partition.py), and moves to a new model version at that version's first
label, not at its first prediction (daemon/stream/pipeline.py). So its alerts are the same
at any batch size, with the predictions topic read ahead of the labels topic (a replica
catching up), and across checkpoints; before, a poll whose labels were handled before
its predictions reordered the error stream (a decay alert before the change at one batch
size), and a version's predictions read ahead dropped the late labels of the version
before (a decay alert lost).

Real replays (``driftd replay``'s pipeline, the daemon's per-topic batches); no timing
is asserted.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from collections import Counter

import pytest

from daemon.config import from_dict
from daemon.offline.replay import Replay, events

CONFIG = {"model_defaults": {"reference_size": 500, "window": 200, "stride": 50, "ert": 20_000, "label_ert": 20_000,
                             "decay_reference_size": 300, "decay_window": 200},
          "models": {"churn": {}}}
N = 3000
CHANGE = 1500  # the error rate goes from 10% to 40%
VERSION_AT = 2400  # model_version v1 -> v2


def rows(seed: int = 1) -> list[tuple[float, dict]]:
    """(time, event): predictions 1 s apart, labels 30 to 600 s after their prediction; one
    label in 50 stamped before its prediction (a clock ahead, or a fast labeller)."""
    r = random.Random(seed)
    out = []
    for i in range(N):
        ts = 1763000000.0 + i
        x = r.gauss(0, 1)
        prediction = int(x > 0)
        wrong = r.random() < (0.10 if i < CHANGE else 0.40)
        version = "v1" if i < VERSION_AT else "v2"
        out.append((ts, {"model": "churn", "id": i, "ts": ts, "features": {"x": round(x, 3)}, "prediction": prediction,
                         "model_version": version}))
        label_ts = ts + r.uniform(30, 600)
        out.append((label_ts if i % 50 else ts - 0.5, {"model": "churn", "id": i, "ts": label_ts, "label": prediction ^ wrong}))
    return out


def write(path, ordered: list) -> str:
    path.write_text("".join(json.dumps(event) + "\n" for _, event in ordered))
    return str(path)


def replay(path: str, batch: int, checkpoint: bool = False, config: dict = CONFIG) -> tuple[list, object]:
    run = Replay(from_dict(config), batch_size=batch)
    if checkpoint:
        # Each poll's states go through a checkpoint (pickled and restored) before the next.
        poll = run._poll

        def through_checkpoint(records):
            poll(records)
            for partition, state in list(run.states.items()):
                restored = pickle.loads(pickle.dumps(state))
                restored.attach(run.config)
                run.states[partition] = restored
        run._poll = through_checkpoint
    result = run.run(events([(path, False)]))
    return sorted((a.status, a.detector, a.feature, a.event_time, a.id, a.detail.get("model_version"))
                  for a in result.alerts), result


LABEL_SIDE = ("decay", "adwin")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label_order")
    timed = sorted(rows(), key=lambda row: row[0])
    predictions_first = [r for r in timed if "prediction" in r[1]] + [r for r in timed if "label" in r[1]]
    return write(tmp / "timed.jsonl", timed), write(tmp / "predictions_first.jsonl", predictions_first)


def test_label_side_alerts_do_not_depend_on_batches_read_ahead_or_checkpoints(files):
    timed, predictions_first = files
    reference, result = replay(timed, 1)
    label_side = [a for a in reference if a[1] in LABEL_SIDE]
    # The decay is found after the change, by both label-side tests, each alert with its version.
    firing = {a[1]: a for a in label_side if a[0] == "firing"}
    assert set(firing) == set(LABEL_SIDE), label_side
    assert all(1763000000 + CHANGE < a[3] < 1763000000 + VERSION_AT for a in firing.values()), label_side  # label times
    assert all(a[5] == "v1" for a in firing.values())
    assert not result.dead_letters
    for path, batch, checkpoint in [(timed, 37, False), (timed, 500, False), (timed, 7000, False), (timed, 137, True),
                                    (predictions_first, 1, False), (predictions_first, 500, True)]:
        got, _ = replay(path, batch, checkpoint)
        if path == timed:
            assert got == reference, (batch, checkpoint)  # every alert, data side too
        else:
            assert [a for a in got if a[1] in LABEL_SIDE] == label_side, (batch, checkpoint)


def skewed_rows(seed: int = 2) -> list[tuple[float, dict]]:
    """As :func:`rows` without versions, but 30% of labels stamped 1 to 10 s before their
    prediction (a labeller's clock behind), and prediction 40 refused (a list where a
    class goes): its label waits for a prediction that never comes."""
    r = random.Random(seed)
    out = []
    for ts, event in rows(seed):
        event.pop("model_version", None)
        if "label" in event and r.random() < 0.3:
            event["ts"] = ts = 1763000000.0 + event["id"] - r.uniform(1, 10)
        if event.get("id") == 40 and "prediction" in event:
            event["prediction"] = [1]
        out.append((ts, event))
    return out


@pytest.mark.parametrize("order", ["timed", "predictions_first", "labels_first"])
def test_labels_before_their_predictions_and_one_that_never_joins_change_nothing(tmp_path, order):
    """A label stamped before its prediction was given up in order when the prediction
    stream passed its time, which depended on where batches ended; one whose prediction
    was refused held every later label of its model, and at the end of a replay they were
    never fed (no alert at all)."""
    timed = sorted(skewed_rows(), key=lambda row: row[0])
    ordered = {"timed": timed,
               "predictions_first": [r for r in timed if "prediction" in r[1]] + [r for r in timed if "label" in r[1]],
               "labels_first": [r for r in timed if "label" in r[1]] + [r for r in timed if "prediction" in r[1]]}[order]
    path = write(tmp_path / f"{order}.jsonl", ordered)
    runs = {batch: replay(path, batch) for batch in (1, 7, 500, 7000)}
    reference, result = runs[1]
    label_side = [a for a in reference if a[1] in LABEL_SIDE]
    assert {a[1] for a in label_side if a[0] == "firing"} == set(LABEL_SIDE), label_side
    assert [d.reason for d in result.dead_letters] == ["wrong_type"]
    for batch, (got, result) in runs.items():
        assert [a for a in got if a[1] in LABEL_SIDE] == label_side, batch
        state = result.states[0]
        assert state.label_order == {} and state.models["churn"].labels.n_fed == N - 1, batch


def test_a_label_offset_seen_again_while_its_first_label_waits_does_not_stop_the_loop():
    """The labels topic re-created (its offsets from 0 again) while a label waited: the two
    waiting labels had one index entry, and the release raised KeyError out of the batch
    (the daemon stops without a checkpoint, and again after a restart)."""
    from daemon.offline.replay import Record
    from daemon.stream.partition import PartitionState

    config = from_dict(CONFIG)
    state, dead = PartitionState(0, config), []
    predictions, labels = config.kafka.predictions_topic, config.kafka.labels_topic

    def record(topic, offset, event):
        return Record(topic, 0, offset, json.dumps({"model": "churn", **event}).encode(), b"churn", None, "-", offset)

    base = 1763000000.0
    state.handle_labels([record(labels, 5, {"id": "a", "ts": base + 100, "label": 1})], lambda *a: dead.append(a))
    state.handle_labels([record(labels, 5, {"id": "b", "ts": base + 101, "label": 1})], lambda *a: dead.append(a))
    state.handle_predictions([record(predictions, 0, {"id": "b", "ts": base + 90, "features": {"x": 0.1}, "prediction": 1})]
                             + [record(predictions, k, {"id": f"p{k}", "ts": base + 200 + k, "features": {"x": 0.1},
                                                        "prediction": 1}) for k in range(1, 5)],
                             lambda *a: dead.append(a))
    assert not dead and state.models["churn"].labels.n_fed == 1  # b's labelled event
    state.release_held_labels(lambda *a: dead.append(a))
    assert state.label_order == {} and not dead


def test_a_rollback_to_an_earlier_version_name_keeps_the_label_side_of_each(tmp_path):
    """v1, then v2 (which decays), then v1 again: with the predictions read ahead, the first
    late label of the first v1 moved the label side to the rollback's v1 (labels carry the
    name only), and v2's decay alerts were lost. A version seen again takes only the labels
    of predictions made since it started."""
    def version(i):
        return "v1" if i < 1000 or i >= 2000 else "v2"
    timed = []
    for ts, event in sorted(rows(3), key=lambda row: row[0]):
        if "prediction" in event:
            event["model_version"] = version(event["id"])
        timed.append((ts, event))
    predictions_first = [r for r in timed if "prediction" in r[1]] + [r for r in timed if "label" in r[1]]
    reference, _ = replay(write(tmp_path / "timed.jsonl", timed), 1)
    label_side = [a for a in reference if a[1] in LABEL_SIDE]
    assert ("decay", "v2") in {(a[1], a[5]) for a in label_side if a[0] == "firing"}, label_side
    for path, batch in ((tmp_path / "timed.jsonl", 10_000), (write(tmp_path / "ahead.jsonl", predictions_first), 1),
                        (tmp_path / "ahead.jsonl", 500)):
        got, _ = replay(str(path), batch)
        assert [a for a in got if a[1] in LABEL_SIDE] == label_side, (path, batch)


def refused_rows() -> list[tuple[float, dict]]:
    """As :func:`rows` without versions, but one prediction in 25 a dead letter: a list
    where the class goes (the decoder refuses it) or a string for the numeric ``x`` (the
    model's schema refuses it)."""
    out = []
    for ts, event in rows(3):
        event.pop("model_version", None)
        if "prediction" in event and event["id"] % 25 == 7:
            if event["id"] % 50 == 7:
                event["prediction"] = [1]
            else:
                event["features"]["x"] = "n/a"
        out.append((ts, event))
    return out


def test_the_label_of_a_refused_prediction_does_not_hold_its_model_s_label_side(tmp_path):
    """Before, each such label held its place (and every later label of its model) until
    the prediction stream passed its time by join.label_grace_seconds (600 s here: about
    600 predictions), so the label side ran that far behind, and a model with more than
    MAX_HELD_LABELS labels in that time took them out of order."""
    config = {**CONFIG, "models": {"churn": {"features": {"x": "numeric"}}}}
    timed = sorted(refused_rows(), key=lambda row: row[0])
    refused = N // 25
    path = write(tmp_path / "refused.jsonl", timed)
    label_sides = {}
    for batch in (1, 7, 500):
        run = Replay(from_dict(config), batch_size=batch)
        poll, held = run._poll, []

        def watching(records, poll=poll, run=run, held=held):
            poll(records)
            held.append(sum(state.label_order.held("churn") for state in run.states.values()))
        run._poll = watching
        result = run.run(events([(path, False)]))
        assert len(result.dead_letters) == refused and {d.reason for d in result.dead_letters} == {"wrong_type"}
        state = result.states[0]
        assert state.join.counts[("churn", "label_orphaned")] == refused, batch
        assert state.models["churn"].labels.n_fed == N - refused, batch
        assert max(held) <= 10, (batch, max(held))  # labels behind one stamped before its prediction
        label_sides[batch] = sorted((a.status, a.detector, a.event_time, a.id) for a in result.alerts
                                    if a.detector in LABEL_SIDE)
    assert {a[1] for a in label_sides[1] if a[0] == "firing"} == set(LABEL_SIDE), label_sides[1]
    assert label_sides[7] == label_sides[1] and label_sides[500] == label_sides[1]


def estimated_rows(v2_at: int, delay: float = 30.0, n: int = 6000, seed: int = 5) -> list[tuple[float, dict]]:
    """(time, event): a classifier with scores whose inputs move toward its decision
    boundary at prediction 1500 (its accuracy falls: the estimate sees it before the
    labels say so); model_version v2 from prediction ``v2_at``; labels ``delay`` s late."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        ts = 1763891000.0 + i
        sd = 2.0 if i < 1500 else 0.3
        x, y = r.gauss(0, sd), r.gauss(0, sd)
        score = 1 / (1 + math.exp(-2 * (x + y)))
        out.append((ts, {"model": "m1", "model_version": "v1" if i < v2_at else "v2", "id": i, "ts": ts,
                         "features": {"x": round(x, 4), "y": round(y, 4)}, "prediction": int(score > 0.5),
                         "score": round(score, 4)}))
        out.append((ts + delay, {"model": "m1", "id": i, "ts": ts + delay, "label": int(r.random() < score)}))
    return sorted(out, key=lambda row: row[0])


def estimate_alerts(path: str, batch: int, checkpoint: bool = False) -> list:
    return replay(path, batch, checkpoint, {**CONFIG, "models": {"m1": {}}})[0]


def test_an_earlier_versions_estimate_is_made_when_its_labels_come_after_the_next_versions_predictions(tmp_path):
    """A new user's finding: v1's estimate (the accuracy it loses at prediction 1500) was
    dropped when v2's first prediction was read before v1's labelled reference was
    complete, which a poll of 10,000 records did (a catch-up reads 5,000 a poll by
    default): its alert came at batch sizes 1-4000 and not at 10,000 or 20,000."""
    path = write(tmp_path / "estimated.jsonl", estimated_rows(v2_at=3000, n=4000))
    reference = estimate_alerts(path, 1)
    firing = [a for a in reference if a[1] == "estimated_decay" and a[0] == "firing"]
    assert [a[5] for a in firing] == ["v1"], reference
    assert 1763891000 + 1500 < firing[0][3] < 1763891000 + 3000
    for batch, checkpoint in [(10_000, False), (6_000, True)]:
        assert estimate_alerts(path, batch, checkpoint) == reference, (batch, checkpoint)
    # All predictions read before any label: the same alerts.
    timed = estimated_rows(v2_at=3000, n=4000)
    predictions_first = [r for r in timed if "prediction" in r[1]] + [r for r in timed if "label" in r[1]]
    assert estimate_alerts(write(tmp_path / "first.jsonl", predictions_first), 500) == reference


def test_an_earlier_versions_estimate_whose_reference_a_later_version_completes_first_is_given_up(tmp_path):
    """v1's labels come late, spread among v2's later predictions, after v2's labelled
    reference: v1's estimate is given up when v2's is complete, at every batch size.
    Kept, its decisions came among v2's (they share an alert episode) at places that
    depended on how the two topics were read: at 10,000 records a poll one v2 firing
    and v1's resolve were not there."""
    timed = estimated_rows(v2_at=1000, n=3000)
    predictions = [r for r in timed if "prediction" in r[1]]
    v1_labels = [r for r in timed if "label" in r[1] and r[1]["id"] < 1000]
    v2_labels = [r for r in timed if "label" in r[1] and r[1]["id"] >= 1000]
    spread = [row for pair in zip(predictions[1500:], v1_labels) for row in pair] + predictions[2500:]
    path = write(tmp_path / "late_v1.jsonl", predictions[:1500] + v2_labels[:400] + spread + v2_labels[400:])
    reference = estimate_alerts(path, 1)
    assert [a[5] for a in reference if a[1] == "estimated_decay"] == ["v2"], reference
    for batch in (7, 500, 10_000):
        assert estimate_alerts(path, batch) == reference, batch


def test_the_label_sides_episodes_end_at_the_new_versions_first_label_with_the_reason(tmp_path):
    """The decay found in v1 (it fires about 300 labels after the change) is open when
    v2 comes: it ends where the label side moves to v2 (v2's first labelled event, in label
    order), reason new_reference, as v2's tests measure against v2's own labelled
    reference; before, v2's clean tests resolved it later with no reason."""
    switch = 1850
    ordered = sorted(rows(), key=lambda row: row[0])
    for _, event in ordered:
        if "prediction" in event:
            event["model_version"] = "v1" if event["id"] < switch else "v2"
    path = write(tmp_path / "switch.jsonl", ordered)
    # In label-record order (one label in 50 is written before its prediction, stamped later).
    first_v2_label = next(event["ts"] for _, event in ordered if "label" in event and event["id"] >= switch)
    for batch in (1, 500):
        alerts = Replay(from_dict(CONFIG), batch_size=batch).run(events([(path, False)])).alerts
        decay = [a for a in alerts if a.detector == "decay"]
        assert [(a.status, a.detail["model_version"]) for a in decay][:2] == [("firing", "v1"), ("resolved", "v2")], decay
        end = decay[1]
        assert end.detail["reason"] == "new_reference" and end.event_time == first_v2_label, end
        assert end.detail["previous_version"] == "v1", end  # the episode's own version, named


def two_shifted_versions(n: int = 3000, shift_at: int = 2000, seed: int = 2) -> list[tuple[float, dict]]:
    """Versions 1 and 2 of a classifier with scores, ``n`` predictions each, each moving to
    hard cases (its accuracy falls) from its ``shift_at``-th prediction; every prediction
    written before the labels (1,500 s late): version 2's are read before version 1's labels."""
    r = random.Random(seed)
    predictions, labels = [], []
    for version in ("1", "2"):
        for i in range(n):
            ts = 1763000000.0 + (0 if version == "1" else n) + i
            x = r.gauss(0, 1.0 if i < shift_at else 0.15)
            p = 1 / (1 + math.exp(-3 * x))
            id = f"{version}-{i}"
            predictions.append((ts, {"model": "m1", "model_version": version, "id": id, "ts": ts, "features": {"x": x},
                                     "prediction": int(p > 0.5), "score": {"0": 1 - p, "1": p}}))
            labels.append((ts + 1500, {"model": "m1", "id": id, "ts": ts + 1500, "label": int(r.random() < p)}))
    return predictions + sorted(labels, key=lambda row: row[0])


def test_the_next_versions_estimate_ends_the_earlier_ones_episode_and_alerts_on_its_own(tmp_path):
    """A new user's finding: version 1's estimated-decay episode stayed open at version 2,
    so version 2's own estimated decay (in drift 300 predictions after its shift) raised no
    alert. It ends where version 2's estimate starts (its labelled reference complete),
    reason new_reference, with no cooldown: version 2's drift fires at once."""
    path = write(tmp_path / "two_versions.jsonl", two_shifted_versions())
    settings = {"reference_size": 500, "decay_reference_size": 300, "decay_window": 300, "window": 300,
                "stride": 50, "ert": 20_000, "label_ert": 20_000}
    runs = {}
    for batch in (1, 500, 10_000):
        result = Replay(from_dict({"model_defaults": settings, "models": {"m1": {}}}), batch_size=batch).run(
            events([(path, False)]))
        runs[batch] = [(a.status, a.event_time - 1763000000.0, a.detail.get("model_version"), a.detail.get("reason"))
                       for a in result.alerts if a.detector == "estimated_decay"]
        ends = [a.detail["previous_version"] for a in result.alerts if a.detail.get("reason") == "new_reference"
                and a.detector == "estimated_decay"]
        assert ends == ["1"], ends
    got = runs[1]
    assert [(status, version, reason) for status, _, version, reason in got] == [
        ("firing", "1", None), ("resolved", "2", "new_reference"), ("firing", "2", None)], got
    assert 2000 < got[0][1] < 3000 and 5000 < got[2][1] < 6000, got
    assert got[1][1] == 3000.0 + 299 + 1500  # the label of version 2's 300th labelled event
    assert got[2][1] < got[1][1] + 900  # not held back by alerts.cooldown_seconds (900): the end is no resolve
    assert runs[500] == got and runs[10_000] == got


def test_labels_read_far_ahead_of_their_predictions_give_the_same_label_side(tmp_path, monkeypatch):
    """A new user's finding: with more than MAX_HELD_LABELS of a model's labels read ahead of
    their predictions (a daemon catching up a backlog read the labels topic first), the
    label that held its place stopped holding it, its labelled event came after those
    released, and the alerts (ids, times) differed from a replay in time order. Now the
    reader stops giving that partition's labels while its predictions have records left
    (replay defers the rows), so the held labels go in order; labels whose predictions
    never come are orphaned by the prediction stream as before. The cap is made small here
    (the same code path as 10,000)."""
    from daemon.stream import labelorder

    monkeypatch.setattr(labelorder, "MAX_HELD_LABELS", 40)
    timed = sorted(rows(), key=lambda row: row[0])
    never = [(1763000000.0 + 100 * k + 0.3, {"model": "churn", "id": f"lost-{k}", "ts": 1763000000.0 + 100 * k + 0.3,
                                             "label": 1}) for k in range(25)]  # predictions never come
    timed = sorted(timed + never, key=lambda row: row[0])
    labels_first = [r for r in timed if "label" in r[1]] + [r for r in timed if "prediction" in r[1]]
    reference, result = replay(write(tmp_path / "timed.jsonl", timed), 1)
    label_side = [a for a in reference if a[1] in LABEL_SIDE]
    assert {a[1] for a in label_side if a[0] == "firing"} == set(LABEL_SIDE), label_side

    def joins(result):
        counts = sum((state.join.counts for state in result.states.values()), Counter())
        return {outcome: counts[("churn", outcome)] for outcome in ("joined", "label_orphaned")}

    assert joins(result)["label_orphaned"] >= 24  # (the last is within the grace of the stream's end)
    path = write(tmp_path / "labels_first.jsonl", labels_first)
    for batch in (1, 37, 500, 7000):
        got, other = replay(path, batch)
        assert [a for a in got if a[1] in LABEL_SIDE] == label_side, batch
        assert joins(other) == joins(result), batch


def test_only_a_label_read_before_the_predictions_were_read_to_their_end_stops_holding_its_place(monkeypatch):
    """``overflow_below``: a label at an offset below it was read before the predictions
    topic was known to be read to its end (its prediction was produced after it, or never):
    with more than MAX_HELD_LABELS behind it, it stops holding its place. One read later may
    wait for a prediction still on its way: it keeps its place, whatever is behind it."""
    from daemon.stream import labelorder

    monkeypatch.setattr(labelorder, "MAX_HELD_LABELS", 3)
    order = labelorder.LabelOrder()
    order.hold("m", 10, "a")
    for offset in range(11, 16):
        order.place("m", offset, f"labelled {offset}")
    waits = lambda *label: True  # noqa: E731 - its prediction has not come
    assert order.full(overflow_below=10) and list(order.release(waits, overflow_below=10)) == []
    assert not order.full(overflow_below=11)
    assert list(order.release(waits, overflow_below=11)) == [("m", [f"labelled {o}" for o in range(11, 16)])]
