"""The model registry: signed, versioned artifacts in a directory, written atomically.

``publish`` writes ``<directory>/<model>/<version>/`` with ``model.pkl``, ``model.pkl.sig``
and ``manifest.json`` (see :mod:`learners.loader`, which model servers use to load them).
Versions are integers counting up from 1. A version is written in a hidden temporary
directory beside the others, every file and the directory fsync'ed, then renamed into
place: a reader sees a whole version or none. Only the newest ``keep`` versions are kept
(older ones are renamed away first, then deleted).

A manifest field ``idempotency_key`` makes publishing at-least-once safe: publishing again
with a key that a kept version already carries returns that version's manifest instead of
writing a new one.

The key signs every artifact (HMAC-SHA256). It comes from the caller, e.g.
:meth:`Registry.from_env`; it is never printed, and a Registry refuses to be pickled so it
cannot end up in a checkpoint.

>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> registry = Registry(tmp.name, key=b"not-a-real-key", keep=2)
>>> for _ in range(3):
...     m = registry.publish("fraud", {"weights": [0.5]}, {"learner": "lr"})
>>> m["model"], m["version"], m["parent_version"], [v["version"] for v in registry.list("fraud")]
('fraud', 3, 2, [2, 3])
>>> registry.load("fraud")[0]
{'weights': [0.5]}
>>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import time
from datetime import datetime, timezone

from .loader import ARTIFACT, MANIFEST, SIGNATURE, SIGNATURE_FIELD, artifact_signature, load_model, manifest_signature

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RESERVED = {"model", "version", "created_at", "artifact", SIGNATURE_FIELD}
_STALE_SECONDS = 3600


class Registry:
    """A registry directory, the signing key and how many versions to keep per model."""

    def __init__(self, directory, key: bytes | str, keep: int = 5):
        key = key.encode() if isinstance(key, str) else bytes(key)
        if not key:
            raise ValueError("the registry signing key is empty")
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = os.fspath(directory)
        self._key = key
        self.keep = keep

    @classmethod
    def from_env(cls, directory, env: str = "DRIFTD_REGISTRY_KEY", keep: int = 5) -> Registry:
        """A registry signing with the key in environment variable ``env``."""
        key = os.environ.get(env)
        if not key:
            raise ValueError(f"the registry signing key: environment variable {env} is not set or empty")
        return cls(directory, key, keep)

    def __repr__(self) -> str:
        return f"Registry({self.directory!r}, key=<hidden>, keep={self.keep})"

    def __reduce__(self):
        raise TypeError("a Registry holds a signing key and is not picklable; keep it out of checkpoints")

    # -- reading ----------------------------------------------------------------------------
    def _model_dir(self, model: str) -> str:
        if not isinstance(model, str) or not _NAME.fullmatch(model):
            raise ValueError(f"model name {model!r}: use letters, digits, '.', '_', '-' (not first), up to 128")
        return os.path.join(self.directory, model)

    def path(self, model: str, version: int) -> str:
        """The directory of ``model``'s ``version`` (its artifact, signature and manifest):
        what a model server loads (``learners/loader.py``). ValueError for a bad name."""
        return os.path.join(self._model_dir(model), str(int(version)))

    def versions(self, model: str) -> list[int]:
        """The kept versions of ``model``, oldest first (empty when there are none)."""
        try:
            names = os.listdir(self._model_dir(model))
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def show(self, model: str, version: int | None = None) -> dict:
        """The manifest of ``version`` (default: the newest); FileNotFoundError if absent.
        Not verified: :meth:`load` (or :func:`learners.loader.load_model`) checks signatures."""
        if version is None:
            versions = self.versions(model)
            if not versions:
                raise FileNotFoundError(f"no versions of model {model!r} in {self.directory}")
            version = versions[-1]
        path = os.path.join(self._model_dir(model), str(int(version)), MANIFEST)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"no version {version} of model {model!r} in {self.directory}") from None

    def list(self, model: str) -> list[dict]:
        """The manifests of every kept version, oldest first."""
        return [self.show(model, v) for v in self.versions(model)]

    def load(self, model: str, version: int | None = None):
        """``(estimator, manifest)``, signatures checked (see :mod:`learners.loader`)."""
        path = self._model_dir(model) if version is None else os.path.join(self._model_dir(model), str(int(version)))
        return load_model(path, key=self._key)

    # -- writing ----------------------------------------------------------------------------
    def publish(self, model: str, estimator, fields: dict | None = None) -> dict:
        """Write ``estimator`` as the next version of ``model`` with a manifest of
        ``fields`` (JSON-able; ``parent_version`` defaults to the newest version so far);
        returns the manifest."""
        fields = dict(fields or {})
        clash = _RESERVED & set(fields)
        if clash:
            raise ValueError(f"manifest fields {sorted(clash)} are set by the registry")
        model_dir = self._model_dir(model)
        os.makedirs(model_dir, exist_ok=True)
        self._sweep(model_dir)
        key = fields.get("idempotency_key")
        if key is not None:
            for manifest in self.list(model):
                if manifest.get("idempotency_key") == key:
                    return manifest
        data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        signature = artifact_signature(self._key, data)
        for _ in range(100):  # another publisher may take a version number first
            versions = self.versions(model)
            version = versions[-1] + 1 if versions else 1
            manifest = {"parent_version": versions[-1] if versions else None, **fields}
            manifest.update(
                model=model, version=version,
                created_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                artifact={"file": ARTIFACT, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "hmac_sha256": signature},
            )
            manifest = json.loads(json.dumps(manifest, default=_jsonable))  # what the loader will read
            manifest[SIGNATURE_FIELD] = manifest_signature(self._key, manifest)
            tmp = tempfile.mkdtemp(prefix=".tmp-", dir=model_dir)
            try:
                _write(os.path.join(tmp, ARTIFACT), data)
                _write(os.path.join(tmp, SIGNATURE), signature.encode() + b"\n")
                _write(os.path.join(tmp, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True).encode())
                _fsync_dir(tmp)
                target = os.path.join(model_dir, str(version))
                if os.path.exists(target):
                    continue
                os.rename(tmp, target)
                _fsync_dir(model_dir)
            except OSError:
                if os.path.exists(os.path.join(model_dir, str(version))):
                    continue  # lost the race for this number: try the next
                raise
            finally:
                if os.path.exists(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
            self._prune(model_dir)
            return manifest
        raise RuntimeError(f"could not find a free version number for model {model!r}")

    def _prune(self, model_dir: str) -> None:
        versions = sorted(int(n) for n in os.listdir(model_dir) if n.isdigit())
        for v in versions[: max(0, len(versions) - self.keep)]:
            doomed = tempfile.mkdtemp(prefix=f".del-{v}-", dir=model_dir)
            os.rename(os.path.join(model_dir, str(v)), os.path.join(doomed, str(v)))
            shutil.rmtree(doomed, ignore_errors=True)
        _fsync_dir(model_dir)

    def _sweep(self, model_dir: str) -> None:
        """Remove temporary directories left by a crash (older than an hour)."""
        for name in os.listdir(model_dir):
            path = os.path.join(model_dir, name)
            if name.startswith((".tmp-", ".del-")) and time.time() - os.path.getmtime(path) > _STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _jsonable(value):
    """numpy scalars and the like as plain numbers; anything else as its string."""
    for cast in (int, float):
        if hasattr(value, "__index__" if cast is int else "__float__"):
            return cast(value)
    return str(value)
