"""``driftd demo``: the embedded broker, a simulated model, the daemon, and a summary.

A simulated model (:mod:`daemon.demo.simulate`) writes predictions and delayed labels with a
known data drift and a known concept drift; the daemon runs as it would in production
(consumer group, checkpoints, /metrics) and sends its alerts to a local webhook receiver
that checks their Standard Webhooks signatures. The demo prints a live status line and
ends with which detectors fired, at which event, and how long after the true change.
"""

from __future__ import annotations

import logging
from collections import Counter
import secrets
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kafka import KafkaProducer

from daemon import config as config_module
from daemon.runtime import logs
from daemon.web.http import ListenError
from daemon.runtime.service import Daemon
from daemon.demo.simulate import Simulation


class _Receiver:
    """Collects the daemon's webhook alerts, verifying each signature."""

    def __init__(self, secret: str):
        from standardwebhooks import Webhook

        verifier = Webhook(secret)
        self.alerts: list[dict] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    receiver.alerts.append(verifier.verify(body, dict(self.headers.items())))
                except Exception:  # noqa: BLE001 - any failed verification counts alike
                    receiver.bad_signatures += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def demo_config(state_dir: str, port: int, webhook_url: str, secret_env: str) -> config_module.Config:
    return config_module.from_dict({
        "kafka": {"bootstrap_servers": "embedded", "create_topics": 1, "poll_timeout_ms": 100, "session_timeout_ms": 3000},
        "http": {"host": "127.0.0.1", "port": port},
        "state": {"dir": state_dir, "checkpoint_interval_seconds": 2},
        "registry": {"dir": f"{state_dir}/registry", "key_env": "DRIFTD_DEMO_REGISTRY_KEY"},
        "alerts": {"cooldown_seconds": 600, "retry_initial_seconds": 0.2, "sinks": [
            {"type": "webhook", "url": webhook_url, "secret": {"env": secret_env}}]},
        "model_defaults": {"reference_size": 5000, "window": 1000, "stride": 100, "ert": 200_000,
                           "decay_window": 1000, "decay_reference_size": 3000},
        "models": {"fraud": {
            # driftd's own learner: it learns every label and competes with the deployed model.
            "learners": {"tree": {"HoeffdingAdaptiveTreeClassifier": {"seed": 1}}},
            "retrain_cooldown": 1000, "promotion_min_events": 300, "promotion_margin": 0.02,
            "promotion_min_interval_seconds": 1000, "promotion_window": 1000,
        }},
        "log_level": "WARNING",
    })


def main(events: int | None = None, seed: int = 7, port: int = 9108, out=print) -> int:
    """The demo: ``events`` predictions (default 40,000; fewer than
    :data:`daemon.cli.DEMO_MIN_EVENTS` is refused with exit 2: the drifts would come
    before the reference is complete), ``seed`` of the simulation, /metrics on ``port``.
    Exit 0 when the daemon processed every event, 1 if it did not start or finish."""
    import os

    from daemon.cli import DEMO_MIN_EVENTS

    if events is not None and events < DEMO_MIN_EVENTS:
        out(f"driftd demo: --events {events:,} is too short for the demo's scenario: at least {DEMO_MIN_EVENTS:,}")
        return 2
    n = 40_000 if events is None else events
    sim = Simulation(n_events=n, data_drift_at=n * 3 // 8, concept_drift_at=n // 2, seed=seed)
    secret = "whsec_" + __import__("base64").b64encode(secrets.token_bytes(24)).decode()
    os.environ["DRIFTD_DEMO_WEBHOOK_SECRET"] = secret
    os.environ["DRIFTD_DEMO_REGISTRY_KEY"] = secrets.token_hex(32)
    receiver = _Receiver(secret)
    logs.configure(logging.WARNING, [secret, os.environ["DRIFTD_DEMO_REGISTRY_KEY"]], fmt="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("driftd").setLevel(logging.ERROR)  # the demo prints its own summary of alerts
    with tempfile.TemporaryDirectory(prefix="driftd-demo-") as state_dir:
        try:
            config = demo_config(state_dir, port, receiver.url, "DRIFTD_DEMO_WEBHOOK_SECRET")
        except config_module.ConfigError as e:
            out(f"driftd demo: {e}")
            return 2
        daemon = Daemon(config)
        failed: list[BaseException] = []

        def run():
            try:
                daemon.run()
            except BaseException as e:  # noqa: BLE001 - reported below, at once
                failed.append(e)

        thread = threading.Thread(target=run, name="driftd", daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not daemon.wait_started(0.1):
            if failed and isinstance(failed[0], ListenError):
                out(f"driftd demo: {failed[0]}; run it with --port N (0: any free port)")
                return 1
            if not thread.is_alive() or time.monotonic() > deadline:
                out(f"driftd demo: the daemon did not start{f': {failed[0]}' if failed else ''}")
                return 1
        out(f"driftd demo: embedded broker at {daemon.bootstrap}; metrics at http://127.0.0.1:{daemon.http_port}/metrics")
        out(f"  simulating {n} predictions: data drift at event {sim.data_drift_at}, concept drift at event {sim.concept_drift_at}")
        progress = _Unrepeated(out)
        server = _ModelServer(sim, config.registry.dir, progress)
        produced = _produce(daemon, sim, receiver, progress, server)
        ok = _wait_processed(daemon, produced, receiver, progress)
        daemon.stop()
        thread.join(30)
    _summary(sim, receiver, out)
    _lifecycle_summary(sim, server, out)
    return 0 if ok else 1


class _Unrepeated:
    """``out`` for progress lines: a line equal to the one before it is not printed again
    (the daemon may not have moved between two looks)."""

    def __init__(self, out):
        self.out = out
        self.last = None

    def __call__(self, line: str) -> None:
        if line != self.last:
            self.last = line
            self.out(line)


class _ModelServer:
    """The simulated model server's side of the lifecycle: it watches the registry and,
    when driftd promotes a model, loads it (signature checked) and serves with it."""

    def __init__(self, sim: Simulation, registry_dir: str, out):
        self.sim = sim
        self.directory = f"{registry_dir}/{sim.model}"
        self.out = out
        self.loaded: list[tuple[int, int]] = []  # (event index, version)

    def poll(self) -> None:
        import os

        from learners.loader import load_model
        from learners.spec import clean_features

        versions = sorted(int(v) for v in os.listdir(self.directory) if v.isdigit()) if os.path.isdir(self.directory) else []
        if not versions or (self.loaded and self.loaded[-1][1] == versions[-1]):
            return
        estimator, manifest = load_model(f"{self.directory}/{versions[-1]}", key_env="DRIFTD_DEMO_REGISTRY_KEY")

        def predict(features, model=estimator):
            x = clean_features(features)
            proba = model.predict_proba_one(x)
            return int(model.predict_one(x) or 0), round(float(proba.get(1, proba.get(True, 0.0))), 4)

        self.sim.predictor = predict
        self.sim.model_version = str(manifest["version"] + 1)  # the rule-based model was version 1
        self.loaded.append((len(self.sim.served), manifest["version"]))
        self.out(f"  event {len(self.sim.served):>6}: the model server loads the registry's version {manifest['version']} "
                 f"({manifest.get('learner', '')}) and stamps its predictions model_version {self.sim.model_version}")


def _produce(daemon: Daemon, sim: Simulation, receiver: _Receiver, out, server: _ModelServer, rate: float = 4000) -> dict:
    """Write the simulation's events at ``rate`` predictions per second, like live traffic."""
    producer = KafkaProducer(bootstrap_servers=daemon.bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    counts = {"predictions": 0, "labels": 0}
    started = last = time.monotonic()
    for topic, key, value in sim.records():
        producer.send(topic, key=key, value=value)
        counts[topic] += 1
        if counts[topic] % 500 == 0 and topic == "predictions":
            server.poll()
            ahead = counts[topic] / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            # A live model server is never far ahead of its monitoring: wait for the daemon
            # (so that a promotion can reach the server while the stream goes on).
            deadline = time.monotonic() + 30
            while _processed(daemon)["predictions"] < counts[topic] - 2000 and time.monotonic() < deadline:
                time.sleep(0.05)
            if time.monotonic() - last > 1:
                last = time.monotonic()
                _status(daemon, receiver, out)
    producer.flush()
    producer.close()
    return counts


def _processed(daemon: Daemon) -> dict:
    with daemon.lock:
        totals = {"predictions": 0, "labels": 0}
        for state in daemon.states.values():
            for (model, kind), count in state.processed.items():
                totals[kind + "s"] += count
        return totals


def _status(daemon: Daemon, receiver: _Receiver, out) -> None:
    done = _processed(daemon)
    with daemon.lock:
        active = sorted(f"{n}/{f}" for s in daemon.states.values() for p in s.models.values()
                        for n, f, d in p.detectors() if d.drift)
    line = f"  processed {done['predictions']:>6} predictions, {done['labels']:>6} labels; alerts {len(receiver.alerts):>2}; drifting: {', '.join(active) or '-'}"
    out(line[:160])


def _wait_processed(daemon: Daemon, produced: dict, receiver: _Receiver, out, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _processed(daemon) == produced:
            _status(daemon, receiver, out)
            time.sleep(1.0)  # let the last alerts reach the receiver
            return True
        _status(daemon, receiver, out)
        time.sleep(1.0)
    out(f"driftd demo: timed out; produced {produced}, processed {_processed(daemon)}")
    return False


def _summary(sim: Simulation, receiver: _Receiver, out) -> None:
    out("\nsummary: first alert of each detector")
    firing = {}
    for alert in receiver.alerts:
        data = alert.get("data", alert)
        if data.get("status") == "firing":
            key = f"{data['detector']}/{data['feature']}"
            firing.setdefault(key, sim.event_index(data["event_time"]))
    if not firing:
        out("  no detector fired")
    for key, at in sorted(firing.items(), key=lambda kv: kv[1]):
        concept = key.startswith(("adwin", "decay", "ddm", "eddm", "hddm", "pagehinkley", "kswin"))
        change = sim.concept_drift_at if concept else sim.data_drift_at
        kind = "concept" if concept else "data"
        when = f"{at - change:+} events after the {kind} drift" if at >= change else f"FALSE ALARM {change - at} events before the {kind} drift"
        out(f"  {key:<22} at event {at:>6}  ({when})")
    # Firing and resolved alerts of drift episodes, and informational ones (a promotion).
    data = [a.get("data", a) for a in receiver.alerts]
    kinds = Counter(d.get("kind", "info") if d.get("status") == "info" else d.get("status", "?") for d in data)
    out(f"alerts received: {len(receiver.alerts)} ({', '.join(f'{n} {k}' for k, n in kinds.most_common())}; "
        f"signatures verified, {receiver.bad_signatures} bad)")


def _lifecycle_summary(sim: Simulation, server: _ModelServer, out) -> None:
    """Accuracy of what the model server served: before the concept drift, right after it,
    and after the promoted model took over."""
    served, change = sim.served, sim.concept_drift_at

    def accuracy(start, end):
        window = served[max(0, start):end]
        return f"{100 * sum(window) / len(window):5.1f}%" if window else "    -"

    def line(label: str, start: int, end: int) -> str:
        return f"  {f'{label} (events {start}-{end}):':<48} {accuracy(start, end)}"

    out("\nlifecycle: accuracy of the served predictions")
    out(line("before the concept drift", change - 3000, change))
    out(line("right after it", change, change + 2000))
    if server.loaded:
        at, version = server.loaded[0]
        out(f"  promoted version {version} served from event {at} ({at - change} events after the change)")
        out(line("after the promotion", at, len(served)))
    else:
        out("  no model was promoted")


if __name__ == "__main__":
    sys.exit(main())
