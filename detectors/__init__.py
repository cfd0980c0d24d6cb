"""driftd's detectors: pure computation over values, no I/O, no Kafka, no metrics.

Every detector has the interface of :class:`~detectors.base.Detector`: ``update`` one value
or ``update_many`` a batch, then read ``drift``, ``warning``, ``statistic``, ``threshold``,
``p_value``, ``n_seen`` and ``n_detections``, and drain its decisions with
``pop_decisions``. The windowed tests (PSI, KS, chi-square, rate) and the CUSUMs
(:mod:`detectors.cusum`, a sequential test of a mean; :mod:`detectors.level_cusum`, of
each frequent level's share) calibrate their thresholds to an
expected run length between false alarms (:mod:`detectors.calibration`), in their
constructor or later, off the caller's loop.
"""

from . import calibration
from .base import Decision, Detector, DetectorState, restore
from .chisquare import ChiSquare
from .cusum import CUSUM
from .decay import METRICS, PerformanceDecay
from .cbpe import ClassificationEstimate, IsotonicCalibrator
from .dle import RegressionEstimate
from .estimation import EstimateDecay
from .ks import KS
from .level_cusum import LevelCUSUM
from .psi import PSI, psi_from_counts
from .rate import RateTest
from .reconstruction import Reconstruction
from .river import RIVER_DETECTORS, RiverDetector

__all__ = [
    "CUSUM", "ChiSquare", "ClassificationEstimate", "Decision", "Detector", "DetectorState", "EstimateDecay",
    "IsotonicCalibrator", "KS", "LevelCUSUM", "METRICS", "PSI", "PerformanceDecay", "RIVER_DETECTORS", "RateTest",
    "Reconstruction", "RegressionEstimate", "RiverDetector", "calibration", "psi_from_counts", "restore",
]
