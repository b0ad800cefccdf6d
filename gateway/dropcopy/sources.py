"""The source reports drop copies are made of: the journaled ExecutionReports of the client and venue
sessions, read after a journal id, and who each one belongs to (side, session, owner, account, venue)."""
from __future__ import annotations

import logging
from typing import NamedTuple

from dropcopy.filters import CLIENT, VENUE, OrderDirectory, OrderInfo, Origin, origin
from dropcopy.translate import parse

log = logging.getLogger("fixgw.dropcopy")

CHUNK = 500  # journal rows per query


class SourceRow(NamedTuple):
    id: int
    session_id: str
    direction: str
    poss_dup: bool  # PossDupFlag (43=Y), or journaled late from an old spool (journal_messages.recovered)
    raw: str


class _SourceReader:
    """The next source ExecutionReports after a journal id, on a connection of its own.

    A prepared SQL string on a raw DBAPI connection: this query runs after every journal commit,
    and SQLAlchemy's per-statement Python overhead would be most of its cost.
    """

    def __init__(self, engine, clients: list[str], venues: list[str]):
        self._engine = engine
        p = "?" if engine.dialect.name == "sqlite" else "%s"
        sides, params = [], []
        if clients:
            sides.append(f"(direction = 'O' AND session_id IN ({', '.join([p] * len(clients))}))")
            params += clients
        if venues:
            sides.append(f"(direction = 'I' AND session_id IN ({', '.join([p] * len(venues))}))")
            params += venues
        # a row journaled late from an old spool (``recovered``) is copied as a possible resend, like a PossDup one
        self._sql = (f"SELECT id, session_id, direction, poss_dup OR recovered, raw FROM journal_messages "
                     f"WHERE id > {p} AND msg_type = '8' AND ({' OR '.join(sides)}) ORDER BY id LIMIT {CHUNK}"
                     if sides else None)
        self._params = params
        self._conn = None

    def fetch(self, after: int) -> list[SourceRow]:
        if self._sql is None:
            return []
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        try:
            cur = self._conn.cursor()
            try:
                cur.execute(self._sql, [after, *self._params])
                rows = [SourceRow(r[0], r[1], r[2], bool(r[3]), r[4]) for r in cur.fetchall()]
            finally:
                cur.close()
            self._conn.commit()  # end the read transaction: the next fetch sees newer commits
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

    def fetch(self, after: int) -> list[SourceRow]:
        """The next source reports (up to CHUNK) after journal id ``after``, in id order."""
        return self._reader.fetch(after)

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
