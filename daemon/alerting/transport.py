"""One webhook POST: a total deadline, and the redirects a POST may follow.

:func:`post` sends a body and returns the final answer's status and headers. Two things
``urllib`` alone does not do, and a webhook needs:

* **A deadline for the whole request.** urllib's ``timeout`` bounds each socket operation,
  so a receiver trickling its answer (a byte every 2 s) held a sink for ever. Here the
  sockets of the request are shut down when ``timeout`` seconds have passed since it
  started (connecting, sending, the answer's headers and body, any redirect), and the
  request fails as timed out.
* **Redirects that keep the POST.** 301, 302, 307 and 308 are followed with the same
  method, body and headers (signature included: it signs the body and the id, not the
  URL), at most :data:`MAX_REDIRECTS` times; urllib would turn a POST into a bodiless GET
  on 301/302 and refuse 307/308. A 303 (See Other: "GET it there") and a redirect from
  https to http (the alert would travel in the clear) are not followed: the 3xx is the
  answer.

Proxies from the environment (``https_proxy``, ...) apply as with urllib.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["MAX_REDIRECTS", "FOLLOWED", "TimedOut", "post"]

#: Redirects followed with the same POST; how many at most in one request.
FOLLOWED = (301, 302, 307, 308)
MAX_REDIRECTS = 5


class TimedOut(OSError):
    """The request had no complete answer within its deadline."""


def post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, http.client.HTTPMessage]:
    """POST ``body`` to ``url``; (status, headers) of the final answer, its body read.

    ``timeout`` (seconds) bounds the whole request. Raises :class:`TimedOut` past it, and
    ``OSError`` / ``http.client.HTTPException`` for a connection that fails otherwise.
    """
    watch = _Watch()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    request.watch = watch
    timer = threading.Timer(timeout, watch.expire)
    timer.daemon = True
    timer.start()
    try:
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                response.read()
                return response.status, response.headers
        except urllib.error.HTTPError as exc:  # any answer but 2xx (and a redirect not followed)
            status, answer = exc.code, exc.headers
            exc.close()
            return status, answer
    except (OSError, http.client.HTTPException):
        if watch.expired:
            raise TimedOut(f"no complete answer within {timeout:g} s") from None
        raise
    finally:
        timer.cancel()


class _Watch:
    """The sockets of one request, shut down together at its deadline."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sockets: list = []
        self.expired = False

    def connection(self, cls):
        """A factory of ``cls`` connections whose sockets this watch can cut."""
        def make(*args, **kwargs):
            conn = cls(*args, **kwargs)
            connect = conn.connect

            def watched_connect():
                connect()
                self._add(conn.sock)
            conn.connect = watched_connect
            return conn
        return make

    def _add(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _cut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _cut(sock)


def _cut(sock) -> None:
    # The plain socket's shutdown, also for a TLS one (whose own drops its SSL object, which a
    # reader blocked in another thread still uses): a blocked recv returns at once.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(req.watch.connection(http.client.HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(req.watch.connection(http.client.HTTPSConnection), req, context=self._context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        """The same POST at ``newurl`` (see the module docstring), or None: the 3xx is the answer."""
        if code not in FOLLOWED:
            return None
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and urllib.parse.urlsplit(newurl).scheme != "https":
            return None
        again = urllib.request.Request(newurl.replace(" ", "%20"), data=req.data, headers=dict(req.headers),
                                       method="POST")
        again.watch = req.watch
        return again


_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler, _Redirects)
