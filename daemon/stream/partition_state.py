"""The state of a :class:`~daemon.stream.partition.PartitionState`, in checkpoints.

:class:`PartitionPersistence` is the partition state's persistence, kept apart from its
logic (as :mod:`daemon.stream.pipeline_state` is a model pipeline's): what a checkpoint
leaves out, the state cut into sections (the state topic's unit: ``core``, each model, the
join), and a restored state bound to the running configuration, whose join and alert
settings it takes, the fields added since filled in and the label-delay histogram
re-binned to the configured buckets.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections import Counter

import numpy as np

from daemon.config import Config
from daemon.stream.join import LabelJoin
from daemon.stream.labelorder import LabelOrder

log = logging.getLogger("driftd")

#: The buckets of states checkpointed before they were configurable.
LEGACY_DELAY_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, float("inf"))


def delay_buckets(join) -> tuple:
    """The label-delay bucket bounds of ``join`` (a JoinConfig), +Inf last."""
    return (*(float(b) for b in join.label_delay_buckets_seconds), float("inf"))


def rebin(counts, old: tuple, new: tuple):
    """Bucket counts over ``old`` bounds moved to ``new`` ones: each old bucket's count
    into the first new bucket whose bound is at least the old bound (a delay is never
    counted below a bound it may exceed; the sum is unchanged)."""
    out = np.zeros(len(new), dtype=np.int64)
    for bound, n in zip(old, counts):
        out[bisect.bisect_left(new, bound)] += int(n)
    return out


def _say_changed_settings(model: str, saved, running, partition: int) -> None:
    """Warn that a restored model's settings differ from the running configuration's: the
    model keeps those its state was saved with (its references, tests and thresholds were
    made with them, and a setting such as ``task`` cannot change under them)."""
    changed = [f.name for f in dataclasses.fields(saved)
               if getattr(saved, f.name, None) != getattr(running, f.name, None)]
    if changed:
        log.warning("partition %d: model %s keeps the settings its restored state was made with; changed since in "
                    "the configuration: %s. To use them, start the model afresh (another model name, or the "
                    "partition's state cleared)", partition, model, ", ".join(changed),
                    extra={"model": model, "partition": partition})


class PartitionPersistence:
    """The persistence of :class:`~daemon.stream.partition.PartitionState` (its base
    class): see the module docs. It relies on the state's attributes."""

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_config"]  # configuration comes from the file, not the checkpoint
        state.pop("predictions_read_below", None)  # the reader's, of this moment
        state.pop("_said_full", None)  # a log line's, of this process
        return state

    def attach(self, config: Config) -> None:
        """Bind a restored state to the running configuration: its join and alert
        settings are the configuration's, not those of the process that saved the state
        (a runbook's "lengthen join.prediction_ttl_seconds" must act on a daemon with
        state). The ids settled before are remembered as long as the ttl they were
        settled under said."""
        self._config = config
        join, alerts = config.join, config.alerts
        self.join.ttl, self.join.grace = join.prediction_ttl_seconds, join.label_grace_seconds
        self.join.max_pending = join.max_pending
        self.episodes.clear_after, self.episodes.cooldown_seconds = int(alerts.clear_after), float(alerts.cooldown_seconds)
        self.__dict__.setdefault("newest_ts", {})  # states checkpointed before it
        self.__dict__.setdefault("label_order", LabelOrder())
        self.__dict__.setdefault("model_dead_letters", Counter())
        if not config.auto_register_models:
            for name in [name for name in self.models if name not in config.models]:
                # Removed from models: since the state was saved: no longer watched (its
                # state kept, the model went on being watched, and could not be retired).
                log.warning("partition %d: model %s is no longer under models: (and auto_register_models is off): "
                            "its state is dropped, its open alerts resolved, and its events are dead letters "
                            "(unknown_model) from here", self.partition, name,
                            extra={"model": name, "partition": self.partition})
                self.forget(name, f"model {name} is no longer under models:, so no longer watched")
        for name, pipeline in self.models.items():
            _say_changed_settings(name, pipeline.config, config.model(name), self.partition)
        # Buckets of the checkpoint (the fixed ones before they were configurable), re-binned
        # when the configuration now has others.
        old, new = self.__dict__.get("delay_buckets", LEGACY_DELAY_BUCKETS), delay_buckets(config.join)
        if tuple(old) != new:
            for model, (counts, total) in list(self.label_delay.items()):
                self.label_delay[model] = [rebin(counts, tuple(old), new), total]
        self.delay_buckets = new

    # -- checkpoints as sections (see daemon.kafka.statetopic) -------------------------------
    def sections(self, join_sections) -> list[tuple[str, object]]:
        """The state cut where it changes independently: ``core`` (offsets, counters,
        alert episodes), ``model/<name>`` per model, and the join as ``join_sections(join)``
        gives it ([(name, bytes)], a snapshot and its changes)."""
        core = {k: v for k, v in self.__getstate__().items() if k not in ("models", "join")}
        return [("core", core), *((f"model/{name}", p) for name, p in self.models.items()), *join_sections(self.join)]

    @classmethod
    def from_sections(cls, core: dict, models: dict, join_parts: list, config: Config) -> "PartitionPersistence":
        """The state :meth:`sections` cut: ``core`` and ``models`` ({name: pipeline})
        decoded, ``join_parts`` the join's snapshot and changes in order."""
        state = cls.__new__(cls)
        state.__dict__.update(core)
        state.models = dict(models)
        first, *changes = join_parts
        state.join = first if isinstance(first, LabelJoin) else LabelJoin.restore(first, changes)
        state.attach(config)
        return state
