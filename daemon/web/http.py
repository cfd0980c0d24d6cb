"""HTTP endpoints: /metrics, /livez, /readyz, /status, /report.

- ``/livez``: 200 while the consumer loop goes round (a loop that stood still for
  ``http.liveness_timeout_seconds`` is a restart case for Kubernetes). A broker that cannot
  be reached does not stop the loop, so it never fails /livez: restarting would not help.
- ``/readyz``: 200 when partitions are assigned, their state restored, and the broker
  answered the last commit; 503 with the reason otherwise.
- ``/status``: JSON for humans and scripts: models, detectors, counts. Always RFC 8259
  JSON (see :func:`json_body`).
- ``/report``: the HTML drift report of the models' current state (:mod:`daemon.web.report`;
  501 naming the extra to install when the plotting library is missing).
"""

from __future__ import annotations

import json
import math
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class ListenError(OSError):
    """The endpoints cannot listen on ``host``:``port`` (in use, not permitted, no such
    address); the message says which and how to change it."""

    def __init__(self, host: str, port: int, reason: str):
        super().__init__(f"cannot listen on {host}:{port} for HTTP: {reason}")
        self.host, self.port, self.reason = host, port, reason


def check_listen(host: str, port: int) -> None:
    """Raise :class:`ListenError` if ``host``:``port`` cannot be bound now (as
    :class:`HttpServer` binds it: address reuse on), before anything else is started (the
    embedded broker, whose address ``driftd run`` prints first)."""
    probe = ThreadingHTTPServer.address_family
    with socket.socket(probe, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ListenError(host, port, (e.strerror or str(e)).lower()) from None


class HttpServer:
    def __init__(self, host: str, port: int, registry, health, status):
        """``health()`` gives (live, ready, reason); ``status()`` a JSON-able dict.

        Raises :class:`ListenError` at once if the address cannot be bound."""
        handler = type("Handler", (_Handler,), {"registry": registry, "health": staticmethod(health), "status": staticmethod(status)})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise ListenError(host, port, (e.strerror or str(e)).lower()) from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="driftd-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def plain(value):
    """A copy of ``value`` that strict JSON can carry: non-finite floats (NaN, ±Infinity,
    e.g. a precision with a 0/0 baseline) become None, numpy scalars Python numbers,
    arrays, tuples and sets lists, keys strings, anything else its ``str``.

    >>> import numpy as np
    >>> plain({"p": float("nan"), 1: (np.float32(0.5), float("inf")), "n": np.int64(3)})
    {'p': None, '1': [0.5, None], 'n': 3}
    """
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if callable(getattr(value, "tolist", None)):
        value = value.tolist()  # numpy: a scalar to the Python number, an array to lists
        if isinstance(value, list):
            return [plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def json_body(value) -> bytes:
    """``value`` as RFC 8259 JSON (UTF-8): what every JSON endpoint sends. ``allow_nan=False``
    makes a value :func:`plain` missed an error here rather than a bare NaN on the wire.

    >>> json_body({"precision": float("nan")})
    b'{\\n  "precision": null\\n}'
    """
    return json.dumps(plain(value), indent=2, allow_nan=False).encode()


class _Handler(BaseHTTPRequestHandler):
    registry = None

    def do_GET(self):  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/readyz"):
            live, ready, reason = self.health()
            ok = live if path == "/livez" else ready
            self._send(200 if ok else 503, (("ok" if ok else reason) + "\n").encode(), "text/plain; charset=utf-8")
        elif path == "/status":
            self._send(200, json_body(self.status()), "application/json")
        elif path == "/report":
            from daemon.web import report  # the plotting library only when a report is asked for

            self._send(*report.http_page(self.status()))
        else:
            self._send(404, b"not found: try /metrics, /livez, /readyz, /status or /report\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - scrapes every few seconds would flood the log
        pass
