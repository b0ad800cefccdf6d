"""One FIX session's sequence state read back from the journal: its next MsgSeqNums and the sent messages a
resend needs, for rebuilding the session's quickfix store elsewhere (sessions.filestore.write_store; issue 20).

What the journal shows of a session's store, and how it is read here (quickfix 1.16, docs/quickfix-binding.md,
"Rebuilding a store from the journal"):

- A store reset (ResetSeqNumFlag 141=Y on either side's Logon, ResetOnLogon/Logout/Disconnect, a new session
  window, an operator's reset) sets both numbers to 1, so the first message we send after it has MsgSeqNum 1.
  The last sent row with 34=1 and no PossDupFlag starts the current epoch on our side. The reset happened before
  it: after our previous sent row, and when a Logon was received in between, that Logon is the epoch's first
  received message (quickfix resets while handling it, or had reset before it arrived). A received Logon with
  141=Y after our last sent row, which was not our own 141=Y Logon, reset the store too, unanswered so far.
- Next sender number: one more than the last MsgSeqNum we sent without PossDupFlag in the epoch (resends and
  the gap fills of a resend carry 43=Y and keep their old numbers; a number lower than the one before is an
  operator's set-seqnum, after which quickfix overwrites the stored messages with the same numbers).
- Next target number: the received rows replayed the way quickfix takes them: in order, a number above the
  expected one waits until a resend or gap fill closes the gap, a lower one is ignored, a SequenceReset moves
  the expectation to its NewSeqNo (36). So a gap still open when the journal ends is asked for again.
- Sent messages kept for resends: the epoch's application messages as first sent (admin messages are
  gap-filled by quickfix in any case), with their text exactly as on the wire. A text whose BodyLength or
  CheckSum no longer matches (a secret field masked by the journal, fixspecs/redact.py) is left out, so
  quickfix gap-fills it instead of failing on it, and reported.

Not visible in the journal: a reset with no message after it yet, and an operator's set-seqnum of the target
number (its audit line is an event of session "operator", not parsed here). The journal is also only as
complete as what the writer committed.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, and_, case, false, func, or_, select
from sqlalchemy.engine import URL, Row

from fixspecs.raw import field_after
from gateway.journal.db import ADMIN_MSG_TYPES, _engine_for, journal_messages

_ADMIN = frozenset(ADMIN_MSG_TYPES)


@dataclass(frozen=True)
class SessionTail:
    """What a session's store holds, as far as the journal knows: the arguments of ``write_store``."""

    session_id: str
    next_sender: int
    next_target: int
    epoch_us: int  # ts_us of the epoch's first journal row: at most moments after its store was made (or reset)
    messages: tuple[tuple[int, str], ...]  # (MsgSeqNum, raw) of the epoch's sent application messages
    epoch_known: bool  # False: the reset that began the epoch is not in the journal (pruned); see read_session_tail
    last_id: int  # the newest journal row of the session that was read
    unresendable: tuple[int, ...] = ()  # MsgSeqNums of sent application messages left out (text altered)


def intact(raw: str) -> bool:
    """Whether a raw FIX message's BodyLength (9) and CheckSum (10) match its text, as quickfix checks a stored
    message before re-sending it."""
    data = raw.encode("utf-8", "surrogateescape")
    first = data.find(b"\x01")
    if not data.startswith(b"8=") or first < 0 or not data.startswith(b"9=", first + 1):
        return False
    second = data.find(b"\x01", first + 1)
    trailer = data.rfind(b"\x0110=")
    if second < 0 or trailer < second or not data.endswith(b"\x01"):
        return False
    length, checksum = data[first + 3:second], data[trailer + 4:-1]
    return (length.isdigit() and int(length) == trailer + 1 - (second + 1)
            and checksum.isdigit() and int(checksum) == sum(data[:trailer + 1]) % 256)


def read_session_tail(engine_or_url: Engine | str | URL, session_id: str, batch: int = 1000) -> SessionTail | None:
    """The session's current sequence-number epoch as the journal has it, or None if it has no rows.

    ``session_id``: quickfix's SessionID text, e.g. "FIX.4.4:FIXGW->CLIENT44". Reads the session's rows from
    the one before its last reset on (the text only of the rows that need it). When the journal no longer
    holds the reset (``epoch_known`` False), the received numbers are counted from the oldest row kept.
    """
    engine, owned = _engine_for(engine_or_url)
    try:
        with engine.connect() as conn:
            restart, start = _epoch_bounds(conn, session_id)
            rows = _rows(conn, session_id, start, batch)
            return _tail(session_id, rows, restart)
    finally:
        if owned:
            engine.dispose()


def _epoch_bounds(conn, session_id: str) -> tuple[int | None, int]:
    """(id of the last sent row with MsgSeqNum 1 and no PossDupFlag, or None; the first id to read)."""
    t = journal_messages.c
    mine = and_(t.session_id == session_id, t.direction == "O")
    restart = conn.execute(select(func.max(t.id)).where(mine, t.seq_num == 1, t.poss_dup == false())).scalar()
    if restart is None:
        return None, 0
    before = conn.execute(select(func.max(t.id)).where(mine, t.id < restart)).scalar()
    return restart, (before + 1 if before is not None else 0)


def _rows(conn, session_id: str, start: int, batch: int) -> Iterator[Row]:
    t = journal_messages.c
    needs_text = or_(t.msg_type.in_(("A", "4")),
                     and_(t.direction == "O", t.poss_dup == false(), t.msg_type.not_in(ADMIN_MSG_TYPES)))
    stmt = (select(t.id, t.direction, t.seq_num, t.msg_type, t.poss_dup, t.ts_us,
                   case((needs_text, t.raw), else_=None).label("raw"))
            .where(t.session_id == session_id, t.id >= start).order_by(t.id))
    result = conn.execution_options(yield_per=batch).execute(stmt)
    try:
        yield from result
    finally:
        result.close()


def _resets(row) -> bool:
    return row.msg_type == "A" and row.raw is not None and "\x01141=Y\x01" in row.raw


def _tail(session_id: str, rows: Iterator[Row], restart: int | None) -> SessionTail | None:
    sent: list = []
    received: list = []
    logon_before = None  # the last Logon received between our previous sent row and the restart
    first = last = None
    for row in rows:
        if first is None:
            first = row
        last = row
        if row.direction == "O":
            if restart is None or row.id >= restart:
                sent.append(row)
        elif restart is not None and row.id < restart:
            if row.msg_type == "A":
                logon_before = row
        else:
            received.append(row)
    if first is None:
        return None
    epoch_known = restart is not None
    if logon_before is not None:
        received.insert(0, logon_before)
    reset_at = _unanswered_reset(sent, received)
    if reset_at is not None:
        sent, received, epoch_known = [], received[reset_at:], True
    epoch_row = min(sent[:1] + received[:1], key=lambda r: r.id, default=first)
    next_sender, messages, unresendable = _sent(sent)
    return SessionTail(session_id=session_id, next_sender=next_sender,
                       next_target=_expected(received, 1 if epoch_known else None), epoch_us=epoch_row.ts_us,
                       messages=messages, epoch_known=epoch_known, last_id=last.id, unresendable=unresendable)


def _unanswered_reset(sent: list, received: list) -> int | None:
    """The index in ``received`` of a Logon with 141=Y after our last sent row that reset our store, or None.

    quickfix resets on such a Logon unless it answers our own 141=Y Logon (the last Logon we sent before it,
    with no other Logon received in between). Once reset, anything we send has MsgSeqNum 1 again (it would
    have started a later epoch), so only one after all we sent can be it: an epoch we sent nothing in yet.
    """
    after = sent[-1].id if sent else -1
    for i in range(len(received) - 1, -1, -1):
        row = received[i]
        if row.id < after:
            return None
        if not _resets(row):
            continue
        ours = next((s for s in reversed(sent) if s.msg_type == "A" and s.id < row.id), None)
        answer = ours is not None and _resets(ours) and not any(
            r.msg_type == "A" and ours.id < r.id < row.id for r in received)
        return None if answer else i
    return None


def _sent(rows: list) -> tuple[int, tuple[tuple[int, str], ...], tuple[int, ...]]:
    """(next sender number, the stored application messages, the numbers of those left out)."""
    last = 0
    stored: dict[int, str] = {}
    altered: set[int] = set()
    for row in rows:
        seq = row.seq_num
        if seq is None or row.poss_dup:
            continue  # never given a number (quickfix dropped it), or a resend / a resend's gap fill
        last = seq
        stored.pop(seq, None)  # the number used again (an operator lowered it): the later message replaces it
        altered.discard(seq)
        if row.msg_type is None or row.msg_type in _ADMIN:
            continue
        if intact(row.raw):
            stored[seq] = row.raw
        else:
            altered.add(seq)
    return last + 1, tuple(stored.items()), tuple(sorted(altered))


def _expected(rows: list, start: int | None) -> int:
    """The next MsgSeqNum quickfix expects after taking ``rows`` (received, in order), expecting ``start`` first
    (None: the first row's number)."""
    expected = start
    waiting: dict[int, Row] = {}

    def take(row) -> None:
        nonlocal expected
        if row.msg_type == "4":
            new = _new_seq_no(row)
            if new is not None and new > expected:
                expected = new
        else:
            expected += 1

    for row in rows:
        seq = row.seq_num
        if seq is None:
            continue
        if expected is None:
            expected = seq
        if _resets(row):
            expected, waiting = 1, {}  # both sides begin again at 1 (this Logon is 1)
        if row.msg_type == "4" and field_after(row.raw or "", "\x01123=") != "Y":
            new = _new_seq_no(row)  # SequenceReset-Reset: taken whatever its own number
            if new is not None and new > expected:
                expected = new
        elif seq == expected:
            take(row)
        elif seq > expected:
            waiting[seq] = row
            continue
        else:
            continue  # a copy of something taken already (PossDup), or too low: ignored
        while expected in waiting:
            take(waiting.pop(expected))
        for seq in [s for s in waiting if s < expected]:
            del waiting[seq]  # covered by a gap fill or a reset
    return expected if expected is not None else 1


def _new_seq_no(row) -> int | None:
    value = field_after(row.raw or "", "\x0136=")
    return int(value) if value is not None and value.isdigit() else None
