"""When to retrain, and how: a new challenger trained from the replay buffer.

:class:`RetrainPolicy` turns signals into a reason to retrain, or None: confirmed concept
drift (``"drift"``), performance decay (``"decay"``), or a schedule (``"schedule"``, every
``every`` labelled events, with online updates in between), never within ``cooldown``
labelled events of the last retrain.

:func:`retrain` makes the new challenger. It is warm-started from the best learner (a deep
copy: transfer keeps everything it learned) where the model type allows, else built fresh
(River's ``clone()``: same parameters, nothing learned); then it learns the buffer's sample,
reservoir and recent window, oldest first. Every River model can be copied, but a plain
Hoeffding tree never revises a split once made, so after a concept change a copy keeps its
stale structure: measured on Agrawal streams (function 0 then 2 or 4, 1000 events after the
retrain), warm-started Hoeffding trees scored 0.50-0.55 and fresh ones 0.68-0.79, while
adaptive trees, forests and linear models did as well or better warm. Hence
:func:`can_transfer`: everything but plain Hoeffding trees.

>>> policy = RetrainPolicy(every=1000, cooldown=300)
>>> policy.should_retrain(drift=False, decay=False, n_labelled=999) is None
True
>>> policy.should_retrain(drift=False, decay=False, n_labelled=1000)
'schedule'
>>> policy.should_retrain(drift=True, decay=False, n_labelled=1200) is None   # cooldown
True
>>> policy.should_retrain(drift=True, decay=False, n_labelled=1300)
'drift'
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from river import compose, tree

from .progressive import Learner
from .replay import ReplayBuffer

WARM_START = ("auto", "always", "never", "meta")


@dataclass(frozen=True)
class Retrain:
    """A retrain that happened: why, into which learner (slot), from which, how, on how
    many buffered events, and at how many labelled events so far."""

    reason: str
    learner: str
    parent: str
    warm_start: bool
    n_trained: int
    at: int
    #: how the challenger started: "warm" or "fresh" (retrain), "library" or "average"
    #: (meta-initialised, :mod:`learners.meta`)
    init: str = ""


#: Labelled events the replay buffer holds at least before a retrain (``min_events``'s default).
RETRAIN_MIN_EVENTS = 200


class RetrainPolicy:
    """Which signals retrain (``on_drift``, ``on_decay``), how often on a schedule
    (``every`` labelled events, None for never), the ``cooldown`` between retrains, the
    ``min_events`` the replay buffer needs first, and ``warm_start``: ``"auto"``
    (:func:`can_transfer`), ``"always"``, ``"never"``, or ``"meta"``: as ``"auto"``, and
    after a drift or decay a challenger chosen and initialised from past drifts
    (:mod:`learners.meta`)."""

    def __init__(self, on_drift: bool = True, on_decay: bool = True, every: int | None = None,
                 cooldown: int = 500, min_events: int = RETRAIN_MIN_EVENTS, warm_start: str = "auto"):
        if every is not None and every < 1:
            raise ValueError(f"every must be a positive number of labelled events or None, got {every}")
        if cooldown < 0 or min_events < 1:
            raise ValueError(f"need cooldown >= 0 and min_events >= 1, got {cooldown} and {min_events}")
        if warm_start not in WARM_START:
            raise ValueError(f"warm_start must be one of {', '.join(WARM_START)}, got {warm_start!r}")
        self.on_drift = on_drift
        self.on_decay = on_decay
        self.every = every
        self.cooldown = cooldown
        self.min_events = min_events
        self.warm_start = warm_start
        self.last_retrain_at: int | None = None

    def should_retrain(self, drift: bool, decay: bool, n_labelled: int) -> str | None:
        """The reason to retrain now, or None; a reason returned is recorded as a retrain
        at ``n_labelled`` (the count of labelled events so far)."""
        since = n_labelled - (self.last_retrain_at or 0)
        if self.last_retrain_at is not None and since < self.cooldown:
            return None
        if drift and self.on_drift:
            reason = "drift"
        elif decay and self.on_decay:
            reason = "decay"
        elif self.every is not None and since >= self.every:
            reason = "schedule"
        else:
            return None
        self.last_retrain_at = n_labelled
        return reason

    def transfer(self, learner: Learner) -> bool:
        """Whether a retrain warm-starts from ``learner`` under this policy."""
        if self.warm_start in ("auto", "meta"):
            return can_transfer(learner.estimator)
        return self.warm_start == "always"


def can_transfer(estimator) -> bool:
    """False for a plain Hoeffding tree (alone or in a pipeline), whose splits are final;
    True for every other River model (see the module docs)."""
    steps = estimator.steps.values() if isinstance(estimator, compose.Pipeline) else [estimator]
    return not any(type(s) in (tree.HoeffdingTreeClassifier, tree.HoeffdingTreeRegressor) for s in steps)


def retrain(best: Learner, buffer: ReplayBuffer, name: str, warm_start: bool = True,
            recent_only: bool = False) -> Learner:
    """A new learner called ``name``: a copy of ``best`` (``warm_start``) or a fresh model
    with ``best``'s parameters, trained on ``buffer.sample(recent_only)`` in order.
    ``best`` is left untouched. The result's scores start empty."""
    estimator = copy.deepcopy(best.estimator) if warm_start else best.estimator.clone()
    learner = Learner(name, estimator, best.task, window=best.recent.maxlen, spec=best.spec)
    for x, y in buffer.sample(recent_only=recent_only):
        learner.learn_one(x, y)
    learner.parent = best.name
    if warm_start:
        learner.n_learned += best.n_learned
    return learner
