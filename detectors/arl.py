"""Average run lengths (ARL) of a CUSUM's random walk, over posterior draws of the stream.

A one-sided CUSUM ``S = max(0, S + y)`` with i.i.d. increments ``y`` (a discrete
distribution: values ``y`` with probabilities ``p``) enters ``h`` after a run whose mean
length from 0 is, by Siegmund's (1985) corrected diffusion approximation::

    ARL(h) = (exp(t b) - t b - 1) / (t |E y|),   b = h + 2 * OVERSHOOT * sd(y)

where ``t != 0`` solves ``log E exp(t y) = 0`` exactly for the distribution
(:func:`walk_root`) and ``OVERSHOOT = 0.583`` is the Gaussian walk's mean overshoot in its
standard deviations. :class:`LogARL` is ``log ARL(h)`` per draw (rows of ``p``: draws of
the stream's probabilities from their posterior given the reference), and
:func:`threshold_search` the level ``h`` where the false-alarm rate averaged over the draws
is a given one. Used by :class:`~detectors.cusum.CUSUM` (two sides of one walk) and
:class:`~detectors.level_cusum.LevelCUSUM` (two arms per level, solved together).

Source: D. Siegmund, *Sequential Analysis: Tests and Confidence Intervals*, Springer
(1985), ch. X.

>>> import numpy as np
>>> p = np.array([[0.5, 0.5]])                  # one draw: y = -1.25 or +0.75, equally likely
>>> t, mean, sd = walk_root(p, np.array([-1.25, 0.75]))
>>> round(float(t[0]), 3), float(mean[0]), float(sd[0])
(0.522, -0.25, 1.0)
>>> round(float(np.exp(LogARL(t, mean, sd)(5.0))[0]))   # values to an alarm at h = 5 (simulated: about 140)
159
"""

from __future__ import annotations

import math
import threading

import numpy as np
from scipy import optimize

#: Siegmund's overshoot of a Gaussian random walk, in its standard deviations.
OVERSHOOT = 0.583


def threshold_search(rate_per_draw, rates, search_limit: float) -> list[float]:
    """The level ``h`` at which the false-alarm rate, ``rate_per_draw(h)`` (per value, an
    array over the posterior draws) averaged over the draws, is each of ``rates``: a
    list of floats, in order; 0.0 where even ``h = 0`` is rare enough, ``inf`` where no
    ``h`` up to ``search_limit`` is (see :meth:`detectors.cusum.CUSUM.exact_thresholds`). Brent's method
    on the log of the mean rate, from a bracket doubled from 1."""
    # Both rates' searches start from the same levels: each is computed once.
    known: dict[float, float] = {}

    def log_rate(h: float) -> float:
        if h not in known:
            known[h] = float(np.log(np.mean(rate_per_draw(h)) + 1e-300))
        return known[h]

    out = []
    for rate in rates:
        target = math.log(rate)
        if log_rate(0.0) <= target:
            out.append(0.0)
            continue
        high = 1.0
        while log_rate(high) > target and high <= search_limit:
            high *= 2
        if log_rate(high) > target:
            out.append(math.inf)  # unreachable
            continue
        out.append(float(optimize.brentq(lambda h: log_rate(h) - target, 0.0, high, xtol=1e-6)))
    return out


_scratches = threading.local()


def scratch(name: str, shape: tuple) -> np.ndarray:
    """A C-contiguous float64 array of ``shape`` (2-d), uninitialised, in memory this
    thread keeps for ``name`` from one calibration to the next (grown when too small; a
    few hundred kB each at :data:`N_DRAWS` x 128 slots). A fresh array of that size is
    mapped anew by glibc under the daemon's fixed mmap threshold
    (``daemon/runtime/allocator.py``), at a page fault every 4 kB: about a fifth of a
    calibration's CPU. Speed only: the same numbers."""
    size = int(shape[0]) * int(shape[1])
    found = getattr(_scratches, name, None)
    if found is None or found.size < size:
        found = np.empty(size)
        setattr(_scratches, name, found)
    return found[:size].reshape(shape)


def walk_root(p: np.ndarray, y: np.ndarray):
    """Per draw (rows of ``p``) of one side's increments ``y``: ``(t, mean, sd)``, ``t``
    the nonzero root of ``log E exp(t y) = 0`` (NaN where there is none: the walk can
    never rise, or never fall). ``y``: of shape (slots,), or (draws, slots) for
    increments of each row's own (the level CUSUM's arms, solved together)."""
    if y.ndim == 2:
        def expect(values):
            return np.einsum("ij,ij->i", p, values)
        highest, lowest = y.max(axis=1), y.min(axis=1)
    else:
        expect = p.__matmul__
        highest, lowest = y.max(), y.min()
    mean = expect(y)
    second = expect(y ** 2)
    var = np.maximum(second - mean ** 2, 1e-300)
    third = expect(y ** 3) - 3 * mean * var - mean ** 3  # third cumulant
    never = ((mean < 0) & (highest <= 0)) | ((mean > 0) & (lowest >= 0)) | (mean == 0)
    # Start from the root of the cumulant function's third-order expansion
    # (mean + var t / 2 + third t^2 / 6 = 0; the Gaussian -2 mean / var without skew) ...
    disc = var ** 2 / 4 - 2 * third * mean / 3
    with np.errstate(invalid="ignore", divide="ignore"):
        cubic = (-var / 2 + np.sign(-mean) * np.sqrt(np.maximum(disc, 0))) / (third / 3)
    gauss = -2 * mean / var
    t = np.where((np.abs(third) > 1e-12) & (disc > 0) & (cubic * gauss > 0) & np.isfinite(cubic), cubic, gauss)
    t = np.where(never, 1.0, t)
    # ... then Newton's steps on log E exp(t y), guarded to stay on the root's side. The
    # two arrays of draws x slots are written in place, step after step (and calibration
    # after calibration: :func:`scratch`): fresh arrays this large cost page faults each
    # time (glibc maps them anew), more than the exp.
    e, ey = scratch("e", p.shape), scratch("ey", p.shape)
    y_bound = float(np.max(np.abs(y)))
    for _ in range(50):
        np.multiply(t[:, None], y, out=e)
        # Clipped only when an exponent can leave exp's range (a pass over the array
        # saved in the usual case; the same numbers either way).
        if not float(np.max(np.abs(t))) * y_bound <= 700:
            np.clip(e, -700, 700, out=e)
        np.exp(e, out=e)
        m0 = np.einsum("ij,ij->i", p, e)
        m1 = np.einsum("ij,ij->i", p, np.multiply(e, y, out=ey))
        g = np.log(m0)
        slope = m1 / m0
        step = np.where(never, 0.0, g / np.where(slope == 0, 1e-300, slope))
        # Below 0 on the way down to the minimum: outwards; never across 0 (the trivial root): at most halfway there.
        step = np.where((g < 0) & (slope * t <= 0), -t, step)
        step = np.where(np.abs(step) > np.abs(t) / 2, np.sign(step) * np.abs(t) / 2, step)
        t = t - step
        if np.all(np.abs(step) <= 1e-10 * np.abs(t)):
            break
    t = np.where(never, np.nan, t)
    return t, mean, np.sqrt(var)


class LogARL:
    """log ARL of one side from 0 to ``h`` per draw (Siegmund; +inf where it never rises),
    from the side's ``(t, mean, sd)`` (:func:`walk_root`), each of shape (draws,): called
    with ``h`` some thirty times per threshold, so what does not depend on ``h`` is
    computed once, and each branch on the draws it serves only (the same floats)."""

    def __init__(self, t: np.ndarray, mean: np.ndarray, sd: np.ndarray):
        self.t, self.sd = t, sd
        self.spread = 2 * OVERSHOOT * sd
        with np.errstate(invalid="ignore", divide="ignore"):
            self.log_denominator = np.log(t * -mean)
        self.rises = ~np.isnan(t)
        self.finite_t = np.isfinite(t)

    def __call__(self, h: float) -> np.ndarray:
        b = h + self.spread
        x = self.t * b
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # (e^x - x - 1) / (t |mean|), in logs where e^x dominates; a series near 0.
            log_num = np.log(np.expm1(np.minimum(x, 700)) - x)
            small = np.abs(x) < 1e-4
            if small.any():
                xs = x[small]
                log_num[small] = np.log(xs * xs / 2 * (1 + xs / 3))
            large = x > 50
            if large.any():
                xl = x[large]
                log_num[large] = xl + np.log1p(-(xl + 1) * np.exp(-np.minimum(xl, 700)))
            out = log_num - self.log_denominator
            # A walk without drift: b^2 / var.
            flat = ~np.isfinite(out) & self.finite_t
            if flat.any():
                bf = b[flat]
                out[flat] = np.log(bf * bf / self.sd[flat] ** 2)
        out[~self.rises] = np.inf
        return out
