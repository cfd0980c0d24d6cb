"""/status names the levels a categorical column's reference never had (what its
unseen_rate counts): the first few in stream order, whatever the batch sizes."""

from __future__ import annotations

import numpy as np
import pytest

from bench.feeding import Fed, predictions
from daemon.config import ModelConfig
from daemon.stream.columns import MAX_UNSEEN_LEVELS


def _events():
    rng = np.random.default_rng(3)
    n = 3000
    # The reference (first 1,000) has A, B, C; then new levels come, N0 first, N7 last.
    country = [["A", "B", "C"][i % 3] for i in range(1000)]
    country += ["A" if i % 4 else f"N{min(i // 200, 7)}" for i in range(n - 1000)]
    return predictions("m", {"country": country, "x": rng.normal(size=n).tolist()}, [0] * n)


@pytest.mark.parametrize("batch", [1, 37, 500])
def test_the_first_unseen_levels_are_listed_in_stream_order(batch):
    fed = Fed("m", ModelConfig(reference_size=1000, window=200, stride=50))
    events = _events()
    for start in range(0, len(events), batch):
        fed.feed(events[start:start + batch])
    levels = fed.pipeline.unseen_levels
    assert levels == {"country": [f"N{k}" for k in range(MAX_UNSEEN_LEVELS)]}, levels
    assert fed.pipeline.schema[("unseen", "country")] == sum(1 for e in events[1000:] if e.features["country"] != "A")
