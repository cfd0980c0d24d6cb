"""Kafka I/O and state: dead letters, checkpoints sealed with their offsets, the identity of
the logs those offsets point into, and the embedded broker for development."""
