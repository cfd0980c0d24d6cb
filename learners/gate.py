"""The promotion gate: does a challenger beat the champion on the same held-out events,
by a margin, with evidence rather than luck?

The two outcome sequences are paired: element ``i`` of each scores the same labelled
event, and the challenger predicted it before learning it (progressive validation), so
every event is held out for it. A promotion needs all of:

- at least ``min_events`` pairs;
- a one-sided paired test that the challenger is better, at level ``alpha`` shared by the
  challengers compared at once (Bonferroni) and spent over the repeated looks of one stretch
  (alpha spending: the ``k``-th look of a stretch tests at ``alpha / (k * (k + 1))``, which
  sum to ``alpha``; Lan and DeMets, 1983, for the idea): a gate asked every few events
  over the same sliding window would otherwise promote on luck, given enough looks (a
  trial: 1 false promotion in 5 streams of pure-noise labels at alpha 0.01, after ~200
  looks). The caller says which look it is; a stretch is what the caller makes of it (the
  lifecycle: from a promotion, a new champion version, or a drift or decay signal of the
  label tests to the next). Classification (outcomes 1 right / 0 wrong): McNemar's exact
  test, a binomial test on the discordant pairs. Regression (outcomes = absolute errors):
  Wilcoxon's signed-rank test on the differences;
- the margin: challenger accuracy >= champion accuracy + ``margin`` (classification), or
  challenger MAE <= champion MAE * (1 - ``margin``) (regression: a relative margin);
- no promotion in the last ``min_interval`` seconds of event time (rate limit).

``Decision.reason`` is a short stable code (``promoted``, ``too_few_events``,
``not_significant``, ``below_margin``, ``rate_limited``), fit for a metric label;
``detail`` says it in words. A ``promoted`` decision records ``now`` for the rate limit.

>>> gate = PromotionGate("classification", margin=0.02, min_events=200, alpha=0.01)
>>> champion = [1] * 150 + [0] * 150            # 50% right
>>> challenger = [1] * 150 + [1] * 100 + [0] * 50  # 83% right on the same events
>>> d = gate.decide(champion, challenger, now=1000.0)
>>> d.promote, d.reason, round(d.challenger_score - d.champion_score, 2), d.p_value < 1e-20
(True, 'promoted', 0.33, True)
>>> gate.decide(champion, challenger, now=1100.0).reason   # min_interval: one hour
'rate_limited'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .progressive import TASKS


@dataclass(frozen=True)
class Decision:
    """What the gate said, and on what evidence (scores are accuracy or MAE)."""

    promote: bool
    reason: str
    detail: str
    champion_score: float | None
    challenger_score: float | None
    p_value: float | None
    n: int


class PromotionGate:
    """Decides promotions; see the module docs. ``alpha`` is divided by the number of
    challengers compared at once (``n_compared`` in :meth:`decide`, Bonferroni) and spent
    over the looks of a stretch (``look`` in :meth:`decide`)."""

    def __init__(self, task: str, margin: float = 0.01, min_events: int = 500,
                 alpha: float = 0.01, min_interval: float = 3600.0):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if not 0 <= margin < 1:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        if min_events < 1:
            raise ValueError(f"min_events must be at least 1, got {min_events}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self.task = task
        self.margin = margin
        self.min_events = min_events
        self.alpha = alpha
        self.min_interval = min_interval
        self.last_promotion_at: float | None = None
        self.n_promotions = 0

    def decide(self, champion_outcomes, challenger_outcomes, now: float, n_compared: int = 1,
               look: int = 1) -> Decision:
        """Compare paired outcomes at event time ``now``, the ``look``-th time in this
        stretch (from 1: the level is ``alpha / n_compared / (look * (look + 1))``); see the
        module docs. ValueError if the outcomes are not paired or ``look`` < 1."""
        if look < 1:
            raise ValueError(f"look must be at least 1, got {look}")
        a = np.asarray(list(champion_outcomes), dtype=np.float64)
        b = np.asarray(list(challenger_outcomes), dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"outcomes must be paired: {a.size} champion vs {b.size} challenger")
        n = int(a.size)
        if n < self.min_events:
            return Decision(False, "too_few_events", f"{n} paired events, need {self.min_events}",
                            _mean(a), _mean(b), None, n)
        champ, chall = float(a.mean()), float(b.mean())
        if self.task == "classification":
            p = _mcnemar_greater(a, b)
            better_by_margin = chall >= champ + self.margin
            margin_text = f"accuracy {chall:.4f} vs {champ:.4f} + margin {self.margin}"
        else:
            p = _wilcoxon_greater(a - b)
            better_by_margin = chall <= champ * (1 - self.margin)
            margin_text = f"MAE {chall:.4g} vs {champ:.4g} * (1 - {self.margin})"
        level = self.alpha / max(1, n_compared) / (look * (look + 1))

        def decision(promote, reason, detail):
            return Decision(promote, reason, detail, champ, chall, p, n)

        if not p < level:
            return decision(False, "not_significant", f"p = {p:.3g} >= {level:.3g} over {n} events (look {look})")
        if not better_by_margin:
            return decision(False, "below_margin", margin_text)
        if self.last_promotion_at is not None and now - self.last_promotion_at < self.min_interval:
            wait = self.min_interval - (now - self.last_promotion_at)
            return decision(False, "rate_limited", f"last promotion {now - self.last_promotion_at:.0f} s ago; wait {wait:.0f} s more")
        self.last_promotion_at = now if self.last_promotion_at is None else max(now, self.last_promotion_at)
        self.n_promotions += 1
        return decision(True, "promoted", f"{margin_text}; p = {p:.3g} over {n} events")


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def _mcnemar_greater(champion: np.ndarray, challenger: np.ndarray) -> float:
    """P(at least this many challenger-only wins among the discordant pairs | no difference)."""
    wins = int(np.sum((challenger == 1) & (champion == 0)))
    losses = int(np.sum((challenger == 0) & (champion == 1)))
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def _wilcoxon_greater(diff: np.ndarray) -> float:
    """Wilcoxon signed-rank p-value that champion error - challenger error is positive."""
    if not np.any(diff != 0):
        return 1.0
    return float(stats.wilcoxon(diff, zero_method="wilcox", alternative="greater").pvalue)
