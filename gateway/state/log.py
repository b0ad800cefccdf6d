"""The order-state log: what the core changed, made durable before anything is sent.

After every command the engine appends one record (the orders the command
touched, as they are now; their open risk exposure; the routing decisions it
took, each written once; the inbound MsgSeqNum it consumed; the text of every
message about to be sent; operator switches when they changed; per-day risk
usage when it changed: the trading day, the notional filled on it per account,
each session's day; each new order refused at intake, as a small plain-value
entry) with a single
``write()``, and only then are the messages sent (by the engine's sender
thread, in order, never more than ``SEND_BACKLOG_MAX`` behind). So every message
the gateway ever sent is explained by a record on disk, and a message whose
record is missing was never acted on. A ``write()`` lands in the kernel's page
cache: it survives the process being killed (``kill -9``, OOM, a segfault).
Surviving a power cut as well needs ``fsync = true`` ([recovery] in the config),
at the cost of a disk flush per command.

Files, in ``<data_dir>/state/``:

- ``state.snap``: a full snapshot, replaced atomically (temp file, fsync, rename);
  written at start-up (compaction) and at a clean stop (marked clean);
- ``state.log``: the records since that snapshot, each ``[length u32][crc32 u32]
  [body]``. A torn last record (the process died inside ``write()``) fails its
  length or CRC check and is ignored: its messages were never sent. A record the
  file took only in part while the process lived on (a full disk) is cut back
  off at once, so a partial record never comes before a whole one, which reading
  would never reach; if it cannot be cut back, the log stops for good (``fatal``)
  and the engine sends nothing more.

Records and snapshots are encoded as gateway/state/records.py says (the same as in
the database state log, gateway/state/pglog.py); a tampered state file cannot run
code, it can only fail to load, and start-up stops with a clear error naming the file.

``append`` returns a ticket and ``wait_durable`` says whether it is durable, as the
database log does: here a record is durable when ``append`` returns.
"""
from __future__ import annotations

import errno
import logging
import os
import struct
import zlib
from pathlib import Path

from gateway.state.records import RecordEncoder, State, StateLogError, load_record, load_snapshot, snapshot_bytes

log = logging.getLogger("fixgw.statelog")

_HEADER = struct.Struct("<II")


class StateLog:
    kind = "file"
    durable_on_append = True  # a ticket is durable when ``append`` returns: nobody need wait for it
    pending = 0  # records appended and not yet durable: never any
    fatal = None  # why this log stopped for good (a partial record it could not take back: _take_back), or None

    def __init__(self, directory: Path, fsync: bool = False, rejected_kept: int | None = None):
        self.dir = Path(directory)
        self.rejected_kept = rejected_kept  # refused orders kept at most (the oldest dropped), None: all
        self.snap_path = self.dir / "state.snap"
        self.log_path = self.dir / "state.log"
        self.fsync = fsync
        self._fd: int | None = None
        self.written = 0
        self.bytes_written = 0
        self._encoder = RecordEncoder()

    # ------------------------------------------------------------------ reading
    def recover(self) -> State:
        """Fold the snapshot and every complete record after it."""
        state = self._read_snapshot()
        state.rejected_kept = self.rejected_kept
        state._cap_rejected()
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return state
        pos, n = 0, len(data)
        while pos < n:
            if pos + _HEADER.size > n:
                state.torn = True
                break
            length, crc = _HEADER.unpack_from(data, pos)
            body = data[pos + _HEADER.size:pos + _HEADER.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                state.torn = True
                break
            try:
                rec = load_record(body)
            except Exception as exc:  # noqa: BLE001 - a record that passed its CRC but cannot load
                raise StateLogError(f"{self.log_path}: record at byte {pos} cannot be read: {exc}") from None
            state.apply(rec)
            pos += _HEADER.size + length
        if state.records or state.torn:
            state.clean = False
        return state

    def _read_snapshot(self) -> State:
        try:
            data = self.snap_path.read_bytes()
        except FileNotFoundError:
            return State()
        try:
            return load_snapshot(data)
        except Exception as exc:  # noqa: BLE001
            raise StateLogError(f"{self.snap_path} cannot be read: {exc}; refusing to start without the "
                                "gateway's order state (move the file aside only if you know the orders "
                                "it held are closed)") from None

    # ------------------------------------------------------------------ writing
    def open(self, state: State) -> None:
        """Compact: write ``state`` as the snapshot (not clean: we are running), start an empty log."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_snapshot(state, clean=False)
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        self.bytes_written = 0  # (the file's length from now on: every record since this open, whole)
        if self.fsync:
            os.fsync(self._fd)

    def append(self, origin: str | None, seq: int, orders: list, sends: list, controls: tuple | None,
               routes: list, trades: dict | None, risk_day: tuple | None = None, rejected: list = ()) -> int:
        """Write one record; returns its ticket (1, 2, ...: how many were written), durable at once."""
        if self.fatal is not None:
            raise StateLogError(f"{self.log_path}: {self.fatal}")
        body = self._encoder.record(origin, seq, orders, sends, controls, routes, trades, risk_day, rejected)
        buf = _HEADER.pack(len(body), zlib.crc32(body)) + body
        end = self.bytes_written
        try:
            n = os.write(self._fd, buf)  # one syscall: the record is whole in the page cache, or torn and ignored
        except OSError:
            self._take_back(end)  # a failed write may still have left part of the record in the file
            raise
        if n != len(buf):  # a regular file takes a write whole unless the disk is full
            self._take_back(end)
            raise OSError(errno.ENOSPC, f"{self.log_path}: only {n} of a record's {len(buf)} bytes were written; "
                                        "the record was taken back")
        if self.fsync:
            os.fsync(self._fd)
        self.written += 1
        self.bytes_written += len(buf)
        return self.written

    def _take_back(self, end: int) -> None:
        """Cut the log back to ``end`` bytes after a record that was not written whole. A partial record in the
        middle of the log would hide every record after it from recovery; if the cut fails, nothing more may be
        written (``fatal``: the engine stops sending, as with a database log that failed for good)."""
        try:
            os.ftruncate(self._fd, end)
        except OSError as exc:
            self.fatal = (f"a record was not written whole and could not be taken back ({exc}): records written "
                          f"after byte {end} would not be read at a restart")
            log.critical("state log %s: %s", self.log_path, self.fatal)

    @property
    def durable(self) -> int:
        """The last durable ticket: every record is, once ``append`` returned."""
        return self.written

    def wait_durable(self, ticket: int, timeout: float | None = None) -> bool:  # noqa: ARG002
        """True: a record is durable when ``append`` returns (the database log may make the caller wait)."""
        return True

    def close(self, state: State) -> None:
        """Clean stop: the snapshot holds everything and says so; the log is emptied."""
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        self._write_snapshot(state, clean=True)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)

    def _write_snapshot(self, state: State, clean: bool) -> None:
        tmp = self.snap_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(snapshot_bytes(state, clean))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.snap_path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

