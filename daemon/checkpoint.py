"""Checkpoints: a partition's state and the offsets it reflects, written atomically.

A checkpoint is one file per partition, written to a temporary file, fsynced, renamed
over the old one, and the directory fsynced: a crash at any moment leaves either the old
checkpoint or the new one, never a torn file. Offsets are committed to Kafka only after
the file is in place, so the committed offsets are never ahead of the saved state.

Checkpoints are pickles: the directory must be writable by driftd alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from pathlib import Path

log = logging.getLogger(__name__)

FORMAT = 1
#: Longest file-name prefix taken from the scope. Group and topic names may each be up to
#: 249 characters, but a file name may not exceed 255 bytes (NAME_MAX): with the scope
#: used as is, saving failed with ENAMETOOLONG (and the daemon died on SIGTERM).
MAX_PREFIX_BYTES = 180


class Checkpoints:
    def __init__(self, directory: str | os.PathLike, scope: str):
        """``scope`` (group and topics) keeps checkpoints of other set-ups apart."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.scope = scope
        # File names start with the scope; a too-long scope is cut and made unique again
        # by a hash of the whole (short scopes keep their old file names). The full scope
        # is still stored in, and checked against, every checkpoint.
        self.prefix = scope
        if len(scope.encode()) > MAX_PREFIX_BYTES:
            digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
            self.prefix = scope.encode()[:MAX_PREFIX_BYTES - 17].decode(errors="ignore") + "-" + digest
        self.last_saved: float | None = None

    def _path(self, partition: int) -> Path:
        return self.directory / f"{self.prefix}-p{partition}.ckpt"

    def save(self, state) -> None:
        path = self._path(state.partition)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            pickle.dump({"format": FORMAT, "scope": self.scope, "state": state}, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.last_saved = time.time()

    def load(self, partition: int):
        """The saved state of ``partition``, or None. An unreadable file is set aside
        (renamed ``*.corrupt``) and logged rather than stopping the daemon."""
        path = self._path(partition)
        if not path.exists():
            return None
        try:
            with open(path, "rb") as f:
                saved = pickle.load(f)
            if saved.get("format") != FORMAT or saved.get("scope") != self.scope:
                raise ValueError("written by another version or set-up")
            return saved["state"]
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is handled alike
            aside = path.with_suffix(".corrupt")
            os.replace(path, aside)
            log.error("checkpoint %s unreadable (%s); moved to %s, partition %d starts from committed offsets",
                      path, e, aside, partition)
            return None
