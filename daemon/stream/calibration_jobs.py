"""Calibration jobs: the thresholds a model's tests wait for, and computing them.

A test is built before its thresholds are known (:mod:`daemon.stream.columns`,
:mod:`daemon.stream.labels`, :mod:`daemon.stream.estimation`): its owner hands out a
:class:`CalibrationJob` per column, the calibration worker (:mod:`daemon.runtime.calibrator`,
off the consumer loop) or :func:`calibrate_jobs_now` computes it with :func:`thresholds_of`,
pure and deterministic, and the owner applies the result; the decisions the tests held
meanwhile are then taken in order, so nothing depends on how long calibration took.

>>> from detectors import RateTest
>>> test = RateTest([0] * 990 + [1] * 10, window=100, stride=100, ert=1e6, defer_calibration=True)
>>> job = CalibrationJob("x", ("missing_rate",), (test.null_model(),), (1e6,))
>>> thresholds_of(job)   # (threshold, warning) per test: here flagged values in a window of 100
[(7.5, 6.5)]
>>> calibrate_jobs_now([job], lambda job, found, error: test.set_thresholds(*found[0])), test.calibrated
(1, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors import calibration, joint


@dataclass(frozen=True, eq=False)
class CalibrationJob:
    """The thresholds one column needs: its uncalibrated ``tests`` (names), their null
    models (:class:`detectors.calibration.NullModel`) and ERTs (each test alone, in
    predictions or labelled events), and ``joint``, the ERT of the union of the alarms of
    the tests at positions ``union`` (its value tests; None and ``()``: calibrate each
    alone)."""

    column: str
    tests: tuple[str, ...]
    null_models: tuple
    erts: tuple
    joint: float | None = None
    union: tuple[int, ...] = ()


def thresholds_of(job: CalibrationJob) -> list[tuple[float, float | None] | str]:
    """(threshold, warning threshold) per test of ``job``, in the order of ``job.tests``:
    the value tests for the union of their alarms (``job.joint``) where the detectors
    offer it, each other test for its own ERT. Pure and deterministic: any thread, any
    process, the same thresholds.

    One test's failure does not cost the others their thresholds: the entry of a test
    whose calibration raised is the error in words (a str, ``"ValueError: ..."``), which
    its owner skips alone (:meth:`daemon.stream.columns.DataTests.apply`). If the union of
    the value tests raises, each group of them that shares a stream
    (:func:`detectors.joint.sharing_groups`: PSI and KS) is calibrated again for the union of its own alarms at its members' shares, and
    failing that each test alone at its share (as ``calibrate_union`` itself falls back),
    so a failure takes its group at most. Raises the first error only when every test of
    the job failed (a job of one test fails as a whole, as it always did)."""
    out: list = [None] * len(job.tests)
    union = getattr(calibration, "calibrate_union", None)
    values = list(job.union)
    if union is not None and job.joint is not None and len(values) > 1:
        try:
            for i, result in zip(values, union([job.null_models[i] for i in values], job.joint)):
                out[i] = tuple(result)
        except Exception:  # noqa: BLE001 - found again below, test by test
            out = [None] * len(job.tests)
            for group in joint.sharing_groups([job.null_models[i] for i in values]):
                members = [values[j] for j in group]
                if len(members) > 1:
                    # The group's ERT: its members' shares of the rate added up.
                    ert = 1.0 / sum(1.0 / job.erts[i] for i in members)
                    found = _or_error(union, [job.null_models[i] for i in members], ert)
                    if not isinstance(found, Exception):
                        for i, result in zip(members, found):
                            out[i] = tuple(result)
    for i, (model, ert) in enumerate(zip(job.null_models, job.erts)):
        if out[i] is None:
            found = _or_error(calibration.calibrate, model, ert)
            out[i] = found if isinstance(found, Exception) else tuple(found)
    errors = [e for e in out if isinstance(e, Exception)]
    if errors and len(errors) == len(out):
        raise errors[0]
    return [f"{type(e).__name__}: {e}" if isinstance(e, Exception) else e for e in out]


def _or_error(function, *args):
    """``function(*args)``, or the exception it raised (the caller tells the tests apart)."""
    try:
        return function(*args)
    except Exception as e:  # noqa: BLE001 - one test's failure, reported in words with it
        return e


def calibrate_jobs_now(jobs, apply, compute=thresholds_of) -> int:
    """Compute each of ``jobs``'s thresholds in this thread and hand them to ``apply(job,
    thresholds, error)``; a computation or an ``apply`` that raises is applied again as
    the error in words (``thresholds`` None: the job's tests are left out, as the
    calibration worker's failures are). Returns how many jobs ran."""
    jobs = list(jobs)
    for job in jobs:
        try:
            apply(job, compute(job), None)
        except Exception as e:  # noqa: BLE001 - the test is left out, never the loop stopped
            apply(job, None, f"{type(e).__name__}: {e}")
    return len(jobs)
