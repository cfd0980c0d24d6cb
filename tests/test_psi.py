"""PSI against a direct computation by the formula, binning rules, merging, bad input."""

import math

import numpy as np
import pytest

from detectors import PSI, psi_from_counts


def _quantile_edges(present, n_bins):
    """The documented rule, the long way: numpy's quantiles; every value holding at least
    half a bin's share of the reference gets the bin [v, next float above v); then quantile
    edges bounding a bin without reference values are dropped, one at a time."""
    quantiles = set(np.quantile(present, [i / n_bins for i in range(1, n_bins)]).tolist())
    heavy = [v for v in set(present) if present.count(v) * 2 * n_bins >= len(present)]
    own = set(heavy) | {math.nextafter(v, math.inf) for v in heavy}
    edges = sorted(quantiles | own)
    while True:
        bins = [0] * (len(edges) + 1)
        for v in present:
            bins[sum(v >= e for e in edges)] += 1
        droppable = [j for i, c in enumerate(bins) if c == 0 for j in (i - 1, i)
                     if 0 <= j < len(edges) and edges[j] not in own]
        empties = [i for i, c in enumerate(bins) if c == 0 and any(j in droppable for j in (i - 1, i))]
        if not empties:
            return edges
        i = empties[0]
        edges.pop(next(j for j in (i - 1, i) if j in droppable))


def _psi_by_formula(reference, window, n_bins, smoothing):
    """PSI computed the long way: quantile edges, counts per bin, the textbook sum."""
    present = [v for v in reference if v is not None and not math.isnan(v)]
    edges = _quantile_edges(present, n_bins)

    def counts(sample):
        c = [0] * (len(edges) + 2)
        for v in sample:
            if v is None or math.isnan(v):
                c[-1] += 1
            else:
                c[sum(v >= e for e in edges)] += 1
        return c

    r, w = counts(reference), counts(window)
    r_total, w_total = sum(r) + smoothing * len(r), sum(w) + smoothing * len(w)
    total = 0.0
    for rc, wc in zip(r, w):
        rp, wp = (rc + smoothing) / r_total, (wc + smoothing) / w_total
        total += (wp - rp) * math.log(wp / rp)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_formula(seed):
    rng = np.random.default_rng(seed)
    n_bins = int(rng.integers(2, 20))
    reference = list(rng.gamma(2.0, size=int(rng.integers(200, 2000))))
    window = list(rng.gamma(2.0 + rng.random(), size=int(rng.integers(10, 500))))
    window[::7] = [float("nan")] * len(window[::7])
    psi = PSI(reference, window=len(window), n_bins=n_bins, threshold=0.2, smoothing=0.5)
    psi.update_many(window)
    assert psi.statistic == pytest.approx(_psi_by_formula(reference, window, n_bins, 0.5), rel=1e-12)


def test_a_point_mass_has_its_own_bin():
    # 850 zeros and 150 values 1..10; then the zeros become values between 0.5 and 1.5.
    rng = np.random.default_rng(8)
    reference = [0.0] * 850 + [float(v) for v in rng.integers(1, 11, size=150)]
    window = list(rng.uniform(0.5, 1.5, size=850)) + reference[850:]
    psi = PSI(reference, window=1000, threshold=0.25)
    psi.update_many(window)
    expected = _psi_by_formula(reference, window, 10, 0.5)
    assert psi.statistic == pytest.approx(expected, rel=1e-12)
    assert 7.5 < expected < 10  # about 8.7: the zeros' bin is emptied
    assert psi.drift and psi.binning.edges[0] == 0.0 and psi.binning.edges[1] == math.nextafter(0.0, 1.0)
    # Had 0 shared a bin with its neighbours (quantile edges only), the shift would not show:
    edges = sorted(set(np.quantile(reference, np.arange(1, 10) / 10).tolist()))
    counts = [np.histogram(sample, [-np.inf, *edges, np.inf])[0] for sample in (reference, window)]
    assert psi_from_counts(*counts) < 0.1


def test_few_distinct_values_give_few_bins_all_with_reference_values():
    rng = np.random.default_rng(9)
    reference = list(rng.choice([1.0, 2.0, 3.0, 7.0], size=1000, p=[0.5, 0.3, 0.15, 0.05]))
    psi = PSI(reference, window=100, threshold=0.2)
    assert psi.binning.edges.tolist() == _quantile_edges(reference, 10)
    counts = psi.binning.reference_counts[:-1]
    # point masses 1, 2, 3 and 7 (each at least 5%): their own bins; only the open
    # intervals around them may be empty.
    assert sorted(counts[counts > 0].tolist()) == sorted(reference.count(v) for v in (1.0, 2.0, 3.0, 7.0))


def test_psi_from_counts_is_the_formula():
    r, w = [10, 0, 30], [5, 5, 0]
    rp = [10.5 / 41.5, 0.5 / 41.5, 30.5 / 41.5]
    wp = [5.5 / 11.5, 5.5 / 11.5, 0.5 / 11.5]
    expected = sum((b - a) * math.log(b / a) for a, b in zip(rp, wp))
    assert psi_from_counts(r, w) == pytest.approx(expected) and math.isfinite(expected)


def test_empty_bins_never_give_infinity():
    psi = PSI(list(range(100)), window=50, threshold=0.2)
    psi.update_many([1000.0] * 50)  # every value in the top bin
    assert math.isfinite(psi.statistic) and psi.drift


def test_categorical_levels_other_and_missing():
    reference = ["DE"] * 60 + ["FR"] * 30 + ["IT"] * 10
    psi = PSI(reference, window=100, threshold=0.2, categorical=True)
    assert psi.binning.levels == {"DE": 0, "FR": 1, "IT": 2}
    psi.update_many(["DE"] * 60 + ["FR"] * 30 + ["IT"] * 10)
    assert psi.statistic == pytest.approx(0.0, abs=1e-12)
    psi.update_many(["DE"] * 40 + ["XX"] * 40 + [None] * 20)
    counts = psi.counts.tolist()
    assert counts == [40, 0, 0, 40, 20] and psi.drift


def test_categorical_levels_keyed_alike_across_serialisations():
    psi = PSI([1] * 30 + [2] * 30, window=4, threshold=0.2, categorical=True)
    psi.update_many([1.0, 2, 2.0, 1])
    assert psi.counts.tolist()[:2] == [2, 2]


def test_tumbling_and_sliding_windows():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=2000)
    stream = rng.normal(size=1050)
    tumbling = PSI(ref, window=500, threshold=0.2)
    sliding = PSI(ref, window=500, stride=50, threshold=0.2)
    tumbling.update_many(stream)
    sliding.update_many(stream)
    assert tumbling.n_tests == 2 and sliding.n_tests == 12
    last_tumbling, last_sliding = stream[500:1000], stream[550:1050]
    assert tumbling.statistic == pytest.approx(_psi_by_formula(list(ref), list(last_tumbling), 10, 0.5))
    assert sliding.statistic == pytest.approx(_psi_by_formula(list(ref), list(last_sliding), 10, 0.5))


def test_merged_counts_equal_one_detector_over_both_parts():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=2000)
    a_part, b_part = rng.normal(0.3, size=300), rng.normal(0.3, size=200)
    a, b = PSI(ref, window=300, threshold=0.2), PSI(ref, window=200, threshold=0.2)
    a.update_many(a_part)
    b.update_many(b_part)
    whole = PSI(ref, window=500, threshold=0.2)
    whole.update_many(np.concatenate([a_part, b_part]))
    merged = a.merge(b)
    assert merged.counts.tolist() == whole.counts.tolist()
    assert merged.statistic == pytest.approx(whole.statistic)
    with pytest.raises(ValueError, match="same reference"):
        a.merge(PSI(rng.normal(size=2000), window=300, threshold=0.2))


@pytest.mark.parametrize("reference, kwargs, message", [
    ([1.0] * 10, {}, "reference sample too small"),
    ([float("nan")] * 100, {}, "reference sample too small"),
    (list(range(100)), {"n_bins": 1}, "n_bins"),
    (list(range(100)), {"smoothing": 0}, "smoothing"),
    ([1.0, float("inf")] * 50, {}, "infinite"),
])
def test_bad_configuration_raises(reference, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PSI(reference, threshold=0.2, **kwargs)


def test_bad_values_raise_and_empty_batches_are_no_ops():
    psi = PSI(list(range(100)), window=10, threshold=0.2)
    with pytest.raises(ValueError, match="infinite"):
        psi.update_many([1.0, float("-inf")])
    psi.update_many([])
    assert psi.n_seen == 0
    with pytest.raises(ValueError, match="expected a string, number or boolean"):
        PSI(["a"] * 30, window=10, threshold=0.2, categorical=True).update_many([["a"]])
