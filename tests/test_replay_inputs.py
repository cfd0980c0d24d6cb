"""``driftd replay`` on a new user's files: non-finite numbers in CSV and Parquet cells are
refused as in JSON Lines, bad options fail at once, and the end-of-replay lines say what
happened (a new model version, predictions refused, predictions given as labels)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import DEMO_MIN_EVENTS, main
from daemon.config import from_dict
from daemon.offline.replay import Replay, events

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"models": {"m": {}}, "model_defaults": {"reference_size": 50, "window": 20, "stride": 10}}


def _config(tmp_path, **defaults) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({**CONFIG, "model_defaults": {**CONFIG["model_defaults"], **defaults}}))
    return str(path)


def _dead(path, labels=()) -> list:
    replay = Replay(from_dict(CONFIG))
    result = replay.run(events([(str(path), False)] + [(str(p), True) for p in labels]))
    return [(d.line, d.reason, d.detail) for d in result.dead_letters], result


def _good(i: int) -> dict:
    return {"model": "m", "id": str(i), "ts": 1700000000 + i, "features": {"amount": float(i % 7), "x": 1.0},
            "prediction": i % 2}


# (CSV cells: feature.amount, features, prediction, score), the same event's JSON Lines
# spelling of them, and the field its dead letter names.
NON_FINITE = [
    (("1e400", "", "1", ""), {"amount": "1e400"}, "$.features['amount']"),
    (("-1e400", "", "1", ""), {"amount": "-1e400"}, "$.features['amount']"),
    (("-Infinity", "", "1", ""), {"amount": "-Infinity"}, "$.features['amount']"),
    (("inf", "", "1", ""), {"amount": "Infinity"}, "$.features['amount']"),
    (("-inf", "", "1", ""), {"amount": "-Infinity"}, "$.features['amount']"),
    (("+Inf", "", "1", ""), {"amount": "Infinity"}, "$.features['amount']"),
    (("INFINITY", "", "1", ""), {"amount": "Infinity"}, "$.features['amount']"),
    (("1", '{"x": NaN}', "1", ""), {"amount": "1", "x": "NaN"}, "$.features['x']"),
    (("1", '{"x": 1e400}', "1", ""), {"amount": "1", "x": "1e400"}, "$.features['x']"),
    (("1", "", "-Infinity", ""), {"amount": "1", "prediction": "-Infinity"}, "$.prediction"),
    (("1", "", "inf", ""), {"amount": "1", "prediction": "Infinity"}, "$.prediction"),
    (("1", "", "1", "inf"), {"amount": "1", "score": "Infinity"}, "$.score"),
    (("1", "", "1", '{"1": -Infinity}'), {"amount": "1", "score": '{"1": -Infinity}'}, "$.score['1']"),
]


def _jsonl_line(i: int, spelled: dict) -> str:
    """An event with some values spelled as given (not JSON: NaN, Infinity, 1e400)."""
    features = {"amount": spelled["amount"], **({"x": spelled["x"]} if "x" in spelled else {})}
    parts = ['"model": "m"', f'"id": "{i}"', f'"ts": {1700000000 + i}',
             '"features": {' + ", ".join(f'"{k}": {v}' for k, v in features.items()) + "}",
             f'"prediction": {spelled.get("prediction", 1)}']
    if "score" in spelled:
        parts.append(f'"score": {spelled["score"]}')
    return "{" + ", ".join(parts) + "}"


def test_non_finite_numbers_in_csv_cells_are_dead_letters_as_in_json_lines(tmp_path, capsys):
    """``1e400``, the infinity spellings of writers (``inf``: pandas), and NaN or 1e400
    inside the ``features`` JSON were missing values or strings in CSV; now each row is
    refused as ``non_finite`` naming the field, with the detail the same event gets in JSON
    Lines. A ``nan`` cell stays a missing value (the README's promise)."""
    def csv_cell(text):
        return '"' + text.replace('"', '""') + '"' if text else ""

    csv_rows = ["model,id,ts,prediction,score,feature.amount,features"]
    jsonl_rows = []
    for i in range(60):  # good rows: the model's reference
        event = _good(i)
        csv_rows.append(f"m,{i},{event['ts']},{event['prediction']},,{event['features']['amount']},"
                        + csv_cell(json.dumps({"x": 1.0})))
        jsonl_rows.append(json.dumps(event))
    for j, ((amount, features, prediction, score), spelled, _) in enumerate(NON_FINITE):
        i = 60 + j
        csv_rows.append(f"m,{i},{1700000000 + i},{csv_cell(prediction)},{csv_cell(score)},{amount},"
                        f"{csv_cell(features)}")
        jsonl_rows.append(_jsonl_line(i, spelled))
    i = 60 + len(NON_FINITE)
    csv_rows.append(f"m,{i},{1700000000 + i},1,,nan,")  # a missing value, as before
    (tmp_path / "e.csv").write_text("\n".join(csv_rows) + "\n")
    (tmp_path / "e.jsonl").write_text("\n".join(jsonl_rows) + "\n")

    from_csv, _ = _dead(tmp_path / "e.csv")
    from_jsonl, _ = _dead(tmp_path / "e.jsonl")
    assert [(line - 1, reason, detail) for line, reason, detail in from_csv] == from_jsonl
    assert [reason for _, reason, _ in from_csv] == ["non_finite"] * len(NON_FINITE)
    assert [detail.rsplit(" - at ", 1)[1] for _, _, detail in from_csv] == [f"`{w}`" for _, _, w in NON_FINITE]

    # The command: each kind (reason and field) shown once with its file and line; the
    # replay exits 0.
    out = tmp_path / "a.jsonl"
    assert main(["replay", str(tmp_path / "e.csv"), "--config", _config(tmp_path), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "e.csv:62: dead letter (non_finite): Number out of range - at `$.features['amount']`" in err, err
    assert "e.csv:64:" not in err, err  # non_finite at $.features['amount'] again: counted, not shown
    assert "e.csv:69: dead letter (non_finite): NaN or Infinity where a number is required - at " \
           "`$.features['x']`" in err, err
    assert "Traceback" not in err


def test_an_evaluation_row_with_a_non_finite_feature_keeps_it_in_json_lines_too(tmp_path):
    """A row with a prediction and its label is split in two: the split kept ``1e400`` as
    ``null`` (a missing value), and a row holding NaN was not split (its label lost)."""
    path = tmp_path / "e.jsonl"
    path.write_text('{"model": "m", "id": "1", "ts": 1700000000, "features": {"a": 1e400}, "prediction": 1, "label": 1}\n'
                    '{"model": "m", "id": "2", "ts": 1700000001, "features": {"a": NaN}, "prediction": 1, "label": 0}\n')
    dead, result = _dead(path)
    assert dead == [(1, "non_finite", "Number out of range - at `$.features['a']`"),
                    (2, "non_finite", "NaN or Infinity where a number is required - at `$.features['a']`")]
    assert result.records == 4 and result.predictions == 2  # each row: its prediction and its label


def test_a_label_with_a_number_too_large_is_a_label_dead_letter_naming_the_field(tmp_path):
    """A fuzzing user's finding: a label of 5,000 digits or of 1e99999 was routed as a
    prediction (the routing decoder could not read it) and refused as missing `features`,
    its model lost; the daemon's decoder names the label, as for a Kafka record."""
    path = tmp_path / "labels.jsonl"
    path.write_text('{"model": "m", "id": "1", "ts": 1700000000, "label": ' + "9" * 5000 + '}\n'
                    '{"model": "m", "id": "2", "ts": 1700000001, "label": 1e99999}\n')
    dead, result = _dead(path)
    assert dead == [(1, "wrong_type", "Integer value out of range - at `$.label`"),
                    (2, "non_finite", "Number out of range - at `$.label`")]
    assert result.predictions == 0


def test_parquet_infinities_are_dead_letters_and_nan_a_missing_value(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    n = 60
    inf, nan = float("inf"), float("nan")
    amounts = [float(i % 7) for i in range(n)] + [inf, 1.0, nan, 1.0]
    predictions = [float(i % 2) for i in range(n)] + [1.0, -inf, 1.0, 1.0]
    structs = [{"x": 1.0} for _ in range(n)] + [{"x": 1.0}, {"x": 1.0}, {"x": nan}, {"x": -inf}]
    table = pa.table({"model": ["m"] * (n + 4), "id": [str(i) for i in range(n + 4)],
                      "ts": [1700000000.0 + i for i in range(n + 4)], "prediction": predictions,
                      "feature.amount": amounts, "features": structs})
    pq.write_table(table, tmp_path / "e.parquet")
    dead, result = _dead(tmp_path / "e.parquet")
    where = "NaN or Infinity where a number is required - at "
    assert dead == [(n + 1, "non_finite", where + "`$.features['amount']`"),
                    (n + 2, "non_finite", where + "`$.prediction`"),
                    (n + 4, "non_finite", where + "`$.features['x']`")]
    assert result.records == n + 4  # row n + 3: NaN in both columns, missing values


# -- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("option, words", [
    (["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (["--batch-size", "-3"], "argument --batch-size: must be at least 1, got -3"),
    (["--partitions", "0"], "argument --partitions: must be at least 1, got 0"),
    (["--partitions", "-2"], "argument --partitions: must be at least 1, got -2"),
    (["--out", "{tmp}/missing/a.jsonl"], "argument --out: cannot write {tmp}/missing/a.jsonl: no directory {tmp}/missing"),
    (["--report", "{tmp}/missing/r.html"], "argument --report: cannot write {tmp}/missing/r.html: no directory"),
    (["--summary", "{tmp}/missing/s.json"], "argument --summary: cannot write {tmp}/missing/s.json: no directory"),
    (["--summary", "{tmp}"], "argument --summary: cannot write {tmp}: it is a directory"),
])
def test_bad_replay_options_fail_at_once_with_one_line(tmp_path, option, words):
    """Were: a traceback (ValueError, FileNotFoundError after the whole replay), or 0 and
    -2 partitions run as 1. Now argparse's error, exit 2, before any row is read."""
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(_good(i)) + "\n" for i in range(60)))
    option = [o.replace("{tmp}", str(tmp_path)) for o in option]
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "replay", str(path), "--auto-register", *option],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert done.returncode == 2 and len(errors) == 1, done.stderr
    assert words.replace("{tmp}", str(tmp_path)) in errors[0] and "Traceback" not in done.stderr
    assert done.stdout == ""  # no alert written: the replay did not start


def test_the_help_says_what_the_batch_size_may_change():
    done = subprocess.run([sys.executable, "-m", "daemon.cli", "replay", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    text = " ".join(done.stdout.split())
    assert "the alerts' content does not depend on it, their order within a poll may" in text, text


@pytest.mark.parametrize("n", ["0", "-5", "3000", str(DEMO_MIN_EVENTS - 1)])
def test_a_demo_too_short_for_its_scenario_is_refused_naming_the_minimum(n, capsys):
    """``--events 0`` ran the full 40,000; 3,000 printed phases past the stream's end."""
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--events", n])
    assert stop.value.code == 2
    assert f"at least {DEMO_MIN_EVENTS:,} predictions" in capsys.readouterr().err
    from daemon.demo import main as demo

    lines = []
    assert demo.main(events=int(n), out=lines.append) == 2 and f"at least {DEMO_MIN_EVENTS:,}" in lines[0]


def test_the_demos_minimum_is_its_reference_and_window_before_the_data_drift(monkeypatch):
    from daemon.demo.main import demo_config

    monkeypatch.setenv("DRIFTD_TEST_SECRET", "whsec_" + "A" * 32)
    monkeypatch.setenv("DRIFTD_DEMO_REGISTRY_KEY", "0" * 64)
    defaults = demo_config("/tmp/unused", 0, "http://127.0.0.1:1/alerts", "DRIFTD_TEST_SECRET").model_defaults
    # The data drift comes at 3/8 of the stream (daemon.demo.main.main).
    assert DEMO_MIN_EVENTS * 3 // 8 == defaults.reference_size + defaults.window


# -- the end of a replay ----------------------------------------------------------------------

def _replayed_versions(tmp_path, capsys, version_of) -> str:
    """The replay's closing lines for 120 good predictions, prediction i of model version
    ``version_of(i)`` (references of 50)."""
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({**_good(i), "model_version": version_of(i)}) + "\n" for i in range(120)))
    assert main(["replay", str(path), "--config", _config(tmp_path), "--out", str(tmp_path / "a.jsonl"), "--quiet"]) == 0
    return capsys.readouterr().err


def test_an_incomplete_reference_of_a_later_version_names_it_and_says_earlier_tests_ran(tmp_path, capsys):
    err = _replayed_versions(tmp_path, capsys, lambda i: "1" if i < 90 else "2")
    assert "model m: reference of version 2 incomplete (30 of 50 predictions): its data-drift tests did not run; " \
           "the earlier versions' tests ran (" in err, err
    assert "no data-drift test ran" not in err


def test_a_version_that_came_back_does_not_hide_an_incomplete_one_between(tmp_path, capsys):
    """Versions 1, 2 and 1 again, only the first stretch's reference complete: the line said
    "the earlier versions' tests ran", though version 2's did not."""
    err = _replayed_versions(tmp_path, capsys, lambda i: "1" if i < 60 or i >= 90 else "2")
    assert "model m: reference of version 1 incomplete (30 of 50 predictions): its data-drift tests did not run; " \
           "the earlier versions' tests ran in 1 of their 2 stretches (" in err, err
    assert "; in the other the reference was incomplete too; " in err, err


def test_when_every_prediction_is_a_dead_letter_the_replay_says_so_and_exits_1(tmp_path, capsys):
    """Labels replayed, every prediction refused: "give more events" was the wrong hint,
    and the exit status 0."""
    rows = ["model,id,ts,prediction,feature.amount,label"]
    rows += [f"m,{i},{1700000000 + i},1,inf," for i in range(40)]
    rows += [f"m,{i},{1700000100 + i},,,1" for i in range(40)]
    path = tmp_path / "e.csv"
    path.write_text("\n".join(rows) + "\n")
    assert main(["replay", str(path), "--config", _config(tmp_path), "--out", str(tmp_path / "a.jsonl"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "every prediction (40) was a dead letter, most often non_finite (40): no test could run; " \
           "see the dead letters above" in err, err
    assert "model m: reference incomplete (0 of 50 predictions): no data-drift test ran; all 40 of its " \
           "predictions were dead letters" in err, err
    assert "give more events" not in err


def test_predictions_given_as_labels_exit_1_naming_the_mistake(tmp_path, capsys):
    """An evaluation table (prediction and label in each row) given with --labels reads as
    labels only: nothing to monitor, which exited 0. A predictions file given so is all
    dead letters (no ``label``): the hint says how to give it."""
    table = tmp_path / "eval.jsonl"
    table.write_text("".join(json.dumps({**_good(i), "label": 1}) + "\n" for i in range(60)))
    config = _config(tmp_path)
    assert main(["replay", "--labels", str(table), "--config", config, "--out", str(tmp_path / "a.jsonl"),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "the files hold no predictions (all 60 rows were labels): nothing to monitor; give predictions as " \
           "FILE, not --labels FILE" in err
    assert "reference incomplete" not in err, err  # it advised more events first

    predictions = tmp_path / "p.jsonl"
    predictions.write_text("".join(json.dumps(_good(i)) + "\n" for i in range(60)))
    assert main(["replay", "--labels", str(predictions), "--config", config, "--out", str(tmp_path / "a.jsonl"),
                 "--quiet"]) == 1
    assert "every row was read as a label: give a file of predictions as FILE, not --labels FILE" \
        in capsys.readouterr().err


def test_a_labels_file_alone_given_as_file_is_told_to_bring_the_predictions(tmp_path, capsys):
    """A trial's finding: the labels' file alone, given as FILE (not with --labels), was
    told "not --labels FILE", an option it had not used."""
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"model": "m", "id": f"p{i}", "label": 1, "ts": 1.7e9 + i}) + "\n"
                              for i in range(30)))
    assert main(["replay", str(labels), "--config", _config(tmp_path), "--out", str(tmp_path / "a.jsonl"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "the files hold no predictions (all 30 rows were labels): nothing to monitor; give the predictions' " \
           "file too (as FILE; this one's rows are labels by their fields" in err, err
    assert "--labels" not in err, err


def test_an_evaluation_rows_empty_prediction_cell_is_a_dead_letter_not_a_label_row(tmp_path):
    """A tester's finding: a CSV row with features and a label whose prediction cell was
    empty was read as a label alone: its prediction vanished, no dead letter (``nan`` in
    the cell was one, wrong_type). A label row (its features empty) is still a label."""
    rows = ["model,id,ts,prediction,feature.a,feature.b,label",
            "m,p1,1763891000,,0.5,0.3,1",      # the evaluation row without its prediction
            "m,p2,1763891001,nan,0.5,0.3,1",   # the same, spelled nan
            "m,p3,1763891002,1,0.5,0.3,1",     # a whole evaluation row
            "m,p3,1763891003,,,,0"]            # a label row
    (tmp_path / "e.csv").write_text("\n".join(rows) + "\n")
    dead, result = _dead(tmp_path / "e.csv")
    assert [(line, reason, detail.rsplit(" - at ", 1)[-1]) for line, reason, detail in dead] == \
        [(2, "wrong_type", "`$.prediction`"), (3, "wrong_type", "`$.prediction`")]
    assert result.predictions == 3 and result.records == 7  # (two dead, one fed) and four labels


def test_a_csv_cell_longer_than_128_kb_is_a_row_not_the_end_of_the_replay(tmp_path, capsys):
    """A new user's finding: one cell over the csv module's default limit (131,072
    characters) stopped the replay ("field larger than field limit"), exit 1, nothing
    written. It is a row like any other: a long string feature is replayed, one past
    max_event_bytes is an oversize dead letter, as from a JSONL line."""
    rows = ["model,id,ts,prediction,feature.x"]
    rows += [f"m,{i},{1700000000 + i},1,{i % 7}" for i in range(60)]
    rows.insert(21, f"m,long,1700000020.5,1,{'y' * 200_000}")
    rows.insert(31, f"m,huge,1700000030.5,1,{'z' * 1_200_000}")
    path = tmp_path / "e.csv"
    path.write_text("\n".join(rows) + "\n")
    assert main(["replay", str(path), "--config", _config(tmp_path), "--out", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"{path}:32: dead letter (oversize)" in err and "62 events in" in err and "; 1 dead letter\n" in err, err


def test_the_end_of_a_replay_names_what_the_alerts_would_hide(tmp_path, capsys):
    """A new user's finding: labels that never found their prediction, decay tests that
    never ran, features beyond max_features: a replay of "0 alerts" said nothing of them."""
    rows = []
    for i in range(200):
        features = {f"f{k}": (i * k) % 11 for k in range(6)}
        rows.append({"model": "m", "id": str(i), "ts": 1_700_000_000 + i, "features": features, "prediction": i % 2})
        # Half the labels name ids no prediction has: orphaned at the end.
        rows.append({"model": "m", "id": str(i if i % 4 else -i - 1), "ts": 1_700_000_000 + i, "label": i % 2})
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["replay", str(path), "--config", _config(tmp_path, max_features=4), "--out",
                 str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    # A quarter: said, without the advice for most of them.
    assert "model m: 50 of its 200 labels found no prediction to join (none with their model and id came within " \
           "join.label_grace_seconds (600 s) or before the end of the files, or theirs came more than " \
           "join.prediction_ttl_seconds (86400 s) before them)\n" in err, err
    assert "model m: its decay tests did not run: 150 labelled events, fewer than decay_reference_size + " \
           "decay_window" in err, err
    assert "model m: 2 features beyond max_features (4) were counted, not watched" in err, err
    orphans = [{**r, "id": f"x{r['id']}"} if "label" in r else r for r in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in orphans))
    assert main(["replay", str(path), "--config", _config(tmp_path), "--out", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "model m: 200 of its 200 labels found no prediction to join (none with their model and id came" in err, err


def test_the_end_of_a_replay_of_many_models_is_a_few_lines(tmp_path, capsys):
    """400 models with incomplete references printed 400 lines; 20 are shown, the rest counted."""
    rows = [{"model": f"m{k}", "id": f"{k}-{i}", "ts": 1_700_000_000 + i, "features": {"x": i}, "prediction": 1}
            for k in range(30) for i in range(3)]
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["replay", str(path), "--auto-register", "--out", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert err.count("reference incomplete") == 20 and "... and 10 more such lines of other models" in err, err


def test_decay_tests_that_never_ran_are_named_after_a_version_change_too(tmp_path, capsys):
    """Skipped whenever the model_version had changed: 150 labelled events in each of two
    versions, decay never ran, no word."""
    rows = []
    for i in range(300):
        version = "1" if i < 150 else "2"
        rows.append({"model": "m", "id": str(i), "ts": 1_700_000_000 + i, "features": {"x": i % 7}, "prediction": i % 2,
                     "model_version": version})
        rows.append({"model": "m", "id": str(i), "ts": 1_700_000_000 + i, "label": i % 2})
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["replay", str(path), "--config", _config(tmp_path), "--out", str(tmp_path / "a.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "model m: its decay tests of version 2 did not run: 150 labelled events of version 2" in err, err


def test_blank_lines_are_skipped_and_counted_and_a_line_not_json_is_a_dead_letter(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(_good(i)) for i in range(60)]
    lines[10:10] = ["", "   \t"]
    lines.insert(30, "not json at all")
    path.write_text("\n".join(lines) + "\n\n\r\n")
    summary = tmp_path / "summary.json"
    assert main(["replay", str(path), "--config", _config(tmp_path), "--summary", str(summary), "--out",
                 str(tmp_path / "alerts.jsonl"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"driftd replay: {path}:31: dead letter (not_json): " in err, err
    assert f"driftd replay: {path}: 4 blank lines skipped\n" in err, err
    source = json.loads(summary.read_text())["source"]
    assert (source["events"], source["blank_lines"]) == (61, {str(path): 4})

    one = tmp_path / "one.jsonl"
    one.write_text("\n".join(json.dumps(_good(i)) for i in range(60)) + "\n\n")
    assert main(["replay", str(one), "--config", _config(tmp_path), "--out", str(tmp_path / "b.jsonl"), "--quiet"]) == 0
    assert f"driftd replay: {one}: 1 blank line skipped\n" in capsys.readouterr().err
