"""A classifier's labels of another JSON type than its predictions ("1" for 1) never match:
every labelled event would count as an error. The pipeline says so once, in the log."""

from __future__ import annotations

import json
import logging

from daemon.config import ModelConfig
from daemon.stream.pipeline import ModelPipeline


def _pairs(labels, start=0):
    # (prediction, score, model_version, prediction time, features), label
    return [((i % 2, None, None, 1.7e9 + start + i, {}), label) for i, label in enumerate(labels)]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if "no label has matched its prediction" in r.getMessage()]


def test_string_labels_for_integer_predictions_are_named_once(caplog):
    pipeline = ModelPipeline("m", ModelConfig(task="classification"))
    with caplog.at_level(logging.WARNING, logger="driftd"):
        for batch in range(5):
            pipeline.observe_labels(_pairs([str(i % 2) for i in range(50)], start=50 * batch))
    warned = _warnings(caplog)
    assert len(warned) == 1 and "label '0'" in warned[0] and "prediction 0" in warned[0], warned


def test_labels_of_the_predictions_type_or_a_merely_wrong_model_give_no_warning(caplog):
    same = ModelPipeline("m", ModelConfig(task="classification"))
    wrong = ModelPipeline("w", ModelConfig(task="classification"))
    with caplog.at_level(logging.WARNING, logger="driftd"):
        same.observe_labels(_pairs([i % 2 for i in range(100)]))
        wrong.observe_labels(_pairs([1 - i % 2 for i in range(100)]))  # always wrong, same type
    assert _warnings(caplog) == []


def _positive_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "has been neither a label nor a prediction" in r.getMessage()]


def test_a_positive_label_no_label_or_prediction_equals_is_named_once(caplog):
    """A new user's finding: positive_label 2, "yes" or "1" with 0/1 labels passed
    check-config and gave no word; precision and recall sat at 0 for every test and a
    real decay was never reported (the estimate's test of a binary score too)."""
    for positive in (2, "yes", "1", True):
        caplog.clear()
        pipeline = ModelPipeline("m", ModelConfig(task="classification", positive_label=positive,
                                                  decay_metrics=["precision", "recall"]))
        with caplog.at_level(logging.WARNING, logger="driftd"):
            for batch in range(25):  # 1,250 labelled events: checked over the first 1,000
                pipeline.observe_labels(_pairs([i % 2 for i in range(50)], start=50 * batch))
        warned = _positive_warnings(caplog)
        assert len(warned) == 1, (positive, warned)
        # In JSON's spelling (a YAML `yes` is the boolean true).
        assert f"positive_label {json.dumps(positive)} has" in warned[0] and "classes seen: 0, 1" in warned[0], warned


def test_a_positive_label_that_comes_gives_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="driftd"):
        for positive, labels in ((1, [i % 2 for i in range(1000)]), (1, [float(i % 2) for i in range(1000)]),
                                 ("yes", ["no"] * 999 + ["yes"]), (True, [i % 2 == 0 for i in range(1000)])):
            pipeline = ModelPipeline("m", ModelConfig(task="classification", positive_label=positive))
            pairs = [((label, None, None, 1.7e9 + i, {}), label) for i, label in enumerate(labels)]
            pipeline.observe_labels(pairs)
    assert _positive_warnings(caplog) == []


def test_the_positive_label_warning_is_the_same_at_every_batch_size(caplog):
    """The check looks at the first 1,000 labelled events whatever the batches: it said
    "in its first 1,050 labelled events" at batches of 50 and named the classes seen in
    another order at batches of 300 (labels first, then predictions)."""
    said = {}
    for size in (1, 7, 300, 1250):
        caplog.clear()
        pipeline = ModelPipeline("m", ModelConfig(task="classification", positive_label=2))
        pairs = _pairs(["x" if i % 2 else "y" for i in range(1250)])
        with caplog.at_level(logging.WARNING, logger="driftd"):
            for start in range(0, len(pairs), size):
                pipeline.observe_labels(pairs[start:start + size])
        said[size] = _positive_warnings(caplog)
    assert len(said[1]) == 1 and "in its first 1,000 labelled events" in said[1][0], said[1]
    assert "classes seen: \"y\", 0, \"x\", 1" in said[1][0], said[1]
    assert all(words == said[1] for words in said.values()), said


def test_a_regression_models_errors_are_scaled_for_adwin_and_the_learners_wait_for_the_scale():
    """ADWIN's bound is for values in [0, 1]: a regression's absolute errors go to it scaled by
    the version's first decay_reference_size errors (held until then, fed in order, so its
    decisions keep their places); the learners wait for those decisions as they wait for
    thresholds. A classifier's 0/1 errors go as they are."""
    import random

    from daemon.runtime.calibrator import calibrate_now
    from daemon.stream.labels import ERROR

    config = ModelConfig(task="regression", decay_metrics=["mae"], decay_reference_size=300,
                         learners={"linear": {"LinearRegression": {}}})
    pipeline = ModelPipeline("eta", config)
    adwin = pipeline.labels.detectors[("adwin", ERROR)]
    assert adwin.scale_after == 300
    r = random.Random(3)
    pairs = [((10.0, None, None, 1.7e9 + i, {"x": r.random()}), 10.0 + r.gauss(0, 4)) for i in range(450)]
    pipeline.observe_labels(pairs[:200])
    assert adwin.holding and pipeline.labels.waiting and adwin.n_seen == 0
    assert pipeline.lifecycle.learners["linear"].n_learned == 0  # held with the values
    pipeline.observe_labels(pairs[200:400])
    assert not adwin.holding and adwin.n_seen == 400 and 0 < adwin.scale
    calibrate_now(pipeline)  # the decay test's thresholds (its reference completed too)
    pipeline.observe_labels(pairs[400:])
    assert pipeline.lifecycle.learners["linear"].n_learned == 450
    classifier = ModelPipeline("churn", ModelConfig())
    assert classifier.labels.detectors[("adwin", ERROR)].scale_after is None
