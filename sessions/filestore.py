"""Read quickfix's FileStore files directly (before the engine opens them).

quickfix 1.16's FileStore keeps, per session, in the session's FileStorePath:
``<prefix>.seqnums`` ("SSSS : TTTT", next sender and next target MsgSeqNum),
``<prefix>.session`` (creation time, UTC, ``YYYYMMDD-HH:MM:SS``), ``<prefix>.body``
(every message we sent, back to back) and ``<prefix>.header`` (one
``seq,offset,size`` entry per sent message, space separated), where prefix is
``BeginString-SenderCompID-TargetCompID``. A message is written there before
quickfix puts it on the socket, so after a crash the store holds every message
the gateway sent, even those its journal had not committed yet.
"""
from __future__ import annotations

from calendar import timegm
from dataclasses import dataclass
from pathlib import Path
from time import strptime

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
