"""A dry run of a configuration: what ``driftd check-config`` and ``driftd run`` check
beyond the file's own rules.

Every model runs exactly as in the daemon: a partition's state (:class:`PartitionState`,
the model's pipeline with its settings) takes a synthetic stream of prediction and label
records, batch after batch, through the same decoding, checks, join, detectors and
alerts. The predictions have a numeric feature, a categorical one, an integer one, one
sometimes missing, and a score; there are enough of them for the reference, a data window
and a few tests, and enough labels for the label side's baseline, its window and a few
tests (sizes beyond :data:`MAX_EVENTS` events in all are scaled down together:
:func:`scaled`). A record the daemon would contain as ``internal_error`` (an exception in the
model's pipeline), or anything raised, would happen on the model's first events in
production; here it stops the start with the key and the reason. Thresholds are applied
after every batch as the calibration worker's would be, but not computed (that costs
seconds per test at a production ERT, and a failure there is the worker's to contain):
every other test always alarms, the others never, so that alerts fire too.

The key is found by trying the model again with one of its settings at a time back at the
built-in default: the first setting whose default makes the run pass is named (else the
model itself). A configuration that would send every event to the dead-letter topic (no
models listed, ``auto_register_models`` false) is refused too.

>>> from daemon.config import from_dict
>>> check(from_dict({"models": {"fraud": {"reference_size": 50, "window": 20, "stride": 10, "ert": 200,
...                   "decay_reference_size": 20, "decay_window": 20}}}))   # passes: no error
>>> check(from_dict({"models": {}}))
Traceback (most recent call last):
...
daemon.config.ConfigError: models: ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import time

from kafka.consumer.fetcher import ConsumerRecord

from daemon.config import Config, ConfigError, ModelConfig


def check(config: Config) -> None:
    """Raise :class:`ConfigError` if a model of ``config`` cannot process events (the
    first such model's; every other's in its ``also``)."""
    if not config.models and not config.auto_register_models:
        raise ConfigError("models", "no models are listed and auto_register_models is false: `driftd run` would "
                                    "send every event to the dead-letter topic as unknown_model (list the models, or "
                                    "set auto_register_models: true; `driftd replay --auto-register` watches every "
                                    "model its files name with model_defaults)")
    checked: dict[str, str | None] = {}  # settings (as text) -> failure; models often share them
    errors = []
    with _quiet():
        for key, name, settings in _targets(config):
            text = repr(settings)
            if text not in checked:
                checked[text] = failure(config, name, settings)
            if checked[text] is not None:
                errors.append(ConfigError(_culprit(config, key, name, settings),
                                          f"the model's pipeline fails on a synthetic stream ({checked[text]})"))
    if errors:
        raise ConfigError.first_of(errors)


#: Largest reference the warnings' calibrated run takes (a larger one is never too small).
WARN_MAX_REFERENCE = 20_000


def warnings(config: Config) -> list[str]:
    """What a model's settings leave untested, found by building and calibrating (for
    real, at the model's own sizes) its tests on the synthetic stream: a line per kind of
    test that can never fire there, with its columns, naming the model's key. The
    synthetic stream is no one's data: a warning says that such a test is at risk with
    these settings (a reference too small for ``ert``), not that it will be skipped.
    Skipped for references above :data:`WARN_MAX_REFERENCE`."""
    from daemon.runtime.calibrator import calibrate_now
    from daemon.stream.partition import PartitionState

    lines, done = [], {}  # settings (as text) -> their lines
    with _quiet():
        for key, name, settings in _targets(config):
            if settings.reference_size > WARN_MAX_REFERENCE:
                continue
            text = repr(settings)
            if text not in done:
                state = PartitionState(0, dataclasses.replace(config, models={name: settings}, auto_register_models=False))
                predictions, _ = synthetic_stream(name, settings)
                state.handle_predictions(predictions[:settings.reference_size], lambda *a: None)
                calibrate_now(state)
                pipeline = state.models.get(name)
                never: dict[str, list] = {}  # test -> columns whose test can never fire
                for (test, column), why in sorted((pipeline.skipped if pipeline else {}).items()):
                    if why.startswith("can never fire"):
                        never.setdefault(test, []).append(column)
                done[text] = [f"{test} could never fire at these settings on the dry run's made-up "
                              f"{'columns' if len(columns) > 1 else 'column'} ({', '.join(columns)}; yours may "
                              f"differ: a replay or the daemon says of each) (reference_size "
                              f"{settings.reference_size:,}, window {settings.window:,}, ert {settings.ert:g}); a "
                              f"larger reference_size or window, or a smaller ert, would make it testable"
                              for test, columns in never.items()]
            lines += [f"{key}: {line}" for line in done[text]]
    return lines + _weak_secrets(config)


def _weak_secrets(config: Config) -> list[str]:
    """A line per webhook sink whose signing key is shorter than the spec asks, or missing."""
    from daemon.alerting.sinks import secret_warning

    return [f"alerts.sinks[{i}].secret: {weak}" for i, sink in enumerate(config.alerts.sinks)
            if sink.type != "kafka" and (weak := secret_warning(sink.type, sink.secret_value)) is not None]


def _targets(config: Config) -> list[tuple[str, str, ModelConfig]]:
    """(key, model name, settings) of every model the daemon may run, auto-registered ones
    as model_defaults."""
    targets = [(f"models.{name}", name, settings) for name, settings in config.models.items()]
    if config.auto_register_models:
        targets.append(("model_defaults", "auto-registered", config.model_defaults))
    return targets


def failure(config: Config, name: str, settings: ModelConfig) -> str | None:
    """Why model ``name`` with these settings fails on the synthetic stream, or None."""
    from daemon.runtime.calibrator import calibrate_now
    from daemon.stream.partition import PartitionState

    settings = scaled(settings)
    alone = dataclasses.replace(config, models={name: settings}, auto_register_models=False)
    contained = []

    def reject(record, reason, detail):
        if reason == "internal_error":
            contained.append(detail)

    try:
        state = PartitionState(0, alone)
        predictions, labels = synthetic_stream(name, settings)
        step = max(1, settings.stride)
        for start in range(0, len(predictions), step):
            state.handle_predictions(predictions[start:start + step], reject)
            state.handle_labels(labels[start:start + step], reject)
            calibrate_now(state, _thresholds)
            list(state.finish_batch())
            if contained:
                return contained[0]
    except Exception as e:  # noqa: BLE001 - anything at all is the answer
        return f"{type(e).__name__}: {e}"
    return None


#: Most events in one model's synthetic stream (predictions; labels as many at most).
MAX_EVENTS = 20_000
#: The settings counted in events that size the stream.
SIZES = ("reference_size", "window", "stride", "decay_reference_size", "decay_window")
#: A size is scaled to no less than this (or than itself): a degenerate size (a decay
#: window of 1, say) that the user did not set must not appear, nor one that did vanish.
LEAST_SIZE = 20


def scaled(settings: ModelConfig) -> ModelConfig:
    """``settings`` with the sizes in :data:`SIZES` scaled down together (rounded up, each
    at least :data:`LEAST_SIZE` or itself) so that the synthetic stream has at most about
    :data:`MAX_EVENTS` events; unchanged if it has no more. The pipeline takes the same
    steps at any size (collect the reference, build, test each stride), so the dry run
    of a 10^7-event reference runs in a second instead of hours and gigabytes, and the
    order of the sizes (stride within window, say) is kept."""
    n = _events(settings)
    if n <= MAX_EVENTS:
        return settings
    sizes = {name: getattr(settings, name) for name in SIZES}
    return dataclasses.replace(settings, **{name: max(min(size, LEAST_SIZE), math.ceil(size * MAX_EVENTS / n))
                                            for name, size in sizes.items()})


def _events(settings: ModelConfig) -> int:
    return max(settings.reference_size + settings.window + 2 * settings.stride, _label_side(settings))


def synthetic_stream(model: str, settings: ModelConfig, seed: int = 0) -> tuple[list, list]:
    """(prediction records, label records), the label of each prediction at the same
    index: the reference, a data window and two strides more, and as many as the label side
    needs for its baseline, its window and a few tests. Stamped in the last hours, so that
    the time bounds take them."""
    rng = random.Random(seed)
    n = _events(settings)
    classes = _classes(settings)
    start = time.time() - n - 60
    predictions, labels = [], []
    for i in range(n):
        if settings.task == "regression":
            prediction, score, label = rng.gauss(10.0, 3.0), None, rng.gauss(10.0, 3.0)
        else:
            prediction, label = classes[rng.random() < 0.3], classes[rng.random() < 0.3]
            score = {str(c): p for c, p in zip(classes, (0.7, 0.3))} if i % 2 else rng.random()
        features = {"amount": rng.expovariate(0.1), "country": rng.choice(("DE", "FR", "IT")), "count": rng.randint(0, 5)}
        if i % 3 == 0:
            features["sometimes"] = rng.random()
        ts = start + i
        predictions.append(_record("predictions", i, {"model": model, "id": f"dry-{i}", "ts": ts, "features": features,
                                                      "prediction": prediction, "score": score}))
        labels.append(_record("labels", i, {"model": model, "id": f"dry-{i}", "ts": ts + 1, "label": label}))
    return predictions, labels


def _thresholds(job) -> list[tuple[float, float]]:
    """Thresholds without the cost of calibrating them: every other test of a column always
    alarms, the rest never, so that held tests are decided and alerts both fire and not."""
    return [(-math.inf, -math.inf) if i % 2 else (math.inf, math.inf) for i in range(len(job.null_models))]


def _record(topic: str, offset: int, event: dict) -> ConsumerRecord:
    value = json.dumps(event).encode()
    key = event["model"].encode()
    return ConsumerRecord(topic, 0, -1, offset, -1, 0, key, value, [], None, len(key), len(value), -1)


def _classes(settings: ModelConfig) -> tuple:
    """Two classes, the positive one second (a class of the type of the positive label)."""
    positive = settings.positive_label
    other = (not positive) if isinstance(positive, bool) else f"not-{positive}" if isinstance(positive, str) else positive - 1
    return other, positive


def _label_side(settings: ModelConfig) -> int:
    """Labelled events the label side takes to build its baseline and test a few times."""
    sizes = [getattr(settings, name, 0) for name in ("decay_reference_size", "decay_window")]
    if not all(isinstance(size, int) for size in sizes):
        return 0
    return sum(sizes) + max(10, sizes[1] // 5)


def _culprit(config: Config, key: str, name: str, settings: ModelConfig) -> str:
    """The setting that makes the run fail: the first whose default makes it pass."""
    defaults = ModelConfig()
    for f in dataclasses.fields(ModelConfig):
        value = getattr(settings, f.name)
        if value == getattr(defaults, f.name):
            continue
        trial = dataclasses.replace(settings, **{f.name: getattr(defaults, f.name)})
        if _valid(trial) and failure(config, name, trial) is None:
            return f"{key}.{f.name}"
    return key


def _valid(settings: ModelConfig) -> bool:
    """Whether the file's own rules take these settings (a trial must be a real option)."""
    from daemon.config.rules import check_model

    try:
        check_model(settings, "trial")
    except ConfigError:
        return False
    return True


@contextlib.contextmanager
def _quiet():
    """The dry run's contained failures are its answer, not news for the log."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
