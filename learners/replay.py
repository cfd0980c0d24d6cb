"""A bounded replay buffer of labelled events: a uniform reservoir sample of every event
seen (Vitter's Algorithm R, seeded) plus the most recent ``recent_size`` events.

The reservoir remembers what was true over the whole stream, the recent window what is
true now; retraining from both learns the present without forgetting the rest.
:meth:`ReplayBuffer.sample` returns each kept event once, oldest first, so that a model
trained on it in order sees the present last. Memory holds at most
``reservoir_size + recent_size`` events. The buffer is deterministic for a seed and
picklable (it goes into the daemon's checkpoint, random state included).

>>> buf = ReplayBuffer(reservoir_size=3, recent_size=2, seed=7)
>>> for i in range(10):
...     buf.update({"i": i}, i % 2, t=float(i))
>>> [x["i"] for x, _ in buf.sample()]
[3, 7, 8, 9]
>>> [x["i"] for x, _ in buf.sample(recent_only=True)], buf.time_span(recent_only=True)
([8, 9], (8.0, 9.0))
>>> len(buf), buf.n_seen
(4, 10)
"""

from __future__ import annotations

import random
from collections import deque


class ReplayBuffer:
    """Reservoir of ``reservoir_size`` events uniformly sampled from all seen, plus the last
    ``recent_size`` events. ``t`` (event time, optional) is kept for training windows."""

    def __init__(self, reservoir_size: int = 1000, recent_size: int = 500, seed: int = 0):
        if reservoir_size < 0 or recent_size < 0 or reservoir_size + recent_size == 0:
            raise ValueError(f"sizes must be >= 0 and not both 0, got reservoir_size={reservoir_size}, recent_size={recent_size}")
        self.reservoir_size = reservoir_size
        self.recent_size = recent_size
        self.seed = seed
        self._rng = random.Random(seed)
        self._reservoir: list[tuple] = []
        self._recent: deque[tuple] = deque(maxlen=recent_size)
        self.n_seen = 0

    def update(self, x, y, t: float | None = None) -> None:
        """Offer one labelled event."""
        item = (self.n_seen, t, x, y)
        self.n_seen += 1
        if self.recent_size:
            self._recent.append(item)
        if len(self._reservoir) < self.reservoir_size:
            self._reservoir.append(item)
        elif self.reservoir_size:
            j = self._rng.randrange(self.n_seen)
            if j < self.reservoir_size:
                self._reservoir[j] = item

    def _items(self, recent_only: bool) -> list[tuple]:
        if recent_only and self.recent_size:
            return list(self._recent)
        by_seq = {item[0]: item for item in self._reservoir}
        by_seq.update((item[0], item) for item in self._recent)
        return [by_seq[s] for s in sorted(by_seq)]

    def sample(self, recent_only: bool = False) -> list[tuple]:
        """The kept events as ``(x, y)``, each once, oldest first; only the recent window
        with ``recent_only`` (the whole buffer when there is no recent window)."""
        return [(x, y) for _, _, x, y in self._items(recent_only)]

    def time_span(self, recent_only: bool = False) -> tuple:
        """(earliest, latest) event time in :meth:`sample`, ignoring events without one;
        (None, None) when none has a time."""
        times = [t for _, t, _, _ in self._items(recent_only) if t is not None]
        return (min(times), max(times)) if times else (None, None)

    def __len__(self) -> int:
        return len({item[0] for item in self._reservoir} | {item[0] for item in self._recent})
