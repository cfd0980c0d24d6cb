"""Messages of the federation topic: JSON, signed with HMAC-SHA256, checked field by field.

Two kinds, both about one learner of one model, versioned by round:

- ``update`` (a participant's contribution to round ``round``):
  ``{"kind", "federation", "participant", "model", "learner", "round", "n", "delta"}``;
- ``global`` (the aggregate that closes round ``round``):
  ``{"kind", "federation", "participant" (the aggregator), "model", "learner", "round", "n",
  "params", "participants", "rejected"}``.

``delta`` and ``params`` are ``{"weights": {feature name: number}, "intercept": number}``;
``n`` is a count of labelled events; ``participants`` the ids whose updates went in;
``rejected`` counts of refused updates by reason. Nothing else is accepted: no feature
value, event id, label or prediction has a field to travel in (tests/test_federation.py
reads every message of a run and checks it).

Why JSON and not the checkpoints' sealed pickles (daemon/kafka/checkpoint.py): the
messages come from other deployments, and unpickling runs code; a JSON body is parsed, not
executed, and its fields can be checked one by one. The tag is HMAC-SHA256 over a
domain string and the canonical JSON of the body (sorted keys), as the registry signs
its manifests (learners/loader.py), with the federation's own key.

>>> key = b"k"
>>> raw = encode(key, {"kind": "update", "federation": "f", "participant": "eu", "model": "m",
...                    "learner": "lr", "round": 1, "n": 10, "delta": {"weights": {"x": 0.5}, "intercept": 0.0}})
>>> decode(key, raw)["delta"]["weights"]
{'x': 0.5}
>>> decode(b"other", raw)
Traceback (most recent call last):
...
daemon.federation.messages.Rejected: signature: HMAC-SHA256 does not match (forged, altered, or another key)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math

DOMAIN = b"driftd-federation-v1\n"
SIGNATURE = "hmac_sha256"
_COMMON = {"kind", "federation", "participant", "model", "learner", "round", "n"}
FIELDS = {"update": _COMMON | {"delta"}, "global": _COMMON | {"params", "participants", "rejected"}}
#: Longest message accepted, in bytes (a learner of 10,000 features is about 400 KB).
MAX_BYTES = 4 * 1024 * 1024


class Rejected(ValueError):
    """A message that is not used; ``reason`` (the text before the colon) is its metric label:
    ``signature``, ``malformed``."""

    @property
    def reason(self) -> str:
        return str(self).split(":", 1)[0]


def _tag(key: bytes, body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hmac.new(key, DOMAIN + canonical.encode(), hashlib.sha256).hexdigest()


def encode(key: bytes, body: dict) -> bytes:
    """The signed message for ``body`` (checked as :func:`decode` would)."""
    _check(body)
    return json.dumps({"body": body, SIGNATURE: _tag(key, body)}, sort_keys=True, allow_nan=False).encode()


def decode(key: bytes, raw: bytes) -> dict:
    """The body of a signed message; :class:`Rejected` if it is too large, not JSON, not
    signed with ``key``, or not exactly one of the two kinds with numbers where numbers go."""
    if raw is None or len(raw) > MAX_BYTES:
        raise Rejected("malformed: empty or larger than the limit")
    try:
        message = json.loads(raw)
    except ValueError:
        raise Rejected("malformed: not JSON") from None
    if not isinstance(message, dict) or set(message) != {"body", SIGNATURE} or not isinstance(message["body"], dict):
        raise Rejected("malformed: not a signed federation message")
    body, tag = message["body"], message[SIGNATURE]
    try:
        expected = _tag(key, body)
    except (TypeError, ValueError):
        raise Rejected("malformed: body cannot be canonicalised") from None
    if not isinstance(tag, str) or not hmac.compare_digest(tag, expected):
        raise Rejected("signature: HMAC-SHA256 does not match (forged, altered, or another key)")
    _check(body)
    return body


def _check(body: dict) -> None:
    kind = body.get("kind")
    if kind not in FIELDS or set(body) != FIELDS[kind]:
        raise Rejected(f"malformed: fields of a {kind!r} message must be {sorted(FIELDS.get(kind, _COMMON))}")
    for name in ("federation", "participant", "model", "learner"):
        if not isinstance(body[name], str) or not body[name]:
            raise Rejected(f"malformed: {name} must be a non-empty string")
    for name in ("round", "n"):
        if not isinstance(body[name], int) or isinstance(body[name], bool) or body[name] < 0:
            raise Rejected(f"malformed: {name} must be a whole number >= 0")
    _check_params(body["delta" if kind == "update" else "params"])
    if kind == "global":
        if not isinstance(body["participants"], list) or not all(isinstance(p, str) for p in body["participants"]):
            raise Rejected("malformed: participants must be a list of ids")
        rejected = body["rejected"]
        if not isinstance(rejected, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in rejected.values()):
            raise Rejected("malformed: rejected must map reasons to counts")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_params(params) -> None:
    if not isinstance(params, dict) or set(params) != {"weights", "intercept"}:
        raise Rejected("malformed: parameters must be {weights, intercept}")
    weights = params["weights"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and _number(v) for k, v in weights.items()):
        raise Rejected("malformed: weights must map feature names to finite numbers")
    if not _number(params["intercept"]):
        raise Rejected("malformed: the intercept must be a finite number")
