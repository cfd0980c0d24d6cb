"""Finding (and, where we may, installing) the command-line tools some tests need.

The project installs what its tests need itself: ``ensure_debian_package("prometheus",
"promtool")`` returns the path of ``promtool``, installing Debian's ``prometheus`` package
first if the binary is missing and we are root with ``apt-get``. Otherwise it returns None
and :func:`unavailable_reason` says why, for the test's ``pytest.skip``.

- Quick when installed: a PATH look-up, no apt at all.
- One install at a time: an exclusive ``flock`` around apt (parallel test runs, xdist
  workers), and apt's own lock is waited for rather than failed on.
- ``apt-get update`` runs at most once per process, and not at all when the package lists
  are fresh (another process just updated them).
- Non-interactive (``DEBIAN_FRONTEND=noninteractive``), no recommends, and no service
  started: a ``policy-rc.d`` that refuses service starts is put in place for the install
  if the machine has none (Debian's postinst would otherwise try to start Prometheus).
- The answer is cached per (package, binary) for the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

LOCK_FILE = Path(os.environ.get("DRIFTD_APT_LOCK", "/tmp/driftd-test-apt.lock"))
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
APT_LISTS = Path("/var/lib/apt/lists")
#: Package lists younger than this are not refreshed.
FRESH_LISTS_SECONDS = 3600
#: Longest time one apt step may take (a slow mirror), and the wait for apt's own lock.
APT_TIMEOUT_SECONDS = 900
APT_LOCK_WAIT_SECONDS = 300

_cache: dict[tuple[str, str], str | None] = {}
_reasons: dict[tuple[str, str], str] = {}
_updated = False
_thread_lock = threading.Lock()


def ensure_promtool() -> str | None:
    """Path of ``promtool`` (Debian package ``prometheus``), installed if need be; None if
    it is not there and cannot be installed (see :func:`unavailable_reason`)."""
    return ensure_debian_package("prometheus", "promtool")


def ensure_amtool() -> str | None:
    """Path of ``amtool`` (Debian package ``prometheus-alertmanager``)."""
    return ensure_debian_package("prometheus-alertmanager", "amtool")


def require(pkg: str, binary: str) -> str:
    """Path of ``binary`` from Debian package ``pkg``, installed if need be; the calling
    test is skipped, with the reason, when it cannot be had (never silently passed)."""
    import pytest

    path = ensure_debian_package(pkg, binary)
    if path is None:
        pytest.skip(f"{binary} unavailable: {unavailable_reason(pkg, binary)}")
    return path


def unavailable_reason(pkg: str, binary: str) -> str:
    """Why the last :func:`ensure_debian_package` for these returned None."""
    return _reasons.get((pkg, binary), f"{binary} not looked for yet")


def ensure_debian_package(pkg: str, binary: str) -> str | None:
    """Path of ``binary``; if it is missing, install Debian package ``pkg`` (root with
    apt-get only). None if it is neither there nor installable."""
    key = (pkg, binary)
    with _thread_lock:
        if key in _cache:
            return _cache[key]
        path = _find(binary)
        if path is None:
            path = _install(pkg, binary)
        _cache[key] = path
        return path


def _find(binary: str) -> str | None:
    found = shutil.which(binary)
    if found:
        return found
    for directory in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):  # PATH may be trimmed
        candidate = Path(directory) / binary
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _install(pkg: str, binary: str) -> str | None:
    key = (pkg, binary)
    if os.environ.get("DRIFTD_NO_APT"):
        _reasons[key] = f"{binary} not found and DRIFTD_NO_APT is set (install Debian package {pkg!r})"
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _reasons[key] = f"{binary} not found and not root: cannot apt-get install {pkg!r} (install it, or run as root)"
        return None
    apt = shutil.which("apt-get")
    if apt is None:
        _reasons[key] = f"{binary} not found and no apt-get on this machine (install the {pkg!r} package's {binary})"
        return None
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        path = _find(binary)  # another process may have installed it while we waited
        if path is not None:
            return path
        try:
            with _no_service_start():
                _apt_update(apt)
                _apt(apt, "install", "-y", "--no-install-recommends", pkg)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            output = getattr(e, "stdout", None) or ""
            if isinstance(output, bytes):
                output = output.decode(errors="replace")
            _reasons[key] = f"apt-get install {pkg} failed: {e}\n{output[-2000:]}"
            return None
    path = _find(binary)
    if path is None:
        _reasons[key] = f"apt-get installed {pkg!r} but {binary} is still not on PATH or in /usr/bin"
    return path


def _apt(apt: str, *args: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "l", "APT_LISTCHANGES_FRONTEND": "none"}
    subprocess.run(
        [apt, "-q", "-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_SECONDS}",
         "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, check=True, timeout=APT_TIMEOUT_SECONDS)


def _apt_update(apt: str) -> None:
    global _updated
    if _updated:
        return
    try:
        fresh = time.time() - max(p.stat().st_mtime for p in APT_LISTS.glob("*_Packages*")) < FRESH_LISTS_SECONDS
    except (ValueError, OSError):  # no lists at all
        fresh = False
    if not fresh:
        _apt(apt, "update")
    _updated = True


@contextlib.contextmanager
def _no_service_start():
    """Refuse service starts during the install (invoke-rc.d and deb-systemd-invoke both
    honour policy-rc.d exit 101), unless the machine already has a policy of its own."""
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text("#!/bin/sh\n# driftd tests: no service starts during apt-get install\nexit 101\n")
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            POLICY_RC_D.unlink()
