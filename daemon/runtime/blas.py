"""BLAS in one thread.

driftd's matrix work is small: reconstruction's d x d regressions and its products over a
window or a batch of rows. OpenBLAS splits such products over every core, and its threads
spin while they wait for the next one: on ``bench/peer.py``'s table at the defaults that
was 1.57 s of CPU where one thread needs 1.25 s, in the same wall time, CPU that the
consumer loop, the calibrator and, in a sidecar, the model server next to driftd need.
The limit is set with threadpoolctl (scikit-learn's way to do it), for whichever BLAS
numpy and scipy loaded (OpenBLAS, MKL, BLIS), at run time: an environment variable would
come too late once numpy is imported.
"""

from __future__ import annotations

#: BLAS threads driftd allows itself.
THREADS = 1


def limit_threads() -> None:
    """Limit every BLAS library loaded in the process to :data:`THREADS` threads, for the
    rest of the process (idempotent)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=THREADS, user_api="blas")
