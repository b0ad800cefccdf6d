"""Per drop-copy session delivery bookkeeping: watermarks in the journal's merged stream, resets, acknowledgements.

Pure logic; ``gateway.dropcopy.watermarks`` persists a ``Ledger`` in the journal database
(table ``dropcopy_state``) and drives it. Every watermark is a *position* of a source
report in the journal's merged stream: a tuple (xid, journal id), compared as tuples
(gateway/journal/stream.py; xid is 0 on SQLite and for rows older than schema revision
0012, where the order is id order). Positions survive restarts, sequence resets and
store loss, and mean the same on every database and to every shard of a cluster.

- ``sent``: every source row up to here has been dealt with: its copy handed
  to quickfix (``sendToTarget``: in the session's store, so quickfix re-sends it
  with PossDupFlag 43=Y on a ResendRequest), or found out of scope.
- ``claimed`` (>= sent): copies up to here *may* have been handed over.
  Written before a chunk of copies is sent (covering a margin beyond it, so it
  is not written for every chunk), ``sent`` after, so a crash in between is
  known: the copies in (sent, claimed] are sent again after a restart, marked
  PossResend (97=Y).
- ``acked`` (<= sent): the receiver has read every copy up to here. Proven
  by a TestRequest (35=1) sent after those copies and answered by the receiver's
  Heartbeat with the same TestReqID: FIX sessions process messages in sequence
  order, so the answer comes only after everything before it.
- ``resend_upto``: copies of source rows up to here carry PossResend (97=Y),
  because they may have reached the receiver before under another MsgSeqNum.
- ``stream``: the identity of the quickfix message store the copies went into
  (its creation time). When it changes, the store was reset (the receiver logged
  on with ResetSeqNumFlag, an operator reset the session, a new session day, or
  the store files were lost): copies after ``acked`` may never have arrived
  and quickfix can no longer re-send them, so the cursor rewinds to ``acked``
  and everything after it is sent again from the journal, marked 97=Y up to the
  old ``claimed``.
"""
from __future__ import annotations

from dataclasses import dataclass


Position = tuple[int, int]  # (xid, journal id): gateway/journal/stream.py


@dataclass
class Ledger:
    session: str
    sent: Position = (0, 0)
    claimed: Position = (0, 0)
    acked: Position = (0, 0)
    resend_upto: Position = (0, 0)
    stream: str | None = None

    @classmethod
    def fresh(cls, session: str, start: Position, stream: str | None) -> "Ledger":
        """A session seen for the first time gets copies of what is journaled from ``start`` on."""
        return cls(session, start, start, start, (0, 0), stream)

    def restarted(self) -> None:
        """After a (possibly unclean) stop: copies in (sent, claimed] may have gone out already."""
        self.resend_upto = max(self.resend_upto, self.claimed)
        self.claimed = max(self.claimed, self.sent)

    def stream_changed(self, stream: str | None) -> bool:
        """Note the current store identity; on a change rewind to the last acknowledged copy. True if rewound."""
        if stream is None or stream == self.stream:
            return False
        first = self.stream is None
        self.stream = stream
        if first:
            return False
        self.rewind()
        return True

    def rewind(self) -> None:
        """Rewind to the last acknowledged copy (after a reset; a sequence regression seen some other way).

        Within one run ``sent`` is exact, so copies up to it get 97=Y. (After a restart,
        ``restarted`` has already widened ``resend_upto`` to the claim.)
        """
        self.resend_upto = max(self.resend_upto, self.sent)
        self.sent = self.claimed = self.acked

    def closed(self) -> None:
        """A clean stop: nothing beyond ``sent`` was handed over, so nothing is in doubt."""
        self.claimed = self.sent

    def poss_resend(self, position: Position) -> bool:
        return position <= self.resend_upto

    def claim(self, upto: Position) -> None:
        self.claimed = max(self.claimed, upto)

    def advance(self, upto: Position) -> None:
        self.sent = max(self.sent, upto)
        self.claimed = max(self.claimed, self.sent)

    def acknowledge(self, upto: Position) -> None:
        self.acked = max(self.acked, min(upto, self.sent))

    def key(self) -> tuple:
        return (self.sent, self.claimed, self.acked, self.resend_upto, self.stream)
