"""The journal's spool file, written through a memory map: what a reader sees while it grows, after a
clean close, and after the writer was killed."""
from __future__ import annotations

import logging
import os
import zlib

from gateway.journal import spool as spool_mod
from gateway.journal.spool import _SPOOL_HEADER, Spool, read_spool, spool_end
from gateway.journal.process import SpoolTail

SID = "FIX.4.4:GW->C"


def msg(i: int, pad: str = "") -> str:
    return f"8=FIX.4.4\x0135=D\x0134={i}\x0111=C{i}{pad}\x01"


def test_a_spool_left_open_ends_in_zeros_that_read_as_its_end_not_as_a_torn_record(tmp_path, caplog):
    spool = Spool.create(tmp_path, lambda row: None)
    for i in range(1, 4):
        spool.append(i, SID, "I", msg(i))
    end, records = spool.position()
    # as if the process were killed here: nothing trimmed, the file is mapped ahead of the records
    assert spool.path.stat().st_size > end and records == 3
    with caplog.at_level(logging.WARNING, logger="fixgw.journal"):
        rows = list(read_spool(spool.path))
    assert [r[3] for r in rows] == [msg(1), msg(2), msg(3)] and rows[-1][4] == end
    assert not caplog.records and spool_end(spool.path) == end
    spool.close(remove=False)
    assert spool.path.stat().st_size == end  # a clean close trims the zeros


def test_the_spool_grows_past_its_mapping_and_keeps_every_record(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "_SPOOL_GROWTH", 4096)
    spool = Spool.create(tmp_path, lambda row: None)
    for i in range(1, 301):
        spool.append(i, SID, "O", msg(i))
    spool.close(remove=False)
    assert [r[3] for r in read_spool(spool.path)] == [msg(i) for i in range(1, 301)]


def test_a_spool_opened_again_continues_after_its_last_record(tmp_path):
    first = Spool.create(tmp_path, lambda row: None)
    first.append(1, SID, "I", msg(1))
    path, end = first.path, first.position()[0]
    again = Spool(path, lambda row: None)  # (the first one was never closed: zeros follow its record)
    assert again.position() == (end, 0)
    again.append(2, SID, "I", msg(2))
    again.close(remove=False)
    assert [r[3] for r in read_spool(path)] == [msg(1), msg(2)]


def test_the_tail_waits_for_a_record_still_being_copied_and_then_takes_it_whole(tmp_path):
    spool = Spool.create(tmp_path, lambda row: None)
    spool.append(1, SID, "I", msg(1))
    end = spool.position()[0]
    tail = SpoolTail(spool.path, 0)
    assert [r[3] for r in tail.read()] == [msg(1)] and tail.pos == end
    body = f"I{SID}\x00{msg(2)}".encode()
    record = _SPOOL_HEADER.pack(len(body), zlib.crc32(body), 2) + body
    fd = os.open(spool.path, os.O_WRONLY)
    try:
        os.pwrite(fd, record[:len(record) // 2], end)  # half copied
        assert tail.read() == [] and tail.pos == end
        os.pwrite(fd, record[len(record) // 2:], end + len(record) // 2)
    finally:
        os.close(fd)
    rows = tail.read()
    assert [r[3] for r in rows] == [msg(2)] and rows[0][4] == (spool.path.name, end + len(record))
    assert tail.read() == []
    tail.close()
    spool.close(remove=True)


def test_the_tail_takes_a_record_longer_than_its_read_chunk(tmp_path):
    spool = Spool.create(tmp_path, lambda row: None)
    big = msg(1, pad="x" * (3 * SpoolTail._CHUNK))
    for i, raw in enumerate((msg(0), big, msg(2))):
        spool.append(i, SID, "O", raw)
    tail = SpoolTail(spool.path, 0)
    assert [r[3] for r in tail.read()] == [msg(0), big, msg(2)]
    assert tail.pos == spool.position()[0]
    tail.close()
    spool.close(remove=True)


def test_a_full_disk_refuses_the_record_that_needs_more_room_and_keeps_the_spool_whole(tmp_path, monkeypatch):
    import errno

    import pytest

    monkeypatch.setattr(spool_mod, "_SPOOL_GROWTH", 4096)
    spool = Spool.create(tmp_path, lambda row: None)
    spool.append(1, SID, "I", msg(1))
    before = spool.position()

    def full(fd, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_mod, "_allocate", full)
    with pytest.raises(OSError, match="No space left"):
        spool.append(2, SID, "I", msg(2, pad="x" * 8192))  # needs the file to grow: refused, not a SIGBUS
    assert spool.position() == before
    monkeypatch.undo()  # space again
    spool.append(3, SID, "I", msg(3))
    spool.close(remove=False)
    assert [r[3] for r in read_spool(spool.path)] == [msg(1), msg(3)]


def test_without_posix_fallocate_the_spool_grows_by_writing_zeros(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "posix_fallocate", raising=False)  # as on macOS
    monkeypatch.setattr(spool_mod, "_SPOOL_GROWTH", 4096)
    spool = Spool.create(tmp_path, lambda row: None)
    for i in range(1, 201):
        spool.append(i, SID, "O", msg(i))
    assert spool.path.stat().st_size >= spool.position()[0]
    spool.close(remove=False)
    assert [r[3] for r in read_spool(spool.path)] == [msg(i) for i in range(1, 201)]
