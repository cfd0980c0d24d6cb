"""``driftd replay``: the daemon's alerts from files, without Kafka.

The key test runs one stream of two models through a real daemon on the embedded broker
(topics of 3 partitions, alerts to a Kafka sink) and through replay of the same events
from a JSON Lines file: the alerts must be the same (ids, statuses, event times, details,
origins), in the same order per model, test and column. Then: JSONL, CSV (both feature
layouts) and Parquet give the same alerts; bad rows are dead letters with their line and
reason and do not stop the replay; the command line writes the alerts and names what is
wrong.
"""

from __future__ import annotations

import csv
import json
import random
import sys
import time

import numpy as np
import pytest
from kafka import KafkaConsumer

from daemon.cli import main
from daemon.config import from_dict
from daemon.kafka.embedded_broker import create_topics
from daemon.offline import inputs
from daemon.offline.replay import Replay, events, partition_for

from . import streams
from .daemon_harness import daemon_config, produce, running_daemon, status, wait_until

MODEL_SETTINGS = {"reference_size": 1000, "window": 300, "stride": 50, "ert": 20_000, "label_ert": 20_000,
                  "decay_reference_size": 500, "decay_window": 300}
ALERTS = {"clear_after": 3, "cooldown_seconds": 0}
N_EVENTS = 4500


def _config(models=("m",), **kafka) -> dict:
    return {"kafka": {"predictions_topic": "predictions", "labels_topic": "labels", **kafka},
            "models": {m: {} for m in models}, "model_defaults": MODEL_SETTINGS, "alerts": ALERTS}


def _stream(predictions="predictions", labels="labels", model="m", seed=1, n=N_EVENTS) -> list:
    return streams.records(n, predictions, labels, model=model, seed=seed)


def _interleave(a: list, b: list, chunk: int = 37) -> list:
    out = []
    for i in range(0, max(len(a), len(b)), chunk):
        out += a[i:i + chunk] + b[i:i + chunk]
    return out


def _write_jsonl(path, records) -> None:
    with open(path, "wb") as f:
        for _, _, value in records:
            f.write(value + b"\n")


def _replay(config: dict, *files, partitions=None, labels=()) -> tuple[list, object]:
    replay = Replay(from_dict(config), partitions=partitions)
    result = replay.run(events([(str(f), False) for f in files] + [(str(f), True) for f in labels]))
    return [json.loads(json.dumps(a.to_dict())) for a in result.alerts], result


def _per_key(alerts: list) -> dict:
    """The alert sequence of each (model, detector, feature), in order."""
    out: dict = {}
    for a in alerts:
        out.setdefault((a["model"], a["detector"], a["feature"]), []).append(a)
    return out


def _sent_alerts(bootstrap: str, topic: str) -> list[dict]:
    """What the daemon's Kafka sink delivered, de-duplicated by id, in the order sent."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=2000)
    try:
        unique: dict = {}
        for record in consumer:
            alert = json.loads(record.value)["data"]
            unique.setdefault(alert["id"], alert)
    finally:
        consumer.close()
    return list(unique.values())


def _settled(daemon, counts: dict) -> bool:
    s = status(daemon)
    models = s.get("models", {})
    return all(models.get(m, {}).get("processed", {}).get("prediction") == n and models[m]["uncalibrated_tests"] == 0
               for m, n in counts.items()) and s.get("calibrations_pending") == 0 and s.get("pending_alerts") == 0


def test_replay_gives_the_daemons_alerts_on_the_same_stream(kafka_bootstrap, unique_name, tmp_path):
    models = ("m", "fraud")
    assert len({partition_for(m, 3) for m in models}) == 2, "the test wants the models in different partitions"
    alert_topic = unique_name("alerts")
    create_topics(kafka_bootstrap, {alert_topic: 1})
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "state", models={m: {} for m in models},
                           alerts={**ALERTS, "retry_initial_seconds": 0.1, "sinks": [{"type": "kafka", "topic": alert_topic}]})
    config["kafka"]["create_topics"] = 3
    config["model_defaults"] = MODEL_SETTINGS
    kafka = config["kafka"]
    records = _interleave(_stream(kafka["predictions_topic"], kafka["labels_topic"], "m", seed=1),
                          _stream(kafka["predictions_topic"], kafka["labels_topic"], "fraud", seed=2, n=4000))
    with running_daemon(config) as daemon:
        wait_until(lambda: status(daemon)["ready"], timeout=30, what="the daemon ready")
        produce(kafka_bootstrap, records)
        try:
            wait_until(lambda: _settled(daemon, {"m": N_EVENTS, "fraud": 4000}), timeout=180, interval=0.5,
                       what="both models processed and calibrated, alerts delivered")
        except AssertionError as e:
            s = status(daemon)
            brief = {m: (v.get("processed"), v.get("uncalibrated_tests")) for m, v in s.get("models", {}).items()}
            raise AssertionError(f"{e}: {brief}, calibrations pending {s.get('calibrations_pending')}, "
                                 f"alerts pending {s.get('pending_alerts')}, dead letters {s.get('dead_letters')}") from None
        time.sleep(1.0)  # anything sent late would show now
        sent = _sent_alerts(kafka_bootstrap, alert_topic)

    path = tmp_path / "events.jsonl"
    _write_jsonl(path, records)
    replayed, result = _replay(config, path)  # partitions: kafka.create_topics (3)

    assert result.records == len(records) and not result.dead_letters
    assert {a["model"] for a in sent} == set(models)
    assert {(a["detector"], a["feature"]) for a in sent if a["status"] == "resolved"} >= {("ks", "x"), ("decay", "accuracy")}
    assert sorted(replayed, key=lambda a: a["id"]) == sorted(sent, key=lambda a: a["id"])
    # The same sequence per model, test and column. (Across the tests of a model the
    # daemon's own sending order depends on when each test's thresholds arrive from the
    # background: replay computes them at once. Each key's sequence does not.)
    assert _per_key(replayed) == _per_key(sent)



def test_a_daemon_that_reads_the_labels_far_ahead_pauses_them_and_gives_the_replays_alerts(
        kafka_bootstrap, unique_name, tmp_path, monkeypatch):
    """A new user's finding: a daemon catching up a backlog read a model's labels more than
    MAX_HELD_LABELS ahead of their predictions, and its label-side alerts differed from a
    replay of the same stream. The daemon now pauses that partition's labels while its
    predictions have records left. Here the predictions partition is held back (a test hook)
    until the daemon has paused the labels, so the labels are read ahead for certain; the
    cap is made small (the same code path as 10,000). The alerts are the replay's."""
    from kafka.structs import TopicPartition

    from daemon.kafka import pausing
    from daemon.stream import labelorder

    monkeypatch.setattr(labelorder, "MAX_HELD_LABELS", 40)
    alert_topic = unique_name("alerts")
    create_topics(kafka_bootstrap, {alert_topic: 1})
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path / "state", models={"m": {}},
                           alerts={**ALERTS, "retry_initial_seconds": 0.1, "sinks": [{"type": "kafka", "topic": alert_topic}]})
    config["model_defaults"] = MODEL_SETTINGS
    config["kafka"]["poll_max_records"] = 50
    kafka = config["kafka"]
    records = _stream(kafka["predictions_topic"], kafka["labels_topic"])
    predictions = TopicPartition(kafka["predictions_topic"], 0)
    paused_labels = []

    def hold_predictions_back(daemon):
        pace = daemon._pace_labels

        def paced():
            pace()
            if paused_labels:
                return
            if daemon._labels_paused:
                paused_labels.append(daemon._status()["labels_paused"])
                pausing.resume(daemon._consumer, predictions)
            elif predictions in daemon._consumer.assignment():
                daemon._consumer.pause(predictions)
        daemon._pace_labels = paced

    # A backlog, read from the start (a replica catching up); the topics are the daemon's.
    create_topics(kafka_bootstrap, {kafka["predictions_topic"]: 1, kafka["labels_topic"]: 1})
    produce(kafka_bootstrap, records)
    with running_daemon(config, prepare=hold_predictions_back) as daemon:
        n_labels = sum(topic == kafka["labels_topic"] for topic, _, _ in records)
        wait_until(lambda: _settled(daemon, {"m": N_EVENTS}) and
                   status(daemon)["models"]["m"]["processed"]["label"] == n_labels, timeout=180, interval=0.5,
                   what="the model processed and calibrated, alerts delivered")
        time.sleep(1.0)
        sent = _sent_alerts(kafka_bootstrap, alert_topic)
        final = status(daemon)["models"]["m"]
        held = final["labels_held"]
    assert paused_labels == [[0]]  # /status said so
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, records)
    replayed, _ = _replay(config, path)
    label_side = ("decay", "adwin")
    assert [a for a in sent if a["detector"] in label_side], sent  # the accuracy drop is found
    assert sorted((a for a in replayed if a["detector"] in label_side), key=lambda a: a["id"]) == \
        sorted((a for a in sent if a["detector"] in label_side), key=lambda a: a["id"])
    assert held < labelorder.MAX_HELD_LABELS + 50


def _csv_rows(records, layout: str) -> tuple[list, list]:
    rows = []
    for _, _, value in records:
        event = json.loads(value)
        row = {k: v for k, v in event.items() if k != "features"}
        if "features" in event:
            if layout == "columns":
                row.update({f"feature.{k}": ("" if v is None else v) for k, v in event["features"].items()})
            else:
                row["features"] = json.dumps(event["features"])
        rows.append(row)
    columns = ["model", "id", "ts", "prediction", "score", "label"]
    columns += sorted({k for r in rows for k in r} - set(columns))
    return columns, rows


def _write_csv(path, records, layout: str) -> None:
    columns, rows = _csv_rows(records, layout)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def test_jsonl_csv_and_parquet_give_the_same_alerts(tmp_path):
    records = _stream()
    config = _config()
    _write_jsonl(tmp_path / "events.jsonl", records)
    expected, _ = _replay(config, tmp_path / "events.jsonl")
    assert {(a["detector"], a["feature"], a["status"]) for a in expected} >= {("ks", "x", "firing"), ("decay", "accuracy", "firing")}

    for layout in ("columns", "json"):
        _write_csv(tmp_path / f"events-{layout}.csv", records, layout)
        got, result = _replay(config, tmp_path / f"events-{layout}.csv")
        assert not result.dead_letters, (layout, result.dead_letters[:3])
        assert got == expected, layout

    # Predictions and labels in two files: merged by event time, the same stream.
    _write_jsonl(tmp_path / "predictions.jsonl", [r for r in records if r[0] == "predictions"])
    _write_jsonl(tmp_path / "labels.jsonl", [r for r in records if r[0] == "labels"])
    got, _ = _replay(config, tmp_path / "predictions.jsonl", labels=[tmp_path / "labels.jsonl"])
    assert got == expected


def test_the_alerts_do_not_depend_on_the_poll_size(tmp_path):
    _write_jsonl(tmp_path / "events.jsonl", _stream())
    expected, _ = _replay(_config(), tmp_path / "events.jsonl")
    for size in (7, 5000):
        replay = Replay(from_dict(_config()), batch_size=size)
        got = replay.run(events([(str(tmp_path / "events.jsonl"), False)])).alerts
        got = [json.loads(json.dumps(a.to_dict())) for a in got]
        # Each test's sequence is the same; how the tests' alerts interleave follows the polls.
        assert _per_key(got) == _per_key(expected), size
        assert sorted(got, key=lambda a: a["id"]) == sorted(expected, key=lambda a: a["id"]), size


def test_parquet_gives_the_same_alerts(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (the parquet extra)")
    import pyarrow.parquet as pq

    records = _stream()
    config = _config()
    _write_jsonl(tmp_path / "events.jsonl", records)
    expected, _ = _replay(config, tmp_path / "events.jsonl")
    columns, rows = _csv_rows(records, "columns")
    for row in rows:  # native types; a missing feature is null
        for k, v in row.items():
            if k.startswith("feature.") and v == "":
                row[k] = None
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    pq.write_table(table, tmp_path / "events.parquet")
    got, result = _replay(config, tmp_path / "events.parquet")
    assert not result.dead_letters
    assert got == expected


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch, capsys):
    (tmp_path / "events.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(_config()))
    assert main(["replay", str(tmp_path / "events.parquet"), "--config", str(config), "--quiet"]) == 1
    assert "pip install -e '.[parquet]'" in capsys.readouterr().err


def test_bad_rows_are_dead_letters_with_their_line_and_the_replay_goes_on(tmp_path, capsys):
    records = _stream()
    lines = [value for _, _, value in records]
    bad = {  # line number (1-based, after insertion) -> (line, reason)
        10: (b'{"model": "m", "id": "x", "ts": 1700000000.0, "features": {}, "prediction": [1]}', "wrong_type"),
        20: (b"{not json", "not_json"),
        30: (b'{"model": "other", "id": "y", "ts": 1700000000.0, "features": {}, "prediction": 1}', "unknown_model"),
        40: (b'{"model": "m", "id": "z", "ts": 1700000000.0, "label": 1, "features": {"x": 1}}', None),  # a label: fine
    }
    for number in sorted(bad):
        lines.insert(number - 1, bad[number][0])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    out = tmp_path / "alerts.jsonl"

    assert main(["replay", str(path), "--config", str(config_path), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    for number, (_, reason) in bad.items():
        if reason is not None:
            assert f"{path}:{number}: dead letter ({reason})" in err, err
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    clean, _ = _replay(_config(), *_clean(tmp_path, records))
    # The bad rows took offsets (ids differ), but the decisions are the clean stream's. (The
    # label without a prediction holds the label side's later labels, in label order, until
    # the join orphans it or the replay ends: its alerts come later, the same.)
    assert sorted((a["status"], a["detector"], a["feature"], a["event_time"]) for a in alerts) == \
           sorted((a["status"], a["detector"], a["feature"], a["event_time"]) for a in clean)

    _, result = _replay(_config(), path)
    assert [(d.line, d.reason) for d in result.dead_letters] == [(10, "wrong_type"), (20, "not_json"), (30, "unknown_model")]


def test_bad_values_of_one_field_are_one_kind_of_dead_letter(tmp_path, capsys):
    """Each dead letter's detail quotes its value: a column of 30 different bad values was
    printed as 20 kinds, the first lines of stderr, hiding the other kinds."""
    lines = [value for _, _, value in _stream(n=200)]
    for i in range(30):
        lines[2 * i] = json.dumps({"model": "m", "id": f"bad-{i}", "ts": 1700000000.0,
                                   "features": {"age": [i]}, "prediction": 1}).encode()
    lines[70] = b"{not json"
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    assert main(["replay", str(path), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("dead letter (wrong_type)") == 1 and "$.features['age']" in err, err
    assert err.count("dead letter (not_json)") == 1
    assert "dead letters: 29 more like those shown (all: wrong_type 30, not_json 1)" in err, err


def test_predictions_never_labelled_are_in_the_summary(tmp_path):
    """Predictions still waiting for a label at the end of the files were nowhere in the
    summary or the report (282 of 30,000 in a new user's file)."""
    records = _stream(n=1000)
    lines = [value for topic, _, value in records if topic == "predictions" or b'"e-99' not in value]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _, result = _replay(_config(), path)
    from daemon.offline.recording import summary
    join = summary(result.states)["models"]["m"]["join"]
    assert join["prediction_waiting"] == 11 and join["joined"] == 1000 - 11 and join["label_waiting"] == 0


def test_a_file_out_of_time_order_is_named_at_the_end(tmp_path, capsys):
    """A file sorted by another column (an id) replayed without a word: 65 alerts where the
    time-ordered file gave 28. The rows that went back more than label_grace_seconds are
    counted, and the end of the replay says so; a file in time order says nothing."""
    lines = [value for _, _, value in _stream(n=1200)]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps({**_config(), "join": {"label_grace_seconds": 5}}))  # events 0.1 s apart
    timed, shuffled = tmp_path / "timed.jsonl", tmp_path / "shuffled.jsonl"
    timed.write_bytes(b"\n".join(lines) + b"\n")
    blocks = [lines[i:i + 400] for i in range(0, len(lines), 400)]
    shuffled.write_bytes(b"\n".join(line for block in reversed(blocks) for line in block) + b"\n")
    for path, warned in ((timed, False), (shuffled, True)):
        assert main(["replay", str(path), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"),
                     "--quiet"]) == 0
        err = capsys.readouterr().err
        assert ("predictions were stamped more than 5 s (join.label_grace_seconds) before the time the predictions "
                "of their model read earlier had reached" in err) == warned, err
        assert ("sort them by ts" in err) == warned


def test_a_row_refused_for_its_ts_does_not_put_the_file_out_of_order(tmp_path, capsys):
    """A new user's finding: one row stamped in milliseconds in a sorted file is a dead
    letter, but it was counted as the newest prediction read: every later row was then
    "stamped 1,761,237,499,505 s before a prediction read earlier; sort them by ts"."""
    lines = [value for _, _, value in _stream(n=1200)]
    event = json.loads(lines[300])
    assert "prediction" in event
    event["ts"] = event["ts"] * 1000
    lines[300] = json.dumps(event).encode()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps({**_config(), "join": {"label_grace_seconds": 5}}))
    for size in ("1", "7", "500"):
        assert main(["replay", str(path), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"), "--quiet",
                     "--batch-size", size]) == 0
        err = capsys.readouterr().err
        assert "dead letter" in err and "sort them by ts" not in err, err


def _clean(tmp_path, records) -> list:
    path = tmp_path / "clean.jsonl"
    _write_jsonl(path, records)
    return [path]


def test_a_csv_cell_that_is_not_json_is_a_dead_letter_of_the_daemons_reason(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b'model,id,ts,prediction,features\nm,a,1700000000,1,{"x": 1}\nm,b,1700000001,1,{oops\n'
                     b'm,c,1700000002,1,"{""x"": ""\xff\xfe""}"\nm,d,1700000003,1,{}\n')
    _, result = _replay(_config(), path)
    assert [(d.line, d.reason) for d in result.dead_letters] == [(3, "not_json"), (4, "not_json")]
    assert result.states[0].processed[("m", "prediction")] == 2


def test_routing_rows_by_their_fields_and_files(tmp_path):
    assert partition_for(None, 3) == 0 and partition_for("m", 1) == 0
    (item,) = inputs._items("f", 1, b'{"model": "m", "id": 1, "ts": "2025-01-01T00:00:00Z", "label": 0}', False)
    assert (item.kind, item.model, item.ts) == ("label", "m", 1735689600.0)
    # A row with both (an evaluation table): the prediction, then its label.
    both = inputs._items("f", 1, b'{"model": "m", "id": "a", "ts": 5, "label": 0, "prediction": 1, "features": {}}', False)
    assert [(i.kind, json.loads(i.value)) for i in both] == [
        ("prediction", {"model": "m", "id": "a", "ts": 5, "prediction": 1, "features": {}}),
        ("label", {"model": "m", "id": "a", "ts": 5, "label": 0})]
    assert [i.kind for i in inputs._items("f", 1, b'{"model": "m", "prediction": 1}', True)] == ["label"]
    with pytest.raises(inputs.InputError, match="unknown format"):
        inputs.format_of("events.txt")
    with pytest.raises(inputs.InputError, match=r": is a directory: give the files in it \(e\.g\. .*/\*\.jsonl\)"):
        inputs.format_of(str(tmp_path))  # it said "unknown format '(no extension)'"


def test_an_output_that_is_an_input_or_another_output_is_refused_before_anything_is_written(tmp_path, capsys):
    """A new user's finding: --out naming the input file truncated it before it was read
    (then "the files hold no rows"); --summary or --report naming it overwrote the data
    after the replay; --out naming the --labels file replayed without labels; --out and
    --summary naming one file kept only one of them."""
    path, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    records = _stream()
    _write_jsonl(path, [r for r in records if r[0] == "predictions"])
    _write_jsonl(labels, [r for r in records if r[0] == "labels"])
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    before = (path.read_bytes(), labels.read_bytes())
    base = ["replay", str(path), "--labels", str(labels), "--config", str(config_path)]
    for extra, words in ((["--out", str(path)], "--out"), (["--summary", str(tmp_path / "." / "events.jsonl")], "--summary"),
                         (["--report", str(path)], "--report"), (["--out", str(labels)], "--out"),
                         (["--out", str(config_path)], "--out"),
                         (["--out", str(tmp_path / "s.json"), "--summary", str(tmp_path / "s.json")], "--out and --summary")):
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert words in err and ("is also an input" in err or "name the same file" in err), err
        assert (path.read_bytes(), labels.read_bytes()) == before
    assert not (tmp_path / "s.json").exists() and json.loads(config_path.read_text()) == _config()


def _event_order(alert: dict) -> tuple:
    return tuple(alert[k] for k in ("event_time", "model", "detector", "feature", "episode", "status", "id"))


def test_the_command_writes_alerts_and_the_summary(tmp_path, capsys):
    records = _stream()
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, records)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    out, summary = tmp_path / "alerts.jsonl", tmp_path / "summary.json"
    assert main(["replay", str(path), "--config", str(config_path), "--out", str(out), "--summary", str(summary)]) == 0
    assert "events in" in capsys.readouterr().err
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    expected, _ = _replay(_config(), path)
    assert alerts == expected
    document = json.loads(summary.read_text())
    model = document["models"]["m"]
    assert model["status"]["processed"] == {"prediction": N_EVENTS, "label": N_EVENTS}
    assert model["join"]["joined"] == N_EVENTS
    assert model["join"]["prediction_waiting"] == model["join"]["label_waiting"] == 0
    assert "ks/x" in model["series"] and model["performance"]["accuracy"]["baseline"][-1] > 0.8
    assert set(model["distributions"]) >= {"x", "country"}
    assert model["distributions"]["x"].get("at_detection"), "the window at the first detection is kept"
    # The same alerts, in event-time order (the file has them as the polls sent them).
    assert [a["id"] for a in document["alerts"]] == [a["id"] for a in sorted(alerts, key=_event_order)]
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--config", str(config_path)]) == 1
    assert "no such file" in capsys.readouterr().err



def test_csv_cells_become_the_event_fields(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text('model,id,ts,prediction,score,model_version,feature.amount,feature.plan,features\n'
                    'm,7,2025-01-01T00:00:00Z,1,"{""0"": 0.2, ""1"": 0.8}",3,12.5,,"{""code"": ""007""}"\n'
                    'm,8,1735689601.5,0,0.4,,-3,gold,\n')
    first, second = (json.loads(item.value) for item in inputs.read(str(path)))
    assert first == {"model": "m", "id": "7", "ts": "2025-01-01T00:00:00Z", "prediction": 1,
                     "score": {"0": 0.2, "1": 0.8}, "model_version": "3",
                     "features": {"code": "007", "amount": 12.5, "plan": None}}
    assert second == {"model": "m", "id": "8", "ts": 1735689601.5, "prediction": 0, "score": 0.4,
                      "features": {"amount": -3, "plan": "gold"}}


def test_auto_register_watches_every_model_the_files_name(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, _stream(model="other", n=1200))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    summary = tmp_path / "s.json"
    assert main(["replay", str(path), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"), "--quiet",
                 "--summary", str(summary)]) == 1  # nothing replayed
    err = capsys.readouterr().err
    assert "dead letter (unknown_model)" in err and "--auto-register watches them" in err
    assert main(["replay", str(path), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"), "--quiet",
                 "--auto-register", "--summary", str(summary)]) == 0
    assert "dead letter" not in capsys.readouterr().err
    assert json.loads(summary.read_text())["models"]["other"]["status"]["processed"]["prediction"] == 1200


def test_without_a_config_file_auto_register_uses_the_defaults_and_says_what_did_not_run(tmp_path, capsys,
                                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)  # no config.yaml here
    _write_jsonl(tmp_path / "events.jsonl", _stream(model="other", n=1200))
    assert main(["replay", "events.jsonl", "--auto-register", "--out", "a.jsonl", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "model other: reference incomplete (1,200 of 5,000 predictions): no data-drift test ran" in err
    assert "no config.yaml: every model the files name, with the default settings" in err
    assert "ert 100,000,000 predictions between false alarms" in err, err
    assert main(["replay", "events.jsonl", "--out", "a.jsonl", "--quiet"]) == 2  # without it: the file is needed
    err = capsys.readouterr().err
    assert "no configuration config.yaml: give --config FILE, or --auto-register" in err, err


def test_a_replay_of_which_no_row_could_be_replayed_exits_1_and_says_why(tmp_path, capsys):
    """A file every row of which is a dead letter (here: a CSV whose columns are not the
    event's fields) or a file with no rows is a mistake of layout, not data: exit 1 with
    the reason; a file with some bad rows among good ones exits 0 (test above)."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,when,value\n" + "".join(f"m,{1700000000 + i},{i}\n" for i in range(50)))
    assert main(["replay", str(wrong), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "every row (50) was a dead letter, most often" in err and "nothing was replayed" in err, err
    # Fifty rows that fail alike are one line and a count, not twenty of the same.
    assert err.count("dead letter (") == 1 and f"{wrong}:2: dead letter (missing_field)" in err, err
    assert "dead letters: 49 more like those shown (all: missing_field 50)" in err, err

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["replay", str(empty), "--config", str(config_path), "--out", str(tmp_path / "b.jsonl"), "--quiet"]) == 1
    assert "the files hold no rows" in capsys.readouterr().err


def test_csv_columns_that_are_not_event_fields_are_named_in_a_warning(tmp_path, caplog):
    """A feature column without its ``feature.`` prefix would be dropped without a word
    (the replay exits 0, the feature is never watched): the replay says which columns it
    ignores and how features are named."""
    path = tmp_path / "events.csv"
    path.write_text("model,id,ts,f1,feature.f2,prediction\n" +
                    "".join(f"m,{i},{1700000000 + i},{i % 7},{i % 5},{i % 2}\n" for i in range(30)))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(_config()))
    with caplog.at_level("WARNING", logger="driftd.offline.inputs"):
        assert main(["replay", str(path), "--config", str(config_path), "--out", str(tmp_path / "a.jsonl"),
                     "--quiet"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.name == "driftd.offline.inputs"]
    assert warned == [f"{path}: columns f1 are not event fields and are ignored; a feature is a column named "
                      "feature.<name> (or a 'features' column of JSON objects)"]


def test_a_nan_cell_is_a_missing_value_and_a_few_strings_among_numbers_are_named(tmp_path, caplog):
    """A CSV written with str() or numpy spells a missing float `nan`: it is a missing value
    (as Parquet's NaN), not the string "nan" that made the feature categorical and left its
    drift unseen. A feature that a few real strings do make categorical is named in a
    warning, with the way to declare it."""
    rows = ["model,id,ts,prediction,feature.x,feature.y"]
    for i in range(600):
        x = "nan" if i % 50 == 7 else ("NaN" if i % 50 == 9 else f"{(i * 7919) % 1000 / 100:.2f}")
        y = "n/a" if i % 40 == 3 else f"{(i * 104729) % 997 / 10:.1f}"
        rows.append(f"m,{i},{1700000000 + i},{i % 2},{x},{y}")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    config = _config()
    config["model_defaults"] = {**MODEL_SETTINGS, "reference_size": 300}
    with caplog.at_level("WARNING"):
        _, result = _replay(config, path)
    pipeline = result.states[0].models["m"]
    assert ("ks", "x") in pipeline.data_detectors
    # y's 292 numbers are nearly all distinct: as levels, an identifier's (untestable, why said).
    assert ("chisquare", "y") not in pipeline.data_detectors and "levels seen once" in pipeline.untestable["y"]
    assert pipeline.reference is None and not result.dead_letters
    # Named once, in the line that says it is not tested (not also "tested as categorical").
    warned = [r.getMessage() for r in caplog.records if "distribution of y is not tested" in r.getMessage()]
    assert len(warned) == 1 and "292 of its 300 present reference values are numbers" in warned[0] \
        and "'n/a'" in warned[0] and "declare it numeric under features:" in warned[0], warned
    assert "is tested as categorical" not in caplog.text


def test_a_test_that_can_never_fire_is_named_at_the_end_of_the_replay(tmp_path, capsys):
    """A reference too small for the asked contract leaves tests that no window can make
    fire: said on stderr (it was only in the --summary JSON), with what would fix it."""
    rng = np.random.default_rng(1)
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps({"model": "m", "id": str(i), "ts": 1700000000 + i,
                                        "features": {"x": float(rng.normal())}, "prediction": i % 2}) + "\n"
                            for i in range(300)))
    config = tmp_path / "small.yaml"
    config.write_text("models: {m: {}}\nmodel_defaults: {reference_size: 30, window: 20, stride: 10}\n")
    assert main(["replay", str(path), "--config", str(config), "--out", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"driftd replay: configuration {config}" in err
    assert "model m: cusum/x not run: can never fire at this contract" in err and "a larger reference_size" in err, err


def test_the_schemas_bad_values_of_one_field_are_one_kind_of_dead_letter():
    """A new user's finding: a numeric feature given strings, or integers beyond 2**53,
    printed a line per bad value (the detail quoted the value and named no field), up to
    the cap, hiding the other kinds. Each reason now ends naming the field."""
    from types import SimpleNamespace

    from daemon.config import ModelConfig
    from daemon.offline.command import dead_letter_kind
    from daemon.stream.events import BadEvent
    from daemon.stream.pipeline import ModelPipeline

    pipeline = ModelPipeline("m", ModelConfig(features={"x": "numeric"}))
    regression = ModelPipeline("r", ModelConfig(task="regression", decay_metrics=["mae"]))
    kinds = []
    for check, value in [(pipeline.check, {"x": "s1503"}), (pipeline.check, {"x": "s1504"}),
                         (pipeline.check, {"x": 2**60}), (regression.check_label, "a"), (regression.check_label, "b")]:
        with pytest.raises(BadEvent) as e:
            check(SimpleNamespace(features=value, prediction=1, score=None) if check == pipeline.check else value)
        kinds.append(dead_letter_kind(e.value.reason, e.value.detail))
    assert kinds == [("wrong_type", "$.features['x']")] * 3 + [("wrong_type", "$.label")] * 2, kinds


def test_a_ts_integer_without_a_float_is_a_dead_letter_not_a_crash(tmp_path):
    """A new user's finding: a prediction whose ts was an integer of 400 digits stopped the
    replay with OverflowError (reading the files' times), nothing written."""
    path = tmp_path / "p.jsonl"
    good = [{"model": "m", "id": i, "ts": 1700000000 + i, "features": {"x": i % 7}, "prediction": i % 2} for i in range(20)]
    rows = [json.dumps(e) for e in good] + ['{"model": "m", "id": "h", "ts": 1' + "0" * 400 + ', "features": {}, "prediction": 1}']
    path.write_text("\n".join(rows) + "\n")
    _, result = _replay(_config(), path)
    assert [d.reason for d in result.dead_letters] == ["non_finite"] and result.predictions == 21


def _versioned(records: list, first_of_2: int) -> list:
    """The stream's predictions from the ``first_of_2``-th on made by model version 2."""
    out = []
    for topic, key, value in records:
        if topic == "predictions":
            event = json.loads(value)
            event["model_version"] = "1" if int(event["id"][2:]) < first_of_2 else "2"
            value = json.dumps(event).encode()
        out.append((topic, key, value))
    return out


def test_the_reports_performance_points_are_the_decay_tests_whatever_the_poll_size(tmp_path):
    """The report's performance curve was the decay metric sampled after each poll and
    stamped with the newest prediction read (ahead of the labels that made it), with one
    baseline for every model version, and no estimated performance: its points moved with
    the poll size. Now one point a decay test (realised, and estimated), at the test's
    event time, with the baseline and model version of that test."""
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, _versioned(_stream(), 2250))
    kept = {}
    for size in (7, 500, 5000):
        result = Replay(from_dict(_config()), batch_size=size).run(events([(str(path), False)]))
        model = result.recording["models"]["m"]
        kept[size] = (model["performance"], model["estimated_performance"])
    assert kept[7] == kept[500] == kept[5000]
    realised, estimated = kept[500]
    accuracy = realised["accuracy"]
    # One point per decay test: the decay series' decisions, at the same event times.
    replayed = Replay(from_dict(_config())).run(events([(str(path), False)]))
    assert accuracy["t"] == replayed.recording["models"]["m"]["series"]["decay/accuracy"]["t"]
    assert accuracy["t"] == sorted(accuracy["t"]) and len(accuracy["t"]) > 20
    baselines = {(v, b) for v, b in zip(accuracy["model_version"], accuracy["baseline"])}
    assert {v for v, _ in baselines} == {"1", "2"} and len(baselines) == 2, baselines  # one baseline a version
    assert all(0.8 < b < 1 for _, b in baselines)
    assert min(accuracy["value"]) < 0.7 < max(accuracy["value"])  # the accuracy drop (55% right) is drawn
    assert estimated["accuracy"]["t"] and all(0.5 < v <= 1 for v in estimated["accuracy"]["value"])


def test_a_models_labels_join_whatever_another_models_clock_and_the_poll_size(tmp_path):
    """A new user's finding, twice: model B's predictions, stamped six hours later than
    model A's, came first; then each of A's labels just before its own prediction. A model
    without a clock of its own took the partition's (B's): at polls of 500 each poll's first
    A labels were orphaned at once (249 of 1,000), at polls of 1 none."""
    rng = np.random.default_rng(4)
    b_start, a_start = 1_750_000_000.0, 1_750_000_000.0 - 6 * 3600
    rows = [{"model": "B", "id": f"B-{i}", "ts": b_start + i, "features": {"x": float(rng.normal())}, "prediction": 1}
            for i in range(1000)]
    for i in range(1000):
        rows.append({"model": "A", "id": f"A-{i}", "ts": a_start + i + 30, "label": i % 2})
        rows.append({"model": "A", "id": f"A-{i}", "ts": a_start + i, "features": {"x": float(rng.normal())},
                     "prediction": i % 2})
    path = tmp_path / "two_clocks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {"auto_register_models": True, "models": {}, "model_defaults": MODEL_SETTINGS}
    for size in (1, 7, 500, 2000):
        result = Replay(from_dict(config), batch_size=size).run(events([(str(path), False)]))
        joins = {o: result.states[0].join.counts[("A", o)] for o in ("joined", "label_orphaned", "prediction_expired")}
        assert joins == {"joined": 1000, "label_orphaned": 0, "prediction_expired": 0}, (size, joins)


def test_ids_reused_after_the_ttl_join_whatever_the_poll_size(tmp_path):
    """A tester's finding: ids repeating every 5,000 s of event time (daily counters), TTL
    3,600 s, each prediction labelled 50 records later. At --batch-size 1 and 500 all
    12,000 joined; at 100,000 only 5,000, with 7,000 duplicate predictions (a poll's
    predictions are read before its labels, and a reused id's prediction came while the
    first one waited)."""
    rows = []
    for i in range(12_000):
        rows.append((i, {"model": "m", "id": i % 5_000, "ts": 1_764_000_000.0 + i, "features": {"x": i % 7},
                         "prediction": i % 2}))
        rows.append((i + 50.5, {"model": "m", "id": i % 5_000, "ts": 1_764_000_001.0 + i, "label": i % 2}))
    path = tmp_path / "reuse.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for _, row in sorted(rows, key=lambda r: r[0])))
    config = {"join": {"prediction_ttl_seconds": 3600, "label_grace_seconds": 300},
              "models": {"m": {"reference_size": 500}}}
    for size in (1, 500, 100_000):
        result = Replay(from_dict(config), batch_size=size).run(events([(str(path), False)]))
        join = result.states[0].join
        counts = {o: n for (model, o), n in join.counts.items() if n}
        assert counts == {"joined": 12_000} and join.pending == 0, (size, counts)


def test_a_replay_with_learners_needs_no_key_and_says_what_the_learners_did(tmp_path, capsys, monkeypatch):
    """New users' findings: a replay of a model with learners asked for the registry key
    (it signs nothing), and said nothing of the learners, not even that one failed at every
    event (a River model that takes numbers only, given a string feature)."""
    monkeypatch.delenv("DRIFTD_REGISTRY_KEY", raising=False)
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, _stream())
    config = _config()
    config["models"]["m"] = {"learners": {"nb": ["GaussianNB"],
                                          "tree": {"HoeffdingTreeClassifier": {"grace_period": 50}}},
                             "retrain_cooldown": 200, "replay_reservoir_size": 300, "replay_recent_size": 100}
    config["alerts"] = {**config["alerts"], "sinks": [{"type": "webhook", "url": "https://hooks.example/driftd",
                                                       "secret": {"env": "DRIFTD_UNSET_SECRET"}}]}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config))
    summary = tmp_path / "summary.json"
    assert main(["replay", str(path), "--config", str(config_path), "--summary", str(summary), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "model m: its learners failed" in err and "nb 4," in err and "TypeError" in err
    assert "model m: learners retrained" in err
    learning = json.loads(summary.read_text())["models"]["m"]["status"]["learning"]
    assert learning["learners"]["tree"]["errors"] == 0 and learning["learners"]["tree"]["learned"] == N_EVENTS
    assert learning["learners"]["nb"]["errors"] >= N_EVENTS and sum(learning["retrains"].values()) >= 1


def test_the_window_at_the_first_detection_does_not_depend_on_the_poll_size(tmp_path):
    """A new user's finding: the report's "window after the column's first alert" was the
    window after the batch of that alert: [709, 291] at polls of 7 (the window of the
    test), [685, 315] at 500, [573, 427] at 5,000. It is the window of the test's first
    detection now, kept by the detector, and so are its position and event time."""
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, _stream())
    found = []
    for batch in (7, 500, 5000):
        result = Replay(from_dict(_config()), batch_size=batch, record_series=True).run(events([(str(path), False)]))
        found.append({f: (d.get("at_detection"), d.get("detection_at"), d.get("detection_time"))
                      for f, d in result.recording["models"]["m"]["distributions"].items()})
    assert found[0] == found[1] == found[2]
    at_detection, at, t = found[0]["x"]
    # The data shift starts at prediction 2,000: detected within its first window (300), where a
    # window of 300 values counts them all.
    assert 2000 < streams.index(t) <= 2300 and sum(at_detection) == 300, found[0]["x"]


def test_predictions_naming_no_version_are_of_the_one_in_force_whatever_the_poll_size(tmp_path):
    """A new user's finding: with a third of the predictions naming no model_version ("no
    change"), the estimated performance and its test moved with --batch-size (first point
    at 535.5, 547.4 or 679.7 s, baselines 0.66928 / 0.66914 / 0.68568): such a prediction
    counted for the version in force when its label came. It is of the version in force
    when it came, in its topic's order."""
    records = []
    for topic, key, value in _versioned(_stream(), 2250):
        if topic == "predictions":
            event = json.loads(value)
            if int(event["id"][2:]) % 3 == 1 and int(event["id"][2:]) != 2250:
                del event["model_version"]
            value = json.dumps(event).encode()
        records.append((topic, key, value))
    path = tmp_path / "events.jsonl"
    _write_jsonl(path, records)
    kept = {}
    for size in (1, 500, 5000):
        result = Replay(from_dict(_config()), batch_size=size).run(events([(str(path), False)]))
        model = result.recording["models"]["m"]
        kept[size] = (model["estimated_performance"], model["series"].get("estimated_decay/accuracy"),
                      model["performance"], [a.to_dict() for a in sorted(result.alerts, key=lambda a: a.id)])
    assert kept[1] == kept[500] == kept[5000]
    estimated = kept[1][0]["accuracy"]
    assert set(estimated["model_version"]) == {"1", "2"} and len(estimated["t"]) > 10


def test_the_summary_and_closing_lines_are_the_same_whatever_the_poll_size_and_file_layout(tmp_path, capsys):
    """A new user's finding: the summary's alerts and models and the closing lines came in
    the order the polls met them, so two replays of one stream differed at --batch-size 7
    and 5,000, or with the labels in their own file, though every figure was the same."""
    one, two = _stream(model="m", seed=3), _stream(model="k", seed=4)
    records = _interleave(two, one)
    # Dead letters of both topics, next to each other, one stamped far ahead (in the files'
    # order in the summary, not the polls'; no wall-clock time in their details).
    records[101:101] = [("labels", b"m", b'{"model": "m", "id": "x", "ts": 1700000000, "label": [1]}'),
                        ("predictions", b"m", b'{"model": "m", "id": "y", "ts": 4102444800, "features": {}, '
                                              b'"prediction": 1}')]
    predictions, labels = tmp_path / "predictions.jsonl", tmp_path / "labels.jsonl"
    _write_jsonl(tmp_path / "all.jsonl", records)
    _write_jsonl(predictions, [r for r in records if r[0] == "predictions"])
    _write_jsonl(labels, [r for r in records if r[0] == "labels"])
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(_config(models=("m", "k"))))
    runs = []
    for size, files in (("7", [str(tmp_path / "all.jsonl")]), ("5000", [str(tmp_path / "all.jsonl")]),
                        ("5000", [str(predictions), "--labels", str(labels)])):
        summary = tmp_path / f"summary-{len(runs)}.json"
        assert main(["replay", *files, "--config", str(config), "--out", str(tmp_path / "a.jsonl"), "--quiet",
                     "--batch-size", size, "--summary", str(summary)]) == 0
        document = json.loads(summary.read_text())
        document.pop("source")
        # The dead letters' rows are of other files in the last layout; the first of each
        # kind is printed as it is met (not in the files' order: left out here).
        rows = [(d["reason"], d["detail"]) for d in document.pop("dead_letter_rows")]
        lines = [line for line in capsys.readouterr().err.splitlines() if "dead letter" not in line]
        runs.append((json.dumps(document), rows, lines))
    assert runs[0] == runs[1] == runs[2]
    document = json.loads(runs[0][0])
    assert list(document["models"]) == ["k", "m"] and len(document["alerts"]) >= 4
    assert [reason for reason, _ in runs[0][1]] == ["wrong_type", "bad_timestamp"]
    times = [a["event_time"] for a in document["alerts"]]
    assert times == sorted(times)


def test_a_replay_whose_learners_learned_without_a_retrain_says_so(tmp_path, capsys):
    """A trial's finding: learners that learned every label but were never retrained (no
    drift, no decay) got no closing line: nothing said they had run at all."""
    rng = random.Random(3)
    rows = []
    for i in range(2_000):
        x = rng.random()
        rows.append({"model": "m", "id": i, "ts": 1_764_000_000.0 + i, "features": {"x": x}, "prediction": int(x > 0.5)})
        rows.append({"model": "m", "id": i, "ts": 1_764_000_000.5 + i, "label": int(x > 0.5)})
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = _config()
    config["models"]["m"] = {"learners": {"tree": ["HoeffdingTreeClassifier"]}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config))
    assert main(["replay", str(path), "--config", str(config_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "model m: learners learned 2,000 labelled events; no retrain was due" in err, err
    assert "learners retrained" not in err


@pytest.mark.parametrize("ttl", [86_400, 64_800])
def test_ids_that_come_back_within_the_ttl_are_named_as_the_likely_cause_of_duplicates(tmp_path, capsys, ttl):
    """A tester's finding: a daily counter (a prediction a minute, id = minute % 1440) at the
    default join.prediction_ttl_seconds (a day) lost every other day's predictions as
    copies, and nothing said why. At a TTL a quarter and more below the day, all join."""
    rows = []
    for minute in range(4_400):
        ts = 1_764_000_000.0 + 60 * minute
        rows.append({"model": "m", "id": minute % 1440, "ts": ts, "features": {"x": minute % 7}, "prediction": minute % 2})
        if minute >= 2:
            rows.append({"model": "m", "id": (minute - 2) % 1440, "ts": ts, "label": minute % 2})
    path = tmp_path / "daily.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps({"join": {"prediction_ttl_seconds": ttl}, "models": {"m": {"reference_size": 500}}}))
    summary = tmp_path / "summary.json"
    assert main(["replay", str(path), "--config", str(config_path), "--summary", str(summary), "--quiet"]) == 0
    err = capsys.readouterr().err
    join = json.loads(summary.read_text())["models"]["m"]["join"]
    if ttl == 86_400:
        assert join["duplicate_prediction"] > 1_000, join
        assert f"model m: {join['duplicate_prediction']:,} of its 4,400 predictions were taken for copies of earlier " \
               "ones" in err and "if its ids come back (a counter that wraps), set join.prediction_ttl_seconds below" \
               in err, err
    else:
        assert join["duplicate_prediction"] == 0 and join["joined"] == 4_398, join
        assert "taken for copies" not in err


@pytest.mark.parametrize("at, declared", [(600, False), (0, True)])
def test_a_categorical_features_number_does_not_break_a_learner(tmp_path, at, declared):
    """A tester's finding: one event with ``"c": 5`` in a feature of strings (accepted: the
    feature is categorical) made a Hoeffding tree fail on the hundreds of labelled events
    after it (TypeError: '<' not supported between int and str): 2,294 of 3,000 here. The
    learners get a feature's values as they first learned it (the number as its level,
    "5"), or as it is declared under ``features:``, also when a number comes first."""
    rng = random.Random(5)
    rows = []
    for i in range(3_000):
        c = rng.choice(["DE", "FR", "IT"]) if i != at else 5
        x = rng.random()
        y = int((c == "DE") ^ (x > 0.7))
        rows.append({"model": "m", "id": i, "ts": 1_764_000_000.0 + i, "features": {"c": c, "x": x}, "prediction": y})
        rows.append({"model": "m", "id": i, "ts": 1_764_000_000.5 + i, "label": y})
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = {"models": {"m": {"reference_size": 500, "learners": {"tree": {"HoeffdingAdaptiveTreeClassifier": {"seed": 1}}},
                               **({"features": {"c": "categorical"}} if declared else {})}}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config))
    summary = tmp_path / "summary.json"
    assert main(["replay", str(path), "--config", str(config_path), "--summary", str(summary), "--quiet"]) == 0
    tree = json.loads(summary.read_text())["models"]["m"]["status"]["learning"]["learners"]["tree"]
    assert tree["learned"] == 3_000 and tree["errors"] == 0 and tree["score"] > 0.9, tree


def _threshold_moved(n: int = 3000, delay: int = 10) -> list[dict]:
    """A deployed model predicting x > 0 while the labels follow x > 0.8: a learner beats it."""
    rng = random.Random(3)
    rows, xs = [], []
    for i in range(n):
        x = rng.gauss(0, 1)
        xs.append(x)
        rows.append({"model": "m", "id": f"e-{i}", "ts": 1_764_000_000.0 + i, "features": {"x": round(x, 4)},
                     "prediction": int(x > 0)})
        if i >= delay:
            j = i - delay
            rows.append({"model": "m", "id": f"e-{j}", "ts": 1_764_000_000.0 + i, "label": int(xs[j] > 0.8)})
    return rows


def test_a_replay_gives_the_info_alert_of_each_promotion_whatever_the_poll_size(tmp_path, capsys, monkeypatch):
    """A trial's finding: a replay said how many promotions the gate would have made, not
    when or on what figures (the daemon's info alert of a promotion came from publishing
    it, which a replay does not). Each is now in --out, as the daemon's (same id), with no
    registry version or path."""
    monkeypatch.delenv("DRIFTD_REGISTRY_KEY", raising=False)
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in _threshold_moved()))
    config = {"models": {"m": {"learners": {"tree": {"HoeffdingTreeClassifier": {"grace_period": 50}}},
                               "promotion_min_events": 200, "promotion_window": 300,
                               "promotion_min_interval_seconds": 0}}}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(config))
    got = {}
    for size in (1, 500):
        out = tmp_path / f"alerts-{size}.jsonl"
        assert main(["replay", str(path), "--config", str(config_path), "--out", str(out), "--quiet",
                     "--batch-size", str(size)]) == 0
        got[size] = [a for a in map(json.loads, out.read_text().splitlines()) if a["status"] == "info"]
    assert got[1] == got[500] and got[1]
    promoted = got[1]
    assert f"the promotion gate would have promoted {len(promoted)}" in capsys.readouterr().err
    first = promoted[0]
    assert first["kind"] == "promotion" and first["model"] == "m"
    detail = first["detail"]
    assert detail["learner"] == "tree" and detail["version"] is None and detail["path"] is None
    metrics = detail["metrics"]
    assert metrics["challenger"] > metrics["champion"] + 0.1 and metrics["p_value"] < 0.01 and metrics["events"] >= 200
    # At the event time of the labelled event it was decided at (its prediction's): the
    # gate's first look, at the 200th label (prediction e-199), already finds the tree better.
    assert first["event_time"] == 1_764_000_000.0 + 199
    assert len({a["id"] for a in promoted}) == len(promoted)
