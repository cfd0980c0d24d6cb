"""HTTP: /metrics (Prometheus), /status (strict JSON), /livez and /readyz."""
