"""Each drop-copy session's ledger in the journal database (``dropcopy_state``): restored at start-up,
accounting for the restart and for store resets while the gateway was stopped, and written when it changed."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import Connection, func, select, update

from dropcopy.ledger import Ledger
from gateway.journal import stream as journal_stream
from gateway.journal.db import dropcopy_state, journal_messages

log = logging.getLogger("fixgw.dropcopy")


def _row(ledger: Ledger) -> dict:
    """The columns of a ledger: each position (xid, id) in two (revision 0012)."""
    return {"session": ledger.session,
            "sent_xid": ledger.sent[0], "sent_id": ledger.sent[1],
            "claimed_xid": ledger.claimed[0], "claimed_id": ledger.claimed[1],
            "acked_xid": ledger.acked[0], "acked_id": ledger.acked[1],
            "resend_xid": ledger.resend_upto[0], "resend_upto": ledger.resend_upto[1],
            "stream": ledger.stream, "updated_us": time.time_ns() // 1000}


def _ledger(name: str, r) -> Ledger:
    return Ledger(name, (r.sent_xid, r.sent_id), (r.claimed_xid, r.claimed_id), (r.acked_xid, r.acked_id),
                  (r.resend_xid, r.resend_upto), r.stream)


class Watermarks:
    """Reads and writes the ledgers; remembers each as last written, so only a changed one is written.

    ``fence(conn)``, once set (a cluster's active instance), runs first in every writing transaction and raises
    when this instance's term is over: a deposed instance then claims nothing more, so it sends no copy past
    its last claim (copies are claimed before they are sent: service.py)."""

    def __init__(self, engine, fence: Callable[[Connection], object] | None = None):
        self._engine = engine
        self.fence = fence
        self._saved: dict[str, tuple] = {}  # session -> its ledger's key() as last written

    def read(self) -> tuple[journal_stream.Position, int, dict]:
        """(where a new session's copies start, the journal's last id, the stored rows by session)."""
        # Read, then write in a transaction of its own: on SQLite (WAL) a read transaction that later
        # writes fails at once ("database is locked") if the journal writer committed in between.
        with self._engine.connect() as conn:
            pg = self._engine.dialect.name == "postgresql"
            start = journal_stream.start(conn.connection.dbapi_connection, pg)
            end = conn.execute(select(func.coalesce(func.max(journal_messages.c.id), 0))).scalar_one()
            rows = {r.session: r for r in conn.execute(select(dropcopy_state))}
        return start, end, rows

    def restore(self, name: str, r, start: journal_stream.Position, end: int, current: str | None) -> Ledger:
        """Session ``name``'s ledger from its stored row ``r`` (None: a new session) after a restart, with
        ``start`` where a new session's copies start, ``end`` the journal's last id and ``current`` its message
        store's identity now."""
        if r is None:
            log.info("drop-copy session %s is new: copies start after journal position %s", name,
                     journal_stream.text(start))
            return Ledger.fresh(name, start, current)  # not saved yet: persist() inserts it
        ledger = _ledger(name, r)
        saved = ledger.key()  # as stored (positions are tuples: what follows does not change it)
        if ledger.sent[1] > end:
            log.warning("drop-copy session %s: its watermark %s is past the journal's last id %d "
                        "(another journal database?); continuing from %s", name, journal_stream.text(ledger.sent),
                        end, journal_stream.text(start))
            ledger = Ledger.fresh(name, start, ledger.stream)
        ledger.restarted()
        if ledger.stream_changed(current):
            log.warning("drop-copy session %s: its message store was reset or lost while the gateway "
                        "was stopped; re-sending from the journal after position %s with PossResend",
                        name, journal_stream.text(ledger.acked))
        self._saved[name] = saved
        return ledger

    def persist(self, ledgers: Iterable[Ledger]) -> None:
        """Insert the ledgers never written, then update those changed since last written."""
        ledgers = list(ledgers)
        new = [ledger for ledger in ledgers if ledger.session not in self._saved]
        if new:
            with self._engine.begin() as conn:
                if self.fence is not None:
                    self.fence(conn)
                conn.execute(dropcopy_state.insert(), [_row(ledger) for ledger in new])
            for ledger in new:
                self._saved[ledger.session] = ledger.key()
        dirty = [ledger for ledger in ledgers if ledger.key() != self._saved[ledger.session]]
        if not dirty:
            return
        with self._engine.begin() as conn:
            if self.fence is not None:
                self.fence(conn)
            for ledger in dirty:
                values = _row(ledger)
                del values["session"]
                conn.execute(update(dropcopy_state).where(dropcopy_state.c.session == ledger.session)
                             .values(**values))
        for ledger in dirty:
            self._saved[ledger.session] = ledger.key()
