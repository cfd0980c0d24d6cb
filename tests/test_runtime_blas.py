"""driftd limits BLAS to one thread (daemon/runtime/blas.py): checked in a fresh
interpreter, as the limit is process-wide, on the BLAS numpy really loaded."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json, numpy, threadpoolctl
before = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
from daemon.runtime import blas
blas.limit_threads()
after = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
print(json.dumps([before, after]))
"""


def test_blas_runs_in_one_thread_after_limit_threads():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    before, after = json.loads(done.stdout)
    assert before, "numpy loaded no BLAS threadpoolctl knows"
    assert after == [1] * len(before), (before, after)
