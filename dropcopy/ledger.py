"""Per drop-copy session delivery bookkeeping: journal-id watermarks, resets, acknowledgements.

Pure logic; ``gateway.dropcopy.watermarks`` persists a ``Ledger`` in the journal database
(table ``dropcopy_state``) and drives it. Every number is a journal id
(``journal_messages.id``) of a *source* report, so the watermarks survive
restarts, sequence resets and store loss, and mean the same on every database.

- ``sent_id``: every source row up to here has been dealt with: its copy handed
  to quickfix (``sendToTarget``: in the session's store, so quickfix re-sends it
  with PossDupFlag 43=Y on a ResendRequest), or found out of scope.
- ``claimed_id`` (>= sent_id): copies up to here *may* have been handed over.
  Written before a chunk of copies is sent (covering a margin of journal ids
  beyond it, so it is not written for every chunk), ``sent_id`` after, so a
  crash in between is known: the copies in (sent_id, claimed_id] are sent again
  after a restart, marked PossResend (97=Y).
- ``acked_id`` (<= sent_id): the receiver has read every copy up to here. Proven
  by a TestRequest (35=1) sent after those copies and answered by the receiver's
  Heartbeat with the same TestReqID: FIX sessions process messages in sequence
  order, so the answer comes only after everything before it.
- ``resend_upto``: copies of source rows up to here carry PossResend (97=Y),
  because they may have reached the receiver before under another MsgSeqNum.
- ``stream``: the identity of the quickfix message store the copies went into
  (its creation time). When it changes, the store was reset (the receiver logged
  on with ResetSeqNumFlag, an operator reset the session, a new session day, or
  the store files were lost): copies after ``acked_id`` may never have arrived
  and quickfix can no longer re-send them, so the cursor rewinds to ``acked_id``
  and everything after it is sent again from the journal, marked 97=Y up to the
  old ``claimed_id``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ledger:
    session: str
    sent_id: int = 0
    claimed_id: int = 0
    acked_id: int = 0
    resend_upto: int = 0
    stream: str | None = None

    @classmethod
    def fresh(cls, session: str, journal_end: int, stream: str | None) -> "Ledger":
        """A session seen for the first time gets copies of what is journaled from now on."""
        return cls(session, journal_end, journal_end, journal_end, 0, stream)

    def restarted(self) -> None:
        """After a (possibly unclean) stop: copies in (sent_id, claimed_id] may have gone out already."""
        self.resend_upto = max(self.resend_upto, self.claimed_id)
        self.claimed_id = max(self.claimed_id, self.sent_id)

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

        Within one run ``sent_id`` is exact, so copies up to it get 97=Y. (After a restart,
        ``restarted`` has already widened ``resend_upto`` to the claim.)
        """
        self.resend_upto = max(self.resend_upto, self.sent_id)
        self.sent_id = self.claimed_id = self.acked_id

    def closed(self) -> None:
        """A clean stop: nothing beyond ``sent_id`` was handed over, so nothing is in doubt."""
        self.claimed_id = self.sent_id

    def poss_resend(self, row_id: int) -> bool:
        return row_id <= self.resend_upto

    def claim(self, upto: int) -> None:
        self.claimed_id = max(self.claimed_id, upto)

    def advance(self, upto: int) -> None:
        self.sent_id = max(self.sent_id, upto)
        self.claimed_id = max(self.claimed_id, self.sent_id)

    def acked(self, upto: int) -> None:
        self.acked_id = max(self.acked_id, min(upto, self.sent_id))

    def key(self) -> tuple:
        return (self.sent_id, self.claimed_id, self.acked_id, self.resend_upto, self.stream)
