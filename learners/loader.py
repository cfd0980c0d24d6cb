"""Load a model that driftd published, after checking its signature. For model servers.

Standard library only (plus whatever the pickle needs, River for driftd's models): this one
file may be imported as ``learners.loader`` or copied into a model server as it is.

A registry version is a directory ``<registry>/<model>/<version>/`` holding ``model.pkl``
(the pickled estimator), ``model.pkl.sig`` (hex HMAC-SHA256 of its bytes) and
``manifest.json`` (what, when, from which data, how good; it carries the artifact's HMAC
and SHA-256 and an HMAC of its own). :func:`load_model` reads the bytes once, checks both
HMACs with ``hmac.compare_digest`` and only then unpickles those same bytes. Unpickling runs
code, so an unsigned, tampered or foreign file is refused with :class:`SignatureError`.

The key is bytes, or a string taken as UTF-8; by default from the environment variable
``DRIFTD_REGISTRY_KEY``, the one the daemon signs with.

>>> import pathlib, pickle, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> _ = (pathlib.Path(tmp.name) / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
>>> load_model(tmp.name, key=b"secret")
Traceback (most recent call last):
...
learners.loader.SignatureError: ... is unsigned: no model.pkl.sig and no manifest.json; refusing to unpickle it
>>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle

ARTIFACT, SIGNATURE, MANIFEST = "model.pkl", "model.pkl.sig", "manifest.json"
SIGNATURE_FIELD = "manifest_hmac_sha256"
_MANIFEST_DOMAIN = b"driftd-manifest-v1\n"


class SignatureError(Exception):
    """The model is unsigned, was modified after signing, or was signed with another key."""


def artifact_signature(key: bytes, data: bytes) -> str:
    """Hex HMAC-SHA256 of the artifact bytes."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def manifest_signature(key: bytes, manifest: dict) -> str:
    """Hex HMAC-SHA256 of the manifest's canonical JSON, without its own signature field."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, _MANIFEST_DOMAIN + canonical.encode(), hashlib.sha256).hexdigest()


def resolve(path) -> str:
    """The version directory ``path`` designates: a ``model.pkl`` file, a version
    directory, or a model directory (its highest numbered version)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no model at {path}")
    if os.path.exists(os.path.join(path, ARTIFACT)):
        return path
    versions = [int(n) for n in os.listdir(path) if n.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no {ARTIFACT} and no numbered versions in {path}")
    return os.path.join(path, str(max(versions)))


def _key(key, key_env: str) -> bytes:
    if key is None:
        key = os.environ.get(key_env)
        if not key:
            raise SignatureError(f"no signing key: pass key= or set the environment variable {key_env}")
    key = key.encode() if isinstance(key, str) else bytes(key)
    if not key:
        raise SignatureError("the signing key is empty")
    return key


def verify(path, key=None, key_env: str = "DRIFTD_REGISTRY_KEY") -> tuple[bytes, dict]:
    """The artifact's bytes and its manifest (``{}`` when there is none), once both
    signatures hold; :class:`SignatureError` otherwise. Nothing is unpickled."""
    key = _key(key, key_env)
    directory = resolve(path)
    with open(os.path.join(directory, ARTIFACT), "rb") as f:
        data = f.read()
    expected = artifact_signature(key, data)
    manifest, recorded = {}, None
    manifest_path = os.path.join(directory, MANIFEST)
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            try:
                manifest = json.load(f)
            except ValueError as e:
                raise SignatureError(f"{manifest_path} is not valid JSON ({e}); refusing to load") from None
        if not isinstance(manifest, dict):
            raise SignatureError(f"{manifest_path} is not a JSON object; refusing to load")
        recorded = (manifest.get("artifact") or {}).get("hmac_sha256")
    sig_path = os.path.join(directory, SIGNATURE)
    if os.path.exists(sig_path):
        with open(sig_path, encoding="ascii", errors="replace") as f:
            recorded = f.read().strip()
    if not recorded:
        raise SignatureError(f"{directory} is unsigned: no {SIGNATURE} and no {MANIFEST}; refusing to unpickle it")
    artifact_ok = hmac.compare_digest(recorded, expected)
    manifest_ok = not manifest or hmac.compare_digest(str(manifest.get(SIGNATURE_FIELD, "")),
                                                      manifest_signature(key, manifest))
    if artifact_ok and manifest_ok:
        return data, manifest
    if artifact_ok:
        raise SignatureError(f"{manifest_path} was modified after signing (or is unsigned); refusing to load")
    recorded_sha = (manifest.get("artifact") or {}).get("sha256")
    if recorded_sha and recorded_sha != hashlib.sha256(data).hexdigest():
        raise SignatureError(f"{directory}/{ARTIFACT} was modified after signing (tampered); refusing to unpickle it")
    if recorded_sha:
        raise SignatureError(f"{directory}: signature does not match this key (wrong key?); refusing to unpickle it")
    raise SignatureError(f"{directory}: signature does not match (tampered artifact or wrong key); refusing to unpickle it")


def load_model(path, key=None, key_env: str = "DRIFTD_REGISTRY_KEY"):
    """``(estimator, manifest)`` from a registry path (see :func:`resolve`), unpickled only
    after :func:`verify` passed."""
    data, manifest = verify(path, key, key_env)
    return pickle.loads(data), manifest
