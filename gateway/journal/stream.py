"""The journal's merged stream: every chain's rows in one order a reader can tail without ever skipping a row.

With one chain (a gateway alone, or an active/standby cluster), the chain's lock makes id order the commit order,
and a reader could tail by id. A sharded cluster has a chain per shard, each under a lock of its own
(gateway/journal/chain.py): two shards commit side by side, so an id can commit after a higher one, and a reader
tailing by id could pass a row that commits a moment later. The stream is therefore ordered by *position*
(xid, id), xid being the id of the PostgreSQL transaction that wrote the row (``journal_messages.xid``, set by
the column's default, ``pg_current_xact_id()``):

- A reader reads only rows whose transaction is older than the oldest one still running when its statement's
  snapshot was taken (``pg_snapshot_xmin(pg_current_snapshot())``). Every transaction below that bound has
  ended, so the read sees all of its rows, or none if it rolled back.
- Any transaction that writes later gets a larger xid (PostgreSQL assigns one at a transaction's first write,
  in increasing order), so no row can ever appear at or before a position a reader has passed: the stream has
  no gaps, and every reader sees the same order.
- Within a chain it is the commit order: a chain's writer takes the chain's lock before its first write, so
  xids (and ids) there are handed out in the order the writers commit.

The price: a transaction that runs long anywhere on the database server (transaction ids are the server's) holds
the bound back, and drop copies wait for it; ``fixgw_dropcopy_stream_held_seconds`` is how long the oldest
transaction holding an id has run (gateway/dropcopy/sources.py). Rows written before revision 0012 have
xid 0, and on SQLite (one writer, one chain) every row does: there the position is (0, id) and the order is id
order, as before.

A position is a plain tuple (xid, id), so it compares as the stream orders.
"""
from __future__ import annotations

Position = tuple[int, int]

#: Before every row.
ORIGIN: Position = (0, 0)

#: The bound a PostgreSQL reader stays below, evaluated once per statement, in the statement's own snapshot.
PG_BOUND = "(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"


def text(p: Position) -> str:
    """A position for people: ``17`` (journal id 17, xid 0) or ``17@5021`` (journal id 17, written by 5021)."""
    return str(p[1]) if p[0] == 0 else f"{p[1]}@{p[0]}"


def parse(value: str) -> Position:
    """``text``'s inverse; ValueError for anything else."""
    ident, at, xid = value.partition("@")
    p = (int(xid) if at else 0, int(ident))
    if p[0] < 0 or p[1] < 0:
        raise ValueError(f"not a journal position: {value!r}")
    return p


def just_before(p: Position) -> Position:
    """The position right before ``p``'s row: reading after it starts with that row."""
    return (p[0], p[1] - 1)


def ahead(p: Position, ids: int, xids: int) -> Position:
    """A position some way past ``p``: ``xids`` writing transactions further when ``p`` has one, else ``ids``
    journal ids further (SQLite, and rows older than revision 0012, are in id order)."""
    return (p[0] + xids, 0) if p[0] else (0, p[1] + ids)


def after_clause(pg: bool, param: str) -> str:
    """SQL for "the row is after the position given as two parameters (xid, id)", on the merged stream, and, on
    PostgreSQL, below the bound (module docstring). For queries over ExecutionReports (``msg_type = '8'``), which
    ``ix_journal_messages_xid_id`` serves; SQLite needs the xid parameter too (it is 0 there) and orders by id."""
    if pg:
        return f"(xid, id) > ({param}, {param}) AND xid < {PG_BOUND}"
    return f"xid = {param} AND id > {param}"


def order_clause(pg: bool) -> str:
    return "xid, id" if pg else "id"


def start(conn, pg: bool) -> Position:
    """Where a new reader starts, to get every row committed from now on (on a DBAPI connection): on PostgreSQL
    the bound (a few rows committed just before may come too; none after can be missed); on SQLite the last id."""
    cur = conn.cursor()
    try:
        if pg:
            cur.execute(f"SELECT {PG_BOUND}")
            return (int(cur.fetchone()[0]), 0)
        cur.execute("SELECT coalesce(max(id), 0) FROM journal_messages")
        return (0, int(cur.fetchone()[0]))
    finally:
        cur.close()
