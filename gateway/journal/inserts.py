"""One batch of journal rows into the database in one transaction, on the writer thread's own connection:
COPY on PostgreSQL, multi-row INSERTs on SQLite, with the messages' chain hashes and the spool position; in a
cluster's active instance, fenced by its term (gateway/journal/fencing.py)."""
from __future__ import annotations

import logging
import sqlite3

from sqlalchemy import Engine

from gateway.journal.chain import HashChain
from gateway.journal.fencing import Term
from gateway.journal.rows import EVENT_COLUMNS, MESSAGE_COLUMNS
from gateway.journal.spool import SPOOL_META, set_spool_position

log = logging.getLogger("fixgw.journal")

# What the writer inserts: the message columns plus the chain hash and the chain's name (gateway/journal/chain.py).
# (Not xid: on PostgreSQL the column's default gives each row its transaction's id, gateway/journal/stream.py.)
_WRITE_COLUMNS = MESSAGE_COLUMNS + ("chain_hash", "chain")
# SQLite: many rows per INSERT. executemany() steps the statement once per row, and each step releases
# and retakes the GIL: a hand-off to a FIX session thread or the core thread per journaled row. One
# multi-row INSERT binds every value and steps once. Rows per statement stay within SQLite's limit on
# parameters (32,766 since 3.32; 999 before).
# OR FAIL, not the default ABORT: a multi-row statement that may abort keeps a statement journal, a copy of
# every page it changes that existed before it ran, so it can undo itself alone; with the tables' five
# indexes that copy is larger than SQLite keeps in memory, and each commit wrote it to a new temporary file
# (opened, written, unlinked: a fifth of the writer's system calls). A failed statement here always rolls
# back the whole transaction (BatchInserter.write), so undoing the statement alone is never needed.
_SQLITE_ROWS_PER_INSERT = 500 if sqlite3.sqlite_version_info >= (3, 32) else 90
_sqlite_inserts: dict[tuple[str, int], str] = {}


def _sqlite_insert(cur, table: str, columns: tuple[str, ...], rows: list) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) in statements of up to _SQLITE_ROWS_PER_INSERT rows."""
    step = _SQLITE_ROWS_PER_INSERT
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        sql = _sqlite_inserts.get((table, len(chunk)))
        if sql is None:
            one = f"({', '.join('?' * len(columns))})"
            sql = _sqlite_inserts[(table, len(chunk))] = (
                f"INSERT OR FAIL INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(chunk))}")
        cur.execute(sql, [v for row in chunk for v in row])


_PG_COPY_MSG = f"COPY journal_messages ({', '.join(_WRITE_COLUMNS)}) FROM STDIN"
_PG_COPY_EVT = f"COPY session_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"


class BatchInserter:
    """Writes batches through one pooled DBAPI connection (opened on first use, dropped after a failure).

    ``position_key``: the journal_meta row of this spool's committed position. ``term`` (PostgreSQL only): set
    when this instance leads a cluster; from then on every transaction first checks it is still current and
    raises StaleLeadership, writing nothing, once it is not (the rows stay in the spool; the next start of
    this instance imports them, after whatever its successor journaled)."""

    def __init__(self, engine: Engine, chain: HashChain, position_key: str = SPOOL_META):
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._chain = chain
        self._key = position_key
        self.term: Term | None = None
        self._conn = None

    def write(self, msgs: list, events: list, spooled: tuple[str, int] | None = None) -> None:
        """Commit ``msgs`` (MESSAGE_COLUMNS rows, chained here), ``events`` and the spool position, or nothing."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._engine.raw_connection()
        chain = self._chain
        try:
            rows = msgs
            if self._pg:
                with conn.driver_connection.cursor() as cur:
                    # the chain's lock first: this transaction's first write (the fence's row lock, or the COPY)
                    # then happens under it, so its xid follows the chain's order (gateway/journal/stream.py)
                    prev = chain.start(cur, "%s") if msgs else None
                    if self.term is not None:
                        self.term.check(cur)
                    if msgs:
                        rows = chain.link(msgs, prev)
                        with cur.copy(_PG_COPY_MSG) as cp:
                            write_row = cp.write_row
                            for row in rows:
                                write_row(row)
                        chain.extended(cur, "%s", rows[-1][-2])
                    if events:
                        with cur.copy(_PG_COPY_EVT) as cp:
                            for row in events:
                                cp.write_row(row)
                    if spooled is not None:
                        set_spool_position(cur, "%s", spooled, self._key)
            else:
                cur = conn.cursor()
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    if msgs:
                        rows = chain.link(msgs, chain.start(cur, "?"))
                        _sqlite_insert(cur, "journal_messages", _WRITE_COLUMNS, rows)
                        chain.extended(cur, "?", rows[-1][-2])
                    if events:
                        _sqlite_insert(cur, "session_events", EVENT_COLUMNS, events)
                    if spooled is not None:
                        set_spool_position(cur, "?", spooled, self._key)
                finally:
                    cur.close()
            conn.commit()
            if msgs:
                chain.committed(rows[-1][-2])
        except BaseException:
            chain.forget()
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - the connection is dropped by the caller anyway
                pass
            raise

    def close(self, invalidate: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:
                conn.invalidate()
            else:
                conn.close()
        except Exception:  # noqa: BLE001
            log.debug("closing the journal connection failed", exc_info=True)

