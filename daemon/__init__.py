"""driftd, the process: the folders follow the path of one event.

- ``cli``, ``config`` and ``validation``: the command, the one place where every option is
  documented, and the rules between their values.
- ``kafka/``: Kafka I/O and state: dead letters, checkpoints, the identity of the logs the
  offsets point into, the embedded broker.
- ``stream/``: what happens to one event: decoding, the label join, a partition's state,
  a model's pipeline (reference, columns and their tests, label-side tests, decisions).
- ``alerting/``: drift episodes, the alert sender and its sinks.
- ``web/``: ``/metrics``, ``/status``, the health probes and the HTML drift report.
- ``runtime/``: the consumer loop, checkpoints, partitions moving between replicas, the
  calibration worker, wiring, logging, the configuration dry run.
- ``offline/``: ``driftd replay``: recorded events through the same pipelines as the
  daemon's (no second copy of the per-model logic), and the data of the drift report.
- ``federation/``: model updates shared with other deployments (FedAvg).
- ``demo/``: the demo and its simulated model server, apart from the daemon core.
"""
