"""Read and write quickfix's FileStore files directly (before the engine opens them).

quickfix 1.16's FileStore keeps, per session, in the session's FileStorePath:
``<prefix>.seqnums`` ("SSSS : TTTT", next sender and next target MsgSeqNum),
``<prefix>.session`` (creation time, UTC, ``YYYYMMDD-HH:MM:SS``), ``<prefix>.body``
(every message we sent, back to back) and ``<prefix>.header`` (one
``seq,offset,size`` entry per sent message, space separated), where prefix is
``BeginString-SenderCompID-TargetCompID``. A message is written there before
quickfix puts it on the socket, so after a crash the store holds every message
the gateway sent, even those its journal had not committed yet.

``write_store`` writes those four files for a session that has none (a successor rebuilding a store from the
journal, issue 20), byte for byte as quickfix's FileStore would have left them: the exact format is in
docs/quickfix-binding.md, "The FileStore on disk, and rebuilding it from the journal".
"""
from __future__ import annotations

import os
from calendar import timegm
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from time import gmtime, strftime, strptime

import quickfix as fix


@dataclass(frozen=True)
class StoreInfo:
    next_sender: int
    next_target: int
    created: float  # unix time the store (this sequence-number epoch) began, to the sub-second (see read_info)


def _prefix(store_dir: Path, sid: fix.SessionID) -> Path:
    name = "-".join((sid.getBeginString().getString(), sid.getSenderCompID().getString(),
                     sid.getTargetCompID().getString()))
    qualifier = sid.getSessionQualifier()
    if qualifier:
        name += "-" + qualifier
    return Path(store_dir) / name


def _file(prefix: Path, ext: str) -> Path:
    return prefix.parent / (prefix.name + ext)


def read_info(store_dir: Path, sid: fix.SessionID) -> StoreInfo | None:
    """The store's sequence numbers and creation time, or None if it has none yet."""
    prefix = _prefix(store_dir, sid)
    session_file = _file(prefix, ".session")
    try:
        sender, _, target = _file(prefix, ".seqnums").read_text().partition(":")
        created_text = session_file.read_text().strip()
        written = session_file.stat().st_mtime_ns / 1e9
    except FileNotFoundError:
        return None
    try:
        created = float(timegm(strptime(created_text, "%Y%m%d-%H:%M:%S")))
    except ValueError:
        created = 0.0
    # The text has whole seconds only, so a reset in the same second as the last message processed before
    # it would look older than that message. quickfix writes the file exactly once per store (creating or
    # resetting it; a reset unlinks and re-creates it), so its mtime is the same instant to the
    # sub-second. Only trusted when it agrees with the text (a copied or restored file has a later mtime).
    if created - 1 < written < created + 2:
        created = written
    return StoreInfo(int(sender.strip() or 1), int(target.strip() or 1), created)


def _index(prefix: Path) -> list[tuple[int, int, int]]:
    try:
        text = _file(prefix, ".header").read_text()
    except FileNotFoundError:
        return []
    out = []
    for entry in text.split():
        seq, offset, size = entry.split(",")
        out.append((int(seq), int(offset), int(size)))
    return out


def sent_messages(store_dir: Path, sid: fix.SessionID, first: int = 1, last: int | None = None,
                  tail: int | None = None) -> list[tuple[int, str]]:
    """(MsgSeqNum, raw) of the stored sent messages with first <= seq <= last, or the last ``tail`` of them."""
    prefix = _prefix(store_dir, sid)
    entries = [e for e in _index(prefix) if e[0] >= first and (last is None or e[0] <= last)]
    if tail is not None:
        entries = entries[-tail:]
    if not entries:
        return []
    out = []
    with open(_file(prefix, ".body"), "rb") as body:
        for seq, offset, size in entries:
            body.seek(offset)
            out.append((seq, body.read(size).decode("latin-1")))
    return out


# ---------------------------------------------------------------- writing

#: The FileStore's files, in the order ``write_store`` puts them in place: ``.seqnums`` last, so a rebuild cut
#: short leaves no store that would resume at 1/1 while claiming the session's sent messages, nor one whose
#: numbers say "continue" while its messages are missing.
_EXTS = (".body", ".header", ".session", ".seqnums")


class StoreExists(FileExistsError):
    """The session already has a store with something in it (``write_store(..., overwrite=True)`` replaces it)."""


def _seq_of(raw: bytes) -> int | None:
    i = raw.find(b"\x0134=")
    if i < 0:
        return None
    j = raw.find(b"\x01", i + 4)
    value = raw[i + 4:j if j >= 0 else len(raw)]
    return int(value) if value.isdigit() else None


def write_store(store_dir: Path, sid: fix.SessionID, next_sender: int, next_target: int,
                messages: Iterable[tuple[int, str | bytes]], created: float, *,
                overwrite: bool = False) -> StoreInfo:
    """Write the session's FileStore in ``store_dir`` as quickfix 1.16 would have left it, before the engine
    that owns the session is created (the FileStore reads its files once, when the session is made).

    ``next_sender`` / ``next_target``: the next MsgSeqNum to send and to expect. ``messages``: (MsgSeqNum, raw
    text as sent) of the sent messages to keep for resends, in the order quickfix stored them; a number given
    twice keeps the later text, as quickfix's index does. Each raw message's own MsgSeqNum (34) must be its
    number, below ``next_sender``: quickfix re-sends the stored text, checked (BodyLength, CheckSum) and
    with its own 34, and gap-fills every number it has no message for. ``str`` text is written as the UTF-8
    the binding would have given quickfix. ``created``: the store's creation time, Unix seconds (the file
    keeps whole seconds; its mtime is set to the exact value, which ``read_info`` reads back); quickfix resets
    a store created outside the session's current StartTime/EndTime window when the session is made.

    Refuses (``StoreExists``) if any of the session's store files exists and is not empty, unless
    ``overwrite``. The files are written under temporary names, synced, then renamed into place.
    """
    for label, value in (("next_sender", next_sender), ("next_target", next_target)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a whole number of at least 1, got {value!r}")
    prefix = _prefix(store_dir, sid)
    body, header = bytearray(), []
    for seq, raw in messages:
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < next_sender:
            raise ValueError(f"stored message number {seq!r} must be from 1 to next_sender - 1 ({next_sender - 1})")
        if _seq_of(data) != seq:
            raise ValueError(f"stored message {seq}: its MsgSeqNum (34) is {_seq_of(data)!r}")
        header.append(f"{seq},{len(body)},{len(data)} ")  # FileStore::set: "%llu,%lld,%zu "
        body += data
    contents = {
        ".body": bytes(body),
        ".header": "".join(header).encode("ascii"),
        # FileStore::setSession: UtcTimeStampConvertor::convert(creation time), precision 0, no newline
        ".session": strftime("%Y%m%d-%H:%M:%S", gmtime(created)).encode("ascii"),
        # FileStore::setSeqNum: "%20.20llu : %20.20llu", 43 bytes (a file of another size is read as "%d : %d")
        ".seqnums": f"{next_sender:020d} : {next_target:020d}".encode("ascii"),
    }
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    if not overwrite:
        taken = [_file(prefix, ext).name for ext in _EXTS
                 if _file(prefix, ext).exists() and _file(prefix, ext).stat().st_size > 0]
        if taken:
            raise StoreExists(f"{Path(store_dir)} already holds a store for {sid.toString()} ({', '.join(taken)})")
    temps = []
    try:
        for ext in _EXTS:
            temp = _file(prefix, ext + ".rebuild")
            temps.append(temp)
            with open(temp, "wb") as f:
                f.write(contents[ext])
                f.flush()
                os.fsync(f.fileno())
            if ext == ".session":
                os.utime(temp, (created, created))  # read_info takes the sub-second from the mtime
        for temp, ext in zip(temps, _EXTS):
            os.replace(temp, _file(prefix, ext))
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    dir_fd = os.open(store_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the renames
    finally:
        os.close(dir_fd)
    return StoreInfo(next_sender, next_target, created)
