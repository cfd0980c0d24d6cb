"""driftd without Kafka: files of past events read as input (:mod:`daemon.offline.inputs`),
replayed through the daemon's own per-model code (:mod:`daemon.offline.replay`), what the
report needs kept on the way (:mod:`daemon.offline.recording`), and the ``driftd replay``
command around them (:mod:`daemon.offline.command`)."""
