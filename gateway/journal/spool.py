"""The spool: the append-only file in front of the journal's queue, read back after a crash, and the position
in it up to which the database has committed (``journal_meta.spool_position``, or ``spool_position:NAME`` for
instance NAME of a cluster: each instance has its own spool directory, so its own position)."""
from __future__ import annotations

import errno
import logging
import mmap
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import Engine, select

from gateway.journal.db import journal_meta

log = logging.getLogger("fixgw.journal")

SPOOL_META = "spool_position"
_SPOOL_HEADER = struct.Struct("<IIq")  # payload length, crc32 of the payload, time stamp (ns)


def position_key(instance: str | None) -> str:
    """The journal_meta row holding a spool's committed position: one per cluster instance, else the one."""
    return SPOOL_META if instance is None else f"{SPOOL_META}:{instance}"


def set_spool_position(cur, param: str, spooled: tuple[str, int], key: str = SPOOL_META) -> None:
    """Record, in the batch's own transaction, how far into which spool file the journal is committed."""
    value = f"{spooled[0]}:{spooled[1]}"
    cur.execute(f"UPDATE journal_meta SET value = {param} WHERE name = {param}", (value, key))
    if cur.rowcount == 0:
        cur.execute(f"INSERT INTO journal_meta (name, value) VALUES ({param}, {param})", (key, value))


def spool_position(engine: Engine, key: str = SPOOL_META) -> tuple[str, int] | None:
    """(spool file name, offset) up to which the journal is committed; None before the first spooled commit."""
    with engine.connect() as conn:
        value = conn.execute(select(journal_meta.c.value).where(journal_meta.c.name == key)).scalar()
    if not value:
        return None
    name, _, offset = value.rpartition(":")
    return name, int(offset)


def spool_files(directory: Path) -> list[Path]:
    """The spool files in ``directory``, oldest first (their names sort by creation time)."""
    return sorted(Path(directory).glob("spool-*.bin"))


def uncommitted(files: list[Path], position: tuple[str, int] | None) -> Iterator[tuple]:
    """Queue entries (ns, session, kind, payload, (file name, end offset)) of the records in ``files`` past
    ``position`` (``spool_position``): what earlier runs spooled and the database never committed."""
    for f in files:
        if position is not None and f.name < position[0]:
            continue  # committed before the file named in the database
        start = position[1] if position is not None and f.name == position[0] else 0
        for ts, sid, kind, raw, end in read_spool(f, start):
            yield ts, sid, kind, raw, (f.name, end)


_SPOOL_GROWTH = 16 << 20  # the spool file is extended (zero-filled, allocated) and mapped this much at a time


class Spool:
    """An append-only file in front of the journal queue: the crash-safe half of the journal.

    ``append`` copies one record into the file through a shared memory map (in the
    page cache it survives the process being killed; it is not fsynced) and queues
    the row under the same lock, so the queue's order is the file's order. A copy
    into the map is no system call and does not let go of the GIL, where a
    ``write()`` per message did both, on every session thread and the core thread.
    The file grows by ``_SPOOL_GROWTH`` at a time, its disk blocks allocated at once
    (``_allocate``); what follows the last record is zeros (a record never has
    length 0), and a clean close trims them. Each
    committed batch stores the file position of its last row in journal_meta, in
    the same transaction; the next start imports the rest. Record: [length u32]
    [crc32 u32][ns i64][direction ("I", "O", or "E" for a session event), session,
    NUL, raw message or event text in UTF-8].
    """

    def __init__(self, path: Path, put: Callable[[tuple], None]):
        self.path = path
        self._put = put  # where each record goes once it is written (the writer's queue)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = os.fstat(self._fd).st_size
        self._pos = spool_end(path) if size else 0
        self._size = max(size, self._pos + _SPOOL_GROWTH)
        _allocate(self._fd, self._size)
        self._map = mmap.mmap(self._fd, self._size)
        self._lock = threading.Lock()
        self.records = 0  # appended by this process

    @classmethod
    def create(cls, directory: Path, put: Callable[[tuple], None], after: str = "") -> "Spool":
        stamp = time.time_ns()
        if after:
            stamp = max(stamp, int(after[len("spool-"):-len(".bin")]) + 1)
        return cls(Path(directory) / f"spool-{stamp:020d}.bin", put)

    def append(self, ts: int, session_id: str, direction: str, raw: str) -> None:
        body = f"{direction}{session_id}\x00{raw}".encode("utf-8", "surrogatepass")
        rec = _SPOOL_HEADER.pack(len(body), zlib.crc32(body), ts) + body
        with self._lock:
            start = self._pos
            end = start + len(rec)
            if end > self._size:
                size = end + _SPOOL_GROWTH
                _allocate(self._fd, size)  # OSError (disk full): this record is refused, the spool stays whole
                mapped = mmap.mmap(self._fd, size)  # (a new map: mmap.resize needs Linux's mremap)
                self._map.close()
                self._map, self._size = mapped, size
            self._map[start:end] = rec
            self._pos = end
            self.records += 1
            self._put((ts, session_id, direction, raw, (self.path.name, end)))

    def timestamp_at(self, pos: int) -> int | None:
        """Capture time (ns) of the record starting at byte ``pos``; None if no record starts there."""
        with self._lock:
            if pos < 0 or pos + _SPOOL_HEADER.size > self._pos:
                return None
            length, _crc, ts = _SPOOL_HEADER.unpack_from(self._map, pos)
            return ts if length else None

    def position(self) -> tuple[int, int]:
        """(bytes, records appended by this process) so far, read together."""
        with self._lock:
            return self._pos, self.records

    def redirect(self, put: Callable[[tuple], None]) -> tuple[int, int]:
        """Hand the records appended from now on to ``put``; ``position()`` at the switch."""
        with self._lock:
            self._put = put
            return self._pos, self.records

    def close(self, remove: bool) -> None:
        with self._lock:
            self._map.close()
            os.ftruncate(self._fd, self._pos)  # no zeros after the last record
            os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def _allocate(fd: int, size: int) -> None:
    """Give the file ``size`` bytes of disk blocks now. A store into a mapped page with no block behind it
    on a full disk kills the process (SIGBUS); an allocation that fails raises OSError (ENOSPC) here,
    like the ``write()`` it replaced. Where ``posix_fallocate`` is missing (macOS) or the file system
    refuses it, the new part of the file is written with zeros instead."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    at = os.fstat(fd).st_size
    zeros = bytes(1 << 20)
    while at < size:
        at += os.pwrite(fd, zeros[:size - at], at)


class SpoolStop(NamedTuple):
    """Where and why ``parse_spool`` stopped: "end" (no more data, or the zeros after the last record),
    "partial" (a record that runs past the data; ``length``: its length, when its header was whole) or
    "torn" (its checksum fails: still being copied, or the process died while writing it)."""

    why: str
    at: int  # the offset of the first byte not taken (just after the last whole record)
    length: int | None = None


def parse_spool(data: bytes, start: int = 0, base: int = 0):
    """(ns, session, direction, raw, end offset) of each whole record in ``data`` from ``start``, then one
    ``SpoolStop``. Offsets are ``base`` + offsets in ``data``."""
    pos, n = start, len(data)
    size = _SPOOL_HEADER.size
    while True:
        if pos + size > n:
            yield SpoolStop("end" if pos == n or not any(data[pos:]) else "partial", base + pos)
            return
        length, crc, ts = _SPOOL_HEADER.unpack_from(data, pos)
        if length == 0:
            yield SpoolStop("end", base + pos)
            return
        end = pos + size + length
        if end > n:
            yield SpoolStop("partial", base + pos, length)
            return
        body = data[pos + size:end]
        if zlib.crc32(body) != crc:
            yield SpoolStop("torn", base + pos)
            return
        pos = end
        head, _, raw = body.decode("utf-8", "surrogatepass").partition("\x00")
        yield ts, head[1:], head[0], raw, base + pos


def read_spool(path: Path, start: int = 0):
    """(ns, session, direction, raw, end offset) of each whole record from ``start``; stops at a torn one."""
    for record in parse_spool(path.read_bytes(), start):
        if type(record) is SpoolStop:
            if record.why != "end":
                log.warning("spool %s: torn record at byte %d ignored (the process died while writing it)",
                            path, record.at)
            return
        yield record


def spool_end(path: Path) -> int:
    """The offset just after the last whole record of a spool file."""
    *_, stop = parse_spool(path.read_bytes())
    return stop.at
