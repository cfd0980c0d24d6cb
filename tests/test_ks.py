"""KS agrees with scipy.stats.ks_2samp: statistic and p-value, ties included, when the
reference has at most ``n_slots`` distinct values; a bounded approximation otherwise; the
state holds no raw values."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors import KS

values = st.one_of(
    st.integers(-5, 5).map(float),  # many ties
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=150, deadline=None)
@given(
    reference=st.lists(values, min_size=20, max_size=300),
    stream=st.lists(values, min_size=2, max_size=400),
    window=st.integers(2, 150),
    stride=st.integers(1, 150),
    method=st.sampled_from(["exact", "asymp"]),
)
def test_matches_scipy(reference, stream, window, stride, method):
    stride = min(stride, window)
    ks = KS(reference, window=window, stride=stride, threshold=0.5, method=method, n_slots=max(2, len(set(reference))))
    assert ks.exact
    ks.update_many(stream)
    if len(stream) < window:
        assert ks.statistic is None and ks.p_value is None
        return
    tested = window + (len(stream) - window) // stride * stride
    expected = stats.ks_2samp(reference, stream[tested - window:tested], method=method)
    assert ks.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert ks.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert ks.drift == (ks.statistic > 0.5)


def test_missing_values_are_left_out():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=500)
    stream = rng.normal(size=300)
    with_gaps = stream.astype(object)
    with_gaps[::3] = None
    ks = KS(ref, window=100, threshold=1.0, n_slots=500)
    ks.update_many(list(with_gaps))
    present = stream[[i for i in range(300) if i % 3]]
    assert ks.n_missing == 100 and ks.n_seen == 300
    assert ks.statistic == pytest.approx(stats.ks_2samp(ref, present[-100:]).statistic)


def test_detects_a_shift_in_the_sliding_window():
    rng = np.random.default_rng(4)
    ks = KS(rng.normal(size=5000), window=1000, stride=100, threshold=0.08)
    ks.update_many(rng.normal(size=3000))
    assert not ks.drift and ks.n_detections == 0
    ks.update_many(rng.normal(0.5, size=1000))
    assert ks.drift and ks.n_detections == 1


@pytest.mark.parametrize("bad, message", [
    ([1.0, float("inf")], "infinite"),
    (["a", "b"], "expected numbers"),
    ([1.0, None, "x"], "expected a number"),
])
def test_bad_values_raise(bad, message):
    ks = KS(np.arange(100.0), window=10, threshold=0.5)
    with pytest.raises(ValueError, match=message):
        ks.update_many(bad)
    assert ks.n_seen == 0


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="reference sample too small"):
        KS([1.0] * 5, threshold=0.1)
    with pytest.raises(ValueError, match="exactly one of threshold= or ert="):
        KS(np.arange(100.0), window=10)
    with pytest.raises(ValueError, match="stride must be between"):
        KS(np.arange(100.0), window=10, stride=20, threshold=0.1)
    with pytest.raises(ValueError, match="method"):
        KS(np.arange(100.0), window=10, threshold=0.1, method="fast")


def test_p_value_from_the_distance_and_sizes_is_scipys():
    rng = np.random.default_rng(6)
    reference = rng.integers(0, 60, size=5000).astype(float)
    ks = KS(reference, window=1000, stride=100, threshold=1.0)
    for shift in (0, 1, 3):
        window = rng.integers(shift, 60 + shift, size=1000).astype(float)
        ks.update_many(window)
        expected = stats.ks_2samp(reference, window)
        assert ks.exact and ks.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert ks.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_state_holds_no_raw_values():
    rng = np.random.default_rng(7)
    sizes = []
    for n in (5_000, 50_000):
        ks = KS(rng.normal(size=n), window=1000, stride=100, threshold=0.1)
        ks.update_many(rng.normal(size=3000))
        sizes.append(len(pickle.dumps(ks)))
    assert sizes[1] < sizes[0] * 1.1 and sizes[1] < 8_000, sizes


def test_scipys_fallback_to_the_asymptotic_p_value_is_not_a_warning_in_driftds_output():
    """A new user's finding: a nearly constant score printed scipy's "Exact calculation
    unsuccessful. Switching to method=asymp." in a replay's output. The fallback is
    scipy's documented "auto"; the p-value is the asymptotic one, without a warning."""
    import warnings

    from detectors.ks import _p_values, ks_p_value

    _p_values.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = ks_p_value(999, 1000, 1000, 1000)
    assert p == pytest.approx(float(stats.ks_2samp(np.r_[np.zeros(999), 1.0], np.zeros(1000), method="asymp").pvalue))
