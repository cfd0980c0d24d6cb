"""Alerting: drift episodes (one alert per episode, ids from what opened it), the sender
(retries, backoff, give-up) and its sinks (webhook, Slack-compatible, Kafka)."""
