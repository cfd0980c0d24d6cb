"""PSI and chi-square with ``missing="ignore"``: missing values leave the window, the
reference and the calibration's null alike, while decisions still count every value fed;
the daemon sets it on every column with a missing_rate test."""

from collections import Counter

import numpy as np
import pytest

from detectors import KS, PSI, ChiSquare, joint

WINDOW, STRIDE = 200, 50


def _numeric(rng, n, missing):
    x = rng.normal(size=n)
    x[rng.random(n) < missing] = np.nan
    return x.tolist()


def _levels(rng, n, missing):
    out = rng.choice(["a", "b", "c", "d"], p=[0.4, 0.3, 0.2, 0.1], size=n).tolist()
    return [None if m else v for v, m in zip(out, rng.random(n) < missing)]


def _present(values):
    return [v for v in values if not (v is None or (isinstance(v, float) and np.isnan(v)))]


BUILDS = {
    "psi": (_numeric, lambda ref, **kw: PSI(ref, window=WINDOW, stride=STRIDE, threshold=0.15, **kw)),
    "categorical psi": (_levels, lambda ref, **kw: PSI(ref, window=WINDOW, stride=STRIDE, threshold=0.15,
                                                       categorical=True, **kw)),
    "chisquare": (_levels, lambda ref, **kw: ChiSquare(ref, window=WINDOW, stride=STRIDE, threshold=15.0, **kw)),
}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_statistics_are_those_of_the_stream_without_missing_values(name):
    draw, build = BUILDS[name]
    rng = np.random.default_rng(3)
    reference, stream = draw(rng, 3000, 0.1), draw(rng, 2000, 0.2)
    ignoring = build(reference, missing="ignore")
    ignoring.update_many(stream)
    # The same test on the present values only (a reference without missing values: its
    # missing bin is empty, as an ignored one is).
    present = build(_present(reference))
    present.update_many(_present(stream))
    got, expected = ignoring.pop_decisions(), present.pop_decisions()
    assert len(got) == len(expected) > 10
    assert [d.statistic for d in got] == pytest.approx([d.statistic for d in expected], rel=1e-12)
    assert [d.drift for d in got] == [d.drift for d in expected]
    assert ignoring.n_skipped == len(stream) - len(_present(stream)) > 0
    # Positions count every value fed: a test falls at the value completing its window
    # of present values, numbered among all values.
    kept = [i + 1 for i, v in enumerate(stream) if _present([v])]
    assert [d.at for d in got] == [kept[d.at - 1] for d in expected]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_count_keeps_missing_values_as_change(name):
    draw, build = BUILDS[name]
    rng = np.random.default_rng(4)
    reference = draw(rng, 3000, 0.0)
    counting, ignoring = build(reference), build(reference, missing="ignore")
    stream = draw(rng, 1000, 0.5)
    for detector in (counting, ignoring):
        detector.update_many(stream)
    assert counting.drift and counting.n_skipped == 0
    assert not ignoring.drift


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_the_null_never_draws_an_ignored_missing_bin(name):
    draw, build = BUILDS[name]
    reference = draw(np.random.default_rng(5), 3000, 0.1)
    counting, ignoring = build(reference), build(reference, missing="ignore")
    missing_bin = ignoring.binning.missing_bin
    assert counting.null_model().counts[missing_bin] > 0
    null = ignoring.null_model()
    assert null.counts[missing_bin] == 0 and null.prior_counts()[missing_bin] == 0
    assert sum(null.counts) == len(_present(reference))
    # The null is that of the reference without its missing values.
    assert null.counts == build(_present(reference)).null_model().counts


def test_numeric_psi_ignoring_missing_values_shares_ks_stream():
    reference = _numeric(np.random.default_rng(6), 3000, 0.1)
    ks = KS(reference, window=WINDOW, stride=STRIDE, threshold=0.1).null_model()
    counting = PSI(reference, window=WINDOW, stride=STRIDE, threshold=0.1).null_model()
    ignoring = PSI(reference, window=WINDOW, stride=STRIDE, threshold=0.1, missing="ignore").null_model()
    assert joint.sharing_groups([counting, ks]) == [[0], [1]]
    assert joint.sharing_groups([ignoring, ks]) == [[0, 1]]


@pytest.mark.parametrize("build", [
    lambda: PSI([float(i) for i in range(40)], window=10, threshold=1.0, missing="drop"),
    lambda: PSI(["a", "b"] * 20, window=10, threshold=1.0, categorical=True, missing="drop"),
    lambda: ChiSquare(["a", "b"] * 20, window=10, threshold=1.0, missing=None),
])
def test_bad_missing_setting_raises(build):
    with pytest.raises(ValueError, match="missing must be one of"):
        build()


def test_the_daemon_ignores_missing_values_where_a_missing_rate_test_counts_them():
    from daemon.config import ModelConfig
    from daemon.stream.columns import DataTests
    from daemon.stream.reference import ReferenceSample

    sample = ReferenceSample(size=300, declared={}, max_features=10)
    for i in range(300):
        features = {"amount": None if i % 10 == 0 else float(i % 37), "plan": None if i % 7 == 0 else "abc"[i % 3]}
        sample.add(features, prediction="xy"[i % 2], score=None)
    tests = DataTests(sample, ModelConfig(window=50, stride=10, ert=10_000), Counter())
    amount, plan, prediction = (tests.columns[c].tests for c in ("amount", "plan", "<prediction>"))
    assert "missing_rate" in amount and "missing_rate" in plan and "missing_rate" not in prediction
    assert amount["psi"].missing == plan["chisquare"].missing == "ignore"
    assert prediction["chisquare"].missing == "count"
    assert joint.sharing_groups([amount["psi"].null_model(), amount["ks"].null_model()]) == [[0, 1]]
