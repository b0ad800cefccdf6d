"""Reading the journal back: its messages and session events streamed in id order, counts, and the few
questions the gateway asks of it at start-up (what a session received after a point, what it rejected)."""
from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import URL, Row

from fixspecs.raw import field_after as _field
from gateway.journal.db import ADMIN_MSG_TYPES, _engine_for, journal_messages, session_events

def _message_filter(stmt, session_id: str | None, direction: str | None, app_only: bool = False):
    t = journal_messages.c
    if session_id is not None:
        stmt = stmt.where(t.session_id == session_id)
    if direction is not None:
        stmt = stmt.where(t.direction == direction)
    if app_only:
        stmt = stmt.where(t.msg_type.is_not(None), t.msg_type.not_in(ADMIN_MSG_TYPES))
    return stmt


def iter_messages(engine_or_url: Engine | str | URL, session_id: str | None = None,
                  direction: str | None = None, batch: int = 1000) -> Iterator[Row]:
    """Journal rows in id order, fetched ``batch`` at a time (server-side cursor on PostgreSQL).

    Each row has the attributes id, session_id, direction, seq_num, msg_type,
    cl_ord_id, order_id, poss_dup, ts_us and raw. Close the generator (or exhaust
    it) to release the connection.
    """
    stmt = _message_filter(select(journal_messages), session_id, direction).order_by(journal_messages.c.id)
    return stream_rows(engine_or_url, stmt, batch)


def stream_rows(engine_or_url: Engine | str | URL, stmt, batch: int = 1000) -> Iterator[Row]:
    """The rows of ``stmt``, fetched ``batch`` at a time (a server-side cursor on PostgreSQL), in constant
    memory. Close the generator (or exhaust it) to release the connection."""
    engine, owned = _engine_for(engine_or_url)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            try:
                yield from result
            finally:
                result.close()
    finally:
        if owned:
            engine.dispose()


def iter_events(engine_or_url: Engine | str | URL, session_id: str | None = None,
                batch: int = 1000) -> Iterator[Row]:
    """Session event rows (id, session_id, ts_us, text) in id order."""
    stmt = select(session_events).order_by(session_events.c.id)
    if session_id is not None:
        stmt = stmt.where(session_events.c.session_id == session_id)
    return stream_rows(engine_or_url, stmt, batch)


def count_messages(engine_or_url: Engine | str | URL, session_id: str | None = None,
                   direction: str | None = None, app_only: bool = False) -> int:
    """Number of journal rows; ``app_only`` leaves out admin MsgTypes (0,1,2,3,4,5,A)
    and rows without a MsgType."""
    engine, owned = _engine_for(engine_or_url)
    try:
        stmt = _message_filter(select(func.count()).select_from(journal_messages), session_id, direction,
                               app_only)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    finally:
        if owned:
            engine.dispose()


def inbound_after(engine_or_url: Engine | str | URL, session_id: str, since_us: int, after_seq: int) -> list[Row]:
    """Rows (id, seq_num, msg_type, raw) received on a session at or after ``since_us`` with a MsgSeqNum
    above ``after_seq``, in journal order."""
    t = journal_messages.c
    stmt = (select(t.id, t.seq_num, t.msg_type, t.raw)
            .where(t.session_id == session_id, t.direction == "I", t.ts_us >= since_us, t.seq_num > after_seq)
            .order_by(t.id))
    return list(stream_rows(engine_or_url, stmt))


def session_rejected(engine_or_url: Engine | str | URL, session_id: str, since_us: int) -> set[int]:
    """MsgSeqNums (RefSeqNum, 45) of inbound messages the session answered with a session-level Reject (3)."""
    t = journal_messages.c
    stmt = select(t.raw).where(t.session_id == session_id, t.direction == "O", t.msg_type == "3",
                               t.ts_us >= since_us)
    out = set()
    for row in stream_rows(engine_or_url, stmt):
        ref = _field(row.raw, "\x0145=")
        if ref is not None and ref.isdigit():
            out.add(int(ref))
    return out
