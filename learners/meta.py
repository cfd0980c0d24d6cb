"""Meta-learned challengers: learn from past drifts which learner to retrain and where to
start it from.

Concepts recur (seasons, campaigns, weekday and weekend). After a drift, driftd retrains a
challenger (:mod:`learners.retraining`); with ``retrain_warm_start: meta`` it also learns
across drifts, in two ways:

- **Learner selection** (:class:`UCB1`): a multi-armed bandit over the configured learners
  (the arms) picks which one to retrain after a drift, from their progressive scores after
  past drifts (accuracy; minus the MAE for regression). Every configured learner keeps
  running, so every arm is scored after every drift (full information), and no retrain is
  spent exploring a worse one. UCB1 (Auer, Cesa-Bianchi & Fischer 2002, "Finite-time
  analysis of the multiarmed bandit problem") is deterministic, which keeps driftd a
  function of its input stream; River's ``model_selection`` bandits choose per event among
  models that all learn every event, not per drift, so they do not fit this use.
- **Meta-initialisation** (:class:`SolutionLibrary`): at every drift or decay retrain, a
  copy of the best learner is kept as the solution of the concept that just ended, with its
  recent loss (at most ``capacity`` of them). The challenger is retrained as without
  meta-learning; ``k`` labels later (the first labels of the new concept), a stored
  solution whose concept is back (:func:`recurs`: it fits those labels as well as it
  fitted its own concept) and that fits them clearly better (:data:`MARGIN`) than the
  challenger predicted them replaces it; when none is back, the average of the linear
  solutions' parameters may (Reptile, Nichol, Achiam & Schulman 2018, "On first-order
  meta-learning algorithms": an initialisation at the average of the tasks' solutions).
  This is the idea of RCD (Gonçalves & Barros 2013, "RCD: A recurring concept drift
  framework", Pattern Recognition Letters 34(9)), which stores one classifier per concept
  and reuses the one whose data matches the new data.

Where it helps: recurring concepts. A stored solution of a concept that comes back is
already right, and the gate can promote it after its minimum number of events, instead of
waiting for a challenger to unlearn the old concept. Where it does not: a novel concept. No
stored solution is back, and the challenger is exactly the one trained without
meta-learning; in any case the gate promotes only what beats the deployed model. With
several learners configured the bandit may retrain another learner than the best one at
the time of the drift: the one that did best after past drifts.

Everything is deterministic (no random numbers; ties go to configuration order) and
picklable, with bounded memory: ``capacity`` model copies and one score per arm.

>>> bandit = UCB1(["linear", "tree"])
>>> bandit.select()                         # each arm once first, in order
'linear'
>>> bandit.update("linear", 0.9); bandit.select()
'tree'
>>> bandit.update("tree", 0.6)
>>> bandit.select(), bandit.counts
('linear', {'linear': 1, 'tree': 1})
"""

from __future__ import annotations

import copy
import math
from collections import deque

from river import compose, utils

from .progressive import Learner, higher_is_better, outcome

#: "clearly better": a stored solution replaces a challenger only with at most (1 - MARGIN)
#: times the loss the challenger had on the same first labels (predicted before learning)
MARGIN = 0.25


class UCB1:
    """UCB1 over named arms (Auer et al. 2002): each arm once, in order; then the arm with the
    highest mean reward plus ``c * sqrt(2 ln n / n_arm)``. Rewards may be any finite numbers:
    they are rescaled to [0, 1] over the range seen so far (UCB1's bound assumes [0, 1]).
    Deterministic: ties go to the earlier arm.

    >>> b = UCB1(["a", "b"], c=0.1)
    >>> for arm, r in [("a", 0.9), ("b", 0.2), ("a", 0.8), ("b", 0.3)]:
    ...     b.update(arm, r)
    >>> b.select(), round(b.mean("a"), 2)
    ('a', 0.85)
    >>> UCB1([])
    Traceback (most recent call last):
    ...
    ValueError: UCB1 needs at least one arm
    """

    def __init__(self, arms, c: float = 1.0):
        arms = list(arms)
        if not arms:
            raise ValueError("UCB1 needs at least one arm")
        if c < 0:
            raise ValueError(f"c must be >= 0, got {c}")
        self.arms = arms
        self.c = c
        self.counts = {a: 0 for a in arms}
        self.sums = {a: 0.0 for a in arms}
        self._lo = self._hi = None

    def update(self, arm: str, reward: float) -> None:
        """One reward for ``arm`` (unknown arms and non-finite rewards raise ValueError)."""
        if arm not in self.counts:
            raise ValueError(f"unknown arm {arm!r}; arms: {self.arms}")
        if not math.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        self.counts[arm] += 1
        self.sums[arm] += reward
        self._lo = reward if self._lo is None else min(self._lo, reward)
        self._hi = reward if self._hi is None else max(self._hi, reward)

    def mean(self, arm: str) -> float | None:
        """The mean reward of ``arm``, None before any."""
        return self.sums[arm] / self.counts[arm] if self.counts[arm] else None

    def select(self) -> str:
        """The arm to play next."""
        for arm in self.arms:
            if not self.counts[arm]:
                return arm
        n = sum(self.counts.values())
        span = (self._hi - self._lo) or 1.0

        def index(arm):
            return (self.mean(arm) - self._lo) / span + self.c * math.sqrt(2 * math.log(n) / self.counts[arm])

        return max(self.arms, key=index)  # max keeps the first of equals


def _steps(estimator) -> list:
    return list(estimator.steps.values()) if isinstance(estimator, compose.Pipeline) else [estimator]


def _is_linear(step) -> bool:
    return hasattr(step, "_weights") and hasattr(step, "intercept")


def averageable(estimator) -> bool:
    """Whether parameters can be averaged: at least one linear step (River linear models keep
    ``_weights`` and ``intercept``), and nothing else with learned parameters but scalers and
    encoders. Trees and forests: False.

    >>> from learners.spec import build
    >>> averageable(build(["StandardScaler", "LogisticRegression"])), averageable(build("GaussianNB"))
    (True, False)
    """
    steps = _steps(estimator)
    return any(_is_linear(s) for s in steps) and not any(hasattr(s, "_root") or hasattr(s, "models") for s in steps)


def average(estimators: list):
    """Reptile-like average of same-shaped linear solutions: a copy of the first with every
    linear step's weights (a missing feature counts 0) and intercept replaced by the mean
    over ``estimators``; other steps (scalers, encoders) are the first one's. None when
    there is nothing to average (empty list, or not :func:`averageable`).

    >>> from river import linear_model
    >>> a, b = linear_model.LinearRegression(), linear_model.LinearRegression()
    >>> a._weights = utils.VectorDict({"x": 1.0}); b._weights = utils.VectorDict({"x": 3.0, "z": 2.0})
    >>> a.intercept, b.intercept = 0.0, 1.0
    >>> m = average([a, b]); dict(m.weights), m.intercept
    ({'x': 2.0, 'z': 1.0}, 0.5)
    """
    if not estimators or not all(averageable(e) for e in estimators):
        return None
    out = copy.deepcopy(estimators[0])
    columns = list(zip(*[_steps(e) for e in estimators]))
    for target, column in zip(_steps(out), columns):
        if not _is_linear(target) or len({type(s) for s in column}) != 1:
            continue
        keys = sorted({k for s in column for k in s._weights.keys()}, key=str)
        target._weights = utils.VectorDict({k: sum(s._weights.get(k, 0.0) for s in column) / len(column) for k in keys})
        target.intercept = sum(s.intercept for s in column) / len(column)
    return out


def loss(task: str, estimator, events) -> float:
    """Mean loss of ``estimator`` on ``events`` ``[(x, y), ...]`` without learning them:
    error rate (classification) or MAE (regression); ``inf`` when it fails or there are none."""
    events = list(events)
    if not events:
        return math.inf
    try:
        scores = [outcome(task, y, estimator.predict_one(x)) for x, y in events]
    except Exception:  # a stored model that cannot take today's features: unusable, not fatal
        return math.inf
    mean = sum(scores) / len(scores)
    return 1.0 - mean if higher_is_better(task) else mean


def recurs(task: str, new_loss: float, stored_loss: float | None, n: int, margin: float = MARGIN) -> bool:
    """Whether a stored solution's concept is back: its loss on ``n`` new labels is no worse
    than the loss it had when stored, up to noise. Classification: at most two standard
    errors of an error rate over ``n`` events above (binomial, ``sqrt(p (1 - p) / n)``);
    regression: at most ``1 + margin`` times. An unknown stored loss (None) always passes.

    >>> recurs("classification", 0.10, 0.06, 50), recurs("classification", 0.28, 0.06, 50)
    (True, False)
    >>> recurs("regression", 1.2, 1.0, 50), recurs("regression", 1.3, 1.0, 50)
    (True, False)
    """
    if stored_loss is None:
        return True
    if higher_is_better(task):
        p = min(max(stored_loss, 1.0 / max(n, 1)), 0.5)  # no zero-width band for a perfect fit
        return new_loss <= stored_loss + 2 * math.sqrt(p * (1 - p) / max(n, 1))
    return new_loss <= (1 + margin) * stored_loss


class SolutionLibrary:
    """At most ``capacity`` solutions (model copies) reached before past drifts, per arm
    (learner), oldest evicted first, each with its loss when stored (recent error rate or
    MAE; None when unknown).

    >>> from river import linear_model
    >>> lib = SolutionLibrary(capacity=2)
    >>> for w in (1.0, -1.0, 2.0):
    ...     m = linear_model.LinearRegression(); m._weights = utils.VectorDict({"x": w})
    ...     lib.add("lin", m, loss=0.1)
    >>> [dict(m.weights)["x"] for m in lib.solutions("lin")], len(lib)
    ([-1.0, 2.0], 2)
    >>> best, how = lib.best_fit("regression", "lin", [({"x": 1.0}, 2.0), ({"x": 2.0}, 4.0)])
    >>> dict(best.weights), how
    ({'x': 2.0}, 'library')
    >>> lib.best_fit("regression", "lin", [({"x": 1.0}, 5.0)])   # no stored concept is back
    (None, None)
    """

    def __init__(self, capacity: int = 8):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._entries: deque = deque(maxlen=capacity)  # (arm, estimator, loss when stored)

    def add(self, arm: str, estimator, loss: float | None = None) -> None:
        """Keep a copy of ``estimator`` as a solution of ``arm``, with its ``loss`` then."""
        self._entries.append((arm, copy.deepcopy(estimator), loss))

    def solutions(self, arm: str) -> list:
        """The stored solutions of ``arm``, oldest first."""
        return [e for a, e, _ in self._entries if a == arm]

    def best_fit(self, task: str, arm: str, events, margin: float = MARGIN) -> tuple:
        """``(estimator, how)``: among the stored solutions of ``arm`` whose concept is back
        on ``events`` (:func:`recurs`), the one with the lowest :func:`loss` (``how`` =
        ``"library"``); when none is back, the :func:`average` of them all if it is back
        compared with the best loss stored (``"average"``, Reptile); else ``(None, None)``.
        The estimator is the stored object: copy it before training."""
        stored = [(e, lost) for a, e, lost in self._entries if a == arm]
        events = list(events)
        if not stored or not events:
            return None, None
        scored = [(loss(task, e, events), i) for i, (e, lost) in enumerate(stored)]
        back = [(new, i) for new, i in scored if recurs(task, new, stored[i][1], len(events), margin)]
        if back:
            return stored[min(back)[1]][0], "library"
        mean = average([e for e, _ in stored]) if len(stored) > 1 else None
        known = [lost for _, lost in stored if lost is not None]
        if mean is not None and recurs(task, loss(task, mean, events), min(known) if known else None, len(events), margin):
            return mean, "average"
        return None, None

    def __len__(self) -> int:
        return len(self._entries)


class MetaLearner:
    """Bandit selection and meta-initialisation of challengers after a drift or decay.

    ``arms``: the configured learner names. ``k``: the labels after a retrain on which the
    stored solutions are judged. ``margin``: :data:`MARGIN`. ``capacity``: of the library.
    ``c``: UCB1's exploration weight. The lifecycle calls :meth:`challenger` instead of a
    plain retrain after a drift or decay, and :meth:`reinit` after every label.

    Every configured learner keeps running under progressive validation, so every arm is
    observed after every drift (full information): each arm's reward is the best mean
    outcome of its learners since the previous retrain. UCB1's bonus is then equal for all
    arms and the choice is the best mean post-drift score; the bonus matters for an arm
    with fewer observations (one that had no events yet).
    """

    def __init__(self, arms, k: int = 50, margin: float = MARGIN, capacity: int = 8, c: float = 1.0):
        if k < 1 or not 0 <= margin < 1:
            raise ValueError(f"need k >= 1 and 0 <= margin < 1, got k={k}, margin={margin}")
        self.bandit = UCB1(arms, c=c)
        self.library = SolutionLibrary(capacity)
        self.k, self.margin = k, margin
        self.arm_of: dict[str, str] = {a: a for a in arms}  # learner name -> arm it descends from
        self._last_at = 0  # labelled events at the last retrain
        self._check = None  # (slot, learner, labelled events when due): the pending re-initialisation
        self.inits: dict[str, int] = {"library": 0, "average": 0, "kept": 0}

    def _since_last(self, learners: dict, n_labelled: int) -> dict:
        """Each learner's mean outcome over the events it predicted since the last retrain
        (at most its ``window``); learners without such events are left out."""
        since = n_labelled - self._last_at
        out = {}
        for name, lr in learners.items():
            n = min(since, len(lr.recent))
            if n > 0:
                out[name] = sum(list(lr.recent)[-n:]) / n
        return out

    def _reward(self, means: dict, task: str) -> None:
        """Every arm's reward since the last retrain: the best mean outcome of its learners
        (the configured one and the challengers retrained from it)."""
        pick = max if higher_is_better(task) else min
        for arm in self.bandit.arms:
            family = [m for name, m in means.items() if self.arm_of.get(name) == arm]
            if family:
                self.bandit.update(arm, pick(family) if higher_is_better(task) else -pick(family))

    def challenger(self, learners: dict, best: Learner, buffer, name: str, retrain, transfer,
                   n_labelled: int) -> tuple:
        """A new challenger called ``name``: ``(learner, parent name, warm)``. The learner
        that did best since the last retrain (``n_labelled``: labelled events so far; before
        any, ``best``) is stored first, as the solution of the concept that just ended; the
        bandit gets the arms' rewards since the last retrain and picks the arm; the arm's best learner is retrained as without
        meta-learning (``retrain(base, buffer, name, warm_start=transfer(base))``), and
        :meth:`reinit` may replace it ``k`` labels later."""
        task = best.task
        means = self._since_last(learners, n_labelled)
        self._last_at = n_labelled
        self._reward(means, task)
        # The solution of the concept that just ended: the learner that did best since the
        # last retrain (``best`` ranks by the recent window, which may span older concepts).
        sign = 1 if higher_is_better(task) else -1
        if means:
            kept = max(means, key=lambda n: sign * means[n])
            lost = 1.0 - means[kept] if sign > 0 else means[kept]
        else:
            kept, lost = best.name, None
        self.library.add(self.arm_of.get(kept, kept), learners[kept].estimator, lost)
        arm = self.bandit.select()
        family = [lr for n, lr in learners.items() if self.arm_of.get(n) == arm]
        base = max(family, key=lambda lr: sign * lr.recent_score if lr.recent_score is not None else -math.inf)
        warm = transfer(base)
        new = retrain(base, buffer, name, warm_start=warm)
        self.arm_of[name] = arm
        self._check = (name, new, n_labelled + self.k)
        return new, base.name, warm

    def reinit(self, learners: dict, buffer, n_labelled: int) -> tuple | None:
        """``k`` labels after :meth:`challenger`: ``(name, learner, how)`` when a stored
        solution (``how`` ``"library"``) or their average (``"average"``) fits those labels
        clearly better (:data:`MARGIN`) than the challenger predicted them under progressive
        validation; the new learner starts from a copy of it and has learned the ``k``
        labels. Else None (also when the challenger was evicted meanwhile)."""
        if self._check is None or n_labelled < self._check[2]:
            return None
        name, current, _ = self._check
        self._check = None
        if learners.get(name) is not current:
            return None
        n = min(self.k, len(current.recent), len(buffer.sample(recent_only=True)))
        if n == 0:
            return None
        task, recent = current.task, buffer.sample(recent_only=True)[-n:]
        own = sum(list(current.recent)[-n:]) / n
        own = 1.0 - own if higher_is_better(task) else own
        stored, how = self.library.best_fit(task, self.arm_of[name], recent, self.margin)
        if stored is None or not loss(task, stored, recent) < (1 - self.margin) * own:
            self.inits["kept"] += 1
            return None
        new = Learner(name, copy.deepcopy(stored), task, window=current.recent.maxlen, spec=current.spec)
        for x, y in recent:
            new.learn_one(x, y)
        new.parent = current.parent
        self.inits[how] += 1
        return name, new, how
