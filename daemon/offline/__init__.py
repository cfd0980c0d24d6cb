"""driftd without Kafka: replay files of past events through the daemon's own per-model
code (:mod:`daemon.offline.replay`) and read them back as input (:mod:`daemon.offline.inputs`)."""
