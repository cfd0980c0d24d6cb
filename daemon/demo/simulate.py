"""A simulated model in production: predictions now, labels later, known changes.

Used by ``driftd demo``, the tests and the benchmarks. The model scores ``amount`` and
``age`` with a fixed rule; the world labels events with its own rule. At
``data_drift_at`` the ``age`` and ``country`` distributions shift (data drift that leaves
accuracy alone); at ``concept_drift_at`` the world's rule changes while the inputs stay
as they are (concept drift: accuracy falls). Labels come ``label_delay`` events after
their prediction; a share never comes and a share comes twice.

>>> stream = Simulation(n_events=3, label_delay=1, seed=1)
>>> [topic for topic, _, _ in stream.records()]
['predictions', 'predictions', 'labels', 'predictions', 'labels', 'labels']
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass


@dataclass
class Simulation:
    n_events: int = 40_000
    model: str = "fraud"
    data_drift_at: int | None = 20_000
    concept_drift_at: int | None = 30_000
    label_delay: int = 200
    missing_labels: float = 0.02
    duplicate_labels: float = 0.01
    extra_numeric_features: int = 0
    start_ts: float = 1_763_900_000.0
    seconds_per_event: float = 0.1
    seed: int = 7
    predictions_topic: str = "predictions"
    labels_topic: str = "labels"
    #: The served model, ``features -> (prediction, score)``; None: the built-in rule.
    #: Swap it (and ``model_version``) while records() runs to model a server that loads
    #: a newly promoted model.
    predictor: object = None
    model_version: str = "1"

    def __post_init__(self):
        #: Per prediction served: 1 if it was right (the world's label agreed), else 0.
        self.served: list[int] = []

    def prediction(self, i: int, rng: random.Random) -> tuple[dict, int]:
        """The prediction event of event ``i`` and the true label the world gives it."""
        drifted = self.data_drift_at is not None and i >= self.data_drift_at
        amount = rng.lognormvariate(3.5, 0.6)
        age = rng.gauss(48 if drifted else 40, 12)
        country = rng.choices(["DE", "FR", "IT"], weights=[3, 4, 3] if drifted else [5, 3, 2])[0]
        features = {"amount": round(amount, 2), "age": round(age, 1) if rng.random() > 0.03 else None, "country": country}
        for k in range(self.extra_numeric_features):
            features[f"x{k}"] = round(rng.gauss(0, 1), 4)
        if self.predictor is None:
            score = 1 / (1 + math.exp(-(amount - 40) / 8))
            prediction = int(score > 0.5)
        else:
            prediction, score = self.predictor(features)
        concept_changed = self.concept_drift_at is not None and i >= self.concept_drift_at
        threshold = 60 if concept_changed else 40
        truth = int(amount + rng.gauss(0, 4) > threshold)
        event = {
            "model": self.model, "model_version": self.model_version, "id": f"p-{i}", "ts": self.ts(i),
            "features": features, "prediction": prediction, "score": None if score is None else round(score, 4),
        }
        return event, truth

    def ts(self, i: int) -> float:
        return round(self.start_ts + i * self.seconds_per_event, 3)

    def records(self):
        """(topic, key, value) in the order a real system would write them."""
        rng = random.Random(self.seed)
        key = self.model.encode()
        due: dict[int, list] = {}
        for i in range(self.n_events + self.label_delay):
            if i < self.n_events:
                event, truth = self.prediction(i, rng)
                self.served.append(int(event["prediction"] == truth))
                yield self.predictions_topic, key, json.dumps(event).encode()
                copies = 0 if rng.random() < self.missing_labels else (2 if rng.random() < self.duplicate_labels else 1)
                if copies:
                    due.setdefault(i + self.label_delay, []).extend([(event["id"], truth, i)] * copies)
            for id_, truth, j in due.pop(i, []):
                label = {"model": self.model, "id": id_, "ts": self.ts(j) + self.label_delay * self.seconds_per_event, "label": truth}
                yield self.labels_topic, key, json.dumps(label).encode()

    def event_index(self, ts: float) -> int:
        """Which event a (prediction) event time belongs to."""
        return round((ts - self.start_ts) / self.seconds_per_event)
