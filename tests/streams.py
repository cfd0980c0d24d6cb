"""A model's event stream with drift episodes that start and end, for the alert tests.

Predictions carry a numeric feature ``x`` (shifted by ``shift`` standard deviations while
``data_shift`` lasts), a categorical ``country``, an integer code ``code``, a constant
``const`` and a score; the model predicts ``x > 0``. Labels come ``label_delay`` events
after their prediction; the model is right 90% of the time, 55% while ``accuracy_drop``
lasts. Records are (topic, key, value) in the order a producer would write them.
"""

from __future__ import annotations

import json
import math
import random

START_TS = 1_700_000_000.0
STEP = 0.1  # seconds between predictions (event time)


def records(n: int, predictions: str, labels: str, model: str = "m", seed: int = 1,
            data_shift: tuple | None = (2000, 2700), shift: float = 1.5,
            accuracy_drop: tuple | None = (3000, 3700), label_delay: int = 20) -> list:
    rng = random.Random(seed)
    key = model.encode()
    out, due = [], {}
    for i in range(n + label_delay):
        if i < n:
            shifted = data_shift is not None and data_shift[0] <= i < data_shift[1]
            x = rng.gauss(shift if shifted else 0.0, 1.0)
            features = {"x": round(x, 4), "country": rng.choice("ABC" if not shifted else "AAC"),
                        "code": rng.randint(1, 4), "const": 0}
            if rng.random() < 0.02:
                features["x"] = None
            prediction = int(x > 0)
            score = round(1 / (1 + math.exp(-2 * x)), 4)
            event = {"model": model, "id": f"e-{i}", "ts": ts(i), "features": features,
                     "prediction": prediction, "score": score}
            out.append((predictions, key, json.dumps(event).encode()))
            dropped = accuracy_drop is not None and accuracy_drop[0] <= i < accuracy_drop[1]
            right = rng.random() < (0.55 if dropped else 0.9)
            due.setdefault(i + label_delay, []).append((i, prediction if right else 1 - prediction))
        for j, label in due.pop(i, []):
            value = {"model": model, "id": f"e-{j}", "ts": ts(j) + label_delay * STEP, "label": label}
            out.append((labels, key, json.dumps(value).encode()))
    return out


def ts(i: int) -> float:
    return round(START_TS + i * STEP, 3)


def index(event_time: float) -> int:
    """Which prediction an event time belongs to."""
    return round((event_time - START_TS) / STEP)
