"""driftd, the process: the folders follow the path of one event.

- ``cli``, ``config`` and ``validation``: the command, the one place where every option is
  documented, and the rules between their values.
- ``kafka/``: Kafka I/O and state: dead letters, checkpoints, the identity of the logs the
  offsets point into, the embedded broker.
- ``stream/``: what happens to one event: decoding, the label join, a partition's state,
  a model's pipeline (reference, columns and their tests, label-side tests, decisions).
- ``alerting/``: drift episodes, the alert sender and its sinks.
- ``web/``: ``/metrics``, ``/status`` and the health probes.
- ``runtime/``: the consumer loop, rebalances, the calibration worker, wiring, logging,
  the configuration dry run.
- ``demo/``: the demo and its simulated model server, apart from the daemon core.
"""
