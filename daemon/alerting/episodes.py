"""Drift episodes: turn a stream of per-observation drift flags into a few alerts.

A detector says "drifting" or not at every test; a human wants one message
when a problem starts and one when it ends. :class:`Episodes` does that
translation per key ``(model, detector, feature)``. It is pure logic (no I/O,
no clock, no threads) and is part of the daemon's checkpoint, so that after a
crash, restoring it and replaying the same input gives the same decisions and
the same alert ids -- which is what lets webhook receivers de-duplicate the
at-least-once deliveries.

Rules (all times are EVENT times, the ``event_time`` passed in, never the wall
clock, for the replay property above):

* Entering drift: the first drifting observation of an idle key opens an
  episode and fires (detectors already do their own confirmation).
* Hysteresis: an episode ends only after ``clear_after`` consecutive
  non-drifting observations; any drifting observation resets that count.
  The resolve carries the event time of the last of those observations.
* Cooldown: an episode that opens less than ``cooldown_seconds`` after the
  last *announced* resolve of the same key is silent -- it is tracked (so
  hysteresis still applies) but sends nothing, and its resolve is silent too.
  Silent episodes do not extend the cooldown, so a flapping key produces at
  most one firing/resolved pair per cooldown period. If a silent episode is
  still drifting at an observation at or after the cooldown's end, it is
  announced then (fires with that observation's time) and resolves loudly.
* Episode numbers count announced episodes per key, starting at 1.
* Ids: an alert id is a hash of the key, the status and the episode's ``origin``:
  what opened (announced) the episode, given by the caller with each observation. The
  daemon gives the source of the event that completed the test (topic, partition,
  offset) and its event time, so ids repeat when the same stream is replayed and never
  collide after a state reset or a new model version (another episode opens at another
  event). The firing and the resolve of one episode share its origin.

Feeding one observation per detector decision, in stream order, with each decision's
own event time and origin (never a batch's), makes the alerts a function of the input
stream alone: the same for any batching, live or catch-up, and across restarts.

>>> episodes = Episodes(clear_after=2, cooldown_seconds=0)
>>> fired = episodes.observe(("fraud", "ks", "age"), True, 100.0, {}, origin=("predictions", 0, 41))
>>> episodes.observe(("fraud", "ks", "age"), False, 110.0, {}, origin=("predictions", 0, 51)) is None
True
>>> resolved = episodes.observe(("fraud", "ks", "age"), False, 120.0, {}, origin=("predictions", 0, 61))
>>> (fired.status, resolved.status, resolved.event_time, resolved.detail["started_at"])
('firing', 'resolved', 120.0, 100.0)
>>> resolved.origin == fired.origin == ["predictions", 0, 41]
True
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Alert", "Episodes", "Key", "alert_id", "info"]

Key = tuple[str, str, str]

FIRING = "firing"
RESOLVED = "resolved"
INFO = "info"


@dataclass(frozen=True)
class Alert:
    """One message for the outside world; plain data, JSON-able, picklable.

    ``kind`` is "drift" for episode alerts and the caller's kind (e.g.
    "model_promoted") for informational ones, whose ``status`` is "info".
    """

    id: str
    status: str
    model: str
    detector: str
    feature: str
    severity: str
    event_time: float
    episode: int
    detail: dict = field(default_factory=dict)
    kind: str = "drift"
    #: What opened the episode (JSON-able list, e.g. [topic, partition, offset, event time]).
    origin: list = field(default_factory=list)

    # The generated hash would fail on the dict field; the id identifies the alert.
    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def event_type(self) -> str:
        """Type name for receivers: "driftd.alert.firing", "driftd.info.model_promoted", ..."""
        if self.status == INFO:
            return f"driftd.info.{self.kind}"
        return f"driftd.alert.{self.status}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Alert":
        return cls(**data)


def alert_id(*parts: Any) -> str:
    """A stable id from stable parts: same input, same id, in any process."""
    raw = json.dumps(["driftd-alert-v1", *parts], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None.

    Done when the alert is made, not when it is sent, so the checkpointed
    alert, the webhook body and the Kafka record all hold the same values.
    """
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def info(model: str, kind: str, detail: dict, event_time: float, key: str,
         severity: str = "info") -> Alert:
    """A one-off informational alert ("model promoted", ...).

    ``key`` is the caller's idempotency key (e.g. the new model version):
    the id depends only on (model, kind, key), so re-announcing the same
    thing after a replay gives the same id.
    """
    return Alert(id=alert_id(INFO, model, kind, key), status=INFO, model=model,
                 detector="", feature="", severity=severity, event_time=float(event_time),
                 episode=0, detail=_plain(dict(detail)), kind=kind)


@dataclass
class _KeyState:
    """What :class:`Episodes` remembers about one key (module-level: picklable)."""

    active: bool = False
    silent: bool = False
    origin: tuple = ()          # of the current announced episode, reused by its resolve
    clean: int = 0              # consecutive non-drifting observations in the current episode
    episode: int = 0            # announced episodes so far
    started_at: float = 0.0     # event time the current announced episode fired
    severity: str = "warning"   # of the current announced episode, reused by its resolve
    cooldown_until: float = -math.inf


class Episodes:
    """Per-key episode tracker; see the module docstring for the rules."""

    def __init__(self, clear_after: int = 3, cooldown_seconds: float = 3600.0,
                 severity: str = "warning"):
        if clear_after < 1:
            raise ValueError("clear_after must be at least 1")
        if not cooldown_seconds >= 0:  # also rejects NaN
            raise ValueError("cooldown_seconds must be >= 0")
        self.clear_after = int(clear_after)
        self.cooldown_seconds = float(cooldown_seconds)
        self.severity = severity
        self._keys: dict[Key, _KeyState] = {}

    def observe(self, key: Key, drifting: bool, event_time: float, detail: dict,
                severity: str | None = None, origin: tuple | None = None) -> Alert | None:
        """Feed one detector decision; returns the alert to send, if any.

        ``detail`` (statistic, threshold, p_value, ...), or a function giving it (called
        only when an alert is made: some details cost), is copied into the
        alert; a resolve also gets ``started_at``, the firing's event time.
        ``severity`` overrides the tracker's default for an episode that fires now.
        ``origin`` identifies this observation in the input (JSON-able values, e.g.
        ``(topic, partition, offset)``); an episode this observation opens takes its ids
        from it. Default: ``(event_time,)``, enough when event times are unique per key.

        Raises ``ValueError`` for a non-finite ``event_time``, ``TypeError`` for a key
        that is not three strings.
        """
        key = _check_key(key)
        event_time = float(event_time)
        if not math.isfinite(event_time):
            raise ValueError(f"event_time must be finite, got {event_time!r}")
        st = self._keys.get(key)
        if st is None:
            st = self._keys[key] = _KeyState()

        if drifting:
            st.clean = 0
            if not st.active:
                st.active = True
                st.silent = event_time < st.cooldown_until
                if st.silent:
                    return None
                return self._fire(key, st, event_time, detail, severity, origin)
            if st.silent and event_time >= st.cooldown_until:
                st.silent = False  # still drifting after the cooldown: announce it now
                return self._fire(key, st, event_time, detail, severity, origin)
            return None

        if not st.active:
            return None
        st.clean += 1
        if st.clean < self.clear_after:
            return None
        st.active, st.clean = False, 0
        if st.silent:
            st.silent = False
            return None  # silent episodes end silently and leave the cooldown alone
        st.cooldown_until = event_time + self.cooldown_seconds
        resolved_detail = dict(detail() if callable(detail) else detail)
        resolved_detail.setdefault("started_at", st.started_at)
        return self._alert(key, st, RESOLVED, st.severity, event_time, resolved_detail)

    def end(self, key: Key, event_time: float, detail: dict) -> Alert | None:
        """The test behind ``key`` is gone or measures against a new reference (a new
        model version): an open episode ends at ``event_time``, announced as resolved
        with ``detail`` (and ``started_at``), a silent one silently; None if ``key`` is not
        in an episode. No cooldown follows: the drift did not go away, so the next episode
        (the new version's) is announced when it opens.

        >>> episodes = Episodes(clear_after=3, cooldown_seconds=0)
        >>> _ = episodes.observe(("fraud", "ks", "age"), True, 100.0, {}, origin=("predictions", 0, 41))
        >>> ended = episodes.end(("fraud", "ks", "age"), 500.0, {"reason": "feature_gone"})
        >>> (ended.status, ended.event_time, ended.detail["started_at"]), episodes.end(("fraud", "ks", "age"), 600.0, {})
        (('resolved', 500.0, 100.0), None)
        """
        key = _check_key(key)
        st = self._keys.get(key)
        if st is None or not st.active:
            return None
        st.active, st.clean = False, 0
        if st.silent:
            st.silent = False
            return None
        return self._alert(key, st, RESOLVED, st.severity, float(event_time), {**detail, "started_at": st.started_at})

    def _fire(self, key: Key, st: _KeyState, event_time: float, detail: dict,
              severity: str | None, origin: tuple | None) -> Alert:
        st.episode += 1
        st.started_at = event_time
        st.severity = severity or self.severity
        st.origin = tuple(_plain(list((event_time,) if origin is None else origin)))
        return self._alert(key, st, FIRING, st.severity, event_time, dict(detail() if callable(detail) else detail))

    @staticmethod
    def _alert(key: Key, st: _KeyState, status: str, severity: str, event_time: float,
               detail: dict) -> Alert:
        model, detector, feature = key
        return Alert(id=alert_id(model, detector, feature, status, *st.origin), status=status,
                     model=model, detector=detector, feature=feature, severity=severity,
                     event_time=event_time, episode=st.episode, detail=_plain(detail),
                     origin=list(st.origin))

    def active(self, key: Key) -> bool:
        """True while ``key`` is in an episode, announced or silent (for a gauge)."""
        st = self._keys.get(_check_key(key))
        return bool(st and st.active)

    def active_keys(self) -> list[Key]:
        return [k for k, st in self._keys.items() if st.active]

    def episode_count(self, key: Key) -> int:
        """Announced episodes of ``key`` so far."""
        st = self._keys.get(_check_key(key))
        return st.episode if st else 0

    def __repr__(self) -> str:
        return (f"Episodes(clear_after={self.clear_after}, cooldown_seconds={self.cooldown_seconds},"
                f" keys={len(self._keys)}, active={len(self.active_keys())})")


def _check_key(key) -> Key:
    key = tuple(key)
    if len(key) != 3 or not all(isinstance(p, str) for p in key):
        raise TypeError(f"key must be (model, detector, feature) strings, got {key!r}")
    return key
