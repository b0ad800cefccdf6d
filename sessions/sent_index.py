"""What we sent each venue, by MsgSeqNum: so a venue's session-level Reject can be mapped to a child order.

A session-level Reject (35=3) names only the refused message's MsgSeqNum (RefSeqNum, 45) and maybe its
MsgType (372): no ClOrdID. QuickFIX's own example executor answers a market order so
(``35=3|45=4|58=Value is incorrect (out of range) for this tag|371=40|372=D|373=5``). To know which child
order it refused, each venue session's ``JournalLog.onOutgoing`` notes the MsgSeqNum, MsgType and
ClOrdID of every order message as it is written: quickfix calls it before the bytes reach the socket,
on the sending thread, so the entry exists before the venue can answer. The venue session's thread
reads it when the Reject arrives (a dict read; under the GIL it needs no lock).

Bounded: each session keeps its last ``KEEP`` entries (a venue rejects within seconds, not hours).
After a sequence reset a number is reused and the newer message wins.
"""
from __future__ import annotations

from typing import Callable

from fixspecs.raw import field_after as _value

# the order-entry messages whose rejects concern a child order
TRACKED = frozenset({"D", "F", "G", "H", "AF"})


class SentIndex:
    KEEP = 50_000

    def __init__(self):
        self._sessions: dict[str, dict[int, tuple[str, str]]] = {}

    def track(self, session_key: str) -> None:
        """Keep an index for this SessionID text (a venue session); call before its engine is created."""
        self._sessions.setdefault(session_key, {})

    def hook(self, session_key: str) -> Callable[[str], None] | None:
        """The ``onOutgoing`` hook for a session: notes its order messages; None if it is not tracked."""
        entries = self._sessions.get(session_key)
        if entries is None:
            return None
        keep = self.KEEP

        def note(raw: str) -> None:
            msg_type = _value(raw, "\x0135=")
            if msg_type not in TRACKED:
                return
            seq = _value(raw, "\x0134=")
            if seq is None or not seq.isdigit():
                return
            entries[int(seq)] = (msg_type, _value(raw, "\x0111=") or "")
            if len(entries) > keep:
                del entries[next(iter(entries))]
        return note

    def lookup(self, session_key: str, seq: int) -> tuple[str, str] | None:
        """(MsgType, ClOrdID) of the order message sent on that session with MsgSeqNum ``seq``, or None."""
        entries = self._sessions.get(session_key)
        return entries.get(seq) if entries is not None else None
