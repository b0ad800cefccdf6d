"""Each drop-copy session's ledger in the journal database (``dropcopy_state``): restored at start-up,
accounting for the restart and for store resets while the gateway was stopped, and written when it changed."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import Connection, func, select, update

from dropcopy.ledger import Ledger
from gateway.journal.db import dropcopy_state, journal_messages

log = logging.getLogger("fixgw.dropcopy")


def _row(ledger: Ledger) -> dict:
    return {"session": ledger.session, "sent_id": ledger.sent_id, "claimed_id": ledger.claimed_id,
            "acked_id": ledger.acked_id, "resend_upto": ledger.resend_upto, "stream": ledger.stream,
            "updated_us": time.time_ns() // 1000}


class Watermarks:
    """Reads and writes the ledgers; remembers each as last written, so only a changed one is written.

    ``fence(conn)``, once set (a cluster's active instance), runs first in every writing transaction and raises
    when this instance's term is over: a deposed instance then claims nothing more, so it sends no copy past
    its last claim (copies are claimed before they are sent: service.py)."""

    def __init__(self, engine, fence: Callable[[Connection], object] | None = None):
        self._engine = engine
        self.fence = fence
        self._saved: dict[str, tuple] = {}  # session -> its ledger's key() as last written

    def read(self) -> tuple[int, dict]:
        """(the journal's last id, the stored rows by session)."""
        # Read, then write in a transaction of its own: on SQLite (WAL) a read transaction that later
        # writes fails at once ("database is locked") if the journal writer committed in between.
        with self._engine.connect() as conn:
            end = conn.execute(select(func.coalesce(func.max(journal_messages.c.id), 0))).scalar_one()
            rows = {r.session: r for r in conn.execute(select(dropcopy_state))}
        return end, rows

    def restore(self, name: str, r, end: int, stream: str | None) -> Ledger:
        """Session ``name``'s ledger from its stored row ``r`` (None: a new session) after a restart, with
        ``end`` the journal's last id and ``stream`` its message store's identity now."""
        if r is None:
            log.info("drop-copy session %s is new: copies start after journal id %d", name, end)
            return Ledger.fresh(name, end, stream)  # not saved yet: persist() inserts it
        ledger = Ledger(name, r.sent_id, r.claimed_id, r.acked_id, r.resend_upto, r.stream)
        if ledger.sent_id > end:
            log.warning("drop-copy session %s: its watermark %d is past the journal's last id %d "
                        "(another journal database?); continuing from %d", name, ledger.sent_id,
                        end, end)
            ledger = Ledger.fresh(name, end, ledger.stream)
        ledger.restarted()
        if ledger.stream_changed(stream):
            log.warning("drop-copy session %s: its message store was reset or lost while the gateway "
                        "was stopped; re-sending from the journal after id %d with PossResend",
                        name, ledger.acked_id)
        self._saved[name] = (r.sent_id, r.claimed_id, r.acked_id, r.resend_upto, r.stream)
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
