"""kafka-python's network client, closed only once its I/O thread has stopped.

Why: in kafka-python 3.0 a ``KafkaConsumer`` (and a ``KafkaAdminClient``) runs its event
loop on an I/O thread of its own (``kafka-io-*``), but ``close()`` closes the connections
from the caller's thread (``KafkaNetClient.close``: the connections first, the I/O thread
after). A response arriving at that moment wakes the I/O thread for a socket the caller is
closing, and it reads from it after the caller set it to None: kafka-python logs an ERROR
with a traceback (``'NoneType' object has no attribute 'recv'``, or ``Bad file
descriptor`` / ``Broken pipe``). Harmless (the client is going anyway), but an ERROR
traceback at every few stops of driftd, seen at the end of ``driftd demo`` and on SIGTERM;
reproduced with bare consumers closed while records flow (3 of 60 closes).

What: :class:`NetClient` stops the I/O thread first, then closes the connections; with no
loop running, the caller is then the only thread touching them. kafka-python takes it as
the ``kafka_client`` setting of any client (:func:`daemon.runtime.wiring.client_settings`
gives it to every client driftd makes). A producer has no I/O thread (its sender thread
drives the loop and closes the client itself): nothing changes for it.
"""

from __future__ import annotations

from kafka.net.compat import KafkaNetClient

__all__ = ["NetClient"]


class NetClient(KafkaNetClient):
    """``KafkaNetClient`` whose full ``close()`` stops the I/O thread before closing the
    connections (see the module docs)."""

    def close(self, node_id=None):
        net = getattr(self, "_net", None)  # (kafka-python 3.0's; another version: its own close)
        if node_id is None and net is not None:
            # Joins the I/O thread (it finishes its current turn: a read under way ends
            # before the socket is closed). The close below then runs what is left on the
            # loop in this thread (NetworkSelector.close drains it).
            net.stop()
        super().close(node_id)
