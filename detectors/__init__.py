"""driftd's detectors: pure computation over values, no I/O, no Kafka, no metrics.

Every detector has the interface of :class:`~detectors.base.Detector`: ``update`` one value
or ``update_many`` a batch, then read ``drift``, ``warning``, ``statistic``, ``threshold``,
``p_value``, ``n_seen`` and ``n_detections``.
"""

from .base import Detector, DetectorState, restore
from .chisquare import ChiSquare
from .decay import METRICS, PerformanceDecay
from .ks import KS
from .psi import PSI, psi_from_counts
from .river import RIVER_DETECTORS, RiverDetector

__all__ = [
    "ChiSquare", "Detector", "DetectorState", "KS", "METRICS", "PSI", "PerformanceDecay",
    "RIVER_DETECTORS", "RiverDetector", "psi_from_counts", "restore",
]
