"""The ``driftd`` command as a user meets it: ``--version``, help texts, ``run --port
--log-level --log-format`` on a real daemon process with the embedded broker (its address
the first line on stdout, on a fixed port), JSON log lines with model and partition,
paths relative to the configuration file, ``driftd models``, and configured models in
``/status`` before their first event."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kafka import KafkaProducer

from daemon import cli
from daemon.config import from_dict, load
from daemon.runtime.logs import JsonFormatter
from daemon.stream.partition import PartitionState
from daemon.web.status import WAITING, configured_models, partition_models, state_of, waiting_entry

from .daemon_harness import daemon_config, running_daemon, status, wait_until

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def driftd(*args: str, cwd=ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


SMALL = {"reference_size": 1000, "window": 500, "stride": 100, "ert": 4000,
         "decay_reference_size": 500, "decay_window": 400}


# -- version and help ---------------------------------------------------------------------------

def test_version_comes_from_the_package_metadata():
    done = driftd("--version")
    assert done.returncode == 0 and done.stdout == f"driftd {importlib.metadata.version('driftd')}\n", done


def _actions(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", helps.get(name)
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield f"{path} {'/'.join(action.option_strings) or action.dest}", action.help


def test_every_command_and_option_has_a_help_string():
    found = dict(_actions(cli.parser(), "driftd"))
    assert {"driftd check-config", "driftd check-config file", "driftd demo --seed", "driftd run --port",
            "driftd run --log-level", "driftd run --log-format", "driftd models --url", "driftd --version"} <= set(found)
    assert not [name for name, text in found.items() if not text or not text.strip()]


@pytest.mark.parametrize("command, words", [
    ("check-config", ["FILE", "the configuration file to check"]),
    ("demo", ["--seed", "same seed gives the same events"]),
    ("run", ["--port", "--log-level", "--log-format", "instead of the file's http.port"]),
    ("models", ["--url", "--registry", "/status"]),
])
def test_help_texts_are_printed(command, words):
    done = driftd(command, "--help")
    text = " ".join(done.stdout.split())  # argparse wraps lines
    assert done.returncode == 0 and all(w in text for w in words), done.stdout


def test_a_bad_port_on_the_command_line_is_refused_with_the_reason():
    done = driftd("run", "--port", "70000")
    assert done.returncode == 2 and "between 0 and 65535" in done.stderr


# -- driftd run on the embedded broker, as a process ---------------------------------------------

class Run:
    """``driftd run`` as a subprocess: stdout lines collected as they come, stderr to a file."""

    def __init__(self, args: list[str], cwd: Path, log: Path):
        self.log_path = log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "run", *args], cwd=cwd, env=ENV,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
        self.stdout: list[str] = []
        self._reader = threading.Thread(target=lambda: self.stdout.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # our own child, by pid
        try:
            return self.proc.wait(45)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def test_run_on_the_embedded_broker_with_port_level_and_json_logs(tmp_path):
    conf_dir, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    conf_dir.mkdir()
    elsewhere.mkdir()
    broker_port, http_port = free_port(), free_port()
    config_file = conf_dir / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": "embedded", "embedded_port": broker_port, "create_topics": 1,
                  "poll_timeout_ms": 100, "session_timeout_ms": 2000},
        "http": {"host": "127.0.0.1", "port": 9},  # --port overrides it (9: never ours)
        "state": {"dir": "state", "checkpoint_interval_seconds": 0.5},  # relative: next to the file
        "model_defaults": SMALL,
        "models": {"fraud": {}},
        "log_level": "ERROR",  # --log-level overrides it
    }))
    run = Run(["--config", str(config_file), "--port", str(http_port), "--log-level", "info", "--log-format", "json"],
              cwd=elsewhere, log=tmp_path / "driftd.log")
    try:
        first = wait_until(lambda: run.stdout[:1] or run.proc.poll() is not None, timeout=60, what="a line on stdout")
        assert first == [f"driftd: embedded broker at 127.0.0.1:{broker_port}\n"], (run.stdout, run.log()[-3000:])
        base = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: http_get(base + "/readyz")[0] == 200 or run.proc.poll() is not None, timeout=90,
                   what="/readyz 200 on the --port")
        assert run.proc.poll() is None, run.log()[-3000:]

        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{broker_port}", acks="all")
        bad = {"model": "fraud", "id": "p-0", "ts": time.time(), "features": {"age": [41]}, "prediction": 1}
        good = {"model": "fraud", "id": "p-1", "ts": time.time(), "features": {"age": 41}, "prediction": 1}
        for event in (bad, good):
            producer.send("predictions", key=b"fraud", value=json.dumps(event).encode())
        producer.flush()
        producer.close()

        def dead_letter_line():
            lines = [json.loads(line) for line in run.log().splitlines()]  # every line is JSON
            return next((line for line in lines if "dead-letter topic" in line["message"]), None)

        line = wait_until(dead_letter_line, timeout=30, what="the dead letter's log line")
        assert (line["level"], line["logger"], line["model"], line["partition"]) == ("WARNING", "driftd", "fraud", 0), line
        assert "wrong_type" in line["message"] and "$.features['age']" in line["message"], line
        assert set(line) == {"time", "level", "logger", "message", "model", "partition"}, line

        wait_until(lambda: (json.loads(http_get(base + "/status")[1] or b"{}").get("models", {}).get("fraud") or {})
                   .get("processed", {}).get("prediction") == 1, timeout=30, what="the good prediction processed")
        listed = driftd("models", "--config", str(config_file), "--url", base, cwd=elsewhere)
        assert listed.returncode == 0, listed
        header, row = listed.stdout.splitlines()
        assert header.split() == ["MODEL", "TASK", "STATE", "PREDICTIONS", "LABELS", "JOINED", "VERSION"]
        assert row.split() == ["fraud", "classification", "collecting", "reference", "1", "0", "0", "-"], listed.stdout
        assert f"driftd at {base}" in listed.stderr

        # The state directory is the file's "state", not one in the current directory.
        wait_until(lambda: any((conf_dir / "state").iterdir()) if (conf_dir / "state").exists() else False,
                   timeout=30, what="a checkpoint next to the configuration file")
        assert not (elsewhere / "state").exists()
    finally:
        code = run.stop()
    assert code == 0, run.log()[-3000:]
    lines = [json.loads(line) for line in run.log().splitlines()]
    assert any(l["level"] == "INFO" and l["logger"] == "driftd" for l in lines), "--log-level info not honoured"
    chatter = [l for l in lines if l["logger"].startswith("kafka") and l["level"] in ("INFO", "DEBUG")]
    assert not chatter, chatter[:3]
    assert run.stdout[0].startswith("driftd: embedded broker at")


def test_an_embedded_port_in_use_fails_at_once_naming_the_key(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config_file = tmp_path / "driftd.yaml"
        config_file.write_text(yaml.safe_dump({
            "kafka": {"bootstrap_servers": "embedded", "embedded_port": taken.getsockname()[1]},
            "http": {"host": "127.0.0.1", "port": 0}, "state": {"dir": "state"},
            "model_defaults": SMALL, "models": {"fraud": {}}}))
        done = driftd("run", "--config", str(config_file), timeout=120)
    assert done.returncode == 1 and "kafka.embedded_port" in done.stderr, done.stderr[-2000:]
    assert done.stdout == ""


# -- configured models in /status from the start ------------------------------------------------------

def test_configured_models_are_in_status_before_their_first_event(kafka_bootstrap, unique_name, tmp_path):
    models = {"fraud": {}, "eta": {"task": "regression", "decay_metrics": ["mae"]}}
    with running_daemon(daemon_config(kafka_bootstrap, unique_name, tmp_path / "state", models=models)) as daemon:
        got = status(daemon)["models"]
    assert list(got) == ["fraud", "eta"], got
    for entry in got.values():
        assert entry["state"] == WAITING
        assert entry["processed"] == {"prediction": 0, "label": 0} and not any(entry["join"].values())


def test_the_state_line_of_a_model():
    config = from_dict({"models": {"fraud": {}}})
    waiting = configured_models(config, {})["fraud"]
    assert waiting["state"] == WAITING and waiting["detectors"] == {}
    seen = {**waiting, "processed": {"prediction": 10, "label": 0}}
    assert state_of(seen) == "collecting reference"
    assert state_of({**seen, "reference_complete": True, "uncalibrated_tests": 3}) == "calibrating 3 tests"
    assert state_of({**seen, "reference_complete": True}) == "watching"
    drifting = {f"psi/f{i}": {"drift": True} for i in range(7)} | {"ks/x": {"drift": False}}
    assert state_of({**seen, "reference_complete": True, "detectors": drifting}) == \
        "drift: psi/f0, psi/f1, psi/f2, psi/f3, psi/f4 +2 more"
    # A model the daemon watches that the file does not list (auto_register_models) comes after.
    assert list(configured_models(config, {"churn": seen})) == ["fraud", "churn"]


def test_a_waiting_model_has_the_keys_of_one_with_events():
    """A dashboard or script reading /status finds every key whether or not the model has
    had events (version_changes, version_returns, scores_left_out and learning were
    missing before its first)."""
    config = from_dict({"models": {"fraud": {}}})
    state = PartitionState(0, config)
    state.handle_predictions([SimpleNamespace(
        topic="predictions", partition=0, offset=0, timestamp=-1, key=b"fraud", headers=[],
        value=json.dumps({"model": "fraud", "id": "1", "ts": time.time(), "features": {"x": 1.0},
                          "prediction": 1}).encode())], lambda *rejected: pytest.fail(f"dead letter {rejected}"))
    seen = partition_models(state)["fraud"]
    assert seen["processed"]["prediction"] == 1
    assert set(waiting_entry(config, "fraud")) == set(seen)


# -- driftd models without a daemon ---------------------------------------------------------------

def test_models_without_a_daemon_lists_the_configuration(tmp_path):
    closed = free_port()
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"http": {"port": closed}, "model_defaults": SMALL,
                                           "models": {"fraud": {}, "eta": {"task": "regression", "decay_metrics": ["mae"]}}},
                                          sort_keys=False))  # the file's order is the listing's
    done = driftd("models", "--config", str(config_file), "--timeout", "1")
    assert done.returncode == 0, done
    rows = [line.split()[:2] for line in done.stdout.splitlines()[1:]]
    assert rows == [["fraud", "classification"], ["eta", "regression"]]
    assert f"no driftd answered at http://127.0.0.1:{closed}" in done.stderr
    as_json = json.loads(driftd("models", "--config", str(config_file), "--json", "--timeout", "1").stdout)
    assert as_json["source"] is None and set(as_json["models"]) == {"fraud", "eta"}


def test_models_needs_no_sink_secret_but_check_config_does(tmp_path):
    """`driftd models` reads the models and the port: a webhook secret from an unset
    variable (set only in the daemon's pod) does not stop it; check-config still names it."""
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({
        "http": {"port": free_port()}, "models": {"fraud": {}},
        "alerts": {"sinks": [{"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": {"env": "DRIFTD_TEST_UNSET"}}]}}))
    assert "DRIFTD_TEST_UNSET" not in ENV
    done = driftd("models", "--config", str(config_file), "--timeout", "1")
    assert done.returncode == 0 and done.stdout.splitlines()[1].split()[0] == "fraud", done
    checked = driftd("check-config", str(config_file))
    assert checked.returncode != 0 and "DRIFTD_TEST_UNSET is not set" in checked.stderr, checked


def test_check_config_warns_of_a_signing_key_shorter_than_the_spec_asks(tmp_path):
    """A trial's finding: a webhook key of a few bytes (the spec asks 24 to 64) was taken
    without a word. check-config names the sink's key, and the key's length only."""
    config_file = tmp_path / "driftd.yaml"
    keys = {"a": "s3cret-of-16byte\n", "b": "whsec_" + "QUJD" * 8, "c": "whsec_QUJDREVG"}  # 16, 24, 6 bytes
    for name, key in keys.items():
        (tmp_path / name).write_text(key)
    sinks = [{"type": "webhook" if name != "c" else "slack", "url": f"http://127.0.0.1:9/{name}",
              "secret": {"file": str(tmp_path / name)}} for name in keys]
    config_file.write_text(yaml.safe_dump({"models": {"fraud": {}}, "alerts": {"sinks": sinks}}))
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 0, checked
    warned = [line for line in checked.stderr.splitlines() if "secret" in line]
    assert [line.split(": ")[2] for line in warned] == ["alerts.sinks[0].secret", "alerts.sinks[2].secret"], warned
    assert "its key is 16 bytes; the Standard Webhooks spec asks 24 to 64" in warned[0]
    assert "its key is 6 bytes" in warned[1] and "s3cret" not in checked.stderr


def test_check_config_refuses_model_names_yaml_reads_as_other_types(tmp_path):
    """A tester's finding: check-config said ok to `models: {true: {}, 007: {}, 0x10: {}}`
    (models True, 7 and 16, which no event's `model` names); `positive_label: yes` was the
    boolean true."""
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text("models: {true: {}, 007: {}, 0x10: {}}\n")
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 1, checked
    for written in ("true", "007", "0x10"):
        assert f"models: the model name {written} (line 1) is not a string" in checked.stderr, checked.stderr
    assert "Traceback" not in checked.stderr
    config_file.write_text("models: {'true': {positive_label: yes}}\n")
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 0, checked


def test_check_config_names_an_empty_topic_a_kafka_client_value_of_the_wrong_type_and_a_tiny_ttl(tmp_path):
    """A tester's finding: the first two passed check-config, and `driftd run` stopped with
    a traceback naming no key (ValueError: All topics must be non-empty strings; TypeError);
    the ttl was an OverflowError blamed on models.m."""
    config_file = tmp_path / "driftd.yaml"
    for settings, said in (("kafka: {client: {client_id: 5}}", "kafka.client.client_id: must be a string"),
                           ("kafka: {predictions_topic: ''}", "kafka.predictions_topic: must not be empty"),
                           ("join: {prediction_ttl_seconds: 1e-300}", "join.prediction_ttl_seconds: must be at least 1")):
        config_file.write_text(f"{settings}\nmodels: {{m: {{}}}}\n")
        checked = driftd("check-config", str(config_file))
        assert checked.returncode == 1 and "Traceback" not in checked.stderr, checked
        assert said in checked.stderr, checked.stderr


def test_check_config_warns_of_a_webhook_sink_without_a_secret(tmp_path):
    """A trial's finding: a `type: webhook` sink without `secret` sent unsigned alerts
    without a word. check-config warns (and passes); a Slack sink, which checks no
    signature, is not warned about."""
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"models": {"fraud": {}}, "alerts": {"sinks": [
        {"type": "webhook", "url": "http://127.0.0.1:9/a"}, {"type": "slack", "url": "http://127.0.0.1:9/b"}]}}))
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 0 and checked.stdout.strip().endswith(": ok"), checked
    warned = [line for line in checked.stderr.splitlines() if "secret" in line]
    assert len(warned) == 1 and warned[0].startswith("driftd: warning: alerts.sinks[0].secret: not set: this sink's "
                                                     "alerts go unsigned"), checked.stderr


def test_check_config_warns_of_tests_a_reference_too_small_can_never_fire(tmp_path):
    """check-config said ok to reference_size 30 at the default ert, where the run then
    skips every CUSUM ('can never fire at this contract'): it now says so, naming the key."""
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"models": {"tiny": {"reference_size": 30}, "fraud": {}}}))
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 0 and checked.stdout.strip() == f"{config_file}: ok", checked
    warned = [line for line in checked.stderr.splitlines() if line.startswith("driftd: warning: ")]
    assert len(warned) == 1 and warned[0].startswith("driftd: warning: models.tiny: cusum could never fire at these "
                                                     "settings on the dry run's made-up columns ("), warned
    assert "yours may differ: a replay or the daemon says of each" in warned[0]
    assert "reference_size 30," in warned[0] and "a larger reference_size" in warned[0]


@pytest.mark.parametrize("how", [["--registry"], ["list"]])
def test_the_registry_listing_is_still_there(tmp_path, how):
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"registry": {"dir": "reg"}}))
    (tmp_path / "reg").mkdir()
    done = driftd("models", *how, "--config", str(config_file), cwd=ROOT)
    # The registry is the file's "reg" (relative to the file), and it is empty.
    assert done.returncode == 0 and f"no promoted models in {tmp_path / 'reg'}" in done.stderr, done
    assert done.stdout == "", done
    listed = driftd("models", *how, "--json", "--config", str(config_file), cwd=ROOT)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed


def test_the_registry_is_listed_without_a_configuration_file(tmp_path):
    """`driftd models list` needs only registry.dir: without a config.yaml it failed
    ("cannot read config.yaml") though the registry was at its default place."""
    from learners.registry import Registry
    from river import linear_model

    Registry(tmp_path / "driftd-registry", key=b"not-a-real-key").publish("fraud", linear_model.LogisticRegression())
    listed = driftd("models", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0 and [(m["model"], m["version"]) for m in json.loads(listed.stdout)] == [("fraud", 1)], listed
    assert "no config.yaml: the registry at the default registry.dir, driftd-registry" in listed.stderr, listed
    shown = driftd("models", "show", "fraud", cwd=tmp_path)
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == 1, shown
    watched = driftd("models", cwd=tmp_path)  # the watched models are the configuration's: it is needed
    assert watched.returncode == 2 and "cannot read config.yaml" in watched.stderr, watched


# -- paths relative to the configuration file ----------------------------------------------------

def test_relative_paths_in_a_file_are_relative_to_its_directory(tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "hook.key").write_text("s3cret\n")
    (conf / "kafka.pw").write_text("pw\n")
    monkeypatch.chdir(tmp_path)
    (conf / "driftd.yaml").write_text(yaml.safe_dump({
        "state": {"dir": "state"},
        "registry": {"dir": "../models"},
        "kafka": {"client": {"ssl_cafile": "tls/ca.pem", "ssl_certfile": "/abs/cert.pem",
                             "sasl_plain_password": {"file": "kafka.pw"}}},
        "alerts": {"sinks": [{"type": "webhook", "url": "https://hooks.example/x", "secret": {"file": "hook.key"}}]},
        # A feature named "file" is a name, not a path.
        "models": {"fraud": {"features": {"file": "categorical"}}},
    }))
    config = load("etc/driftd.yaml")  # a relative path to the file, from another directory
    assert config.state.dir == str(conf / "state")
    assert Path(config.registry.dir) == conf / ".." / "models"
    assert config.kafka.client["ssl_cafile"] == str(conf / "tls" / "ca.pem")
    assert config.kafka.client["ssl_certfile"] == "/abs/cert.pem"
    assert config.kafka.client["sasl_plain_password"].get() == "pw"
    assert config.alerts.sinks[0].secret.get() == "s3cret"
    assert config.models["fraud"].features == {"file": "categorical"}


def test_defaults_and_configurations_without_a_file_stay_relative_to_the_current_directory(tmp_path):
    (tmp_path / "driftd.yaml").write_text(yaml.safe_dump({"http": {"port": 0}}))
    assert load(tmp_path / "driftd.yaml").state.dir == "driftd-state"
    assert from_dict({"state": {"dir": "state"}}).state.dir == "state"


def test_a_missing_secret_file_names_the_resolved_path(tmp_path):
    (tmp_path / "driftd.yaml").write_text(yaml.safe_dump({"alerts": {"sinks": [
        {"type": "webhook", "url": "https://hooks.example/x", "secret": {"file": "nowhere.key"}}]}}))
    done = driftd("check-config", str(tmp_path / "driftd.yaml"))
    assert done.returncode == 1 and "alerts.sinks[0].secret" in done.stderr and str(tmp_path / "nowhere.key") in done.stderr


@pytest.mark.parametrize("data, key", [({"log_format": "xml"}, "log_format"),
                                       ({"kafka": {"embedded_port": 70000}}, "kafka.embedded_port")])
def test_bad_new_options_fail_naming_the_key(data, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        from_dict(data)


# -- JSON log lines --------------------------------------------------------------------------------

def test_a_json_log_line_is_one_object_with_the_fields_the_call_gives():
    logger = logging.getLogger("driftd.test")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logger.makeRecord("driftd.test", logging.ERROR, __file__, 1, "model %s failed\nhere", ("fraud",),
                                   sys.exc_info(), extra={"model": "fraud", "partition": 2})
    text = JsonFormatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "model fraud failed\nhere" and (line["model"], line["partition"]) == ("fraud", 2)
    assert line["level"] == "ERROR" and line["logger"] == "driftd.test" and line["time"].endswith("Z")
    assert "RuntimeError: boom" in line["exception"]
    plain = json.loads(JsonFormatter().format(logger.makeRecord("driftd", logging.INFO, __file__, 1, "hi", (), None)))
    assert set(plain) == {"time", "level", "logger", "message"}


def test_a_text_log_line_is_one_line_whatever_an_event_put_in_it():
    """A new user's finding: a feature named "ten\\nure" split the alert's log line in two
    (JSON lines escaped it); any producer could forge a line so."""
    from daemon.runtime import logs

    root = logging.getLogger()
    hosts, level = root.handlers[:], root.level
    root.handlers.clear()  # (pytest's own: configure installs driftd's only where there is none)
    try:
        logs.configure("INFO", log_format="text")
        handler = next(h for h in root.handlers if getattr(h, "driftd", False))
    finally:
        root.handlers[:], root.level = hosts, level
    record = logging.getLogger("driftd").makeRecord("driftd", logging.WARNING, __file__, 1, "alert firing %s/ks/%s",
                                                    ("m", "ten\nure\rINFO forged"), None)
    text = handler.format(record)
    assert "\n" not in text and "\r" not in text and text.endswith("alert firing m/ks/ten\\nure\\rINFO forged")


def test_kafka_pythons_traceback_of_a_socket_closed_under_its_reader_is_dropped():
    """Seen in a full run: a daemon's clean SIGTERM logged kafka-python's traceback of its
    I/O thread reading a socket another thread had just closed (AttributeError: 'NoneType'
    object has no attribute 'recv'), and the log read as a crash. Other errors of that
    logger stay."""
    from daemon.runtime import logs

    logs.configure("INFO")
    transport = logging.getLogger(logs.TRANSPORT_LOGGER)
    records = []
    for error in (AttributeError("'NoneType' object has no attribute 'recv'"), ConnectionResetError("reset")):
        try:
            raise error
        except Exception:
            records.append(transport.makeRecord(transport.name, logging.ERROR, __file__, 1,
                                                "%s: Error receiving network data closing socket", ("conn",),
                                                sys.exc_info()))
    assert [transport.filter(r) for r in records] == [False, True]


def test_kafka_pythons_error_of_a_metadata_refresh_cut_by_its_own_close_is_kept_for_debug():
    """kafka-python 3.0 logged ERROR "Metadata refresh: failed Cancelled" at nearly every
    consumer's close (18 of 20), so at every stop of driftd. A refresh failed otherwise (a
    broker gone: a connection error) stays an ERROR; at DEBUG the cut one shows too."""
    from kafka.errors import Cancelled, KafkaConnectionError

    from daemon.runtime import logs

    cluster = logging.getLogger(logs.METADATA_LOGGER)

    def kept(error) -> bool:
        return cluster.filter(cluster.makeRecord(cluster.name, logging.ERROR, __file__, 1, "Metadata refresh: failed %s",
                                                 (error,), None))

    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel("INFO")  # pytest's handlers are there: configure() keeps the host's level
        logs.configure("INFO")
        assert [kept(Cancelled()), kept(KafkaConnectionError("111 ECONNREFUSED"))] == [False, True]
        root.setLevel("DEBUG")
        logs.configure("DEBUG")
        assert kept(Cancelled())
    finally:
        root.setLevel(level)
        logs.configure(logging.getLevelName(level) if level else "WARNING")


def test_driftd_broker_serves_replicas_on_one_machine_until_sigterm():
    """`driftd broker`: the embedded broker alone, its address first, the topics asked for."""
    from kafka import KafkaConsumer

    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "broker", "--port", "0", "--topic", "preds",
                             "--topic", "labs", "--partitions", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("driftd: embedded broker at 127.0.0.1:"), first
        consumer = KafkaConsumer(bootstrap_servers=first.rsplit(" ", 1)[1])
        try:
            assert consumer.partitions_for_topic("preds") == {0, 1} == consumer.partitions_for_topic("labs")
        finally:
            consumer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, proc.stderr.read()


def test_run_with_a_state_dir_it_cannot_use_fails_at_start_naming_the_key(tmp_path):
    """A trial's finding: state.dir a file (or under /proc) passed check-config, and
    `driftd run` started the embedded broker, then died with a traceback and status 1.
    It now fails before anything starts: status 2, the key, the path and why."""
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"state": {"dir": str(a_file)}, "http": {"port": free_port()},
                                           "models": {"m": {}}}))
    done = driftd("run", "--config", str(config_file), timeout=60)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr == (f"driftd: invalid configuration {config_file}: state.dir: cannot use {a_file}: it is a "
                           f"file, not a directory\n"), done.stderr


def test_check_config_warns_of_a_state_dir_it_could_not_use_here(tmp_path):
    """check-config said nothing of a state.dir that was a file: `driftd run` alone refused
    it. It warns, naming why (whether state.dir can be used is the machine's, not the
    file's: a file for a container names the container's /var/lib/driftd, so not an
    error), and makes nothing; `driftd run` on this machine fails at start with it."""
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    config_file = tmp_path / "driftd.yaml"
    config_file.write_text(yaml.safe_dump({"state": {"dir": str(a_file / "state")}, "models": {"m": {}}}))
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 0 and checked.stdout == f"{config_file}: ok\n", checked
    assert checked.stderr == (f"driftd: warning: state.dir: cannot create {a_file}/state: {a_file} is a file, not a "
                              f"directory: `driftd run` with this file would stop at start on this machine\n"), checked
    config_file.write_text(yaml.safe_dump({"state": {"dir": str(tmp_path / "new" / "state")}, "models": {"m": {}}}))
    checked = driftd("check-config", str(config_file))
    assert checked.returncode == 0 and checked.stdout == f"{config_file}: ok\n" and checked.stderr == "", checked
    assert not (tmp_path / "new").exists(), "check-config made the state directory"
