"""The local spool: click batches kept on disk while Redis cannot take them.

File format: a sequence of records, each ``>II`` (payload length, CRC-32 of the
payload) followed by the payload, one encoded click batch (the same bytes the edge
puts in a stream entry's ``c`` field). A reader stops at the first record that is
short or fails its checksum: that is a torn tail from a crash mid-write, and it is
skipped (the batch it held was never acknowledged as spooled).

Files and ownership, so that several edge processes share one directory safely:

- each process appends to its own *active* file ``edge-<pid>-<ns>.spool``, created
  under a hidden temporary name, locked with ``flock``, then renamed into place, so no
  one ever sees it unlocked while its writer lives;
- a writer *seals* its active file (closes it, dropping the lock) before replaying; the
  next batch starts a new file;
- a replayer *claims* a file by taking its lock without blocking and renaming it to
  ``<name>.claimed-<pid>``. A lock held means a live writer or replayer; a dead
  process's lock is gone, so its files, active or half-replayed, are claimed too.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_SUFFIX = ".spool"
_CLAIMED = ".claimed-"


def encode_record(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> tuple[list[bytes], bool]:
    """The payloads in ``data``, and whether a torn or corrupt tail was skipped."""
    payloads, pos, size = [], 0, len(data)
    while pos < size:
        if size - pos < _HEADER.size:
            return payloads, True
        length, crc = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if end > size or zlib.crc32(data[start:end]) != crc:
            return payloads, True
        payloads.append(data[start:end])
        pos = end
    return payloads, False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class ClaimedSpoolFile:
    """A spool file this process holds the lock on; ``delete`` once its batches are safe."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd = fd

    def read_batches(self) -> list[bytes]:
        data = self.path.read_bytes()
        payloads, torn = decode_records(data)
        if torn:
            log.warning("spool file %s has a torn or corrupt tail; %d batches before it are kept", self.path, len(payloads))
        return payloads

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Spool:
    """One process's side of the spool directory. Methods block: call them off the loop."""

    def __init__(self, directory: Path, *, fsync: bool):
        self.directory = directory
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd = -1
        self._written = 0

    def append(self, payloads: list[bytes]) -> None:
        """Append batches durably (fsync when configured); raise OSError on failure."""
        data = b"".join(encode_record(p) for p in payloads)
        with self._lock:
            if self._fd < 0:
                self._open()
            try:
                _write_all(self._fd, data)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                self._close()  # never append after a possibly torn record
                raise
            self._written += len(data)

    def seal(self) -> None:
        """Close the active file if it holds anything, so it can be replayed."""
        with self._lock:
            if self._fd >= 0 and self._written:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def has_files(self) -> bool:
        try:
            with os.scandir(self.directory) as entries:
                return any(_is_spool_name(e.name) for e in entries)
        except FileNotFoundError:
            return False

    def claim(self) -> list[ClaimedSpoolFile]:
        """Lock and rename every spool file nobody else holds; oldest first."""
        claimed = []
        try:
            names = sorted(n for n in os.listdir(self.directory) if _is_spool_name(n))
        except FileNotFoundError:
            return []
        for name in names:
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    raise FileNotFoundError(path)
                target = self.directory / f"{name.split(_CLAIMED)[0]}{_CLAIMED}{os.getpid()}"
                os.rename(path, target)
            except (BlockingIOError, FileNotFoundError):
                os.close(fd)
                continue
            claimed.append(ClaimedSpoolFile(target, fd))
        return claimed

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"edge-{os.getpid()}-{time.time_ns()}"
        tmp = self.directory / f".{stem}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, self.directory / f"{stem}{_SUFFIX}")
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._fd, self._written = fd, 0

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd, self._written = -1, 0


def _is_spool_name(name: str) -> bool:
    return not name.startswith(".") and (name.endswith(_SUFFIX) or _SUFFIX + _CLAIMED in name)
