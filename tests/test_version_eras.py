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
    assert [(epoch, name) for epoch, name, _ in pipeline.versions] == [(1, "a"), (2, "b"), (3, "a"), (4, "b")]
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
