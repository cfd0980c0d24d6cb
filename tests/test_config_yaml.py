"""Reading the configuration file's YAML: what an unquoted word becomes (YAML 1.2's
booleans, model names that must be strings), merge keys, and keys given twice."""

from __future__ import annotations

import pytest

from daemon.config import ConfigError, from_dict, load


def load_text(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load(path)


def refused(tmp_path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_text(tmp_path, text)
    return raised.value


def test_a_model_name_yaml_does_not_read_as_a_string_is_refused_as_written(tmp_path):
    """A tester's finding: `models: {true: {}, 007: {}, 0x10: {}}` passed check-config as
    models True, 7 and 16, and every event of model "true" went to the dead-letter topic
    as unknown_model."""
    e = refused(tmp_path, "models: {true: {}, 007: {}, 0x10: {}, fine: {}}\n")
    assert e.key == "models"
    text = str(e)
    for written, read in (("true", "the boolean True"), ("007", "the whole number 7"), ("0x10", "the whole number 16")):
        assert f"the model name {written} (line 1) is not a string: YAML reads it as {read}" in text, text
        assert f"quote it: '{written}'" in text, text
    assert "fine" not in text


def test_a_number_and_the_same_digits_quoted_are_not_merged_into_one_model(tmp_path):
    """`models: {5: {window: 50}, "5": {window: 200}}` was one model "5" with window 200."""
    e = refused(tmp_path, 'models: {5: {window: 50}, "5": {window: 200}}\n')
    assert e.key == "models" and "the model name 5 (line 1) is not a string" in str(e) and not e.also, e


def test_two_non_string_names_python_takes_for_one_key_are_both_named(tmp_path):
    """`models: {true: {}, 1.0: {}}` was refused as a "duplicate key 1.0" (True == 1.0 to
    Python); they are two YAML keys, and neither is a string."""
    e = refused(tmp_path, "models:\n  true: {}\n  1.0: {}\n")
    assert "duplicate" not in str(e)
    assert "the model name true (line 2)" in str(e) and "the model name 1.0 (line 3)" in str(e), e


def test_a_non_string_name_is_refused_by_from_dict_too():
    with pytest.raises(ConfigError, match=r"^models: the model name 7 is not a string.*quote it"):
        from_dict({"models": {7: {}}})


def test_yes_no_on_off_are_strings_for_labels_and_names_and_booleans_for_flags(tmp_path):
    """`positive_label: yes` was the boolean true (YAML 1.1), and a score {"yes": .., "no":
    ..} was then misread. driftd reads YAML 1.2's booleans: true and false only; settings
    that take true or false still take the words, quoted or not."""
    config = load_text(tmp_path, "auto_register_models: yes\nkafka: {group_id: no}\n"
                                 "models:\n  m: {positive_label: yes, watch_score: off, features: {on: numeric}}\n"
                                 "  n: {positive_label: true, retrain_on_drift: 'No', reference_per_version: ON}\n")
    m, n = config.models["m"], config.models["n"]
    assert (m.positive_label, m.watch_score, m.features) == ("yes", False, {"on": "numeric"})
    assert (n.positive_label, n.retrain_on_drift, n.reference_per_version) == (True, False, True)
    assert config.auto_register_models is True and config.kafka.group_id == "no"
    with pytest.raises(ConfigError, match=r"models.m.watch_score: must be true or false, got 'maybe'"):
        from_dict({"models": {"m": {"watch_score": "maybe"}}})


def test_yes_no_on_off_still_set_river_flags(tmp_path, monkeypatch):
    """River's flags (a learner's, the error detector's) take the words as they did when
    YAML read them as booleans."""
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "k")
    config = load_text(tmp_path, "models:\n  m:\n    error_detector: HDDM_A\n    error_detector_params: {two_sided_test: no}\n"
                                 "    learners: {t: {HoeffdingTreeClassifier: {binary_split: yes, merit_preprune: off}}}\n")
    assert config.models["m"].error_detector_params == {"two_sided_test": False}
    from learners import build

    tree = build(config.models["m"].learners["t"])
    assert (tree.binary_split, tree.merit_preprune) == (True, False)


def test_merge_keys_are_read_and_a_key_given_twice_is_still_refused(tmp_path):
    """`<<: *defaults` was refused with a PyYAML constructor error ("could not determine a
    constructor for the tag 'tag:yaml.org,2002:merge'"): the duplicate-key check read `<<`
    as a key of the mapping's own."""
    config = load_text(tmp_path, "model_defaults: &d {window: 400, stride: 40}\n"
                                 "models:\n  a: {<<: *d, window: 800}\n  b:\n    <<: [*d, {ert: 1000000.0}]\n")
    assert (config.models["a"].window, config.models["a"].stride) == (800, 40)
    assert (config.models["b"].window, config.models["b"].ert) == (400, 1e6)
    e = refused(tmp_path, "model_defaults: &d {window: 400}\nmodels:\n  a: {<<: *d, stride: 10, stride: 20}\n")
    assert "duplicate key 'stride'" in str(e) and "line 3" in str(e), e
