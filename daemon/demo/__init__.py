"""`driftd demo`: the embedded broker, a simulated model server and the daemon in one process."""
