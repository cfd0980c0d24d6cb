"""Champion and challengers for one model: the deployed model (the champion, known only by
the predictions in its events) against driftd's online learners (the challengers).

Per joined label, :meth:`ChampionChallenger.update` scores the champion's prediction, runs
progressive validation on every learner (predict, then learn), records paired outcomes
(champion vs learner, same event, last ``gate_window`` events) and feeds the replay buffer.
A drift or decay signal (:meth:`on_signal`) or the schedule may start a retrain: the new
challenger, trained from the buffer, takes one of ``max_retrained`` slots (``retrained-1``,
...: metric labels stay bounded; when all are taken the worst one not last promoted gives
way; 0 slots: no retraining), and its paired outcomes start with the next event, one it has
not trained on. With ``RetrainPolicy(warm_start="meta")``, :mod:`learners.meta` picks the
learner to retrain after a drift or decay and, ``k`` labels later, may restart the new
challenger from a solution stored at a past drift (recurring concepts). Every
``check_every`` events, :meth:`maybe_promote` asks the gate about the learner furthest ahead
of the champion, at level ``alpha`` / the number of learners with ``min_events`` pairs
(picking the best is a multiple test), spent over the looks of a stretch: the ``k``-th look
since the last promotion, new champion version, or drift or decay signal tests at
``1 / (k * (k + 1))`` of it (:mod:`learners.gate`), so that a stretch promotes on luck
with probability at most ``alpha`` however long it lasts.

A promotion does not change whose predictions arrive: the champion stays the deployed model
until the model server loads the new version. The caller publishes ``Promotion.estimator``
(``Promotion.id`` is a deterministic idempotency key) and passes each event's
``model_version`` as ``champion_version``; when it changes, the paired windows restart, since
comparisons with the old champion no longer apply. Meanwhile the gate's rate limit holds.

The whole object pickles: checkpoint it with the input offsets. A learner's exception on an
event is counted in ``errors`` (the last message in ``last_error``) and skips that learner
for that event; one while retraining it (a River model that takes numbers only, given a
string feature) is counted for it too and leaves the learners as they were; bad features
(``ValueError`` from ``clean_features``) propagate to the caller.

>>> from learners.gate import PromotionGate
>>> cc = ChampionChallenger.from_specs("classification", {"lr": ["StandardScaler", "LogisticRegression"]},
...     gate=PromotionGate("classification", margin=0.05, min_events=200, min_interval=3600), check_every=50)
>>> for i in range(400):                     # the champion always says False
...     x = {"v": (i * 7919 % 200) / 100 - 1.0}
...     _ = cc.update(x, x["v"] > 0, champion_prediction=False, now=float(i))
...     promotion = cc.maybe_promote(now=float(i))
...     if promotion:
...         print(promotion.id, promotion.decision.reason, round(promotion.decision.challenger_score, 2))
lr@200 promoted 0.98
>>> dict(cc.decisions)   # the promotion restarts the paired windows; then the rate limit
{'too_few_events': 6, 'promoted': 1, 'rate_limited': 1}
"""

from __future__ import annotations

import copy
from collections import Counter, deque
from dataclasses import dataclass, field

from .gate import Decision, PromotionGate
from .meta import MetaLearner
from .progressive import Learner, higher_is_better, outcome
from .replay import ReplayBuffer
from .retraining import Retrain, RetrainPolicy, retrain
from .spec import build, clean_features


@dataclass(frozen=True)
class Promotion:
    """A learner the gate promoted: publish ``estimator`` (a snapshot) with ``manifest``."""

    id: str
    learner: str
    estimator: object = field(repr=False)
    decision: Decision
    manifest: dict


class ChampionChallenger:
    """The learners, replay buffer, retrain policy and promotion gate of one model."""

    def __init__(self, task: str, learners: list[Learner], buffer: ReplayBuffer | None = None,
                 policy: RetrainPolicy | None = None, gate: PromotionGate | None = None,
                 gate_window: int = 2000, check_every: int = 100, max_retrained: int = 2):
        if not learners:
            raise ValueError("at least one learner is needed")
        names = [lr.name for lr in learners]
        if len(set(names)) != len(names) or any(n.startswith("retrained-") for n in names):
            raise ValueError(f"learner names must be unique and not start with 'retrained-': {names}")
        for lr in learners:
            if lr.task != task:
                raise ValueError(f"learner {lr.name!r} does {lr.task}, but the model's task is {task}")
        if gate is not None and gate.task != task:
            raise ValueError(f"the gate is for {gate.task}, but the model's task is {task}")
        if gate_window < 1 or check_every < 1 or max_retrained < 0:
            raise ValueError("need gate_window >= 1, check_every >= 1 and max_retrained >= 0")
        self.task = task
        self.learners = {lr.name: lr for lr in learners}
        self.configured = tuple(names)
        self.buffer = ReplayBuffer() if buffer is None else buffer
        self.policy = RetrainPolicy() if policy is None else policy
        self.gate = PromotionGate(task) if gate is None else gate
        if gate_window < self.gate.min_events:
            raise ValueError(f"gate_window ({gate_window}) is smaller than the gate's min_events ({self.gate.min_events})")
        self.gate_window, self.check_every, self.max_retrained = gate_window, check_every, max_retrained
        self.pairs = {name: self._pair_window() for name in names}  # (champion, learner) outcomes
        self.windows = {name: [None, None] for name in names}  # event times learned: first, last
        self.champion = deque(maxlen=gate_window)  # the champion's recent outcomes
        self.champion_version = None
        self.champion_learner: str | None = None  # the last learner promoted
        self.n_labelled = self._last_check = 0
        self._pending = {"drift": False, "decay": False}
        self.retrains: Counter = Counter()   # by reason
        self.failed_retrains: Counter = Counter()  # by reason: retrains that raised (see errors)
        self.decisions: Counter = Counter()  # gate decisions by reason ("promoted", ...)
        self.errors: Counter = Counter()     # by learner; the last message in last_error
        self.last_error: dict[str, str] = {}
        self.last_decision: Decision | None = None
        #: Gate looks with enough events since the stretch began (see :meth:`maybe_promote`).
        self.looks = 0
        #: learner selection and meta-initialisation after drifts (``warm_start="meta"``)
        self.meta = MetaLearner(names) if self.policy.warm_start == "meta" else None
        self._last_retrain: Retrain | None = None

    def __setstate__(self, state: dict) -> None:
        # (saved before failed retrains were counted: none)
        # (saved before failed retrains were counted: none; before looks: a stretch begins)
        self.__dict__.update({"failed_retrains": Counter(), "looks": 0, **state})

    @classmethod
    def from_specs(cls, task: str, specs: dict, key: str = "learners", window: int = 1000, **kwargs):
        """Build the learners from ``{name: spec}``; errors name ``key.name``."""
        learners = []
        for name, spec in specs.items():
            try:
                learners.append(Learner(name, build(spec, f"{key}.{name}"), task, window, spec=spec))
            except ValueError as e:  # build's errors name the key already
                raise (e if str(e).startswith(f"{key}.{name}") else ValueError(f"{key}.{name}: {e}")) from None
        return cls(task, learners, **kwargs)

    # -- per event --------------------------------------------------------------------------
    def update(self, x, y, champion_prediction, now: float | None = None, champion_version=None,
               paired: bool = True) -> Retrain | None:
        """One joined label: score the champion, progressive validation of every learner,
        paired outcomes, replay buffer; then maybe a scheduled or signalled retrain.

        ``paired=False``: a late label of a champion version no longer deployed. The
        learners and the buffer still learn it (they learn the world, not the champion),
        but it is no evidence about the current champion: no paired outcomes, and
        ``champion_version`` is left alone."""
        # (Before ``paired``, the daemon dropped such labels altogether: after each
        # promotion the learners missed the label delay's worth of the most recent events.)
        if paired and champion_version is not None and champion_version != self.champion_version:
            if self.champion_version is not None:
                self._restart_pairs()
            self.champion_version = champion_version
        x = clean_features(x)
        champ = outcome(self.task, y, champion_prediction)
        if paired:
            self.champion.append(champ)
        for name, learner in self.learners.items():
            try:
                y_pred = learner.update(x, y)
            except Exception as e:  # a model's failure must not stop the daemon
                self._failed(name, f"{type(e).__name__}: {e}")
                continue
            if paired:
                self.pairs[name][0].append(champ)
                self.pairs[name][1].append(outcome(self.task, y, y_pred))
            window = self.windows[name]
            if now is not None:
                window[0] = now if window[0] is None else min(window[0], now)
                window[1] = now if window[1] is None else max(window[1], now)
        self.buffer.update(x, y, now)
        self.n_labelled += 1
        reinit = self._maybe_reinit()
        return self._maybe_retrain() or reinit

    def on_signal(self, drift: bool = False, decay: bool = False) -> Retrain | None:
        """A detector confirmed concept drift or decay of the champion. The signal stays
        pending (through cooldown, or while the buffer fills) until a retrain serves it."""
        self._pending["drift"] |= drift
        self._pending["decay"] |= decay
        if drift or decay:
            self.looks = 0  # a new stretch: the gate's alpha is spent afresh (learners.gate)
        return self._maybe_retrain()

    def _maybe_retrain(self) -> Retrain | None:
        if self.max_retrained == 0 or len(self.buffer) < self.policy.min_events:
            return None
        reason = self.policy.should_retrain(self._pending["drift"], self._pending["decay"], self.n_labelled)
        if reason is None:
            return None
        self._pending = {"drift": False, "decay": False}
        best = self.best()
        slot = self._free_slot()
        meta = getattr(self, "meta", None)  # (checkpoints from before meta-learning have none)
        try:
            if meta is not None and reason != "schedule":
                new, parent, warm = meta.challenger(self.learners, best, self.buffer, slot, retrain,
                                                    self.policy.transfer, self.n_labelled)
            else:
                parent, warm = best.name, self.policy.transfer(best)
                new = retrain(best, self.buffer, slot, warm_start=warm)
        except Exception as e:  # a model's failure must not stop the daemon: no retrain this time
            self._failed(best.name, f"retraining: {type(e).__name__}: {e}")
            self.failed_retrains[reason] += 1
            return None
        self.learners[slot] = new
        self.pairs[slot] = self._pair_window()
        first, last = self.buffer.time_span()
        self.windows[slot] = [self.windows[parent][0] if warm else first, last]
        self.retrains[reason] += 1
        self._last_retrain = Retrain(reason, slot, parent, warm, len(self.buffer), self.n_labelled,
                                     "warm" if warm else "fresh")
        return self._last_retrain

    def _failed(self, name: str, message: str) -> None:
        self.errors[name] += 1
        self.last_error[name] = message

    def _maybe_reinit(self) -> Retrain | None:
        """Meta-initialisation (:meth:`learners.meta.MetaLearner.reinit`): the challenger
        retrained ``k`` labels ago is replaced by a stored solution that fits those labels
        clearly better; its paired outcomes restart with the next event."""
        meta = getattr(self, "meta", None)
        try:
            found = meta.reinit(self.learners, self.buffer, self.n_labelled) if meta is not None else None
        except Exception as e:  # as a retrain's failure: the challenger stays as it is
            self._failed(self._last_retrain.learner if self._last_retrain else self.configured[0],
                         f"meta-initialisation: {type(e).__name__}: {e}")
            return None
        if found is None:
            return None
        slot, new, how = found
        self.learners[slot] = new
        self.pairs[slot] = self._pair_window()
        # The stored solution learned from events before this drift too: its training window
        # starts, at the latest, at the earliest event any learner learned.
        firsts = [w[0] for w in self.windows.values() if w[0] is not None]
        self.windows[slot] = [min(firsts) if firsts else None, self.buffer.time_span(recent_only=True)[1]]
        was = self._last_retrain
        return Retrain(was.reason, slot, was.parent, True, new.n_learned, self.n_labelled, how)

    def _pair_window(self) -> tuple[deque, deque]:
        return deque(maxlen=self.gate_window), deque(maxlen=self.gate_window)

    def _free_slot(self) -> str:
        slots = [f"retrained-{i}" for i in range(1, self.max_retrained + 1)]
        free = [s for s in slots if s not in self.learners]
        if free:
            return free[0]
        evictable = [s for s in slots if s != self.champion_learner] or slots
        sign = 1 if higher_is_better(self.task) else -1
        return min(evictable, key=lambda s: sign * (self.learners[s].recent_score or 0.0))  # the worst

    # -- scores and promotion -----------------------------------------------------------------
    def best(self) -> Learner:
        """The learner with the best recent score (configuration order breaks ties)."""
        sign = 1 if higher_is_better(self.task) else -1
        scored = [lr for lr in self.learners.values() if lr.recent_score is not None]
        if not scored:
            return self.learners[self.configured[0]]
        return max(scored, key=lambda lr: sign * lr.recent_score)

    def maybe_promote(self, now: float) -> Promotion | None:
        """Every ``check_every`` labelled events, ask the gate about the learner furthest
        ahead of the champion (the stretch's next look once one has ``min_events`` pairs);
        a :class:`Promotion` when it passes, else None."""
        if self.n_labelled - self._last_check < self.check_every:
            return None
        self._last_check = self.n_labelled
        eligible = [n for n, (champ, _) in self.pairs.items() if len(champ) >= self.gate.min_events]
        candidates = eligible or [n for n, (champ, _) in self.pairs.items() if champ]
        if not candidates:
            return None
        name = max(candidates, key=self._advantage)
        champ, chall = self.pairs[name]
        if eligible:
            self.looks += 1
        decision = self.gate.decide(champ, chall, now, n_compared=max(1, len(eligible)), look=max(1, self.looks))
        self.decisions[decision.reason] += 1
        self.last_decision = decision
        if not decision.promote:
            return None
        self.champion_learner = name
        self._restart_pairs()
        return self._promotion(name, decision)

    def _advantage(self, name: str) -> float:
        """How much better than the champion a learner did on its paired events."""
        champ, chall = self.pairs[name]
        diff = (sum(chall) - sum(champ)) / len(champ)
        return diff if higher_is_better(self.task) else -diff

    def _promotion(self, name: str, decision: Decision) -> Promotion:
        learner = self.learners[name]
        first, last = self.windows[name]
        gate = {"champion": decision.champion_score, "challenger": decision.challenger_score,
                "p_value": decision.p_value, "n": decision.n, "margin": self.gate.margin}
        manifest = {
            "learner": name, "task": self.task, "spec": learner.spec, "parent_learner": learner.parent,
            "replaces_model_version": self.champion_version,
            "training_window": {"first_event_time": first, "last_event_time": last, "n_events": learner.n_learned},
            "metrics": {"metric": "accuracy" if self.task == "classification" else "mae",
                        "gate": gate, "progressive": learner.metric.get()},
        }
        promotion_id = f"{name}@{self.n_labelled}"
        manifest["idempotency_key"] = promotion_id
        return Promotion(promotion_id, name, copy.deepcopy(learner.estimator), decision, manifest)

    def _restart_pairs(self) -> None:
        for champ, chall in self.pairs.values():
            champ.clear()
            chall.clear()
        self.champion.clear()
        self.looks = 0  # a new champion: a new stretch

    def scores(self) -> dict:
        """Recent score (accuracy or MAE over the last events) of the champion and of
        every learner, for metrics; None before any event."""
        out = {"champion": sum(self.champion) / len(self.champion) if self.champion else None}
        out.update((name, lr.recent_score) for name, lr in self.learners.items())
        return out
