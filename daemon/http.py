"""HTTP endpoints: /metrics, /livez, /readyz, /status.

- ``/livez``: 200 while the consumer loop has gone round recently (a stuck loop is a
  restart case for Kubernetes).
- ``/readyz``: 200 when partitions are assigned, their state restored, and the broker
  answered the last commit; 503 with the reason otherwise.
- ``/status``: JSON for humans and scripts: models, detectors, counts.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class HttpServer:
    def __init__(self, host: str, port: int, registry, health, status):
        """``health()`` gives (live, ready, reason); ``status()`` a JSON-able dict."""
        handler = type("Handler", (_Handler,), {"registry": registry, "health": staticmethod(health), "status": staticmethod(status)})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="driftd-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
            self._send(200, json.dumps(self.status(), indent=2, default=str).encode(), "application/json")
        else:
            self._send(404, b"not found: try /metrics, /livez, /readyz or /status\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - scrapes every few seconds would flood the log
        pass
