"""Making a Kafka client without making a stop wait for it.

kafka-python builds a client (producer, consumer, admin) only once it has reached a broker,
and waits for one up to ``bootstrap_timeout_ms`` (30 s by default): a daemon asked to stop
meanwhile (SIGTERM while the broker is down at start-up) waited that long, as long as many
orchestrators' grace period before they kill. :func:`attempt` builds the client in a thread
of its own and returns as soon as it is built or a stop is asked; a client built after its
caller gave up is closed at once.

>>> import threading, time
>>> stop = threading.Event()
>>> attempt(lambda: "client", stop)
'client'
>>> stop.set()
>>> attempt(lambda: time.sleep(5), stop, poll_seconds=0.01) is None   # stopped: no 5 s wait
True
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("driftd")


def attempt(make, stop: threading.Event, poll_seconds: float = 0.2):
    """``make()``'s result, or None if ``stop`` is set before it returns (checked every
    ``poll_seconds``). Raises what ``make`` raised. ``make`` runs in a daemon thread: given
    up, it runs on until it returns, and its result is then closed (its ``close()``, or that
    of each item of a tuple, where there is one; an error it raises is dropped)."""
    lock = threading.Lock()
    done = threading.Event()
    outcome: dict = {}

    def run() -> None:
        try:
            made, error = make(), None
        except BaseException as e:  # noqa: BLE001 - handed to the caller, who decides
            made, error = None, e
        with lock:
            if not outcome.get("abandoned"):
                outcome.update(made=made, error=error)
                done.set()
                return
        _close(made)

    threading.Thread(target=run, name="driftd-connect", daemon=True).start()
    while not done.wait(poll_seconds):
        if stop.is_set():
            with lock:
                if not done.is_set():
                    outcome["abandoned"] = True
                    return None
    if outcome["error"] is not None:
        raise outcome["error"]
    return outcome["made"]


def _close(made) -> None:
    if isinstance(made, tuple):  # (bootstrap servers, an embedded broker started for them)
        for part in made:
            _close(part)
        return
    close = getattr(made, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as e:  # noqa: BLE001 - a client nobody uses any more
        log.debug("closing a client made after a stop: %s", e)
