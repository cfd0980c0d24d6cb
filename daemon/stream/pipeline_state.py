"""The state of a :class:`~daemon.stream.pipeline.ModelPipeline`, pickled in checkpoints.

:class:`PipelineState` is the pipeline's persistence, kept apart from its logic (as
:class:`~daemon.stream.join_changelog.JoinChangelog` is the join's): what is left out of a
checkpoint, and how every older layout is read: the parts that moved into objects of their
own (the estimates, the learners, the label checks) are made from the fields they were
saved as, and the fields added since get the value that keeps an old state's meaning.
"""

from __future__ import annotations

import math

from daemon.stream.estimates import Estimates
from daemon.stream.estimation import ModelEstimation
from daemon.stream.labelchecks import LabelChecks
from daemon.stream.learning import Learning


class PipelineState:
    """The persistence of :class:`~daemon.stream.pipeline.ModelPipeline` (its base class):
    see the module docs. It relies on the pipeline's attributes."""

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_asked"]  # a restored pipeline asks for its thresholds again
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._asked = set()
        # States saved before the label side followed the labels: it was at the current version.
        self.__dict__.setdefault("versions", [(self.epoch, self.version, -math.inf)])
        self.__dict__.setdefault("labels_epoch", self.epoch)
        self.__dict__.setdefault("predictions_seen", 0)  # (saved before it was kept: its eras have no index)
        if "estimates" not in state:  # saved with the estimates in the pipeline (or before them)
            current = self.__dict__.pop("estimation", None) or ModelEstimation(self.config, self.version)
            self.estimates = Estimates(self.config, epoch=self.epoch, current=current,
                                       earlier=self.__dict__.pop("earlier_estimations", {}))
        self.__dict__.setdefault("ended_counts", {})
        self.__dict__.setdefault("version_returns", 0)
        # Its reference took a binary mapping's highest probability: so does this version.
        self.__dict__.setdefault("binary_scores_by_positive", False)
        if "learning" not in state:  # saved with the learners' parts in the pipeline
            lifecycle, old = self.__dict__.pop("lifecycle", None), self.__dict__
            parts = (old.pop("pending_promotions", []), old.pop("learning_errors", 0), old.pop("_learning_held", []),
                     old.pop("_signals", {}))
            self.learning = Learning(lifecycle, *parts, model=self.name) if lifecycle is not None else None
        if self.learning is not None and not self.learning.__dict__.get("model"):
            self.learning.model = self.name  # (saved before the learners knew their model's name)
        if self.learning is not None:
            self.learning.__dict__.setdefault("kinds", {})  # (saved before: each feature as next learned)
        if "label_checks" not in state:  # saved with the checks' counts in the pipeline (or before them)
            self.label_checks = LabelChecks(state.get("_label_type_checks", 0), state.get("_positive_checks"))
            for old in ("_label_type_checks", "_positive_checks"):
                self.__dict__.pop(old, None)
