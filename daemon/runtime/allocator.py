"""The C allocator's settings for a process that holds many models (glibc; elsewhere nothing).

glibc serves an allocation of at least its *mmap threshold* with its own ``mmap``, given
back to the system when freed; below, from the heap, whose freed space mostly stays in the
process. The threshold starts at 128 KiB but rises to the size of any such block freed (up
to 32 MiB): after the first calibration frees its arrays of a few MiB, every later
temporary array of that size comes from the heap, and the heap cannot shrink under the
models' long-lived state allocated meanwhile. Measured with ``bench/scale.py``'s models
(20 numeric features at the defaults): about 1.4 MB of RSS per model with the rising
threshold, 0.74 MB with it fixed at 128 KiB (:func:`tune`), for the same live objects; the
price is a fresh ``mmap`` (page faults) for each large temporary, a few ms per calibration.

A reference (tens of KiB per column) is freed when its model's tests are built, and its
pages stay in the heap, under the state allocated since: when many models collect at once,
RSS stays at their peak. :func:`released` counts such bytes and, every
:data:`RELEASE_EVERY` of them (in effect after each model's build), has glibc give the
heap's free pages back (``malloc_trim``; ~1 ms with a few hundred MB of heap). Measured on
80 models collecting at once: 1.04 MB of RSS per model afterwards without it, 0.66 MB with
it (0.96 MB when trimming only every 16 MB of references: the pages freed meanwhile are
partly taken again before they are given back).

>>> tune() in (True, False), released(0)
(True, False)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: glibc's ``mallopt`` parameter number of the mmap threshold.
M_MMAP_THRESHOLD = -3
#: Bytes from which an allocation gets its own mapping (glibc's initial value, kept fixed).
MMAP_THRESHOLD = 128 * 1024


#: Bytes freed between two ``malloc_trim`` (a reference of a few features is enough).
RELEASE_EVERY = 64 * 1024

_pending = 0  # bytes counted by released() since the last trim


@functools.cache
def _libc():
    # Found once: find_library runs ldconfig in a subprocess (~1 ms of this process's CPU
    # and a fork), and released() asks after every model's build.
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def released(nbytes: int) -> bool:
    """Count ``nbytes`` just freed (a reference's columns); every :data:`RELEASE_EVERY`
    bytes, give the heap's free pages back to the system. True if it did."""
    global _pending
    _pending += nbytes
    if _pending < RELEASE_EVERY:
        return False
    _pending = 0
    try:
        return bool(_libc().malloc_trim(0))
    except (OSError, AttributeError):
        return False


def tune() -> bool:
    """Fix the mmap threshold at :data:`MMAP_THRESHOLD` (which also stops it rising):
    True if the C library took it, False where there is no glibc ``mallopt``."""
    try:
        return bool(_libc().mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
