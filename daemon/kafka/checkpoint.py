"""Checkpoints: a partition's state and the offsets it reflects, written atomically and
authenticated; and the file of alerts still being retried.

A checkpoint is one file per partition, written to a temporary file, fsynced, renamed
over the old one, and the directory fsynced: a crash at any moment leaves either the old
checkpoint or the new one, never a torn file. Offsets are committed to Kafka only after
the file is in place, so the committed offsets are never ahead of the saved state.

Files are pickles, and unpickling runs code: every file is sealed with HMAC-SHA256 (the
tag covers the format, what the file is for -- scope and partition -- and the pickle) and
its tag is checked, in constant time, before anything is unpickled. A file whose tag does
not match (tampered with, written with another key, or by a driftd before sealing) is
refused, set aside as ``*.corrupt`` and logged; the partition starts from the committed
offsets with fresh state, as for any unreadable checkpoint.

The key (:func:`state_key`) is the value of the environment variable named by
``state.key_env`` (``DRIFTD_STATE_KEY``) if set; otherwise a random key that driftd
generates once into ``<state.dir>/state.key`` with mode 0600, and refuses to use if that
file is not owned by driftd's user or is readable or writable by others.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import logging
import os
import pickle
import secrets
import tempfile
import time
from pathlib import Path

log = logging.getLogger("driftd.kafka.checkpoint")

FORMAT = 2
#: First bytes of a sealed file; the 32-byte HMAC-SHA256 tag follows, then the pickle.
MAGIC = b"driftd-sealed-2\n"
KEY_FILE = "state.key"
#: Longest file-name prefix taken from the scope. Group and topic names may each be up to
#: 249 characters, but a file name may not exceed 255 bytes (NAME_MAX): with the scope
#: used as is, saving failed with ENAMETOOLONG (and the daemon died on SIGTERM).
MAX_PREFIX_BYTES = 180


class StateKeyError(RuntimeError):
    """The key file cannot be trusted or read; the message says why and what to do."""


class Tampered(ValueError):
    """A sealed file whose tag does not match its contents: it is never unpickled."""


def state_key(directory: str | os.PathLike, env: str = "DRIFTD_STATE_KEY") -> tuple[bytes, str]:
    """(key, where it came from) for sealing the files in ``directory``.

    The key is the value of environment variable ``env`` when set and not empty;
    otherwise the contents of ``directory/state.key``, generated (32 random bytes, hex,
    mode 0600) if missing. Raises :class:`StateKeyError` if that file belongs to another
    user, is a symbolic link, is open to group or others, or is empty.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> key, source = state_key(d, env="DRIFTD_NO_SUCH_VARIABLE")
    >>> len(key), source.endswith("state.key (generated)"), state_key(d, "DRIFTD_NO_SUCH_VARIABLE")[0] == key
    (64, True, True)
    """
    value = os.environ.get(env)
    if value:
        return value.encode(), f"environment variable {env}"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    generated = _create_key_file(path)
    try:
        info = os.lstat(path)
    except OSError as e:
        raise StateKeyError(f"cannot read the state key {path}: {e.strerror}") from None
    if not os.path.isfile(path) or os.path.islink(path):
        raise StateKeyError(f"the state key {path} is not a regular file")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise StateKeyError(
            f"the state key {path} must belong to uid {os.getuid()} and be readable by it alone "
            f"(it is uid {info.st_uid}, mode {info.st_mode & 0o777:o}): chmod 600 it, or set {env}")
    key = path.read_bytes().strip()
    if not key:
        raise StateKeyError(f"the state key {path} is empty: delete it (a new one is generated) or set {env}")
    return key, f"{path} ({'generated' if generated else 'from a previous run'})"


def _create_key_file(path: Path) -> bool:
    """Write a new random key to ``path`` unless it exists; True if written. Written to a
    private temporary file and linked into place: never a half-written or shared key."""
    if os.path.lexists(path):
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process won the race: its key is used
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def seal(key: bytes, purpose: str, obj) -> bytes:
    """``obj`` pickled and sealed for ``purpose``: MAGIC, HMAC-SHA256 tag, pickle.

    >>> unseal(b"k", "p", seal(b"k", "p", {"a": 1}))
    {'a': 1}
    >>> unseal(b"other key", "p", seal(b"k", "p", {"a": 1}))
    Traceback (most recent call last):
    ...
    daemon.kafka.checkpoint.Tampered: HMAC-SHA256 tag does not match: tampered with, or sealed with another key
    """
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return MAGIC + _tag(key, purpose, payload) + payload


def unseal(key: bytes, purpose: str, data: bytes):
    """The object :func:`seal` sealed; :class:`Tampered` (nothing unpickled) if the tag
    does not match, or the data is not a sealed file."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 32:
        raise Tampered("not a sealed driftd file (written by an older driftd, or not by driftd)")
    tag, payload = data[len(MAGIC):len(MAGIC) + 32], data[len(MAGIC) + 32:]
    if not hmac.compare_digest(tag, _tag(key, purpose, payload)):
        raise Tampered("HMAC-SHA256 tag does not match: tampered with, or sealed with another key")
    return pickle.loads(payload)


def _tag(key: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(key, MAGIC + purpose.encode() + b"\0" + payload, hashlib.sha256).digest()


class _Sections:
    """A checkpoint in the state topic's form, in a file."""

    def __init__(self, partition: int, manifest, sections: dict):
        self.partition = partition
        self.manifest = manifest
        self.sections = sections


def prepare_directory(directory: str | os.PathLike) -> None:
    """Make the state directory (and its parents) if missing. OSError, with the reason and
    the path, if it cannot be made or is not a directory driftd can write in."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a directory", str(path))
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "driftd's user cannot write in it", str(path))
    try:  # access() says yes to root everywhere: a file made and removed says it for sure
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise OSError(e.errno, f"a file cannot be made in it ({e.strerror})", str(path)) from None


class Checkpoints:
    def __init__(self, directory: str | os.PathLike, scope: str, key: bytes | None = None,
                 key_env: str = "DRIFTD_STATE_KEY"):
        """``scope`` (group and topics) keeps checkpoints of other set-ups apart. ``key``
        seals the files; None takes :func:`state_key` of ``directory`` and ``key_env``."""
        self.directory = Path(directory)
        prepare_directory(self.directory)
        self.scope = scope
        if key is None:
            key, source = state_key(self.directory, key_env)
            log.info("state files sealed with the key in %s", source)
        self._key = key
        # File names start with the scope; a too-long scope is cut and made unique again
        # by a hash of the whole (short scopes keep their old file names). The full scope
        # is still stored in, and checked against, every checkpoint.
        self.prefix = scope
        if len(scope.encode()) > MAX_PREFIX_BYTES:
            digest = hashlib.sha256(scope.encode()).hexdigest()[:16]
            self.prefix = scope.encode()[:MAX_PREFIX_BYTES - 17].decode(errors="ignore") + "-" + digest
        self.last_saved: float | None = None

    def __reduce__(self):
        raise TypeError("Checkpoints holds a key and is not picklable")

    def _path(self, partition: int) -> Path:
        return self.directory / f"{self.prefix}-p{partition}.ckpt"

    @property
    def alerts_path(self) -> Path:
        # The file-name prefix, not the raw scope: that can be too long for a file name.
        return self.directory / f"{self.prefix}-alerts.pending"

    def save(self, state, logs: dict | None = None) -> None:
        """Write ``state`` (its ``partition`` names the file) and ``logs``, the identity
        of the log each of its offsets is in ({topic: id}, see :mod:`daemon.kafka.logid`)."""
        saved = {"format": FORMAT, "scope": self.scope, "state": state, "logs": dict(logs or {})}
        self._write(self._path(state.partition), f"checkpoint {self.scope} p{state.partition}", saved)
        self.last_saved = time.time()

    def load(self, partition: int, config=None):
        """The saved state of ``partition`` (a ``PartitionState`` bound to ``config``, by
        default the default configuration), or None (see :meth:`restore`)."""
        restored = self.restore(partition)
        if restored is None:
            return None
        if isinstance(restored[0], _Sections):
            from daemon.config import Config
            from daemon.kafka.statetopic import decode_partition  # the state's modules import this one

            return decode_partition(restored[0].sections, config if config is not None else Config())
        return restored[0]

    def save_sections(self, manifest, sections: dict) -> None:
        """Write a checkpoint as the state topic holds it: its manifest
        (:class:`daemon.kafka.statetopic.Manifest`) and sections ({name: blob bytes})."""
        self.save(_Sections(manifest.partition, manifest, dict(sections)), manifest.logs)

    def restore_sections(self, partition: int):
        """(manifest, {name: blob bytes}) of ``partition``'s file, (None, (state, logs)) for
        a file written whole by an earlier driftd, or None (see :meth:`restore`)."""
        restored = self.restore(partition)
        if restored is None:
            return None
        saved, logs = restored
        if isinstance(saved, _Sections):
            return saved.manifest, saved.sections
        return None, (saved, logs)

    def restore(self, partition: int):
        """(state, logs) saved for ``partition``, or None. A file that is unreadable,
        of another set-up or version, or fails its HMAC check is set aside (renamed
        ``*.corrupt``) and logged rather than stopping the daemon."""
        path = self._path(partition)
        if not path.exists():
            return None
        try:
            saved = unseal(self._key, f"checkpoint {self.scope} p{partition}", path.read_bytes())
            if saved.get("format") != FORMAT or saved.get("scope") != self.scope:
                raise ValueError("written by another version or set-up")
            return saved["state"], saved.get("logs", {})
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is handled alike
            aside = self._set_aside(path)
            log.error("checkpoint %s refused (%s); moved to %s, partition %d starts from committed offsets",
                      path, e, aside, partition)
            return None

    def save_alerts(self, alerts: list[dict], delivery: dict | None = None) -> None:
        """Write the alerts still being retried (``Alert.to_dict()`` each) and their
        delivery records by id (which sinks are done, when each was first due: see
        :meth:`daemon.alerting.sender.AlertSender.pending_records`)."""
        self._write(self.alerts_path, f"alerts {self.scope}", {"alerts": list(alerts), "delivery": dict(delivery or {})})

    def load_alerts(self) -> list[dict]:
        """The alerts :meth:`save_alerts` wrote (see :meth:`load_pending`)."""
        return self.load_pending()[0]

    def load_pending(self) -> tuple[list[dict], dict]:
        """(alerts, delivery records) that :meth:`save_alerts` wrote; the file of an earlier
        driftd, a list of alerts alone, has no records (every sink is sent each again).
        ([], {}) if there is none, or if the file is refused (set aside as ``*.corrupt``
        and logged, like a checkpoint)."""
        path = self.alerts_path
        if not path.exists():
            return [], {}
        try:
            saved = unseal(self._key, f"alerts {self.scope}", path.read_bytes())
            if isinstance(saved, list):  # before the delivery records were kept
                saved = {"alerts": saved, "delivery": {}}
            if not (isinstance(saved, dict) and isinstance(saved.get("alerts"), list)
                    and isinstance(saved.get("delivery"), dict)):
                raise ValueError("not a list of alerts")
            return saved["alerts"], saved["delivery"]
        except Exception as e:  # noqa: BLE001 - a damaged file must not stop the daemon
            aside = self._set_aside(path)
            log.error("pending alerts %s refused (%s); moved to %s, those alerts are not retried", path, e, aside)
            return [], {}

    def _write(self, path: Path, purpose: str, obj) -> None:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(seal(self._key, purpose, obj))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _set_aside(path: Path) -> Path:
        aside = path.with_suffix(path.suffix + ".corrupt")
        os.replace(path, aside)
        return aside
