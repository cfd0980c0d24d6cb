"""Rules between configuration values that their types alone do not say: checked once at
start by :func:`daemon.config.loading.from_dict`, each failure a :class:`~daemon.config.options.ConfigError`
naming the key and the reason. The options themselves, their defaults and meanings, are
in :mod:`daemon.config.options`; what the rules cannot see (a setting that only fails on events)
the dry run finds (:mod:`daemon.runtime.dryrun`).

Each rule function is a generator of the failures it finds: it yields a ``ConfigError``
and goes on with the checks that do not depend on the failed one, so that :func:`check`
names every broken rule at once; a check that reads a setting already found wrong is
skipped (its failure would be a knock-on of the first).
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
import tempfile
import time
import urllib.parse
from collections.abc import Iterator

from kafka.util import ensure_valid_topic_name

from daemon.config.options import Config, ConfigError, ModelConfig

_POSITIVE = {
    "kafka.poll_max_records", "kafka.poll_timeout_ms", "kafka.session_timeout_ms", "kafka.fetch_max_wait_ms", "kafka.max_event_bytes",
    "state.checkpoint_interval_seconds", "state.restore_timeout_seconds", "http.liveness_timeout_seconds", "join.max_pending", "join.max_future_skew_seconds",
    "alerts.clear_after", "alerts.retry_max_seconds", "alerts.give_up_after_seconds",
}

#: Times whose arithmetic needs more than being above 0: key -> (least, most or None, why).
_TIME_BOUNDS = {
    # Settled ids are kept in buckets of a quarter of it, numbered from the epoch: 1e-300
    # made the number infinite (an OverflowError blamed on the first model, every label of a
    # replay an internal_error).
    "join.prediction_ttl_seconds": (1.0, None, "the join files settled ids in buckets of a quarter of it, "
                                               "numbered from 1970: far below a second the numbers overflow"),
    # The wait doubles per attempt from it: a tiny one made about a thousand attempts (a
    # flood of the sink) before the doubling overflowed.
    "alerts.retry_initial_seconds": (0.01, None, "a retry waits at least this long: less floods the sink"),
    "kafka.reconnect_backoff_max_seconds": (0.001, 86_400.0, "kafka-python takes it in whole milliseconds; "
                                                             "a longest wait of more than a day is not one"),
}

#: Most events a model holds at once in a reference, a window or a baseline.
MAX_EVENTS_HELD = 10_000_000


def check(config: Config, secrets: bool = True, state_dir: bool = True,
          inherited: dict[str, set[str]] | None = None) -> None:
    """Rules between values that types alone do not say; raises
    :class:`~daemon.config.options.ConfigError` naming the key: every broken rule of every
    section and model, all in one error (:meth:`~daemon.config.options.ConfigError.first_of`),
    so that a file with several mistakes is fixed in one go. A failure that follows from an
    earlier one of the same setting is not named again (a window of 1 is named, not the
    stride it makes too large; a key one rule refused, not another rule's reason for it).

    ``secrets``: whether the secrets must be there (False for commands that neither send nor
    sign: see :func:`daemon.config.loading.load`). ``state_dir``: whether ``state.dir`` must
    be a directory driftd can use on this machine (:func:`state_dir_problem`; no directory
    is made). ``inherited``: model name -> the settings it takes from ``model_defaults``
    (its failures that are model_defaults' own are named once, there; default: none)."""
    errors: list[ConfigError] = []
    rules = [_check_ranges, _check_state, *([_check_state_dir] if state_dir else []), _check_topics, _check_join,
             _check_http, _check_metrics, _check_logging, lambda c: _check_sinks(c, secrets), _check_client,
             _check_kafka, lambda c: _check_models(c, inherited or {}), lambda c: _check_registry(c, secrets),
             # Last, and its learners built only on a file otherwise right (read when it runs):
             # it builds the models' learners, which the rules above check.
             lambda c: _check_federation(c, learners=not errors)]
    for rule in rules:
        named = {e.key for e in errors}
        # A key an earlier rule refused: its reason here would follow from that one.
        errors += [e for e in ConfigError.collect(rule(config)) if e.key not in named]
    ConfigError.raise_any(errors)


def _check_federation(config: Config, learners: bool) -> Iterator[ConfigError]:
    from daemon.federation import problems  # (imports the learners: only here)

    return problems(config, learners)


def _value(config: Config, key: str):
    """The value of ``section.name`` in ``config``."""
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _check_ranges(config: Config) -> Iterator[ConfigError]:
    failed = set()  # keys out of range: the rules between two of them would be knock-ons
    for key in sorted(_POSITIVE):
        if _value(config, key) <= 0:
            failed.add(key)
            yield ConfigError(key, "must be above 0")
    for key in sorted(_TIME_BOUNDS):
        value, (least, most, why) = _value(config, key), _TIME_BOUNDS[key]
        if value < least or (most is not None and value > most):
            failed.add(key)
            within = f"at least {least:g}" if most is None else f"between {least:g} and {most:g}"
            yield ConfigError(key, f"must be {within} (seconds), got {value:g}: {why}")
    for key in ("join.label_grace_seconds", "alerts.cooldown_seconds", "kafka.create_topics"):
        if _value(config, key) < 0:
            yield ConfigError(key, "must not be negative")
    retry = ("alerts.retry_initial_seconds", "alerts.retry_max_seconds")
    if not failed & set(retry) and config.alerts.retry_initial_seconds > config.alerts.retry_max_seconds:
        yield ConfigError("alerts.retry_initial_seconds", f"must not exceed alerts.retry_max_seconds "
                                                          f"({config.alerts.retry_max_seconds:g})")
    if config.max_auto_registered_models < 1:
        yield ConfigError("max_auto_registered_models", f"must be at least 1, got {config.max_auto_registered_models}")


def _check_state(config: Config) -> Iterator[ConfigError]:
    max_request = config.kafka.client.get("max_request_size", 1_048_576)
    if isinstance(max_request, int) and not 1024 <= config.kafka.dead_letter_max_bytes <= max_request - 1024:
        yield ConfigError("kafka.dead_letter_max_bytes", f"must be between 1024 and the producer's max_request_size "
                                                         f"less 1024 ({max_request - 1024})")
    if config.state.topic and isinstance(max_request, int) and not 1024 <= config.state.piece_bytes <= max_request - 1024:
        yield ConfigError("state.piece_bytes", f"must be between 1024 and the producer's max_request_size less 1024 "
                                               f"({max_request - 1024})")
    if config.state.refused_state not in ("wait", "start_fresh"):
        yield ConfigError("state.refused_state", f"must be wait or start_fresh, got {config.state.refused_state!r}")


def _check_state_dir(config: Config) -> Iterator[ConfigError]:
    problem = state_dir_problem(config.state.dir)
    if problem is not None:
        yield ConfigError("state.dir", problem)


def state_dir_problem(directory: str) -> str | None:
    """Why driftd could not keep its files in ``directory`` (``cannot use PATH: ...`` or
    ``cannot create PATH: ...``), or None when it is a directory driftd's user can write
    in, or could be made as one: its nearest existing ancestor is such a directory.
    No directory is made: ``check-config`` changes nothing (a file made and removed at once,
    unnamed where the system allows, is the one sure test of writing: ``access()`` says yes
    to root even on ``/proc``)."""
    path = os.path.abspath(directory)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return _creatable(directory, path)
    except OSError as e:  # a parent that is a file (ENOTDIR), one not searchable, a name too long
        if e.errno == errno.ENOTDIR:
            return _creatable(directory, path)
        return f"cannot use {directory}: {e.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"cannot use {directory}: it is {_kind(info)}"
    reason = _unwritable(path, "it")
    return None if reason is None else f"cannot use {directory}: {reason}"


def _creatable(directory: str, path: str) -> str | None:
    """Why ``directory`` (missing; ``path`` absolute) could not be made, or None: its
    nearest existing ancestor must be a directory driftd can write in."""
    parent = path
    while True:
        if os.path.islink(parent) and not os.path.exists(parent):  # (mkdir would find the link in its way)
            return f"cannot create {directory}: {parent} is a symbolic link to {os.readlink(parent)}, which does not exist"
        parent = os.path.dirname(parent)
        try:
            info = os.stat(parent)
            break
        except (FileNotFoundError, NotADirectoryError):
            continue  # (the root exists: the walk ends)
        except OSError as e:
            return f"cannot create {directory}: {parent}: {e.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"cannot create {directory}: {parent} is {_kind(info)}"
    reason = _unwritable(parent, parent)
    return None if reason is None else f"cannot create {directory}: {reason}"


def _kind(info: os.stat_result) -> str:
    """What a path that is not a directory is, as the reasons say it."""
    return "a file, not a directory" if stat.S_ISREG(info.st_mode) else "not a directory"


def _unwritable(directory: str, name: str) -> str | None:
    """Why driftd's user cannot make files in ``directory`` (an existing directory, called
    ``name`` in the reason), or None."""
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"driftd's user cannot write in {name}"
    try:  # an unnamed file where the system has them (O_TMPFILE): nothing is left behind
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        return f"a file cannot be made in {name} ({e.strerror})"
    return None


def _check_join(config: Config) -> Iterator[ConfigError]:
    if not 0 < config.join.duplicate_false_positive_rate < 0.01:
        yield ConfigError("join.duplicate_false_positive_rate", "must be above 0 and below 0.01")
    latest = time.time() + config.join.max_future_skew_seconds
    # (a skew of 0 or less is refused by its own key: against it every time would be late)
    if config.join.max_future_skew_seconds > 0 and config.join.earliest_event_time > latest:
        yield ConfigError("join.earliest_event_time", f"{config.join.earliest_event_time:g} is later than any event "
                          "may be stamped (now + join.max_future_skew_seconds): every event would be a dead letter")


def _check_http(config: Config) -> Iterator[ConfigError]:
    # One turn of the loop may wait for an absent broker (daemon/runtime/service.py): a
    # shorter liveness window would restart a daemon that is only waiting.
    floor = max(20.0, 5 * config.kafka.poll_timeout_ms / 1000)
    if config.http.liveness_timeout_seconds < floor:
        yield ConfigError("http.liveness_timeout_seconds", f"must be at least {floor:g} (20, and 5 x kafka.poll_timeout_ms): "
                                                           "one turn of the loop may wait that long for an absent broker")
    if not 0 <= config.http.port <= 65535:
        yield ConfigError("http.port", "must be between 0 and 65535")


def _check_logging(config: Config) -> Iterator[ConfigError]:
    if config.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        yield ConfigError("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    if config.log_format not in ("text", "json"):
        yield ConfigError("log_format", "must be text or json")


def _check_sinks(config: Config, secrets: bool) -> Iterator[ConfigError]:
    for i, sink in enumerate(config.alerts.sinks):
        yield from _check_sink(f"alerts.sinks[{i}]", sink, secrets)


def _check_sink(key: str, sink, secrets: bool) -> Iterator[ConfigError]:
    if sink.type not in ("webhook", "slack", "kafka"):
        yield ConfigError(f"{key}.type", "must be webhook, slack or kafka")
        return  # (what else the sink needs depends on its type)
    if sink.type == "kafka" and not sink.topic:
        yield ConfigError(f"{key}.topic", "a kafka sink needs a topic")
    if sink.type != "kafka" and not _is_http_url(sink.url):
        yield ConfigError(f"{key}.url", "must be an http:// or https:// URL with a host")
    unused = ("url", "secret") if sink.type == "kafka" else ("topic",)
    for name in unused:
        if getattr(sink, name) is not None:
            yield ConfigError(f"{key}.{name}", f"a {sink.type} sink takes no {name} (it would be ignored)")
    if sink.type != "kafka" and sink.secret is not None:
        yield from _check_signing_key(f"{key}.secret", sink.secret_value, secrets)
    if not (isinstance(sink.timeout_seconds, (int, float)) and sink.timeout_seconds > 0):
        yield ConfigError(f"{key}.timeout_seconds", f"must be above 0, got {sink.timeout_seconds!r}")


def _check_signing_key(key: str, secret: str | None, secrets: bool) -> Iterator[ConfigError]:
    from daemon.alerting.sinks import signer

    if secrets and not (secret or "").strip():  # (an unset variable is refused where it is read)
        yield ConfigError(key, "is empty (or blank): alerts would go unsigned; give a key, or no secret to send "
                               "unsigned")
        return
    try:
        signer(secret)
    except ValueError as e:
        yield ConfigError(key, str(e))


def _check_kafka(config: Config) -> Iterator[ConfigError]:
    if not 0 <= config.kafka.embedded_port <= 65535:
        yield ConfigError("kafka.embedded_port", "must be between 0 and 65535")
    if config.kafka.fetch_max_wait_ms >= 30_000:
        yield ConfigError("kafka.fetch_max_wait_ms", f"must be below 30000 (ms), the consumer's request timeout, got "
                                                     f"{config.kafka.fetch_max_wait_ms}")
    if config.kafka.session_timeout_ms < 1000:
        yield ConfigError("kafka.session_timeout_ms", f"must be at least 1000 (ms), got {config.kafka.session_timeout_ms}: "
                                                      f"driftd heartbeats every tenth of it, at least 100 ms apart (brokers "
                                                      f"also refuse less than their group.min.session.timeout.ms, 6000 "
                                                      f"by default)")


def _check_models(config: Config, inherited: dict[str, set[str]]) -> Iterator[ConfigError]:
    defaults = list(model_problems(config.model_defaults, "model_defaults"))
    yield from defaults
    # model_defaults' failure again in each model that takes the setting from it is one
    # mistake, named once (its reason the same: a reason that depends on the model's own
    # settings, e.g. "must not exceed window (5)", is the model's).
    known = {(e.key.removeprefix("model_defaults"), e.reason) for e in defaults}
    for name, model in config.models.items():
        key = f"models.{name}"
        for error in model_problems(model, key):
            setting = _setting(error.key, key)
            if setting in inherited.get(name, ()) and (error.key.removeprefix(key), error.reason) in known:
                continue
            yield error


def _setting(error_key: str, model_key: str) -> str:
    """The setting of a model that ``error_key`` is under: ``features`` for
    ``models.m.features.x`` (``model_key`` ``models.m``)."""
    return re.split(r"[.\[]", error_key.removeprefix(model_key + "."), maxsplit=1)[0]


def _check_registry(config: Config, secrets: bool) -> Iterator[ConfigError]:
    if config.registry.keep < 1:
        yield ConfigError("registry.keep", "must be at least 1")
    if config.has_learners and not os.environ.get(config.registry.key_env) and secrets:
        yield ConfigError("registry.key_env", f"models have learners, so promoted models are signed: set {config.registry.key_env}")


#: Topics driftd always reads or writes: empty, kafka-python refused to subscribe (a
#: traceback naming no key) or the broker was sent a topic named ''.
_REQUIRED_TOPICS = ("kafka.predictions_topic", "kafka.labels_topic", "kafka.dead_letter_topic")


def _check_topics(config: Config) -> Iterator[ConfigError]:
    """Each topic of driftd's cluster has one purpose: a topic it writes that is also one
    it reads comes back to it (a dead-letter topic that is the predictions topic: every
    dead letter read again, and dead-lettered again, without end), and labels on the
    predictions topic are never read as labels."""
    used = [("kafka.predictions_topic", config.kafka.predictions_topic), ("kafka.labels_topic", config.kafka.labels_topic),
            ("kafka.dead_letter_topic", config.kafka.dead_letter_topic), ("state.topic", config.state.topic),
            ("registry.model_updated_topic", config.registry.model_updated_topic)]
    used += [(f"alerts.sinks[{i}].topic", sink.topic) for i, sink in enumerate(config.alerts.sinks) if sink.type == "kafka"]
    federation = config.federation
    if federation.enabled and federation.bootstrap_servers in ("", config.kafka.bootstrap_servers):
        used += [("federation.topic", federation.topic), ("federation.election_topic", federation.election_topic)]
    seen: dict[str, str] = {}
    for key, topic in used:
        if not topic and key in _REQUIRED_TOPICS:
            yield ConfigError(key, "must not be empty: driftd cannot run without this topic (only the optional "
                                   "topics, such as state.topic and registry.model_updated_topic, are off when empty)")
            continue
        if not topic:
            continue  # not used
        try:
            ensure_valid_topic_name(topic)  # (kafka-python's rules, Kafka's own)
        except ValueError as e:
            yield ConfigError(key, f"{topic!r} is not a Kafka topic name: {e}")
            continue
        if topic in seen:
            yield ConfigError(key, f"{topic!r} is already {seen[topic]}: each of driftd's topics has one purpose")
            continue
        seen[topic] = key


#: kafka-python settings that driftd gives its clients itself: where to set them instead,
#: if anywhere.
_SET_BY_DRIFTD = {"bootstrap_servers": " (kafka.bootstrap_servers)", "group_id": " (kafka.group_id)",
                  "session_timeout_ms": " (kafka.session_timeout_ms)", "fetch_max_wait_ms": " (kafka.fetch_max_wait_ms)",
                  "max_poll_records": " (kafka.poll_max_records)",
                  "heartbeat_interval_ms": " (a tenth of kafka.session_timeout_ms)",
                  "enable_auto_commit": " (false: offsets are committed after each checkpoint)",
                  "reconnect_backoff_max_ms": " (kafka.reconnect_backoff_max_seconds)",
                  "request_timeout_ms": " (30000 for the consumer, a timeout of its own for each request driftd "
                                        "makes otherwise)",
                  "max_in_flight_requests_per_connection": " (1 for the state topic's producer, which keeps a "
                                                           "checkpoint's records in order)"}


def _check_client(config: Config) -> Iterator[ConfigError]:
    """Every ``kafka.client`` key a setting of each kafka-python client it goes to (consumer
    and producer; the admin client too when driftd creates topics): kafka-python refuses
    an unknown one when the client is made, and ``driftd run`` retried that for ever."""
    if not config.kafka.client:
        return  # (and no import of kafka-python: a third of a second)
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    clients = [KafkaConsumer, KafkaProducer] + [KafkaAdminClient] * (config.kafka.create_topics > 0)
    known = set.intersection(*(set(c.DEFAULT_CONFIG) for c in clients))
    for name in config.kafka.client:
        if name in _SET_BY_DRIFTD:
            yield ConfigError(f"kafka.client.{name}", f"driftd sets it itself{_SET_BY_DRIFTD[name]}: given here as "
                                                      f"well, kafka-python would refuse to make the client")
        elif name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            yield ConfigError(f"kafka.client.{name}", f"not a kafka-python setting that the "
                                                      f"{', '.join(c.__name__ for c in clients)} all take{hint}")


def _check_metrics(config: Config) -> Iterator[ConfigError]:
    metrics = config.metrics
    if metrics.per_feature not in ("all", "alerting", "none"):
        yield ConfigError("metrics.per_feature", f"must be all, alerting or none, got {metrics.per_feature!r}")
    if metrics.per_feature_hold_seconds < 0:
        yield ConfigError("metrics.per_feature_hold_seconds", "must not be negative")
    if metrics.lag_refresh_seconds <= 0:
        yield ConfigError("metrics.lag_refresh_seconds", "must be above 0")


_BINARY_DETECTORS = ("DDM", "EDDM", "HDDM_A", "HDDM_W")


def _is_http_url(url: str | None) -> bool:
    if not url or any(c.isspace() for c in url):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_model(model: ModelConfig, key: str) -> None:
    """Raise :class:`ConfigError` if the settings ``model`` (of ``key``: ``models.NAME`` or
    ``model_defaults``) break a rule: every broken rule (:func:`model_problems`), as one."""
    ConfigError.raise_any(ConfigError.collect(model_problems(model, key)))


def model_problems(model: ModelConfig, key: str) -> Iterator[ConfigError]:
    """A :class:`ConfigError` for each rule the settings ``model`` (of ``key``) break, each
    naming ``key.<setting>`` and the reason. A setting already found wrong is not checked
    against the others (a window of 1 is named, not also the stride it makes too large; an
    unknown task, not the metrics or features that depend on the task)."""
    found: list[ConfigError] = []

    def wrong(*names: str) -> bool:
        """Whether a rule of one of these settings (or of an entry of one) failed already."""
        return any(_setting(e.key, key) in names for e in found)

    for part in (_model_sizes, _model_features, _model_tests, _model_error_detector, _model_learning,
                 _model_learners, _model_decay_metrics, _model_switches):
        for error in part(model, key, wrong):  # (one at a time: wrong() sees the part's own so far)
            found.append(error)
            yield error


def _model_sizes(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """The task, and the sizes of the reference, the windows and their strides."""
    from detectors.binning import MIN_REFERENCE

    if model.task not in ("classification", "regression"):
        yield ConfigError(f"{key}.task", "must be classification or regression")
    if model.reference_size < MIN_REFERENCE:
        yield ConfigError(f"{key}.reference_size", f"must be at least {MIN_REFERENCE}: no test can be built from fewer reference values")
    for name, least in (("window", 2), ("stride", 1), ("max_features", 1), ("decay_window", 2), ("decay_reference_size", 2)):
        if getattr(model, name) < least:
            yield ConfigError(f"{key}.{name}", f"must be at least {least}")
    for name in ("reference_size", "window", "decay_reference_size", "decay_window"):
        if getattr(model, name) > MAX_EVENTS_HELD:
            yield ConfigError(f"{key}.{name}", f"must be at most {MAX_EVENTS_HELD:,}: these events' values are held in "
                                               f"memory (up to 8 bytes per value and feature), got {getattr(model, name):,}")
    if not wrong("stride", "window") and model.stride > model.window:
        yield ConfigError(f"{key}.stride", f"must not exceed window ({model.window})")
    if not wrong("stride") and model.ert < model.stride:
        yield ConfigError(f"{key}.ert", f"must be at least stride ({model.stride})")
    if model.label_ert < 1:
        yield ConfigError(f"{key}.label_ert", "must be at least 1")
    decay_stride = max(1, model.decay_window // 10)  # the decay tests' (detectors.decay)
    if not wrong("label_ert", "decay_window") and model.decay_metrics and model.label_ert < decay_stride:
        yield ConfigError(f"{key}.label_ert", f"must be at least the decay tests' stride (decay_window / 10: "
                                              f"{decay_stride} labelled events), got {model.label_ert:g}")


def _model_tests(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """Each test of ``numeric_tests`` and ``categorical_tests`` known, and listed once."""
    for name, known in (("numeric_tests", ("psi", "ks", "cusum")), ("categorical_tests", ("psi", "chisquare", "cusum"))):
        tests = getattr(model, name)
        for test in dict.fromkeys(tests):  # (each test once, in the list's order)
            if test not in known:
                yield ConfigError(f"{key}.{name}", f"unknown test {test!r} ({', '.join(known)})")
            elif tests.count(test) > 1:  # (it would count twice in the split of the model's ert)
                yield ConfigError(f"{key}.{name}", f"{test!r} is listed {tests.count(test)} times")


def _model_error_detector(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """The error-stream detector known, fit for the task, and its parameters River's."""
    from detectors import RIVER_DETECTORS, RiverDetector
    from learners import ranges

    if not model.error_detector:
        return
    if model.error_detector not in RIVER_DETECTORS:
        yield ConfigError(f"{key}.error_detector", f"unknown detector (one of {', '.join(RIVER_DETECTORS)})")
        return  # (its parameters are another detector's)
    if not wrong("task") and model.task == "regression" and model.error_detector in _BINARY_DETECTORS:
        yield ConfigError(f"{key}.error_detector", f"{model.error_detector} takes 0/1 errors; a regression model needs ADWIN, PageHinkley or KSWIN")
        return
    params, where = model.error_detector_params, f"{key}.error_detector_params"
    found = ranges.problem(model.error_detector, params)
    if found is not None:
        yield ConfigError(f"{where}.{found[0]}", found[1])
    if "scale_after" in params and (found is None or found[0] != "scale_after"):
        yield ConfigError(f"{where}.scale_after", "is driftd's, not River's: a regression's errors are scaled for "
                                                  "ADWIN by the first decay_reference_size of them")
    if wrong("error_detector_params"):
        return  # (building it would fail on the same parameter)
    try:  # build it once now, so that a bad parameter stops the start, not the first label
        RiverDetector(model.error_detector, **params)
    except ValueError as e:
        # decision_every is driftd's own parameter, checked by RiverDetector, not by River.
        own = ".decision_every" if str(e).startswith("decision_every") else ""
        yield ConfigError(f"{where}{own}", str(e))


#: The settings of a model's learning (:func:`_model_learning`), which its learners are built with.
_LEARNING = ("promotion_margin", "promotion_alpha", "promotion_min_events", "promotion_min_interval_seconds",
             "promotion_window", "replay_reservoir_size", "replay_recent_size", "retrain_every", "retrain_cooldown",
             "retrain_warm_start", "max_retrained")


def _model_learning(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """The learning settings' ranges, with or without learners (the learners' own classes
    check them too, but named their parameters, not these keys)."""
    from learners.retraining import RETRAIN_MIN_EVENTS, WARM_START

    rules = [
        ("promotion_margin", lambda: 0 <= model.promotion_margin < 1, "must be at least 0 and below 1"),
        ("promotion_alpha", lambda: 0 < model.promotion_alpha < 1, "must be above 0 and below 1"),
        ("promotion_min_events", lambda: model.promotion_min_events >= 1, "must be at least 1"),
        ("promotion_min_interval_seconds", lambda: model.promotion_min_interval_seconds >= 0, "must not be negative"),
        ("promotion_window", lambda: wrong("promotion_min_events") or model.promotion_window >= model.promotion_min_events,
         f"must be at least promotion_min_events ({model.promotion_min_events})"),
        ("replay_reservoir_size", lambda: model.replay_reservoir_size >= 0, "must not be negative"),
        ("replay_recent_size", lambda: model.replay_recent_size >= 0, "must not be negative"),
        ("replay_recent_size", lambda: wrong("replay_reservoir_size", "replay_recent_size")
         or model.replay_reservoir_size + model.replay_recent_size > 0, "and replay_reservoir_size must not both be 0"),
        # A retrain waits for RETRAIN_MIN_EVENTS in the buffer: smaller, it never came, silently.
        ("replay_reservoir_size", lambda: not model.learners or model.max_retrained == 0
         or wrong("replay_reservoir_size", "replay_recent_size", "max_retrained")
         or max(model.replay_reservoir_size, model.replay_recent_size) >= RETRAIN_MIN_EVENTS,
         f"or replay_recent_size must be at least {RETRAIN_MIN_EVENTS} with learners that retrain (the larger of "
         f"the two; the buffer needs {RETRAIN_MIN_EVENTS} labelled events before a retrain, and both may hold "
         f"the same events; max_retrained: 0 for no retrains; replay_recent_size is {model.replay_recent_size!r})"),
        ("retrain_every", lambda: model.retrain_every >= 0, "must not be negative (0: never)"),
        ("retrain_cooldown", lambda: model.retrain_cooldown >= 0, "must not be negative"),
        ("retrain_warm_start", lambda: model.retrain_warm_start in WARM_START, f"must be one of {', '.join(WARM_START)}"),
        ("max_retrained", lambda: model.max_retrained >= 0, "must not be negative"),
    ]
    for name, ok, rule in rules:  # (each rule judged after the ones before it were yielded)
        if not ok():
            yield ConfigError(f"{key}.{name}", f"{rule}, got {getattr(model, name)!r}")


def _model_learners(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """The learners' specs, built once (with the task and the learning settings, so only
    when those are right: else the failure would be theirs again)."""
    if not model.learners or wrong("task", *_LEARNING):
        return
    from daemon.stream.learning import build_lifecycle

    try:
        build_lifecycle(model, f"{key}.learners")
    except ValueError as e:
        text = str(e)
        yield ConfigError(text.split(": ", 1)[0] if text.startswith(key) else f"{key}.learners", text.split(": ", 1)[-1])


def _model_decay_metrics(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """Each decay metric one of the task's (unknown task: no metric is known to be wrong)."""
    from detectors import METRICS

    if wrong("task"):
        return
    allowed = ("accuracy", "precision", "recall", "f1") if model.task == "classification" else ("mae", "rmse")
    for metric in dict.fromkeys(model.decay_metrics):
        if metric not in METRICS or metric not in allowed:
            yield ConfigError(f"{key}.decay_metrics", f"{metric!r} is not a {model.task} metric ({', '.join(allowed)})")


def _model_switches(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    for option in ("estimation", "reconstruction"):
        value = getattr(model, option, "auto")
        if value not in ("auto", "off"):
            yield ConfigError(f"{key}.{option}", f"must be auto (or on, yes, true) or off (or no, false), got {value!r}")


def _model_features(model: ModelConfig, key: str, wrong) -> Iterator[ConfigError]:
    """``features:`` entries (each on its own): known types, reserved names used as they
    can be, and no more declared than ``max_features``."""
    natural = {"<prediction>": "numeric" if model.task == "regression" else "categorical", "<score>": "numeric"}
    for name, kind in model.features.items():
        where = f"{key}.features.{name}"
        if not isinstance(name, str):
            yield ConfigError(where, "feature names are strings: quote the name")
        elif not name.strip():
            yield ConfigError(where, f"{name!r} is not a feature's name: an empty (or blank) name is never a column")
        elif kind not in ("numeric", "categorical", "ignore"):
            yield ConfigError(where, f"must be numeric, categorical or ignore, got {kind!r}")
        elif name in natural and kind not in (natural[name], "ignore") and not wrong("task"):
            yield ConfigError(where, f"{name} of a {model.task} model is {natural[name]}; it can only be ignored")
        elif name not in natural and name.startswith("<") and name.endswith(">"):
            yield ConfigError(where, "names in angle brackets are reserved (<prediction>, <score>)")
    declared = [n for n, k in model.features.items() if k != "ignore" and not (isinstance(n, str) and n.startswith("<"))]
    if not wrong("max_features") and len(declared) > model.max_features:
        yield ConfigError(f"{key}.features", f"{len(declared)} features declared, more than max_features ({model.max_features})")
