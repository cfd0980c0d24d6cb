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
import pickle
import random

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


def replay(path: str, batch: int, checkpoint: bool = False) -> tuple[list, object]:
    run = Replay(from_dict(CONFIG), batch_size=batch)
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
