"""learners.registry (signed, versioned, atomic) and learners.loader (verify, then unpickle)."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import pickle
import subprocess
import sys

import pytest

from learners import registry as registry_module
from learners.loader import SignatureError, load_model, verify
from learners.registry import Registry
from learners.spec import build

KEY = b"k" * 32
LEARNERS = pathlib.Path(__file__).resolve().parent.parent / "learners"
UNPICKLED = []


def _boom():
    UNPICKLED.append("ran")
    return "payload"


class Booby:
    """Unpickling this runs _boom: the loader must never get that far with a bad file."""

    def __reduce__(self):
        return (_boom, ())


@pytest.fixture
def reg(tmp_path):
    return Registry(tmp_path / "registry", KEY, keep=3)


def model():
    m = build(["StandardScaler", "LogisticRegression"])
    for i in range(50):
        m.learn_one({"x": float(i % 7)}, i % 7 > 3)
    return m


def test_publish_list_show_and_keep(reg, tmp_path):
    fields = {"learner": "lr", "training_window": {"first_event_time": 1.0, "last_event_time": 9.0, "n_events": 50},
              "metrics": {"gate": {"p_value": 1e-9}}}
    manifests = [reg.publish("fraud", model(), fields) for _ in range(5)]
    assert [m["version"] for m in manifests] == [1, 2, 3, 4, 5]
    assert [m["parent_version"] for m in manifests] == [None, 1, 2, 3, 4]
    assert reg.versions("fraud") == [3, 4, 5]  # keep=3
    assert [m["version"] for m in reg.list("fraud")] == [3, 4, 5]
    latest = reg.show("fraud")
    assert latest == manifests[-1] and latest["model"] == "fraud" and latest["learner"] == "lr"
    assert latest["training_window"]["n_events"] == 50 and latest["created_at"].endswith("+00:00")
    assert reg.show("fraud", 4)["version"] == 4
    assert sorted(os.listdir(tmp_path / "registry" / "fraud")) == ["3", "4", "5"]  # no temp leftovers
    assert sorted(os.listdir(tmp_path / "registry" / "fraud" / "5")) == ["manifest.json", "model.pkl", "model.pkl.sig"]
    with pytest.raises(FileNotFoundError, match="no version 1 of model 'fraud'"):
        reg.show("fraud", 1)
    with pytest.raises(FileNotFoundError, match="no versions of model 'other'"):
        reg.show("other")
    assert reg.list("other") == []


def test_parent_version_can_be_given(reg):
    assert reg.publish("m", 1, {"parent_version": 7})["parent_version"] == 7


def test_loader_loads_a_good_model_by_dir_version_or_file(reg, tmp_path, monkeypatch):
    m = model()
    reg.publish("fraud", m, {"learner": "lr"})
    root = tmp_path / "registry" / "fraud"
    for path in (root, root / "1", root / "1" / "model.pkl"):
        loaded, manifest = load_model(path, key=KEY)
        assert loaded.predict_proba_one({"x": 5.0}) == m.predict_proba_one({"x": 5.0})
        assert manifest["version"] == 1
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", KEY.decode())
    assert load_model(root)[1]["learner"] == "lr"
    assert reg.load("fraud", 1)[1]["version"] == 1


def test_tampered_artifact_is_refused_before_unpickling(reg, tmp_path):
    reg.publish("fraud", {"w": 1}, {})
    artifact = tmp_path / "registry" / "fraud" / "1" / "model.pkl"
    artifact.write_bytes(pickle.dumps(Booby()))
    with pytest.raises(SignatureError, match=r"model\.pkl was modified after signing \(tampered\)"):
        load_model(artifact, key=KEY)
    assert UNPICKLED == []


def test_wrong_key_is_refused(reg, tmp_path):
    reg.publish("fraud", {"w": 1}, {})
    with pytest.raises(SignatureError, match=r"does not match this key \(wrong key\?\)"):
        load_model(tmp_path / "registry" / "fraud", key=b"another key")


def test_unsigned_file_is_refused(tmp_path):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Booby()))
    with pytest.raises(SignatureError, match="is unsigned: no model.pkl.sig and no manifest.json"):
        load_model(tmp_path / "model.pkl", key=KEY)
    (tmp_path / "model.pkl.sig").write_text("00" * 32)
    with pytest.raises(SignatureError, match="tampered artifact or wrong key"):
        load_model(tmp_path, key=KEY)
    assert UNPICKLED == []


def test_manifest_edits_are_refused(reg, tmp_path):
    reg.publish("fraud", {"w": 1}, {"metrics": {"accuracy": 0.7}})
    path = tmp_path / "registry" / "fraud" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"]["accuracy"] = 0.99
    path.write_text(json.dumps(manifest))
    with pytest.raises(SignatureError, match="manifest.json was modified after signing"):
        load_model(path.parent, key=KEY)
    path.write_text("{not json")
    with pytest.raises(SignatureError, match="not valid JSON"):
        load_model(path.parent, key=KEY)


def test_signature_file_forged_alone_is_refused(reg, tmp_path):
    reg.publish("fraud", {"w": 1}, {})
    directory = tmp_path / "registry" / "fraud" / "1"
    (directory / "model.pkl").write_bytes(pickle.dumps(Booby()))
    (directory / "model.pkl.sig").write_text("ab" * 32)
    with pytest.raises(SignatureError, match="tampered"):
        load_model(directory, key=KEY)
    assert UNPICKLED == []


def test_missing_key_is_a_clear_error(reg, tmp_path, monkeypatch):
    reg.publish("fraud", {"w": 1}, {})
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(SignatureError, match="no signing key: pass key= or set the environment variable MY_KEY"):
        verify(tmp_path / "registry" / "fraud", key_env="MY_KEY")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere", key=KEY)


def test_idempotency_key_publishes_once(reg):
    first = reg.publish("fraud", {"w": 1}, {"idempotency_key": "lr@4050"})
    again = reg.publish("fraud", {"w": 1}, {"idempotency_key": "lr@4050"})
    assert again == first and reg.versions("fraud") == [1]
    assert reg.publish("fraud", {"w": 2}, {"idempotency_key": "lr@5000"})["version"] == 2


def test_a_crash_mid_publish_leaves_no_visible_version(reg, tmp_path, monkeypatch):
    reg.publish("fraud", {"w": 1}, {})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(registry_module.os, "rename", crash)
    with pytest.raises(OSError, match="disk full"):
        reg.publish("fraud", {"w": 2}, {})
    monkeypatch.undo()
    assert reg.versions("fraud") == [1]
    assert sorted(os.listdir(tmp_path / "registry" / "fraud")) == ["1"]


def test_stale_temporary_directories_are_swept(reg, tmp_path):
    reg.publish("fraud", {"w": 1}, {})
    stale = tmp_path / "registry" / "fraud" / ".tmp-crashed"
    stale.mkdir()
    (stale / "model.pkl").write_bytes(b"half")
    os.utime(stale, (0, 0))
    fresh = tmp_path / "registry" / "fraud" / ".tmp-in-progress"
    fresh.mkdir()  # maybe another publisher's, right now: left alone
    reg.publish("fraud", {"w": 2}, {})
    assert sorted(os.listdir(tmp_path / "registry" / "fraud")) == [".tmp-in-progress", "1", "2"]


def test_key_stays_secret(reg, tmp_path, monkeypatch):
    reg.publish("fraud", {"w": 1}, {})
    assert "kkkk" not in repr(reg)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(reg)
    for path in (tmp_path / "registry").rglob("*"):
        if path.is_file():
            assert KEY not in path.read_bytes()
    monkeypatch.delenv("DRIFTD_REGISTRY_KEY", raising=False)
    with pytest.raises(ValueError, match="environment variable DRIFTD_REGISTRY_KEY is not set"):
        Registry.from_env(tmp_path)
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "s3cret")
    assert Registry.from_env(tmp_path, keep=2).keep == 2


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".hidden", "x" * 200, 7])
def test_model_names_are_safe_path_components(reg, name):
    with pytest.raises(ValueError, match="model name"):
        reg.publish(name, {"w": 1}, {})


def test_registry_fields_cannot_be_overridden(reg):
    with pytest.raises(ValueError, match=r"manifest fields \['version'\] are set by the registry"):
        reg.publish("fraud", {"w": 1}, {"version": 99})


def test_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match="key is empty"):
        Registry(tmp_path, b"")
    with pytest.raises(ValueError, match="keep must be at least 1"):
        Registry(tmp_path, KEY, keep=0)


def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_loader_needs_only_the_standard_library():
    assert _imports(LEARNERS / "loader.py") <= set(sys.stdlib_module_names)


def test_learners_are_pure():
    for path in LEARNERS.glob("*.py"):
        assert not _imports(path) & {"daemon", "kafka", "prometheus_client", "requests", "socket"}, path
    code = "import learners, sys; print(sorted(m for m in ('daemon', 'kafka', 'prometheus_client') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=LEARNERS.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
