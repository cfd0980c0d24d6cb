"""Alert delivery: off the consumer thread, retried, at-least-once.

:class:`AlertSender` hands every :class:`~daemon.alerting.episodes.Alert` to every
sink. Each sink has its own worker thread, so a slow or dead webhook neither
blocks the Kafka consumer loop (``send`` only enqueues) nor delays the other
sinks. A sink gets the alerts of an episode key (model, detector, feature) in the
order they were sent: a later one waits until the sink is done with the earlier
(sent, rejected or given up). Failed deliveries are retried with exponential backoff and jitter; a
server's ``Retry-After`` holds back the whole sink (it speaks for the server,
not for one message), for at most ``max_backoff_seconds``. An alert is given up
on a sink only once an attempt at or after ``give_up_after_seconds`` failed:
never untried. An alert stays in :meth:`AlertSender.pending` until every
sink has finished with it, so the daemon can checkpoint it and re-send it
after a crash; receivers de-duplicate on the stable alert id.

The sinks (webhook, Kafka) live in :mod:`daemon.alerting.sinks` and are
re-exported here.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import threading
import time
from typing import Callable, Iterable

from daemon.alerting.sinks import (AlertLinks, KafkaSink, PermanentError, RetryableError, Sink, WebhookSink,
                                parse_retry_after, slack_text)
from daemon.alerting.episodes import Alert

__all__ = ["AlertLinks", "AlertSender", "KafkaSink", "OUTCOMES", "PermanentError", "RetryableError", "Sink",
           "WebhookSink", "parse_retry_after", "slack_text"]

log = logging.getLogger("driftd.alerting.sender")

#: Every value ``on_outcome`` can report; pre-create these metric labels.
OUTCOMES = ("sent", "failed_retrying", "gave_up", "rejected")
#: Ids of alerts every sink has finished with that are remembered, so that the same alert
#: handed over again is not sent twice (the newest so many; about 100 bytes each).
MAX_FINISHED_IDS = 10_000
#: A failing sink logs one warning when it starts failing, then one summary at most this
#: often (seconds), and one when it delivers again: not a line per alert per attempt
#: (362 pending alerts wrote 2,000 lines a minute).
LOG_EVERY_SECONDS = 60.0

class AlertSender:
    """Delivers alerts to sinks from background threads.

    ``send``, ``pending``, ``pending_records``, ``pending_count`` and ``close`` are
    thread-safe. ``on_outcome(sink_name, outcome)`` runs on a sink's worker thread; its
    exceptions are logged and ignored.

    ``pending`` alerts passed in (from a checkpoint: :class:`Alert` or its dict) are sent
    again, each to the sinks its record in ``delivery`` (``{id: record}``, see
    :meth:`pending_records`) does not name as done and with its give-up clock running
    from the record's ``first_due``; an alert without a record goes to every sink with a
    fresh clock (checkpoints of earlier versions). Times: ``give_up_after_seconds`` from
    when an alert was first due (default 3600), backoff from ``initial_backoff_seconds``
    (1) doubling up to ``max_backoff_seconds`` (300), which also caps a ``Retry-After``.
    ValueError for two sinks of one name.
    """

    def __init__(self, sinks: Iterable[Sink], *, on_outcome: Callable[[str, str], None] | None = None,
                 pending: Iterable[Alert | dict] = (), delivery: dict | None = None,
                 give_up_after_seconds: float = 3600.0, initial_backoff_seconds: float = 1.0,
                 max_backoff_seconds: float = 300.0, rng: random.Random | None = None):
        self._sinks = list(sinks)
        names = [s.name for s in self._sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        self._names = frozenset(names)
        self._on_outcome = on_outcome
        self.give_up_after_seconds = float(give_up_after_seconds)
        self.initial_backoff_seconds = float(initial_backoff_seconds)
        self.max_backoff_seconds = float(max_backoff_seconds)
        self._rng = rng or random.Random()
        # One lock for all shared state; one condition per worker to wake just that worker.
        self._lock = threading.Lock()
        self._pending: dict[str, _Entry] = {}
        # A restarted daemon hands over the undelivered alerts of its local checkpoint and
        # then those of the state topic's, mostly the same: sent once, not twice (a Slack
        # channel cannot de-duplicate on the id).
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._closing = False
        self._flush_deadline = math.inf
        self._workers = [_Worker(self, s) for s in self._sinks]
        self.hand_over(pending, delivery)
        for w in self._workers:
            w.thread.start()

    def send(self, alert: Alert, *, done: Iterable[str] = (), first_due: float | None = None) -> None:
        """Enqueue for every sink not in ``done`` and return at once; an id pending, or
        one every sink has finished with (the last :data:`MAX_FINISHED_IDS`), is ignored.

        ``first_due``: when the alert was first due (Unix time, seconds; default now), the
        start of its give-up clock. The alert is in :meth:`pending` when this returns, so
        a checkpoint taken afterwards includes it unless it was already delivered.
        """
        with self._lock:
            if alert.id in self._pending or alert.id in self._finished or not self._workers:
                return
            done = set(done)
            if done >= self._names:  # every sink here had finished with it before a restart
                self._remember(alert.id)
                return
            wall = time.time()
            entry = _Entry(alert, done, wall if first_due is None else first_due)
            if self._closing:
                log.warning("alert %s sent after close(): kept as pending, not delivered", alert.id)
            self._pending[alert.id] = entry
            now = time.monotonic()
            # The give-up clock goes on from when it was first due, across restarts.
            deadline = now + entry.first_due + self.give_up_after_seconds - wall
            for w in self._workers:
                if w.sink.name not in done:
                    w.jobs[alert.id] = _Job(alert, deadline, now, entry.first_due)
                    w.wake.notify()

    def hand_over(self, alerts: Iterable[Alert | dict], delivery: dict | None = None) -> None:
        """:meth:`send` each of ``alerts`` (a checkpoint's, :class:`Alert` or its dict) with
        its record in ``delivery`` ({id: {"done": [sink names], "first_due": Unix time}}):
        only to the sinks not done. An alert without a record goes to every sink."""
        delivery = delivery or {}
        for alert in alerts:
            alert = alert if isinstance(alert, Alert) else Alert.from_dict(alert)
            record = delivery.get(alert.id) or {}
            self.send(alert, done=record.get("done", ()), first_due=record.get("first_due"))

    def pending(self) -> list[Alert]:
        """Alerts some sink has not finished with (sent, rejected or given up), oldest first."""
        with self._lock:
            return [entry.alert for entry in self._pending.values()]

    def pending_records(self) -> tuple[list[Alert], dict[str, dict]]:
        """What a checkpoint keeps, taken at one instant: the :meth:`pending` alerts and, by
        id, their delivery records ``{"done": [names of the sinks finished with it],
        "first_due": Unix time it was first due}`` (for ``delivery`` / :meth:`hand_over`)."""
        with self._lock:
            entries = list(self._pending.values())
            return ([e.alert for e in entries],
                    {e.alert.id: {"done": sorted(e.done), "first_due": e.first_due} for e in entries})

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def backlog(self) -> dict[str, tuple[int, float | None]]:
        """By sink name: (alerts the sink is not done with, when the oldest of them was
        first due, Unix time, or None when there are none)."""
        with self._lock:
            return {w.sink.name: w.backlog() for w in self._workers}

    def close(self, timeout: float = 5.0) -> None:
        """Try to deliver what is pending for up to ``timeout`` seconds, then stop the workers.

        What is left stays in :meth:`pending` for the final checkpoint. A
        delivery in flight at the deadline may overrun it by a sink timeout.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            self._flush_deadline = min(self._flush_deadline, deadline)
            for w in self._workers:
                w.wake.notify()
        for w in self._workers:
            w.thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
            if w.thread.is_alive():
                log.warning("alert sink %s still busy after close(%.1f s)", w.sink.name, timeout)

    def _backoff(self, attempts: int) -> float:
        """Capped exponential backoff with "equal jitter": between half and all of the cap."""
        # (The power capped: past 2 ** 1023 it raised OverflowError, after a thousand attempts
        # of a tiny initial wait; a float product past the largest float is inf: the cap wins.)
        cap = min(self.max_backoff_seconds, self.initial_backoff_seconds * 2.0 ** min(attempts - 1, 1000))
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def _finish(self, worker: "_Worker", alert_id: str) -> None:
        """Called under the lock when a sink is done with an alert, whatever the outcome."""
        worker.jobs.pop(alert_id, None)
        entry = self._pending.get(alert_id)
        if entry is not None:
            entry.done.add(worker.sink.name)
            if entry.done >= self._names:
                del self._pending[alert_id]
                self._remember(alert_id)

    def _remember(self, alert_id: str) -> None:
        self._finished[alert_id] = None
        if len(self._finished) > MAX_FINISHED_IDS:
            self._finished.popitem(last=False)

    def _report(self, sink_name: str, outcome: str) -> None:
        if self._on_outcome is None:
            return
        try:
            self._on_outcome(sink_name, outcome)
        except Exception:
            log.exception("on_outcome callback failed for sink %s", sink_name)

    def __repr__(self) -> str:
        return f"AlertSender(sinks={[s.name for s in self._sinks]}, pending={self.pending_count()})"


def episode_key(alert: Alert) -> tuple[str, str, str]:
    """What a sink delivers in order: (model, detector, feature), an info alert's kind for its detector."""
    return alert.model, alert.detector or alert.kind, alert.feature


class _Entry:
    """A pending alert: the names of the sinks done with it (kept across restarts, so may
    name sinks no longer configured; those still to do are the others), and when it was
    first due (Unix time)."""

    __slots__ = ("alert", "done", "first_due")

    def __init__(self, alert: Alert, done: set[str], first_due: float):
        self.alert, self.done, self.first_due = alert, done, float(first_due)


class _Job:
    """One alert's delivery state for one sink (``deadline``, ``next_at``: monotonic clock;
    ``first_due``: Unix time)."""

    __slots__ = ("alert", "deadline", "next_at", "attempts", "first_due")

    def __init__(self, alert: Alert, deadline: float, next_at: float, first_due: float):
        self.alert, self.deadline, self.next_at, self.attempts = alert, deadline, next_at, 0
        self.first_due = first_due


class _Worker:
    """The thread that feeds one sink; its state is guarded by the sender's lock."""

    def __init__(self, sender: AlertSender, sink: Sink):
        self.sender, self.sink = sender, sink
        self.jobs: dict[str, _Job] = {}  # by alert id, in the order sent
        self.not_before = 0.0  # from Retry-After: the sink's server asked for a pause
        self.failures = _FailureLog(sink.name)
        self.wake = threading.Condition(sender._lock)
        self.thread = threading.Thread(target=self._run, name=f"driftd-alerts-{sink.name}",
                                       daemon=True)

    def backlog(self) -> tuple[int, float | None]:
        """Under the lock: (jobs, when the oldest was first due, Unix time, or None)."""
        return len(self.jobs), min((j.first_due for j in self.jobs.values()), default=None)

    def _next(self) -> _Job | None:
        """Block until a job is due; returns it, or None when it is time to stop."""
        s = self.sender
        with self.wake:
            while True:
                now = time.monotonic()
                if s._closing and (now >= s._flush_deadline or not self.jobs):
                    return None
                # Only the first job of an episode key (in the order sent) is tried, so that
                # a resolved alert never reaches the sink before its firing one (each retried
                # on its own jittered backoff, 92 of 181 did after an outage).
                heads: dict[tuple, _Job] = {}
                for j in self.jobs.values():
                    heads.setdefault(episode_key(j.alert), j)
                job = min(heads.values(), key=lambda j: j.next_at, default=None)
                due = max(job.next_at, self.not_before) if job else math.inf
                if now >= due:
                    job.attempts += 1
                    return job
                limit = min(due, s._flush_deadline if s._closing else math.inf)
                self.wake.wait(None if limit == math.inf else limit - now)

    def _run(self) -> None:
        while (job := self._next()) is not None:
            outcome, error = self._attempt(job.alert)
            with self.sender._lock:
                if outcome == "failed_retrying":
                    outcome = self._reschedule(job, getattr(error, "retry_after", None))
                if outcome != "failed_retrying":
                    self.sender._finish(self, job.alert.id)
                backlog = self.backlog()
            self.failures.note(outcome, error, *backlog)
            self._log(job, outcome, error)
            self.sender._report(self.sink.name, outcome)

    def _attempt(self, alert: Alert) -> tuple[str, Exception | None]:
        try:
            self.sink.deliver(alert)
            return "sent", None
        except PermanentError as exc:
            return "rejected", exc
        except Exception as exc:  # RetryableError, or a bug/oddity: retrying is the safe side
            if not isinstance(exc, RetryableError):
                log.warning("alert sink %s raised an unexpected error", self.sink.name,
                            exc_info=True)
            return "failed_retrying", exc

    def _reschedule(self, job: _Job, retry_after: float | None) -> str:
        """Under the lock: plan the next try, or say "gave_up" once the job's deadline has passed.

        A job is given up only after an attempt at or past its deadline failed, never
        untried. ``Retry-After`` pauses the whole sink, but for at most the sender's
        ``max_backoff_seconds``: a server asking for hours (28 h was seen) must not hold
        back, or make driftd drop, alerts created meanwhile."""
        now = time.monotonic()
        if retry_after is not None:
            self.not_before = max(self.not_before, now + min(retry_after, self.sender.max_backoff_seconds))
        if now >= job.deadline:
            return "gave_up"
        # Backoff (never before the sink's pause: see _next), and the last try lands on the deadline.
        job.next_at = min(now + self.sender._backoff(max(job.attempts, 1)), job.deadline)
        return "failed_retrying"

    def _log(self, job: _Job, outcome: str, error: Exception | None) -> None:
        alert, name = job.alert, self.sink.name
        if outcome == "gave_up":
            log.error("alert %s (%s %s) gave up on sink %s after %d attempts: %s", alert.id,
                      alert.model, alert.status, name, job.attempts, error)
        elif outcome == "rejected":
            log.error("alert %s rejected by sink %s: %s", alert.id, name, error)
        elif outcome == "failed_retrying":  # the sink's summary says it (_FailureLog)
            log.debug("alert %s: sink %s failed (attempt %d), retrying: %s", alert.id, name,
                      job.attempts, error)


class _FailureLog:
    """A sink's failed attempts, told in the log as a few summaries (one worker thread's)."""

    def __init__(self, sink_name: str):
        self.name = sink_name
        self.since: float | None = None  # monotonic time of the first failure of this outage
        self.failed = self.failed_total = 0
        self.logged_at = 0.0

    def note(self, outcome: str, error: Exception | None, pending: int, oldest_due: float | None) -> None:
        now = time.monotonic()
        if outcome == "sent" and self.since is not None:
            log.warning("alert sink %s delivers again after %.0f s of failures (%d failed attempts); %d alert(s) "
                        "pending", self.name, now - self.since, self.failed_total, pending)
            self.since = None
        if outcome != "failed_retrying":
            return
        self.failed += 1
        self.failed_total += 1
        oldest = 0.0 if oldest_due is None else max(0.0, time.time() - oldest_due)
        if self.since is None:
            self.since, self.failed_total = now, 1
            log.warning("alert sink %s failing, retrying with backoff: %s; %d alert(s) pending", self.name, error,
                        pending)
        elif now - self.logged_at >= LOG_EVERY_SECONDS:
            log.warning("alert sink %s still failing after %.0f s: %d attempt(s) failed in the last %.0f s, the "
                        "last with %s; %d alert(s) pending, the oldest due %.0f s ago", self.name, now - self.since,
                        self.failed, now - self.logged_at, error, pending, oldest)
        else:
            return
        self.failed, self.logged_at = 0, now
