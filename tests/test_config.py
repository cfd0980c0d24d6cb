"""The configuration: the shipped file loads, every mistake fails at start naming the key,
secrets never show, per-model settings inherit the defaults, the reference lists every key."""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path

import pytest
import yaml

from daemon import config as cfg
from daemon.config import Config, ConfigError, ModelConfig, Secret, SinkConfig, from_dict, load, reference

ROOT = Path(__file__).resolve().parents[1]


def error(data: dict, **options) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        from_dict(data, **options)
    return info.value


def assert_fails(data: dict, key: str, *words: str) -> ConfigError:
    e = error(data)
    assert e.key == key, f"error names {e.key!r}, not {key!r}: {e}"
    assert str(e).startswith(f"{key}: "), str(e)
    for word in words:
        assert word in str(e), f"{word!r} not in {str(e)!r}"
    return e


# -- the shipped file ----------------------------------------------------------------------

def test_the_shipped_config_yaml_loads():
    config = load(ROOT / "config.yaml")
    assert isinstance(config, Config)
    assert config.kafka.bootstrap_servers == "embedded"
    assert "fraud" in config.models and config.model("fraud") is config.models["fraud"]


def test_an_empty_file_gives_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load(path) == Config()


def test_a_missing_or_unparsable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as e:
        load(bad)
    assert f'in "{bad}", line 1' in str(e.value) and "<unicode string>" not in str(e.value)  # where, in the file


def test_a_file_not_utf8_or_holding_itself_is_a_config_error_naming_it(tmp_path):
    """A fuzzing user's findings: both gave a traceback (UnicodeDecodeError; RecursionError
    from an alias inside its own anchor) instead of a message naming the key."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("models:\n  caf\u00e9: {}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 13\)"):
        load(latin)
    for text, key in (("x: &a [*a]\nmodels: {a: {}}\n", "x.0"), ("models:\n  a: {}\n  b: &b {c: *b}\n", "models.b.c")):
        looped = tmp_path / "looped.yaml"
        looped.write_text(text)
        with pytest.raises(ConfigError, match="refers to itself") as raised:
            load(looped)
        assert raised.value.key == key
    shared = tmp_path / "shared.yaml"  # an alias used twice, not inside itself: fine
    shared.write_text("model_defaults: &d {window: 300}\nmodels: {a: *d, b: *d}\n")
    assert load(shared).models["b"].window == 300


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    """PyYAML kept the last of two `window:` keys silently."""
    twice = tmp_path / "twice.yaml"
    twice.write_text("model_defaults:\n  window: 500\n  stride: 50\n  window: 2000\nmodels: {m: {}}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'window': which of its values is meant\?(.|\n)*line 4"):
        load(twice)
    anchors = tmp_path / "anchors.yaml"  # the same key in two mappings is no duplicate
    anchors.write_text("model_defaults: &d {window: 500, stride: 50}\nmodels: {a: {window: 400}, b: {window: 600}}\n")
    assert load(anchors).models["b"].window == 600


def test_the_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError):
        from_dict(["kafka"])


# -- unknown keys and wrong types ------------------------------------------------------------

@pytest.mark.parametrize("data, key", [
    ({"kafak": {}}, "kafak"),
    ({"kafka": {"bootstrp_servers": "x:9092"}}, "kafka.bootstrp_servers"),
    ({"http": {"prot": 1}}, "http.prot"),
    ({"join": {"ttl": 5}}, "join.ttl"),
    ({"alerts": {"sinks": [{"type": "kafka", "topic": "t", "tpoic": "u"}]}}, "alerts.sinks[0].tpoic"),
    ({"model_defaults": {"windw": 10}}, "model_defaults.windw"),
    ({"models": {"fraud": {"windw": 10}}}, "models.fraud.windw"),
])
def test_an_unknown_key_fails_naming_the_dotted_key(data, key):
    assert_fails(data, key, "unknown key")


@pytest.mark.parametrize("data, key", [
    ({"kafka": {"poll_max_records": "5000"}}, "kafka.poll_max_records"),
    ({"kafka": {"poll_max_records": 50.5}}, "kafka.poll_max_records"),
    ({"kafka": {"create_topics": True}}, "kafka.create_topics"),
    ({"kafka": {"bootstrap_servers": 9092}}, "kafka.bootstrap_servers"),
    ({"kafka": {"client": ["security_protocol"]}}, "kafka.client"),
    ({"kafka": "localhost:9092"}, "kafka"),
    ({"http": {"port": "9108"}}, "http.port"),
    ({"state": {"checkpoint_interval_seconds": "5s"}}, "state.checkpoint_interval_seconds"),
    ({"join": {"prediction_ttl_seconds": float("inf")}}, "join.prediction_ttl_seconds"),
    ({"alerts": {"sinks": {"type": "webhook"}}}, "alerts.sinks"),
    ({"alerts": {"sinks": ["https://hooks.example"]}}, "alerts.sinks[0]"),
    ({"auto_register_models": "maybe"}, "auto_register_models"),
    ({"model_defaults": {"numeric_tests": "psi"}}, "model_defaults.numeric_tests"),
    ({"model_defaults": {"numeric_tests": ["psi", 3]}}, "model_defaults.numeric_tests[1]"),
    ({"models": {"fraud": {"window": "big"}}}, "models.fraud.window"),
    ({"models": {"fraud": {"watch_score": 1}}}, "models.fraud.watch_score"),
    ({"models": {"fraud": {"positive_label": 1.5}}}, "models.fraud.positive_label"),
    ({"models": {"fraud": ["window", 10]}}, "models.fraud"),
    ({"models": ["fraud"]}, "models"),
])
def test_a_wrong_type_fails_naming_the_key(data, key):
    assert_fails(data, key)


# -- secrets -------------------------------------------------------------------------------------

SINK = {"type": "webhook", "url": "https://hooks.example/driftd"}


def test_a_secret_from_an_empty_environment_variable_is_refused(monkeypatch):
    """An empty signing key signed every webhook with nothing."""
    monkeypatch.setenv("DRIFTD_TEST_EMPTY", "")
    assert_fails({"alerts": {"sinks": [{**SINK, "secret": {"env": "DRIFTD_TEST_EMPTY"}}]}},
                 "alerts.sinks[0].secret", "DRIFTD_TEST_EMPTY is empty")


def test_a_secret_from_a_missing_environment_variable_names_the_key_and_the_variable(monkeypatch):
    monkeypatch.delenv("DRIFTD_TEST_NO_SUCH_VAR", raising=False)
    assert_fails({"alerts": {"sinks": [{**SINK, "secret": {"env": "DRIFTD_TEST_NO_SUCH_VAR"}}]}},
                 "alerts.sinks[0].secret", "DRIFTD_TEST_NO_SUCH_VAR")
    assert_fails({"kafka": {"client": {"sasl_plain_password": {"env": "DRIFTD_TEST_NO_SUCH_VAR"}}}},
                 "kafka.client.sasl_plain_password", "DRIFTD_TEST_NO_SUCH_VAR")


def test_a_secret_from_the_environment_is_a_secret_that_never_shows(monkeypatch):
    value = "whsec_czNjcjN0LXY0bHUzLWRvLW5vdC1wcmludA=="  # (base64 of s3cr3t-v4lu3-do-not-print)
    monkeypatch.setenv("DRIFTD_TEST_SECRET", value)
    config = from_dict({"alerts": {"sinks": [{**SINK, "secret": {"env": "DRIFTD_TEST_SECRET"}}]},
                        "kafka": {"client": {"sasl_plain_password": {"env": "DRIFTD_TEST_SECRET"}}}})
    for secret in (config.alerts.sinks[0].secret, config.kafka.client["sasl_plain_password"]):
        assert isinstance(secret, Secret)
        assert secret.get() == value
        assert "DRIFTD_TEST_SECRET" in repr(secret)  # where it came from is fine to show
        for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
            assert value not in shown
    # Nor through the structures that hold it (logged at start, printed in errors).
    for shown in (repr(config), str(config), repr(config.alerts.sinks), repr(config.kafka.client)):
        assert value not in shown


def test_a_secret_from_a_file_is_read_and_stripped(tmp_path):
    path = tmp_path / "key"
    path.write_text("  file-secret-value\n")
    config = from_dict({"alerts": {"sinks": [{**SINK, "secret": {"file": str(path)}}]}})
    assert config.alerts.sinks[0].secret.get() == "file-secret-value"
    assert "file-secret-value" not in repr(config)
    assert_fails({"alerts": {"sinks": [{**SINK, "secret": {"file": str(tmp_path / "missing")}}]}},
                 "alerts.sinks[0].secret", "missing")


@pytest.mark.parametrize("secret", [
    "whsec_written-in-the-file",
    {"value": "whsec_written-in-the-file"},
    {"env": "A", "file": "/b"},
    12345,
])
def test_a_secret_written_in_the_file_is_refused(secret):
    e = assert_fails({"alerts": {"sinks": [{**SINK, "secret": secret}]}}, "alerts.sinks[0].secret", "env")
    assert "written-in-the-file" not in str(e)  # the refusal does not print it either


@pytest.mark.parametrize("key", ["sasl_plain_password", "ssl_password"])
def test_a_kafka_password_written_in_the_file_is_refused(key):
    # The module's promise: secrets (SASL or TLS passwords) are never written in the file.
    e = assert_fails({"kafka": {"client": {key: "hunter2-in-plain-text"}}}, f"kafka.client.{key}", "env")
    assert "hunter2-in-plain-text" not in str(e)


@pytest.mark.parametrize("name, value, words", [
    ("client_id", 5, "must be a string as kafka-python's default is ('kafka-python-"),
    ("metadata_max_age_ms", "300000", "must be a whole number as kafka-python's default is (300000), got '300000'"),
    ("ssl_check_hostname", 1, "must be true or false"),
    ("socket_options", 5, "must be a list"),
    ("security_protocol", True, "must be a string"),
    ("selector", "poll", "kafka-python takes a class here"),
])
def test_a_kafka_client_value_of_another_type_than_kafka_pythons_default_is_refused(name, value, words):
    """A tester's finding: `kafka: {client: {client_id: 5}}` passed check-config, and
    `driftd run` stopped with a TypeError naming no key."""
    assert_fails({"kafka": {"client": {name: value}}}, f"kafka.client.{name}", words)


def test_kafka_client_values_of_the_defaults_types_are_taken():
    client = from_dict({"kafka": {"client": {"client_id": "driftd-1", "ssl_check_hostname": "no", "metadata_max_age_ms": 6e4,
                                             "ssl_cafile": "/etc/ca.pem"}}}).kafka.client
    assert client == {"client_id": "driftd-1", "ssl_check_hostname": False, "metadata_max_age_ms": 60000,
                      "ssl_cafile": "/etc/ca.pem"}


def test_non_secret_kafka_client_settings_stay_plain():
    config = from_dict({"kafka": {"client": {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}}})
    assert config.kafka.client == {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"}


# -- per-model settings --------------------------------------------------------------------

def test_a_model_inherits_model_defaults_and_overrides_only_what_it_sets():
    config = from_dict({
        "model_defaults": {"window": 400, "stride": 40, "reference_size": 800, "decay_metrics": ["f1"]},
        "models": {"fraud": {"stride": 80}, "churn": {}, "plain": None},
    })
    fraud, churn, plain = config.models["fraud"], config.models["churn"], config.models["plain"]
    assert (fraud.window, fraud.stride, fraud.reference_size, fraud.decay_metrics) == (400, 80, 800, ["f1"])
    assert (churn.window, churn.stride, churn.reference_size) == (400, 40, 800)
    assert plain == churn == config.model_defaults
    # Everything not given anywhere is the built-in default.
    assert fraud.ert == ModelConfig().ert and fraud.error_detector == ModelConfig().error_detector


def test_models_do_not_share_mutable_defaults():
    config = from_dict({"model_defaults": {"numeric_tests": ["ks"]}, "models": {"a": {}, "b": {}}})
    config.models["a"].numeric_tests.append("psi")
    assert config.models["b"].numeric_tests == ["ks"]
    assert config.model_defaults.numeric_tests == ["ks"]


def test_a_model_override_is_checked_against_what_it_inherits():
    # stride 600 is fine alone, not with an inherited window of 500.
    assert_fails({"model_defaults": {"window": 500, "stride": 50}, "models": {"fraud": {"stride": 600}}},
                 "models.fraud.stride", "500")
    # A regression model cannot inherit a classification metric set in model_defaults ...
    assert_fails({"model_defaults": {"decay_metrics": ["accuracy"]}, "models": {"r": {"task": "regression"}}},
                 "models.r.decay_metrics", "accuracy")
    from_dict({"models": {"r": {"task": "regression", "decay_metrics": ["mae", "rmse"]}}})


def test_unset_decay_metrics_are_the_tasks_own():
    # ... but left unset, each model's task chooses: a regression model runs as written.
    config = from_dict({"models": {"r": {"task": "regression"}, "c": {}, "off": {"task": "regression", "decay_metrics": []}}})
    assert [config.models[m].decay_metrics for m in ("r", "c", "off")] == [["mae"], ["accuracy"], []]
    assert config.model_defaults.decay_metrics == ["accuracy"]
    config = from_dict({"model_defaults": {"task": "regression"}, "models": {"r": {}, "c": {"task": "classification"}}})
    assert (config.model_defaults.decay_metrics, config.models["r"].decay_metrics,
            config.models["c"].decay_metrics) == (["mae"], ["mae"], ["accuracy"])
    assert ModelConfig(task="regression").decay_metrics == ["mae"]


def test_unlisted_models_are_watched_only_with_auto_register():
    assert from_dict({"models": {"fraud": {}}}).model("churn") is None
    config = from_dict({"models": {"fraud": {}}, "auto_register_models": True})
    assert config.model("churn") is config.model_defaults


# -- values that are the right type but wrong --------------------------------------------------

@pytest.mark.parametrize("data, key, words", [
    ({"model_defaults": {"window": 100, "stride": 101}}, "model_defaults.stride", ["window"]),
    ({"models": {"fraud": {"window": 100, "stride": 200}}}, "models.fraud.stride", ["window"]),
    ({"models": {"fraud": {"window": 1}}}, "models.fraud.window", []),
    ({"models": {"fraud": {"reference_size": 0}}}, "models.fraud.reference_size", []),
    ({"models": {"fraud": {"ert": 10, "stride": 50, "window": 100}}}, "models.fraud.ert", []),
    ({"models": {"fraud": {"label_ert": 1}}}, "models.fraud.label_ert", ["decay tests' stride", "100", "got 1"]),
    ({"models": {"fraud": {"numeric_tests": ["ks", "t_test"]}}}, "models.fraud.numeric_tests", ["t_test"]),
    ({"models": {"fraud": {"categorical_tests": ["ks"]}}}, "models.fraud.categorical_tests", ["ks"]),
    ({"models": {"fraud": {"numeric_tests": ["psi", "ks", "psi"]}}}, "models.fraud.numeric_tests", ["'psi' is listed 2 times"]),
    ({"model_defaults": {"numeric_tests": ["chisquare"]}}, "model_defaults.numeric_tests", ["chisquare"]),
    ({"models": {"fraud": {"error_detector": "ADWINN"}}}, "models.fraud.error_detector", ["ADWIN"]),
    ({"models": {"fraud": {"error_detector": "adwin"}}}, "models.fraud.error_detector", []),
    ({"models": {"fraud": {"decay_metrics": ["mae"]}}}, "models.fraud.decay_metrics", ["mae", "classification"]),
    ({"models": {"r": {"task": "regression", "decay_metrics": ["f1"]}}}, "models.r.decay_metrics", ["f1", "regression"]),
    ({"models": {"fraud": {"decay_metrics": ["auc"]}}}, "models.fraud.decay_metrics", ["auc"]),
    ({"models": {"fraud": {"task": "ranking"}}}, "models.fraud.task", []),
    ({"models": {"fraud": {"decay_alpha": 0.5}}}, "models.fraud.decay_alpha", []),
    ({"models": {"fraud": {"decay_alpha": 0}}}, "models.fraud.decay_alpha", []),
    ({"kafka": {"poll_max_records": 0}}, "kafka.poll_max_records", []),
    ({"kafka": {"bootstrap_servers": "embeded"}}, "kafka.bootstrap_servers", ["did you mean `embedded`"]),
    ({"kafka": {"bootstrap_servers": " "}}, "kafka.bootstrap_servers", ["host:port"]),
    ({"kafka": {"create_topics": -1}}, "kafka.create_topics", []),
    ({"join": {"label_grace_seconds": -1}}, "join.label_grace_seconds", []),
    ({"join": {"max_pending": 0}}, "join.max_pending", []),
    ({"join": {"duplicate_false_positive_rate": 0}}, "join.duplicate_false_positive_rate", []),
    ({"join": {"duplicate_false_positive_rate": 0.01}}, "join.duplicate_false_positive_rate", []),
    ({"state": {"piece_bytes": 100}}, "state.piece_bytes", []),
    ({"state": {"topic": "predictions"}}, "state.topic", []),
    ({"state": {"restore_timeout_seconds": 0}}, "state.restore_timeout_seconds", []),
    ({"http": {"port": 70000}}, "http.port", []),
    ({"kafka": {"dead_letter_max_bytes": 100}}, "kafka.dead_letter_max_bytes", ["max_request_size"]),
    ({"kafka": {"dead_letter_max_bytes": 1_048_576}}, "kafka.dead_letter_max_bytes", ["1047552"]),
    ({"kafka": {"dead_letter_max_bytes": 200_000, "client": {"max_request_size": 100_000}}},
     "kafka.dead_letter_max_bytes", ["98976"]),
    ({"join": {"max_future_skew_seconds": 0}}, "join.max_future_skew_seconds", []),
    ({"log_level": "verbose"}, "log_level", []),
    # Learning settings, named by their keys (they were the learners' own parameter names
    # under models.m.learners, and passed unchecked without learners).
    ({"models": {"m": {"promotion_alpha": 2}}}, "models.m.promotion_alpha", ["below 1", "2.0"]),
    ({"models": {"m": {"promotion_min_events": -3}}}, "models.m.promotion_min_events", ["at least 1"]),
    ({"models": {"m": {"replay_reservoir_size": -1}}}, "models.m.replay_reservoir_size", ["negative"]),
    ({"models": {"m": {"promotion_window": 0}}}, "models.m.promotion_window", ["promotion_min_events (500)"]),
    ({"models": {"m": {"promotion_margin": -1}}}, "models.m.promotion_margin", ["at least 0"]),
    ({"models": {"m": {"retrain_warm_start": "hot"}}}, "models.m.retrain_warm_start", ["auto, always, never, meta"]),
    ({"alerts": {"retry_initial_seconds": 100, "retry_max_seconds": 1}}, "alerts.retry_initial_seconds",
     ["retry_max_seconds (1)"]),
    # kafka-python refuses unknown settings when a client is made: driftd run retried for ever.
    ({"kafka": {"client": {"security_protocl": "PLAINTEXT"}}}, "kafka.client.security_protocl",
     ["did you mean security_protocol?"]),
    ({"kafka": {"client": {"fetch_max_bytes": 1000}}}, "kafka.client.fetch_max_bytes", ["KafkaProducer"]),
    ({"kafka": {"create_topics": 3, "client": {"max_request_size": 2_000_000}}}, "kafka.client.max_request_size",
     ["KafkaAdminClient"]),
    # A trial's: driftd run died with a TypeError (two values of the setting for one client).
    ({"kafka": {"client": {"request_timeout_ms": 40_000}}}, "kafka.client.request_timeout_ms", ["driftd sets it"]),
    ({"kafka": {"client": {"reconnect_backoff_max_ms": 5}}}, "kafka.client.reconnect_backoff_max_ms",
     ["kafka.reconnect_backoff_max_seconds"]),
    # driftd gives every client its own network client (daemon/kafka/netclient.py).
    ({"kafka": {"client": {"kafka_client": "x"}}}, "kafka.client.kafka_client", ["takes a class"]),
    # kafka-python refused the consumer (heartbeat above the session), taken for a broker outage for ever.
    ({"kafka": {"session_timeout_ms": 1}}, "kafka.session_timeout_ms", ["at least 1000"]),
    ({"kafka": {"fetch_max_wait_ms": 40_000}}, "kafka.fetch_max_wait_ms", ["below 30000"]),
    # A trial's: "did you mean metadata_max_age_ms?" for a setting that is driftd's own.
    ({"kafka": {"client": {"fetch_max_wait_ms": 50}}}, "kafka.client.fetch_max_wait_ms", ["(kafka.fetch_max_wait_ms)"]),
    ({"models": {"m": {"features": {"": "numeric"}}}}, "models.m.features.", ["never a column"]),
    # Every delivery failed ("Timeout value out of range"), retried for an hour.
    ({"alerts": {"sinks": [{"url": "https://hooks.example/x", "timeout_seconds": 0}]}}, "alerts.sinks[0].timeout_seconds",
     ["above 0"]),
    ({"alerts": {"sinks": [{"url": "https://hooks.example/x", "timeout_seconds": -1}]}}, "alerts.sinks[0].timeout_seconds",
     ["above 0"]),
])
def test_a_bad_value_fails_naming_the_key(data, key, words):
    assert_fails(data, key, *words)


def test_a_replay_buffer_too_small_for_a_retrain_fails_with_learners_that_retrain(monkeypatch):
    """A trial's: reservoir 50 and recent 50 never held the 200 labelled events a retrain
    waits for, and the learners never retrained, silently. Fine without learners, or with
    no retrains (max_retrained: 0), or when one of the two holds 200."""
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "k" * 32)
    learners = {"tree": {"HoeffdingTreeClassifier": {}}}
    small = {"replay_reservoir_size": 50, "replay_recent_size": 150}
    assert_fails({"models": {"m": {"learners": learners, **small}}}, "models.m.replay_reservoir_size",
                 "at least 200", "replay_recent_size is 150", "got 50")
    from_dict({"models": {"m": small}})
    from_dict({"models": {"m": {"learners": learners, "max_retrained": 0, **small}}})
    from_dict({"models": {"m": {"learners": learners, "replay_reservoir_size": 0, "replay_recent_size": 200}}})


@pytest.mark.parametrize("params, key", [({"no_such_parameter": 1}, ""), ({"delta": "small"}, ".delta")])
def test_bad_error_detector_params_fail_at_start_not_at_the_first_event(params, key):
    # Otherwise River raises when the model's pipeline is built, inside the consumer loop.
    assert_fails({"models": {"fraud": {"error_detector": "ADWIN", "error_detector_params": params}}},
                 "models.fraud.error_detector_params" + key)


@pytest.mark.parametrize("detector", ["DDM", "EDDM", "HDDM_A", "HDDM_W"])
def test_a_binary_error_detector_on_a_regression_model_fails_at_start(detector):
    # These take 0/1 errors only; a regression model's errors are absolute differences, and
    # the first joined label would raise ValueError inside the consumer loop.
    assert_fails({"models": {"r": {"task": "regression", "decay_metrics": ["mae"], "error_detector": detector}}},
                 "models.r.error_detector", "regression")


def test_a_numeric_error_detector_on_a_regression_model_is_accepted():
    for detector in ("ADWIN", "PageHinkley", "KSWIN", ""):
        from_dict({"models": {"r": {"task": "regression", "decay_metrics": ["mae"], "error_detector": detector}}})


@pytest.mark.parametrize("detector, params, key, words", [
    ("ADWIN", {"delta": -1}, "delta", "a number > 0 and < 1, got -1"),  # built, then never fired
    ("ADWIN", {"delta": 1.5}, "delta", "< 1"),
    ("ADWIN", {"clock": 0}, "clock", "a whole number, at least 1"),
    ("KSWIN", {"alpha": 7}, "alpha", "< 1"),
    ("KSWIN", {"window_size": 50, "stat_size": 50}, "stat_size", "less than window_size (50)"),
    ("PageHinkley", {"threshold": 0}, "threshold", "> 0"),
    ("PageHinkley", {"alpha": 1.5}, "alpha", "<= 1"),
    ("PageHinkley", {"mode": "sideways"}, "mode", "one of up, down, both"),
    ("DDM", {"drift_threshold": -3}, "drift_threshold", "> 0"),
    ("DDM", {"warm_start": 2.5}, "warm_start", "a whole number"),
    ("EDDM", {"beta": "0.9"}, "beta", "a number > 0 and <= 1, got '0.9'"),
    ("HDDM_A", {"drift_confidence": 0}, "drift_confidence", "> 0"),
    ("HDDM_W", {"lambda_val": 2}, "lambda_val", "<= 1"),
    ("HDDM_W", {"two_sided_test": "maybe"}, "two_sided_test", "true or false"),
    ("ADWIN", {"decision_every": 0}, "decision_every", "at least 1"),  # driftd's own, documented with them
    ("KSWIN", {"decision_every": 2.5}, "decision_every", "a whole number"),
])
def test_river_detector_params_outside_their_documented_range_fail_naming_the_parameter(detector, params, key, words):
    """River checks only KSWIN's alpha; ADWIN with delta -1 was built and never fired."""
    assert_fails({"models": {"fraud": {"error_detector": detector, "error_detector_params": params}}},
                 f"models.fraud.error_detector_params.{key}", words)


def test_check_config_refuses_an_adwin_delta_out_of_range(tmp_path, capsys):
    from daemon.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("models: {fraud: {error_detector: ADWIN, error_detector_params: {delta: -1}}}\n")
    assert main(["check-config", str(path)]) == 1
    assert "models.fraud.error_detector_params.delta: River's ADWIN takes a number > 0 and < 1, got -1" \
        in capsys.readouterr().err


def test_good_error_detector_params_are_accepted():
    config = from_dict({"models": {"fraud": {"error_detector": "ADWIN", "error_detector_params": {"delta": 0.01}}}})
    assert config.models["fraud"].error_detector_params == {"delta": 0.01}


@pytest.mark.parametrize("sink, key", [
    ({"type": "webhook", "url": "ftp://hooks.example/x"}, "alerts.sinks[0].url"),
    ({"type": "webhook", "url": "hooks.example/x"}, "alerts.sinks[0].url"),
    ({"type": "webhook"}, "alerts.sinks[0].url"),
    ({"type": "slack", "url": "not a url"}, "alerts.sinks[0].url"),
    ({"type": "webhook", "url": "https://"}, "alerts.sinks[0].url"),
    ({"type": "webhook", "url": "http:///path-without-host"}, "alerts.sinks[0].url"),
    ({"type": "webhook", "url": "https://hooks example/x"}, "alerts.sinks[0].url"),
    ({"type": "kafka"}, "alerts.sinks[0].topic"),
    ({"type": "email", "url": "https://x.example"}, "alerts.sinks[0].type"),
    # Settings a sink's type does not use were ignored silently.
    ({"type": "kafka", "topic": "alerts", "url": "https://x.example/"}, "alerts.sinks[0].url"),
    ({"type": "slack", "url": "https://x.example/", "topic": "alerts"}, "alerts.sinks[0].topic"),
])
def test_a_bad_sink_fails_naming_the_key(sink, key):
    assert_fails({"alerts": {"sinks": [sink]}}, key)


def test_the_failing_sink_is_named_by_its_index():
    sinks = [{"type": "kafka", "topic": "alerts"}, {"type": "webhook", "url": "https://ok.example/"},
             {"type": "webhook", "url": "mailto:ops@example.com"}]
    assert_fails({"alerts": {"sinks": sinks}}, "alerts.sinks[2].url")


def test_good_sinks_are_accepted():
    config = from_dict({"alerts": {"sinks": [
        {"type": "webhook", "url": "https://hooks.example:8443/driftd?x=1"},
        {"type": "slack", "url": "http://127.0.0.1:9000/slack"},
        {"type": "kafka", "topic": "driftd-alerts", "timeout_seconds": 2},
    ]}})
    assert [s.type for s in config.alerts.sinks] == ["webhook", "slack", "kafka"]
    assert config.alerts.sinks[2].timeout_seconds == 2.0


# -- the reference -----------------------------------------------------------------------------

def _every_key(cls=Config, prefix: str = "") -> list[str]:
    """Every settable leaf key, sections' fields and fields of list items (``a.b[].c``) included;
    sections themselves are headings, not rows."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys += _every_key(hint, f"{key}.")
            continue
        keys.append(key)
        if typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            keys += _every_key(typing.get_args(hint)[0], f"{key}[].")
    return keys


def test_the_reference_lists_every_key_with_its_meaning():
    text = reference()
    documented = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.M))
    missing = [k for k in _every_key() if k not in documented]
    assert not missing, f"reference() does not document: {missing}"
    for section in ("kafka", "http", "state", "join", "alerts", "model_defaults"):
        assert f"**`{section}`**" in text
    for line in text.splitlines():
        if line.startswith("| `"):
            assert line.count("|") >= 4 and line.rstrip().endswith("|") and line.split("|")[3].strip(), line


def test_the_reference_covers_sink_settings():
    # Regression guard for the list-of-sections case the walk above relies on.
    assert {f"alerts.sinks[].{f.name}" for f in dataclasses.fields(SinkConfig)} <= set(_every_key())


def test_the_reference_shows_the_real_defaults():
    text = reference()
    rows = dict(re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", text, flags=re.M))
    assert rows["kafka.poll_max_records"] == str(cfg.KafkaConfig().poll_max_records)
    assert rows["model_defaults.window"] == str(ModelConfig().window)
    assert yaml.safe_load(rows["model_defaults.numeric_tests"]) == ModelConfig().numeric_tests
    assert yaml.safe_load(rows["join.label_grace_seconds"]) == cfg.JoinConfig().label_grace_seconds


def test_exponent_notation_is_a_number_although_yaml_1_1_reads_it_as_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  m: {ert: 1e8, label_ert: 2.5E6, window: 1.0e3, reference_size: 5e3}\n")
    model = load(path).models["m"]
    assert (model.ert, model.label_ert) == (1e8, 2.5e6)
    assert (model.window, model.reference_size) == (1000, 5000)  # whole numbers too (a trial found them refused)
    path.write_text("models:\n  m: {window: 1.5e0}\n")
    with pytest.raises(ConfigError, match="models.m.window: must be a whole number, got 1.5"):
        load(path)


def test_an_integer_too_large_for_a_number_names_the_key():
    with pytest.raises(ConfigError, match=r"models\.m\.ert: must be a finite number, got an integer of 401 digits"):
        from_dict({"models": {"m": {"ert": 10**400}}})


def test_a_reference_too_small_for_any_test_is_refused():
    with pytest.raises(ConfigError, match=r"models\.m\.reference_size: must be at least 20"):
        from_dict({"models": {"m": {"reference_size": 19}}})


def test_every_bad_model_is_named_in_one_pass():
    """A file with several bad models was fixed one start at a time: only the first was named."""
    with pytest.raises(ConfigError) as info:
        from_dict({"models": {"a": {"window": 1}, "b": {}, "c": {"task": "ranking"}, "d": {"stride": "ten"}}})
    e = info.value
    assert e.key == "models.d.stride"  # types first (while reading), then the rules between values
    assert str(e).splitlines() == ["models.d.stride: must be a whole number, got 'ten'"]
    with pytest.raises(ConfigError) as info:
        from_dict({"models": {"a": {"window": 1}, "b": {}, "c": {"task": "ranking"}}})
    e = info.value
    assert e.key == "models.a.window" and [x.key for x in e.also] == ["models.c.task"]
    assert str(e) == "models.a.window: must be at least 2\n  and models.c.task: must be classification or regression"


def test_every_mistake_outside_the_models_is_named_in_one_pass_with_the_models_own():
    """A mistake in one section (model_defaults, kafka, ...) hid every other one, the
    models' own included: the file was fixed one run of check-config at a time."""
    with pytest.raises(ConfigError) as info:  # read: unknown keys and wrong types, every section and model
        from_dict({"kafka": {"bootstrp_servers": "x", "poll_max_records": "many"}, "model_defaults": {"window": "abc"},
                   "models": {"fraud": {"tyop": 1}, "eta": {"stride": "ten"}}})
    e = info.value
    assert [e.key, *(x.key for x in e.also)] == ["kafka.bootstrp_servers", "kafka.poll_max_records",
                                                 "model_defaults.window", "models.fraud.tyop", "models.eta.stride"]
    assert all(line.startswith("  and ") for line in str(e).splitlines()[1:])
    with pytest.raises(ConfigError) as info:  # the rules between values, every section's and model's
        from_dict({"kafka": {"poll_max_records": -5, "session_timeout_ms": 10}, "http": {"port": 99_999},
                   "log_level": "LOUD", "alerts": {"sinks": [{"type": "webhook", "url": "nope"}, {"type": "kafka"}]},
                   "models": {"fraud": {"reference_size": 3}, "eta": {"task": "regresion"}}})
    keys = [info.value.key, *(x.key for x in info.value.also)]
    assert keys == ["kafka.poll_max_records", "http.port", "log_level", "alerts.sinks[0].url", "alerts.sinks[1].topic",
                    "kafka.session_timeout_ms", "models.fraud.reference_size", "models.eta.task"]


def test_a_value_fitting_none_of_a_settings_types_gets_one_reason():
    """It read 'must be a whole number, got 1.5 or must be a string, got 1.5 or must be
    true or false, got 1.5'."""
    assert_fails({"models": {"m": {"positive_label": 1.5}}}, "models.m.positive_label",
                  "must be a whole number, a string or true or false, got 1.5")
    assert_fails({"models": {"m": {"positive_label": [1]}}}, "models.m.positive_label",
                  "must be a whole number, a string or true or false, got [1]")


def test_a_whole_float_is_a_whole_number():
    """positive_label 1.0 was refused ('must be a whole number, got 1.0'), though events
    take 1.0 as the class 1; window: 1000.0 likewise."""
    config = from_dict({"models": {"m": {"positive_label": 1.0, "window": 1000.0}}})
    assert config.models["m"].positive_label == 1 and type(config.models["m"].positive_label) is int
    assert config.models["m"].window == 1000 and type(config.models["m"].window) is int
    assert_fails({"models": {"m": {"window": 1000.5}}}, "models.m.window", "must be a whole number, got 1000.5")


def test_an_unquoted_off_and_a_null_error_detector_read_as_documented(tmp_path):
    """YAML reads an unquoted `off` (and `no`) as false: `reconstruction: off`, as the README
    writes it, failed with "must be a string, got False"; `error_detector: null` ("empty
    for none") with "must be a string, got None"."""
    path = tmp_path / "config.yaml"
    path.write_text("model_defaults: {estimation: off}\n"
                    "models:\n  m: {reconstruction: off, error_detector: null}\n  n: {estimation: on, reconstruction: yes}\n")
    config = load(str(path))
    m, n = config.models["m"], config.models["n"]
    assert (m.estimation, m.reconstruction, m.error_detector) == ("off", "off", "")
    assert (n.estimation, n.reconstruction) == ("auto", "auto")
    with pytest.raises(ConfigError, match="models.m.estimation: must be a string, got None"):
        from_dict({"models": {"m": {"estimation": None}}})
    # Quoted, the same words read the same (a new user's finding: "on" was refused, on not).
    path.write_text("models:\n  m: {estimation: 'on', reconstruction: 'No'}\n  n: {estimation: \"true\"}\n")
    config = load(str(path))
    assert (config.models["m"].estimation, config.models["m"].reconstruction, config.models["n"].estimation) == \
        ("auto", "off", "auto")
    with pytest.raises(ConfigError, match=r"models.m.estimation: must be auto \(or on, yes, true\) or off \(or no, false\), got 'maybe'"):
        from_dict({"models": {"m": {"estimation": "maybe"}}})


@pytest.mark.parametrize("name", ["decay_window", "decay_reference_size"])
def test_a_decay_window_or_reference_of_one_is_refused_by_its_key(name):
    """1 passed the range check, then failed building the decay test with a message naming
    its constructor's arguments ("window and reference_size must be at least 2")."""
    assert_fails({"models": {"m": {name: 1}}}, f"models.m.{name}", "must be at least 2")


@pytest.mark.parametrize("name", ["", None])
def test_a_model_without_a_name_is_refused(name):
    """`models: {"": {}}` was accepted: a model no event can name (an event's `model` must
    not be empty)."""
    assert_fails({"models": {name: {}}}, "models", "must not be empty")


def test_a_whsec_secret_that_is_not_base64_is_refused_by_its_key(monkeypatch):
    """A new user's finding: `whsec_not base64!!` passed check-config, then `driftd run`
    stopped with a binascii traceback (exit 1, read as "port in use"). A secret without
    the prefix is any string (the key itself); with it, base64 must follow."""
    monkeypatch.setenv("DRIFTD_TEST_RAW_SECRET", "not base64!! but a raw key")
    sink = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
    # (The library decodes loosely, dropping what is not base64: whsec_my-webhook-secret
    # passed too; whsec_ alone raised its own error, a traceback.)
    for bad in ("whsec_not base64!!", "whsec_my-webhook-secret", "whsec_hunter2!", "whsec_", "whsec_!!!!"):
        monkeypatch.setenv("DRIFTD_TEST_BAD_SECRET", bad)
        e = assert_fails({"models": {"m": {}}, "alerts": {"sinks": [{**sink, "secret": {"env": "DRIFTD_TEST_BAD_SECRET"}}]}},
                         "alerts.sinks[0].secret", "not the base64 of a key")
        assert bad[len("whsec_"):] not in str(e) or not bad[len("whsec_"):], e  # the secret is not shown
    from_dict({"models": {"m": {}}, "alerts": {"sinks": [{**sink, "secret": {"env": "DRIFTD_TEST_RAW_SECRET"}}]}})


def test_a_liveness_window_shorter_than_a_turn_may_wait_is_refused():
    """5 s passed check-config, and the daemon then used 20 without a word (a turn of the
    loop may wait that long for an absent broker)."""
    assert_fails({"models": {"m": {}}, "http": {"liveness_timeout_seconds": 5}}, "http.liveness_timeout_seconds",
                 "at least 20")
    assert_fails({"models": {"m": {}}, "http": {"liveness_timeout_seconds": 30}, "kafka": {"poll_timeout_ms": 10_000}},
                 "http.liveness_timeout_seconds", "at least 50")


def test_an_earliest_event_time_no_event_can_meet_is_refused():
    """4e9 (2096) passed check-config: every event would have been a dead letter."""
    assert_fails({"models": {"m": {}}, "join": {"earliest_event_time": 4e9}}, "join.earliest_event_time",
                 "every event would be a dead letter")


@pytest.mark.parametrize("settings, key", [
    ({"kafka": {"dead_letter_topic": "predictions"}}, "kafka.dead_letter_topic"),
    ({"kafka": {"labels_topic": "predictions"}}, "kafka.labels_topic"),
    ({"state": {"topic": "labels"}}, "state.topic"),
    ({"alerts": {"sinks": [{"type": "kafka", "topic": "labels"}]}}, "alerts.sinks[0].topic"),
    ({"registry": {"model_updated_topic": "driftd-dead-letters"}}, "registry.model_updated_topic"),
    ({"kafka": {"dead_letter_topic": "dead letters!"}}, "kafka.dead_letter_topic"),
    ({"kafka": {"predictions_topic": "predictions "}}, "kafka.predictions_topic"),
])
def test_a_topic_of_two_purposes_is_refused_by_its_key(settings, key):
    """A new user's finding: kafka.dead_letter_topic: predictions passed check-config, and
    the daemon read its own dead letters back and dead-lettered them again without end (788
    in 18 s from one bad record); labels_topic equal to predictions_topic left the labels
    unread."""
    with pytest.raises(ConfigError) as raised:
        from_dict(settings)
    assert raised.value.key == key
    assert "each of driftd's topics has one purpose" in str(raised.value) or "is not a Kafka topic name" in str(raised.value)


@pytest.mark.parametrize("settings, key, words", [
    ({"join": {"prediction_ttl_seconds": 1e-300}}, "join.prediction_ttl_seconds", "must be at least 1 (seconds), got 1e-300"),
    ({"join": {"prediction_ttl_seconds": 0.5}}, "join.prediction_ttl_seconds", "must be at least 1"),
    ({"join": {"prediction_ttl_seconds": 0}}, "join.prediction_ttl_seconds", "must be at least 1"),
    ({"alerts": {"retry_initial_seconds": 1e-300}}, "alerts.retry_initial_seconds", "must be at least 0.01"),
    ({"kafka": {"reconnect_backoff_max_seconds": 1e-300}}, "kafka.reconnect_backoff_max_seconds",
     "must be between 0.001 and 86400"),
    ({"kafka": {"reconnect_backoff_max_seconds": 1e306}}, "kafka.reconnect_backoff_max_seconds",
     "must be between 0.001 and 86400"),
])
def test_a_time_too_small_for_its_arithmetic_is_refused_by_its_key(settings, key, words):
    """A tester's finding: `join.prediction_ttl_seconds: 1e-300` was refused with a raw
    OverflowError blamed on `models.m` (the dry run's join), and `driftd replay` sent every
    label to the dead-letter topic as internal_error: the join numbers its buckets of
    settled ids by time / (ttl / 4), infinite at that ttl. Likewise the alert retries'
    doubling overflowed after a thousand tiny waits, and kafka-python's whole milliseconds
    of the reconnect backoff overflowed (or were 0)."""
    assert_fails({"models": {"m": {}}, **settings}, key, words)


def test_the_alert_retry_wait_does_not_overflow_after_many_attempts():
    from daemon.alerting.sender import AlertSender

    sender = AlertSender([], initial_backoff_seconds=1.0, max_backoff_seconds=60.0)
    assert 30.0 <= sender._backoff(5000) <= 60.0


@pytest.mark.parametrize("name", ["predictions_topic", "labels_topic", "dead_letter_topic"])
def test_an_empty_required_topic_is_refused_by_its_key(name):
    """A tester's finding: `predictions_topic: ''` (or labels_topic) passed check-config and
    `driftd run` stopped with a traceback naming no key ("All topics must be non-empty
    strings"); `dead_letter_topic: ''` ran, sending dead letters to a topic named ''."""
    assert_fails({"models": {"m": {}}, "kafka": {name: ""}}, f"kafka.{name}", "must not be empty")


def test_an_empty_optional_topic_still_means_off():
    config = from_dict({"models": {"m": {}}, "state": {"topic": ""}, "registry": {"model_updated_topic": ""}})
    assert (config.state.topic, config.registry.model_updated_topic) == ("", "")


@pytest.mark.parametrize("servers, ok", [
    ("not a host", False), ("host:99999", False), ("host:", False), ("a:9092,,b:9092", False),
    ("localhost:9092", True), ("kafka-0.kafka:9092, kafka-1.kafka:9093", True), ("[::1]:9092", True),
    ("10.0.0.1", True), ("broker_1:9092", True), ("embedded", True),
])
def test_bootstrap_servers_are_host_port_pairs(servers, ok):
    """A new user's finding: `bootstrap_servers: "not a host"` passed check-config, and the
    daemon retried the name for ever."""
    if ok:
        from_dict({"kafka": {"bootstrap_servers": servers}})
        return
    with pytest.raises(ConfigError) as raised:
        from_dict({"kafka": {"bootstrap_servers": servers}})
    assert raised.value.key == "kafka.bootstrap_servers" and "is not host:port" in str(raised.value)


def test_a_checkpointed_model_names_its_settings_by_the_package_both_versions_have():
    """A pipeline's checkpoint pickles its ModelConfig: named ``daemon.config.ModelConfig``
    (where every version defines or re-exports it), not by the module the package was split
    into, so that a version before the split reads the states of a version after it (a
    rollback, a partition handed back mid-rollout)."""
    import pickle
    import pickletools

    from daemon.stream.pipeline import ModelPipeline

    names = {arg for op, arg, _ in pickletools.genops(pickle.dumps(ModelPipeline("m", cfg.ModelConfig())))
             if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and str(arg).startswith("daemon.config")}
    assert names == {"daemon.config"}, names
    assert pickle.loads(pickle.dumps(cfg.ConfigError("models.m.window", "must be above 0"))).key == "models.m.window"


def test_an_empty_webhook_secret_is_refused_not_taken_for_none(tmp_path):
    """A trial's finding: a secret file that is empty (or a variable of spaces) sent every
    alert unsigned without a word, where no secret at all is the way to say so."""
    (tmp_path / "empty.sec").write_text("  \n")
    assert_fails({"alerts": {"sinks": [{"url": "https://hooks.example/x", "secret": {"file": str(tmp_path / "empty.sec")}}]}},
                 "alerts.sinks[0].secret", "is empty (or blank)")


# -- every broken rule in one run ---------------------------------------------------------------

def named(e: ConfigError) -> list[tuple[str, str]]:
    """(key, reason) of every problem ``e`` names, in order."""
    return [(x.key, x.reason) for x in (e, *e.also)]


def test_every_broken_rule_of_a_model_is_named_in_one_run():
    """A model named its first broken rule alone: a new user's file with 14 mistakes took 7
    runs of check-config. Each independent rule of each model is now named at once."""
    e = error({"models": {"a": {
        "reference_size": 10, "window": 1, "label_ert": 0.5, "max_features": 1,
        "features": {"x": "weird", "<foo>": "numeric", "<score>": "categorical"},
        "numeric_tests": ["foo", "ks", "ks"], "categorical_tests": ["ks"],
        "error_detector": "ADWIN", "error_detector_params": {"delta": 2, "scale_after": 3},
        "promotion_alpha": 2, "retrain_warm_start": "hot", "decay_metrics": ["auc"], "estimation": "maybe"},
        "b": {"stride": 0, "max_retrained": -1}}})
    assert named(e) == [
        ("models.a.reference_size", "must be at least 20: no test can be built from fewer reference values"),
        ("models.a.window", "must be at least 2"),
        ("models.a.label_ert", "must be at least 1"),
        ("models.a.features.x", "must be numeric, categorical or ignore, got 'weird'"),
        ("models.a.features.<foo>", "names in angle brackets are reserved (<prediction>, <score>)"),
        ("models.a.features.<score>", "<score> of a classification model is numeric; it can only be ignored"),
        ("models.a.numeric_tests", "unknown test 'foo' (psi, ks, cusum)"),
        ("models.a.numeric_tests", "'ks' is listed 2 times"),
        ("models.a.categorical_tests", "unknown test 'ks' (psi, chisquare, cusum)"),
        ("models.a.error_detector_params.delta", "River's ADWIN takes a number > 0 and < 1, got 2"),
        ("models.a.error_detector_params.scale_after", "is driftd's, not River's: a regression's errors are scaled "
                                                       "for ADWIN by the first decay_reference_size of them"),
        ("models.a.promotion_alpha", "must be above 0 and below 1, got 2.0"),
        ("models.a.retrain_warm_start", "must be one of auto, always, never, meta, got 'hot'"),
        ("models.a.decay_metrics", "'auc' is not a classification metric (accuracy, precision, recall, f1)"),
        ("models.a.estimation", "must be auto (or on, yes, true) or off (or no, false), got 'maybe'"),
        ("models.b.stride", "must be at least 1"),
        ("models.b.max_retrained", "must not be negative, got -1"),
    ]


def test_a_failure_that_follows_from_another_of_the_same_setting_is_not_named():
    """Each rule that reads a setting already found wrong is skipped: its failure would go
    once the first is fixed (a window of 1 makes the default stride of 100 too large)."""
    e = error({"models": {"m": {
        "window": 1,                       # not also: stride must not exceed window (1)
        "task": "ranking",                 # not: <prediction>'s type, 'accuracy' not a ranking metric
        "features": {"<prediction>": "numeric"},
        "max_features": 0,                 # not: 1 feature declared, more than max_features (0)
        "promotion_min_events": 0,         # not: promotion_window must be at least promotion_min_events
        "replay_reservoir_size": -1, "replay_recent_size": 0,  # not: must not both be 0
        "label_ert": 0}}})                 # not: at least the decay tests' stride
    assert named(e) == [("models.m.task", "must be classification or regression"),
                        ("models.m.window", "must be at least 2"),
                        ("models.m.max_features", "must be at least 1"),
                        ("models.m.label_ert", "must be at least 1"),
                        ("models.m.promotion_min_events", "must be at least 1, got 0"),
                        ("models.m.replay_reservoir_size", "must not be negative, got -1")]
    # A stride above its window: not also an ert below the stride.
    assert named(error({"models": {"m": {"window": 100, "stride": 200, "ert": 150}}})) == [
        ("models.m.stride", "must not exceed window (100)")]
    # An unknown detector: its parameters are another's, not checked.
    assert named(error({"models": {"m": {"error_detector": "ADWINN", "error_detector_params": {"delta": 2}}}})) == [
        ("models.m.error_detector", "unknown detector (one of ADWIN, PageHinkley, KSWIN, DDM, EDDM, HDDM_A, HDDM_W)")]
    # A key one rule refused is not given another rule's reason too; retry times out of
    # range are not compared.
    assert named(error({"kafka": {"session_timeout_ms": -5},
                        "alerts": {"retry_initial_seconds": 0.001, "retry_max_seconds": 0}})) == [
        ("alerts.retry_max_seconds", "must be above 0"), ("kafka.session_timeout_ms", "must be above 0"),
        ("alerts.retry_initial_seconds", "must be at least 0.01 (seconds), got 0.001: a retry waits at least this "
                                         "long: less floods the sink")]


def test_a_mistake_of_model_defaults_is_named_once_not_in_every_model_that_inherits_it():
    """A bad model_defaults value was named again for every model that takes it: one mistake,
    as many lines as models."""
    e = error({"model_defaults": {"window": 1, "stride": 1},
               "models": {"a": {}, "b": {"window": 1}, "c": {"stride": 5}, "d": {"window": 4, "stride": 5}}})
    assert named(e) == [("model_defaults.window", "must be at least 2"),
                        ("models.b.window", "must be at least 2"),  # b's own: fixing model_defaults leaves it
                        ("models.d.stride", "must not exceed window (4)")]  # (c's stride too large for a window of 1)


def test_every_broken_rule_of_the_other_sections_is_named_in_one_run(monkeypatch):
    """Each section's rules stopped at their first failure too (a sink's URL hid its timeout,
    an unknown kafka.client key the next one, the federation's participant its key)."""
    monkeypatch.delenv("DRIFTD_FEDERATION_KEY", raising=False)
    e = error({"kafka": {"embedded_port": 70_000, "fetch_max_wait_ms": 40_000, "dead_letter_topic": "a b",
                         "client": {"group_id": "x", "securty_protocol": "SSL"}},
               "state": {"refused_state": "never", "piece_bytes": 10},
               "metrics": {"per_feature": "some", "lag_refresh_seconds": 0},
               "log_level": "LOUD", "log_format": "xml",
               "alerts": {"sinks": [{"type": "webhook", "url": "nope", "topic": "t", "timeout_seconds": 0},
                                    {"type": "pager", "url": "nope"}]},
               "federation": {"enabled": True, "every_events": 0, "proximal_mu": -1},
               "models": {"m": {}}})
    assert named(e) == [
        ("state.piece_bytes", "must be between 1024 and the producer's max_request_size less 1024 (1047552)"),
        ("state.refused_state", "must be wait or start_fresh, got 'never'"),
        ("kafka.dead_letter_topic", "'a b' is not a Kafka topic name: Topic name \"a b\" is illegal, it contains a "
                                    "character other than ASCII alphanumerics, \".\", \"_\" and \"-\""),
        ("metrics.per_feature", "must be all, alerting or none, got 'some'"),
        ("metrics.lag_refresh_seconds", "must be above 0"),
        ("log_level", "must be DEBUG, INFO, WARNING or ERROR"),
        ("log_format", "must be text or json"),
        ("alerts.sinks[0].url", "must be an http:// or https:// URL with a host"),
        ("alerts.sinks[0].topic", "a webhook sink takes no topic (it would be ignored)"),
        ("alerts.sinks[0].timeout_seconds", "must be above 0, got 0.0"),
        ("alerts.sinks[1].type", "must be webhook, slack or kafka"),  # (the rest depends on the type)
        ("kafka.client.group_id", "driftd sets it itself (kafka.group_id): given here as well, kafka-python would "
                                  "refuse to make the client"),
        ("kafka.client.securty_protocol", "not a kafka-python setting that the KafkaConsumer, KafkaProducer all "
                                          "take; did you mean security_protocol?"),
        ("kafka.embedded_port", "must be between 0 and 65535"),
        ("kafka.fetch_max_wait_ms", "must be below 30000 (ms), the consumer's request timeout, got 40000"),
        ("federation.participant", "needed when federation.enabled: this deployment's id"),
        ("federation.every_events", "must be above 0"),
        ("federation.proximal_mu", "must not be negative"),
        ("federation.key_env", "federation messages are signed: set DRIFTD_FEDERATION_KEY"),
    ]


def test_both_alert_urls_are_named_at_once():
    e = error({"alerts": {"runbook_base_url": "docs", "dashboard_url": "ftp://g"}})
    assert named(e) == [("alerts.runbook_base_url", "must be an http:// or https:// URL with a host, got 'docs'"),
                        ("alerts.dashboard_url", "must be an http:// or https:// URL with a host, got 'ftp://g'")]


# -- state.dir --------------------------------------------------------------------------------

def test_a_state_dir_that_cannot_be_used_or_made_is_named_with_the_reason(tmp_path):
    """check-config said ok to a state.dir that was a file, under a file, or on /proc:
    `driftd run` alone found it. Nothing is made by the check."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = {
        str(a_file): f"cannot use {a_file}: it is a file, not a directory",
        str(a_file / "state"): f"cannot create {a_file}/state: {a_file} is a file, not a directory",
        str(tmp_path / "dangling" / "state"): f"cannot create {tmp_path}/dangling/state: {tmp_path}/dangling is a "
                                              f"symbolic link to {tmp_path}/nowhere, which does not exist",
        "/dev/null": "cannot use /dev/null: it is not a directory",
        # access() says yes to root here: the file made and removed says no, to every user.
        "/proc": "cannot use /proc: a file cannot be made in it (No such file or directory)",
        "/proc/driftd/state": "cannot create /proc/driftd/state: a file cannot be made in /proc (No such file or "
                              "directory)",
    }
    for directory, reason in cases.items():
        assert named(error({"state": {"dir": directory}}, state_dir=True)) == [("state.dir", reason)], directory
        assert from_dict({"state": {"dir": directory}}).state.dir == directory  # (reading a file checks no directory)
    new = str(tmp_path / "new" / "state")
    assert from_dict({"state": {"dir": new}}, state_dir=True).state.dir == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "dangling"], "the check made something"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a directory of mode 555")
def test_a_state_dir_whose_user_cannot_write_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        assert named(error({"state": {"dir": str(locked)}}, state_dir=True)) == [
            ("state.dir", f"cannot use {locked}: driftd's user cannot write in it")]
        assert named(error({"state": {"dir": str(locked / "a" / "b")}}, state_dir=True)) == [
            ("state.dir", f"cannot create {locked}/a/b: driftd's user cannot write in {locked}")]
    finally:
        locked.chmod(0o755)


def test_a_state_dir_mistake_is_named_with_the_others_and_relative_to_the_file(tmp_path):
    (tmp_path / "state").write_text("")  # the file's "state": not one in the current directory
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"state": {"dir": "state"}, "models": {"m": {"window": 1}}}))
    with pytest.raises(ConfigError) as info:
        load(config_file, state_dir=True)
    assert named(info.value) == [("state.dir", f"cannot use {tmp_path}/state: it is a file, not a directory"),
                                 ("models.m.window", "must be at least 2")]
    with pytest.raises(ConfigError) as info:
        load(config_file)
    assert named(info.value) == [("models.m.window", "must be at least 2")]
