"""Labels go to the era of model versions their prediction was made in.

The label side and the estimated performance each told a label's era by rules of their
own: the label side moved to the *first* later era of the name (with versions a -> b ->
a -> b, a label of the last b moved it to the first b's era, whose late labels then
counted beside the new ones), and dropped a prediction stamped before its era's first
prediction (produced out of time order), which the estimate took. Both now ask
:func:`daemon.stream.versions.epoch_of`. Real parts: a model's pipeline, fed decoded
predictions in memory.
"""

from __future__ import annotations

from types import SimpleNamespace

from daemon.config import ModelConfig
from daemon.stream.pipeline import ModelPipeline

T0 = 1_750_000_000.0


def _predictions(eras: list, per_era: int = 150) -> list:
    out = []
    for e, name in enumerate(eras):
        out += [SimpleNamespace(features={"x": float(i % 7)}, prediction=i % 2, score=0.5, model_version=name,
                                ts=T0 + 1000 * e + i) for i in range(per_era)]
    return out


def _pair(version: str, ts: float, label: int = 1) -> tuple:
    return ((label, 0.5, version, ts, {"x": 1.0}), label)


def test_a_label_of_a_versions_later_era_moves_the_label_side_to_that_era_not_the_first_of_the_name():
    pipeline = ModelPipeline("m", ModelConfig(reference_size=100))
    pipeline.observe_predictions(_predictions(["a", "b", "a", "b"]))
    assert [(epoch, name) for epoch, name, *_ in pipeline.versions] == [(1, "a"), (2, "b"), (3, "a"), (4, "b")]
    assert pipeline.observe_labels([_pair("b", T0 + 3000 + 5)]) == 1  # a prediction of the second b
    assert (pipeline.labels_epoch, pipeline.labels.version) == (4, "b")  # was 2: the first b's era
    assert pipeline.observe_labels([_pair("b", T0 + 1000 + 5)]) == 0  # a late label of the first b: its era is gone
    assert pipeline.observe_labels([_pair("b", T0 + 3000 + 6)]) == 1


def test_a_prediction_stamped_before_its_eras_first_is_that_eras_on_both_sides():
    pipeline = ModelPipeline("m", ModelConfig(reference_size=100))
    pipeline.observe_predictions(_predictions(["a", "b"]))
    early = [SimpleNamespace(features={"x": 1.0}, prediction=1, score=0.5, model_version="b", ts=T0 + 990)]
    pipeline.observe_predictions(early)  # read after b's first (stamped T0 + 1000): out of time order
    payload, label = _pair("b", T0 + 990)
    assert pipeline.estimates.of(payload, pipeline.versions) is pipeline.estimates.current
    assert pipeline.observe_labels([(payload, label)]) == 1  # was 0: the label side dropped it
    assert (pipeline.labels_epoch, pipeline.labels.version) == (2, "b")


def _canary_stream(seed: int = 11, n: int = 5000, first: str = "1", canary: range = range(3000, 3200),
                   before: str = "2", since: int = 2500, drift_from: int = 3600, noise_from: int = 4200) -> list:
    """Predictions each followed by its label (0-200 s later), event times jittered by
    +/-30 s; model_version ``first``, then ``before`` from prediction ``since``, then 2 and
    3 interleaved at random (a canary) over ``canary``, then 3; the features drift from
    ``drift_from``, the labels turn noisy from ``noise_from``."""
    import random

    r, version, rows = random.Random(seed), first, []
    for i in range(n):
        t = T0 + i + r.uniform(-30, 30)
        version = r.choice("23") if i in canary else "3" if i >= canary.stop else before if i >= since else first
        drift = i > drift_from
        x, y, c = r.gauss(0.8 if drift else 0, 1), r.gauss(0, 1), r.choice("aabcdd" if drift else "abcd")
        p = int(x + y > 0)
        rows.append({"model": "m", "model_version": version, "id": i, "ts": t, "features": {"x": x, "y": y, "c": c},
                     "prediction": p, "score": 1 / (1 + 2.718 ** -(x + y))})
        rows.append({"model": "m", "id": str(i), "ts": t + r.uniform(0, 200),
                     "label": p if r.random() < (0.9 if i < noise_from else 0.6) else 1 - p})
    return rows


def _replayed(tmp_path, stream: list, sizes: tuple) -> dict:
    """batch size -> (the alerts as sorted JSON texts, the summary as JSON text) of a
    replay of ``stream`` (small tests: reference 600, window 200, every 25)."""
    import json

    from daemon.config import from_dict
    from daemon.offline.recording import summary
    from daemon.offline.replay import Replay, events

    path = tmp_path / "canary.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in stream))
    config = from_dict({"kafka": {"create_topics": 1}, "alerts": {"cooldown_seconds": 60},
                        "join": {"prediction_ttl_seconds": 3600, "label_grace_seconds": 300},
                        "model_defaults": {"reference_size": 600, "window": 200, "stride": 25, "ert": 100_000,
                                           "decay_reference_size": 300, "decay_window": 200, "label_ert": 100_000},
                        "models": {"m": {}}})
    found = {}
    for size in sizes:
        result = Replay(config, batch_size=size).run(events([(str(path), False)]))
        alerts = sorted(json.dumps(a.to_dict(), sort_keys=True) for a in result.alerts)
        found[size] = (alerts, json.dumps(summary(result.states), sort_keys=True, default=str))
    return found


def test_a_canarys_label_alerts_are_the_same_whatever_the_batch_size(tmp_path):
    """A new user's finding: with two versions' predictions interleaved (a canary) and
    event times a little out of order, a label's era was told by its version's name and
    event time among the eras read so far, and how many were read when the label came
    depended on the batch: the decay and ADWIN alerts fired 3 labels apart at batches of 1
    and 500 (labels 4283 and 4280). A prediction now carries its index in its model's
    stream, and its era is the one in force at that index."""
    import json

    found = {size: alerts for size, (alerts, _) in _replayed(tmp_path, _canary_stream(), (1, 7, 500)).items()}
    label_side = [a for a in map(json.loads, found[500]) if a["detector"] in ("decay", "adwin")]
    assert {a["detector"] for a in label_side} == {"decay", "adwin"}  # the stream's label noise is found
    assert found[1] == found[7] == found[500]


def test_a_canary_of_hundreds_of_versions_concludes_the_same_whatever_the_batch_size(tmp_path):
    """The second trial's finding: with hundreds of version changes (two versions'
    predictions alternating), a model remembered its last 100 versions, so whether a late
    label's era was still known depended on how far the predictions had been read when it
    came: the error-stream detector ran 8,223 tests at polls of 1 and 7,721 at 5,000. The
    eras a label may still need (from the label side's on) are now kept, and forgotten by
    the labels alone."""
    # Versions 2 and 3 alternate for 800 predictions: about 400 version changes, more than
    # the last 100 a model remembered, and the labels come 0-200 s late.
    stream = _canary_stream(seed=3, n=6000, canary=range(2000, 2800), before="1", since=0, drift_from=4000,
                            noise_from=4600)
    found = _replayed(tmp_path, stream, (1, 500, 5000))
    assert found[1][0], "the stream's drift is found"
    assert found[1] == found[500] == found[5000]


def test_a_model_whose_labels_never_come_keeps_at_most_max_eras_and_warns_once(caplog):
    from daemon.stream.estimates import MAX_EARLIER
    from daemon.stream.versions import MAX_ERAS

    pipeline = ModelPipeline("m", ModelConfig(reference_size=100))
    alternating = [SimpleNamespace(features={"x": 1.0}, prediction=1, score=0.5, model_version="ab"[i % 2], ts=T0 + i)
                   for i in range(MAX_ERAS + 500)]
    with caplog.at_level("WARNING", logger="driftd.stream.pipeline"):
        pipeline.observe_predictions(alternating)
    assert len(pipeline.versions) == MAX_ERAS and pipeline.versions[-1][0] == MAX_ERAS + 500
    assert len(pipeline.estimates.earlier) == MAX_EARLIER
    assert sum("more than 10000 model versions started before their labels" in r.message for r in caplog.records) == 1
