"""The source reports drop copies are made of: the journaled ExecutionReports of the client and venue
sessions, read after a journal id, and who each one belongs to (side, session, owner, account, venue)."""
from __future__ import annotations

import logging
import re
from typing import NamedTuple

from dropcopy.filters import CLIENT, VENUE, OrderDirectory, OrderInfo, Origin, origin
from dropcopy.translate import parse
from gateway.journal import stream as journal_stream

log = logging.getLogger("fixgw.dropcopy")

CHUNK = 500  # journal rows per query


class SourceRow(NamedTuple):
    id: int
    position: tuple[int, int]  # (xid, id) in the journal's merged stream (gateway/journal/stream.py)
    session_id: str
    direction: str
    poss_dup: bool  # PossDupFlag (43=Y), or journaled late from an old spool (journal_messages.recovered)
    raw: str


class _SourceReader:
    """The next source ExecutionReports after a position in the journal's merged stream, on a connection of its own.

    A prepared SQL string on a raw DBAPI connection: this query runs after every journal commit,
    and SQLAlchemy's per-statement Python overhead would be most of its cost.
    """

    def __init__(self, engine, clients: list[str], venues: list[str]):
        self._engine = engine
        pg = engine.dialect.name == "postgresql"
        p = "%s" if pg else "?"
        sides, params = [], []
        if clients:
            sides.append(f"(direction = 'O' AND session_id IN ({', '.join([p] * len(clients))}))")
            params += clients
        if venues:
            sides.append(f"(direction = 'I' AND session_id IN ({', '.join([p] * len(venues))}))")
            params += venues
        # a row journaled late from an old spool (``recovered``) is copied as a possible resend, like a PossDup one
        self._sql = (f"SELECT xid, id, session_id, direction, poss_dup OR recovered, raw FROM journal_messages "
                     f"WHERE msg_type = '8' AND {journal_stream.after_clause(pg, p)} AND ({' OR '.join(sides)}) "
                     f"ORDER BY {journal_stream.order_clause(pg)} LIMIT {CHUNK}"
                     if sides else None)
        self._params = params
        self._conn = None
        # how long the oldest transaction holding an xid has run: the stream's bound waits for it (stream.py)
        self._held_sql = ("SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0) "
                          "FROM pg_stat_activity WHERE backend_xid IS NOT NULL") if pg else None

    def fetch(self, after: tuple[int, int]) -> list[SourceRow]:
        if self._sql is None:
            return []
        return [SourceRow(r[1], (r[0], r[1]), r[2], r[3], bool(r[4]), r[5])
                for r in self._query(self._sql, [after[0], after[1], *self._params])]

    def held_seconds(self) -> float:
        """PostgreSQL: how long the oldest transaction that holds an xid has run (0 on SQLite)."""
        if self._held_sql is None:
            return 0.0
        return max(0.0, float(self._query(self._held_sql, [])[0][0]))

    def _query(self, sql: str, params: list) -> list:
        """The rows of one read on this reader's connection, its transaction ended after it (the next read sees
        newer commits); a failed read drops the connection."""
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        try:
            cur = self._conn.cursor()
            try:
                cur.execute(sql, params)
                rows = cur.fetchall()
            finally:
                cur.close()
            self._conn.commit()
            return rows
        except BaseException:
            self.close(invalidate=True)
            raise

    def close(self, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate() if invalidate else conn.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the drop-copy reader's connection failed", exc_info=True)


class Sources:
    """The client sessions (their reports out) and venue sessions (their reports in) copies are made of.

    ``client_sessions`` / ``venue_sessions``: quickfix SessionID text -> session name; ``reports``: the
    sides some drop-copy session wants (CLIENT, VENUE, "both"): only those are read.
    """

    def __init__(self, engine, client_sessions: dict[str, str], venue_sessions: dict[str, str],
                 directory: OrderDirectory, reports: set[str]):
        self._clients = dict(client_sessions)
        self._venues = dict(venue_sessions)
        self._directory = directory
        self._reader = _SourceReader(engine, list(self._clients) if reports & {CLIENT, "both"} else [],
                                     list(self._venues) if reports & {VENUE, "both"} else [])

    def fetch(self, after: tuple[int, int]) -> list[SourceRow]:
        """The next source reports (up to CHUNK) after position ``after``, in the merged stream's order."""
        return self._reader.fetch(after)

    def held_seconds(self) -> float:
        """How long the journal's merged stream has been held back at most (``_SourceReader.held_seconds``)."""
        return self._reader.held_seconds()

    def close(self) -> None:
        self._reader.close()

    def describe(self, row, context: bool = True) -> tuple[list, Origin] | None:
        """(the report's fields, its origin) of a journal row; None if it is not from a source session.
        Without ``context`` the origin has the side and session only (no order lookup)."""
        if row.direction == "O":
            name = self._clients.get(row.session_id)
            side = CLIENT
        else:
            name = self._venues.get(row.session_id)
            side = VENUE
        if name is None:
            return None
        pairs = parse(row.raw)
        return pairs, (origin(side, name, dict(pairs), self._directory) if context else Origin(side, None, None, None))


class CoreDirectory:
    """``OrderDirectory`` over the core's live orders (dict reads; see Core.order_by_venue_cl_ord_id)."""

    def __init__(self, core):
        self._core = core

    def by_order_id(self, order_id: str) -> OrderInfo | None:
        o = self._core.orders.get(order_id)
        return OrderInfo(o.session, o.account, o.venue) if o is not None else None

    def by_venue_cl_ord_id(self, venue: str, cl_ord_id: str) -> OrderInfo | None:
        o = self._core.order_by_venue_cl_ord_id(venue, cl_ord_id)
        return OrderInfo(o.session, o.account, o.venue) if o is not None else None


_CHILD_SUFFIX = re.compile(r"[ncr]\d+")
_CACHE_MAX = 50_000


def parent_order_id(cl_ord_id: str) -> str:
    """The OrderID a ClOrdID the gateway sent a venue belongs to: a first child's is the OrderID itself, the others
    the OrderID, ".", and "n", "c" or "r" with a number (``Order.next_child_id``)."""
    head, dot, tail = cl_ord_id.rpartition(".")
    return head if dot and _CHILD_SUFFIX.fullmatch(tail) else cl_ord_id


class ClusterDirectory:
    """``OrderDirectory`` of a shard of a sharded cluster: this shard's live orders first (``CoreDirectory``), then
    the orders of the other shards, found in the journal they share (docs/scale-out.md, "Drop copies").

    A venue's report of another shard's order names only the child's ClOrdID: its OrderID is that ClOrdID's
    parent (``parent_order_id``), and the client session and account are those of the first report the gateway
    sent the client for that OrderID (one indexed query, remembered). Until that report is journaled (an order
    whose client hears only after the venue answered), the order is unknown, and a receiver that filters by
    client or account does not see the venue's report: never what it may not be entitled to."""

    def __init__(self, core, engine, client_sessions: dict[str, str]):
        self._local = CoreDirectory(core)
        self._engine = engine
        self._clients = dict(client_sessions)  # SessionID text -> client name, every shard's
        p = "?" if engine.dialect.name == "sqlite" else "%s"
        self._sql = (f"SELECT session_id, raw FROM journal_messages WHERE order_id = {p} AND direction = 'O' "
                     f"AND msg_type = '8' ORDER BY id LIMIT 5")
        self._known: dict[str, tuple[str, str | None]] = {}  # OrderID -> (client, account), found in the journal

    def by_order_id(self, order_id: str) -> OrderInfo | None:
        return self._local.by_order_id(order_id)  # (a client-side report names its session and account itself)

    def by_venue_cl_ord_id(self, venue: str, cl_ord_id: str) -> OrderInfo | None:
        info = self._local.by_venue_cl_ord_id(venue, cl_ord_id)
        if info is not None:
            return info
        found = self._foreign(parent_order_id(cl_ord_id))
        return OrderInfo(found[0], found[1], venue) if found is not None else None

    def _foreign(self, order_id: str) -> tuple[str, str | None] | None:
        known = self._known.get(order_id)
        if known is not None:
            return known
        conn = self._engine.raw_connection()
        try:
            cur = conn.cursor()
            cur.execute(self._sql, [order_id])
            rows = cur.fetchall()
            cur.close()
            conn.commit()
        finally:
            conn.close()
        for session_id, raw in rows:
            client = self._clients.get(session_id)
            if client is not None:
                account = dict(parse(raw)).get(1) or None
                if len(self._known) >= _CACHE_MAX:
                    self._known.clear()
                self._known[order_id] = (client, account)
                return client, account
        return None
