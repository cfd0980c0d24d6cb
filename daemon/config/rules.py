"""Rules between configuration values that their types alone do not say: checked once at
start by :func:`daemon.config.loading.from_dict`, each failure a :class:`~daemon.config.options.ConfigError`
naming the key and the reason. The options themselves, their defaults and meanings, are
in :mod:`daemon.config.options`; what the rules cannot see (a setting that only fails on events)
the dry run finds (:mod:`daemon.runtime.dryrun`).
"""

from __future__ import annotations

import difflib
import os
import time
import urllib.parse

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


def check(config: Config, secrets: bool = True) -> None:
    """Rules between values that types alone do not say; raises
    :class:`~daemon.config.options.ConfigError` naming the key: each rule's first failure,
    all of them in one error (:meth:`~daemon.config.options.ConfigError.first_of`), so that a
    file with several mistakes is fixed in one go. ``secrets``: whether the secrets must be
    there (False for commands that neither send nor sign: see
    :func:`daemon.config.loading.load`)."""
    rules = [_check_ranges, _check_state, _check_topics, _check_join, _check_http, _check_metrics, _check_logging,
             lambda c: _check_sinks(c, secrets), _check_client, _check_kafka, _check_models,
             lambda c: _check_registry(c, secrets)]
    ConfigError.check_each(rules, lambda rule: rule(config))
    from daemon.federation import check as check_federation  # imports learners: only here

    check_federation(config)  # (last: it builds the models' learners, which the rules above check)


def _value(config: Config, key: str):
    """The value of ``section.name`` in ``config``."""
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _check_ranges(config: Config) -> None:
    def positive(key):
        if _value(config, key) <= 0:
            raise ConfigError(key, "must be above 0")

    def not_negative(key):
        if _value(config, key) < 0:
            raise ConfigError(key, "must not be negative")

    def bounded(key):
        value, (least, most, why) = _value(config, key), _TIME_BOUNDS[key]
        if value < least or (most is not None and value > most):
            within = f"at least {least:g}" if most is None else f"between {least:g} and {most:g}"
            raise ConfigError(key, f"must be {within} (seconds), got {value:g}: {why}")

    ConfigError.check_each(sorted(_POSITIVE), positive)
    ConfigError.check_each(sorted(_TIME_BOUNDS), bounded)
    ConfigError.check_each(("join.label_grace_seconds", "alerts.cooldown_seconds", "kafka.create_topics"), not_negative)
    if config.alerts.retry_initial_seconds > config.alerts.retry_max_seconds:
        raise ConfigError("alerts.retry_initial_seconds", f"must not exceed alerts.retry_max_seconds "
                                                          f"({config.alerts.retry_max_seconds:g})")
    if config.max_auto_registered_models < 1:
        raise ConfigError("max_auto_registered_models", f"must be at least 1, got {config.max_auto_registered_models}")


def _check_state(config: Config) -> None:
    max_request = config.kafka.client.get("max_request_size", 1_048_576)
    if isinstance(max_request, int) and not 1024 <= config.kafka.dead_letter_max_bytes <= max_request - 1024:
        raise ConfigError("kafka.dead_letter_max_bytes", f"must be between 1024 and the producer's max_request_size "
                                                         f"less 1024 ({max_request - 1024})")
    if config.state.topic and isinstance(max_request, int) and not 1024 <= config.state.piece_bytes <= max_request - 1024:
        raise ConfigError("state.piece_bytes", f"must be between 1024 and the producer's max_request_size less 1024 "
                                               f"({max_request - 1024})")
    if config.state.refused_state not in ("wait", "start_fresh"):
        raise ConfigError("state.refused_state", f"must be wait or start_fresh, got {config.state.refused_state!r}")


def _check_join(config: Config) -> None:
    if not 0 < config.join.duplicate_false_positive_rate < 0.01:
        raise ConfigError("join.duplicate_false_positive_rate", "must be above 0 and below 0.01")
    latest = time.time() + config.join.max_future_skew_seconds
    if config.join.earliest_event_time > latest:
        raise ConfigError("join.earliest_event_time", f"{config.join.earliest_event_time:g} is later than any event "
                          "may be stamped (now + join.max_future_skew_seconds): every event would be a dead letter")


def _check_http(config: Config) -> None:
    # One turn of the loop may wait for an absent broker (daemon/runtime/service.py): a
    # shorter liveness window would restart a daemon that is only waiting.
    floor = max(20.0, 5 * config.kafka.poll_timeout_ms / 1000)
    if config.http.liveness_timeout_seconds < floor:
        raise ConfigError("http.liveness_timeout_seconds", f"must be at least {floor:g} (20, and 5 x kafka.poll_timeout_ms): "
                                                           "one turn of the loop may wait that long for an absent broker")
    if not 0 <= config.http.port <= 65535:
        raise ConfigError("http.port", "must be between 0 and 65535")


def _check_logging(config: Config) -> None:
    if config.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    if config.log_format not in ("text", "json"):
        raise ConfigError("log_format", "must be text or json")


def _check_sinks(config: Config, secrets: bool) -> None:
    ConfigError.check_each(enumerate(config.alerts.sinks), lambda item: _check_sink(f"alerts.sinks[{item[0]}]", item[1], secrets))


def _check_sink(key: str, sink, secrets: bool) -> None:
    if sink.type not in ("webhook", "slack", "kafka"):
        raise ConfigError(f"{key}.type", "must be webhook, slack or kafka")
    if sink.type == "kafka" and not sink.topic:
        raise ConfigError(f"{key}.topic", "a kafka sink needs a topic")
    if sink.type != "kafka" and not _is_http_url(sink.url):
        raise ConfigError(f"{key}.url", "must be an http:// or https:// URL with a host")
    unused = ("url", "secret") if sink.type == "kafka" else ("topic",)
    for name in unused:
        if getattr(sink, name) is not None:
            raise ConfigError(f"{key}.{name}", f"a {sink.type} sink takes no {name} (it would be ignored)")
    if sink.type != "kafka" and sink.secret is not None:
        from daemon.alerting.sinks import signer

        secret = sink.secret_value
        if secrets and not (secret or "").strip():  # (an unset variable is refused where it is read)
            raise ConfigError(f"{key}.secret", "is empty (or blank): alerts would go unsigned; give a key, or "
                                               "no secret to send unsigned")
        try:
            signer(secret)
        except ValueError as e:
            raise ConfigError(f"{key}.secret", str(e)) from None
    if not (isinstance(sink.timeout_seconds, (int, float)) and sink.timeout_seconds > 0):
        raise ConfigError(f"{key}.timeout_seconds", f"must be above 0, got {sink.timeout_seconds!r}")


def _check_kafka(config: Config) -> None:
    if not 0 <= config.kafka.embedded_port <= 65535:
        raise ConfigError("kafka.embedded_port", "must be between 0 and 65535")
    if config.kafka.fetch_max_wait_ms >= 30_000:
        raise ConfigError("kafka.fetch_max_wait_ms", f"must be below 30000 (ms), the consumer's request timeout, got "
                                                     f"{config.kafka.fetch_max_wait_ms}")
    if config.kafka.session_timeout_ms < 1000:
        raise ConfigError("kafka.session_timeout_ms", f"must be at least 1000 (ms), got {config.kafka.session_timeout_ms}: "
                                                      f"driftd heartbeats every tenth of it, at least 100 ms apart (brokers "
                                                      f"also refuse less than their group.min.session.timeout.ms, 6000 "
                                                      f"by default)")


def _check_models(config: Config) -> None:
    ConfigError.check_each([("model_defaults", config.model_defaults)] + [(f"models.{n}", m) for n, m in config.models.items()],
                           lambda item: check_model(item[1], item[0]))


def _check_registry(config: Config, secrets: bool) -> None:
    if config.registry.keep < 1:
        raise ConfigError("registry.keep", "must be at least 1")
    if config.has_learners and not os.environ.get(config.registry.key_env) and secrets:
        raise ConfigError("registry.key_env", f"models have learners, so promoted models are signed: set {config.registry.key_env}")


#: Topics driftd always reads or writes: empty, kafka-python refused to subscribe (a
#: traceback naming no key) or the broker was sent a topic named ''.
_REQUIRED_TOPICS = ("kafka.predictions_topic", "kafka.labels_topic", "kafka.dead_letter_topic")


def _check_topics(config: Config) -> None:
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
            raise ConfigError(key, "must not be empty: driftd cannot run without this topic (only the optional "
                                   "topics, such as state.topic and registry.model_updated_topic, are off when empty)")
        if not topic:
            continue  # not used
        try:
            ensure_valid_topic_name(topic)  # (kafka-python's rules, Kafka's own)
        except ValueError as e:
            raise ConfigError(key, f"{topic!r} is not a Kafka topic name: {e}") from None
        if topic in seen:
            raise ConfigError(key, f"{topic!r} is already {seen[topic]}: each of driftd's topics has one purpose")
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


def _check_client(config: Config) -> None:
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
            raise ConfigError(f"kafka.client.{name}", f"driftd sets it itself{_SET_BY_DRIFTD[name]}: given here as "
                                                      f"well, kafka-python would refuse to make the client")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"kafka.client.{name}", f"not a kafka-python setting that the "
                                                      f"{', '.join(c.__name__ for c in clients)} all take{hint}")


def _check_metrics(config: Config) -> None:
    metrics = config.metrics
    if metrics.per_feature not in ("all", "alerting", "none"):
        raise ConfigError("metrics.per_feature", f"must be all, alerting or none, got {metrics.per_feature!r}")
    if metrics.per_feature_hold_seconds < 0:
        raise ConfigError("metrics.per_feature_hold_seconds", "must not be negative")
    if metrics.lag_refresh_seconds <= 0:
        raise ConfigError("metrics.lag_refresh_seconds", "must be above 0")


_BINARY_DETECTORS = ("DDM", "EDDM", "HDDM_A", "HDDM_W")


def _is_http_url(url: str | None) -> bool:
    if not url or any(c.isspace() for c in url):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_model(model: ModelConfig, key: str) -> None:
    from detectors import METRICS, RIVER_DETECTORS, RiverDetector
    from detectors.binning import MIN_REFERENCE

    if model.task not in ("classification", "regression"):
        raise ConfigError(f"{key}.task", "must be classification or regression")
    if model.reference_size < MIN_REFERENCE:
        raise ConfigError(f"{key}.reference_size", f"must be at least {MIN_REFERENCE}: no test can be built from fewer reference values")
    for name, least in (("window", 2), ("stride", 1), ("max_features", 1), ("decay_window", 2), ("decay_reference_size", 2)):
        if getattr(model, name) < least:
            raise ConfigError(f"{key}.{name}", f"must be at least {least}")
    for name in ("reference_size", "window", "decay_reference_size", "decay_window"):
        if getattr(model, name) > MAX_EVENTS_HELD:
            raise ConfigError(f"{key}.{name}", f"must be at most {MAX_EVENTS_HELD:,}: these events' values are held in "
                                               f"memory (up to 8 bytes per value and feature), got {getattr(model, name):,}")
    if model.stride > model.window:
        raise ConfigError(f"{key}.stride", f"must not exceed window ({model.window})")
    if model.ert < model.stride:
        raise ConfigError(f"{key}.ert", f"must be at least stride ({model.stride})")
    if model.label_ert < 1:
        raise ConfigError(f"{key}.label_ert", "must be at least 1")
    decay_stride = max(1, model.decay_window // 10)  # the decay tests' (detectors.decay)
    if model.decay_metrics and model.label_ert < decay_stride:
        raise ConfigError(f"{key}.label_ert", f"must be at least the decay tests' stride (decay_window / 10: "
                                              f"{decay_stride} labelled events), got {model.label_ert:g}")
    _check_features(model, key)
    for name, known in (("numeric_tests", ("psi", "ks", "cusum")), ("categorical_tests", ("psi", "chisquare", "cusum"))):
        tests = getattr(model, name)
        for test in tests:
            if test not in known:
                raise ConfigError(f"{key}.{name}", f"unknown test {test!r} ({', '.join(known)})")
            if tests.count(test) > 1:  # (it would count twice in the split of the model's ert)
                raise ConfigError(f"{key}.{name}", f"{test!r} is listed {tests.count(test)} times")
    if model.error_detector:
        if model.error_detector not in RIVER_DETECTORS:
            raise ConfigError(f"{key}.error_detector", f"unknown detector (one of {', '.join(RIVER_DETECTORS)})")
        if model.task == "regression" and model.error_detector in _BINARY_DETECTORS:
            raise ConfigError(f"{key}.error_detector", f"{model.error_detector} takes 0/1 errors; a regression model needs ADWIN, PageHinkley or KSWIN")
        _check_river_params(model.error_detector, model.error_detector_params, f"{key}.error_detector_params")
        if "scale_after" in model.error_detector_params:
            raise ConfigError(f"{key}.error_detector_params.scale_after", "is driftd's, not River's: a regression's "
                                                                          "errors are scaled for ADWIN by the first "
                                                                          "decay_reference_size of them")
        try:  # build it once now, so that a bad parameter stops the start, not the first label
            RiverDetector(model.error_detector, **model.error_detector_params)
        except ValueError as e:
            # decision_every is driftd's own parameter, checked by RiverDetector, not by River.
            own = ".decision_every" if str(e).startswith("decision_every") else ""
            raise ConfigError(f"{key}.error_detector_params{own}", str(e)) from None
    _check_learning(model, key)
    if model.learners:
        from daemon.stream.learning import build_lifecycle

        try:
            build_lifecycle(model, f"{key}.learners")
        except ValueError as e:
            text = str(e)
            raise ConfigError(text.split(": ", 1)[0] if text.startswith(key) else f"{key}.learners",
                              text.split(": ", 1)[-1]) from None
    allowed = ("accuracy", "precision", "recall", "f1") if model.task == "classification" else ("mae", "rmse")
    for metric in model.decay_metrics:
        if metric not in METRICS or metric not in allowed:
            raise ConfigError(f"{key}.decay_metrics", f"{metric!r} is not a {model.task} metric ({', '.join(allowed)})")
    for option in ("estimation", "reconstruction"):
        value = getattr(model, option, "auto")
        if value not in ("auto", "off"):
            raise ConfigError(f"{key}.{option}", f"must be auto (or on, yes, true) or off (or no, false), got {value!r}")


def _check_learning(model: ModelConfig, key: str) -> None:
    """The learning settings' ranges, with or without learners (the learners' own classes
    check them too, but named their parameters, not these keys)."""
    from learners.retraining import WARM_START

    rules = [
        ("promotion_margin", 0 <= model.promotion_margin < 1, "must be at least 0 and below 1"),
        ("promotion_alpha", 0 < model.promotion_alpha < 1, "must be above 0 and below 1"),
        ("promotion_min_events", model.promotion_min_events >= 1, "must be at least 1"),
        ("promotion_min_interval_seconds", model.promotion_min_interval_seconds >= 0, "must not be negative"),
        ("promotion_window", model.promotion_window >= max(1, model.promotion_min_events),
         f"must be at least promotion_min_events ({model.promotion_min_events})"),
        ("replay_reservoir_size", model.replay_reservoir_size >= 0, "must not be negative"),
        ("replay_recent_size", model.replay_recent_size >= 0, "must not be negative"),
        ("replay_recent_size", model.replay_reservoir_size + model.replay_recent_size > 0,
         "and replay_reservoir_size must not both be 0"),
        ("retrain_every", model.retrain_every >= 0, "must not be negative (0: never)"),
        ("retrain_cooldown", model.retrain_cooldown >= 0, "must not be negative"),
        ("retrain_warm_start", model.retrain_warm_start in WARM_START, f"must be one of {', '.join(WARM_START)}"),
        ("max_retrained", model.max_retrained >= 0, "must not be negative"),
    ]
    for name, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{key}.{name}", f"{rule}, got {getattr(model, name)!r}")


def _check_river_params(kind: str, params: dict, key: str) -> None:
    """Each of ``params`` within River's documented range for detector ``kind``
    (:data:`learners.ranges.RANGES`); :class:`ConfigError` naming ``key.<parameter>``
    otherwise."""
    from learners import ranges

    found = ranges.problem(kind, params)
    if found is not None:
        raise ConfigError(f"{key}.{found[0]}", found[1])


def _check_features(model: ModelConfig, key: str) -> None:
    """``features:`` entries: known types, reserved names used as they can be, and no more
    declared than ``max_features``."""
    natural = {"<prediction>": "numeric" if model.task == "regression" else "categorical", "<score>": "numeric"}
    for name, kind in model.features.items():
        where = f"{key}.features.{name}"
        if not isinstance(name, str):
            raise ConfigError(where, "feature names are strings: quote the name")
        if not name.strip():
            raise ConfigError(where, f"{name!r} is not a feature's name: an empty (or blank) name is never a column")
        if kind not in ("numeric", "categorical", "ignore"):
            raise ConfigError(where, f"must be numeric, categorical or ignore, got {kind!r}")
        if name in natural and kind not in (natural[name], "ignore"):
            raise ConfigError(where, f"{name} of a {model.task} model is {natural[name]}; it can only be ignored")
        if name not in natural and name.startswith("<") and name.endswith(">"):
            raise ConfigError(where, "names in angle brackets are reserved (<prediction>, <score>)")
    declared = [n for n, k in model.features.items() if k != "ignore" and not n.startswith("<")]
    if len(declared) > model.max_features:
        raise ConfigError(f"{key}.features", f"{len(declared)} features declared, more than max_features ({model.max_features})")
