"""The drop-copy thread: every journaled ExecutionReport in a drop-copy session's scope, copied to it.

Tap point: the journal. The JournalLogFactory already sees every message on
every wire; the journal writer commits them and the database numbers them. After
each commit the writer wakes this thread ("fixgw-dropcopy"), which reads the new
ExecutionReport rows (``id > cursor``), decides per drop-copy session whether
each is in scope (``dropcopy.filters``), rewrites it in the session's FIX
version (``dropcopy.translate``) and hands it to quickfix. Why here:

- nothing runs on the quickfix session threads or the core thread: the FIX
  callbacks already queue every raw message for the journal, and the copies'
  work (a query per commit, parsing, translating, sendToTarget) is on this thread;
- every copy is backed by a committed journal row, and the journal id orders
  and names it, so "the last copy delivered" is a number that survives restarts,
  sequence resets and store loss (``dropcopy.ledger``), persisted per session in
  ``dropcopy_state``; the same code serves live copies, catch-up after a reset
  and ``fixgw journal replay --to-session``;
- the price: a copy trails the original by the journal's batching window plus a
  commit (milliseconds), and copies wait while the journal database is down.

Delivery (see dropcopy/ledger.py): copies are handed to quickfix whether or not
the receiver is logged on. quickfix stores each one and, when the receiver logs
on again, re-sends what it missed with PossDupFlag (43=Y). A TestRequest after
the copies, answered by the receiver, moves the acknowledged watermark. When the
session's message store is reset (receiver's ResetSeqNumFlag, operator reset,
new session day, lost store files), quickfix can no longer re-send, so this
thread re-sends from the journal everything after the acknowledged watermark,
marked PossResend (97=Y). After a crash, copies that may already have gone out
are re-sent marked 97=Y too. Receivers de-duplicate on ExecID. A session with a
ResetOn* setting (reset_on_logon/logout/disconnect) is different: quickfix would
drop or discard what it is handed while the receiver is logged out, so its copies
wait in the journal until the receiver is logged on.

Source rows with PossDupFlag (a client's resend of reports it missed, a venue's
resend to us) are copied too, marked 97=Y: for a client the resend may be the
first time a report is on the wire (quickfix stores reports for a disconnected
client and the journal sees them only when they are sent), for a venue it may be
the first time we received it.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple
from queue import Empty, SimpleQueue

from sqlalchemy import func, select, update

from dropcopy.filters import CLIENT, VENUE, OrderDirectory, OrderInfo, Origin, Scope, origin
from dropcopy.ledger import Ledger
from dropcopy.translate import Untranslatable, parse, translate
from gateway.observability import metrics
from gateway.journal.db import dropcopy_state, journal_messages, make_engine
from gateway.journal.queries import stream_rows
from gateway.journal.replay import Filters, select_messages
from orders.model import SessionStatus
from sessions.dropcopy import ACK_PREFIX, AckReceived, DropCopyLink, InboundRefused, StreamReset

log = logging.getLogger("fixgw.dropcopy")

CHUNK = 500  # journal rows per query
IDLE_WAKE_S = 0.25  # the thread looks at sessions (resets, acknowledgements) at least this often
PROBE_INTERVAL_S = 0.5  # at most one acknowledgement TestRequest per session this often
PROBE_TIMEOUT_S = 3.0  # an unanswered one is forgotten after this long (a new one follows); acks are bookkeeping
PERSIST_INTERVAL_S = 0.2  # watermarks that do not guard a send are written at most this often
# A claim covers this many journal ids past the chunk being sent, so under load the claim is written
# about once per CLAIM_AHEAD journal rows, not once per chunk. The price: after a crash, copies of up
# to CLAIM_AHEAD rows that had not gone out yet are sent with PossResend (97=Y), i.e. marked as
# possibly seen before, which costs a receiver an ExecID lookup and never a missed or unmarked copy.
CLAIM_AHEAD = 1000
RETRY_S = 1.0  # after a failed send or database error


class NotLoggedOn(Exception):
    pass


@dataclass
class _Session:
    name: str
    version: str
    scope: Scope
    ledger: Ledger | None = None
    saved: tuple | None = None  # the ledger as last written
    logged_on: bool = False
    last_seqnum: int = 0
    copies: int = 0  # copies handed over by this process
    acked_copies: int = 0  # of which the receiver acknowledged
    probe: tuple | None = None  # (TestReqID, journal id, copies, monotonic sent, stream)
    last_probe_at: float = 0.0
    blocked_until: float = 0.0
    # A Logon with ResetSeqNumFlag was seen (fromAdmin). quickfix has reset the store by then, but
    # the logon is not complete (our Logon answer is not sent yet); the rewind waits for onLogon so
    # the re-sent copies follow the logon exchange instead of racing it.
    reset_pending: str | None = None
    untranslatable_logged: set[int] = field(default_factory=set)
    # A ResetOn* setting (ResetOnLogon/Logout/Disconnect): quickfix keeps nothing sent while the receiver is
    # logged out (it drops the copy, or discards it with the store at the next reset), so copies wait for
    # the logon instead; the journal holds them meanwhile.
    hold_offline: bool = False
    sent_metric: object = None  # this session's child of DROPCOPY_SENT (a labels() lookup per copy is not free)


class _Row(NamedTuple):
    id: int
    session_id: str
    direction: str
    poss_dup: bool
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
        self._sql = (f"SELECT id, session_id, direction, poss_dup, raw FROM journal_messages "
                     f"WHERE id > {p} AND msg_type = '8' AND ({' OR '.join(sides)}) ORDER BY id LIMIT {CHUNK}"
                     if sides else None)
        self._params = params
        self._conn = None

    def fetch(self, after: int) -> list[_Row]:
        if self._sql is None:
            return []
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        try:
            cur = self._conn.cursor()
            try:
                cur.execute(self._sql, [after, *self._params])
                rows = [_Row(r[0], r[1], r[2], bool(r[3]), r[4]) for r in cur.fetchall()]
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


class DropCopyService:
    def __init__(self, database_url: str, sessions: dict[str, tuple[str, Scope]], link: DropCopyLink,
                 client_sessions: dict[str, str], venue_sessions: dict[str, str], directory: OrderDirectory,
                 hold_offline: frozenset[str] = frozenset()):
        """``sessions``: name -> (FIX version, scope); ``client_sessions`` / ``venue_sessions``:
        quickfix SessionID text -> session name, for the sessions whose reports are sources;
        ``hold_offline``: the sessions whose copies wait while the receiver is logged out (ResetOn*)."""
        self._engine = make_engine(database_url)
        self._sessions = {name: _Session(name, version, scope, hold_offline=name in hold_offline,
                                         sent_metric=metrics.DROPCOPY_SENT.labels(name))
                          for name, (version, scope) in sessions.items()}
        self._link = link
        self._clients = dict(client_sessions)
        self._venues = dict(venue_sessions)
        self._directory = directory
        self._events: SimpleQueue = SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()
        self._probe_seq = 0
        self._last_persist = 0.0
        self.cycles = 0  # completed cycles (tests wait on it)
        self._clean = False  # the last cycle completed
        self.healthy = True
        self.last_error: str | None = None
        wanted = {s.scope.reports for s in self._sessions.values()}
        self._reader = _SourceReader(self._engine, list(self._clients) if wanted & {CLIENT, "both"} else [],
                                     list(self._venues) if wanted & {VENUE, "both"} else [])
        self._last_observe = 0.0

    # ------------------------------------------------------------------ other threads
    def wake(self) -> None:
        """New journal rows are committed (the journal writer's commit listener)."""
        self._wake.set()

    def notify(self, event) -> None:
        """A drop-copy session event from its session thread: logon/logout, acknowledgement, refusal."""
        self._events.put(event)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fixgw-dropcopy", daemon=True)
        self._thread.start()

    def wait_loaded(self, timeout: float = 10.0) -> bool:
        return self._loaded.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Copy what is journaled, write the watermarks, stop."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("drop-copy thread did not stop within %.0f s", timeout)
            self._thread = None
        self._reader.close()
        self._engine.dispose()

    def names(self) -> list[str]:
        return list(self._sessions)

    def status(self) -> list[dict]:
        """One dict per session, for /health, the admin API and the metrics (read from another thread)."""
        out = []
        for s in self._sessions.values():
            ledger = s.ledger
            out.append({
                "name": s.name, "fix_version": s.version, "logged_on": s.logged_on, "scope": s.scope.describe(),
                "sent_id": ledger.sent_id if ledger else None, "acked_id": ledger.acked_id if ledger else None,
                "copies_sent": s.copies, "copies_pending": max(0, s.copies - s.acked_copies),
            })
        return out

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            self._clean = False
            try:
                if not self._loaded.is_set():
                    self._load()
                self._cycle()
                self._clean = True
                if not self.healthy:
                    log.warning("drop copies flowing again")
                self.healthy, self.last_error = True, None
            except Exception as exc:  # noqa: BLE001 - never die: log, count, retry
                first = self.healthy
                self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"
                metrics.INTERNAL_ERRORS.labels("dropcopy").inc()
                (log.exception if first else log.warning)("drop-copy cycle failed, retrying: %s", self.last_error)
                if not stopping:
                    self._stop.wait(RETRY_S)
            if stopping:
                self._close()
                return
            self._wake.wait(IDLE_WAKE_S)
            self._wake.clear()

    def _close(self) -> None:
        """Last act of a clean stop: no claim is left in doubt, so a restart marks nothing 97=Y."""
        if not self._loaded.is_set() or not self._clean:
            return  # the last cycle failed part-way: leave the claims, a restart marks them 97=Y
        for s in self._sessions.values():
            s.ledger.closed()
        try:
            self._persist()
        except Exception as exc:  # noqa: BLE001 - the claims stay: a restart re-sends them marked 97=Y
            log.warning("drop-copy watermarks not written at stop: %s", exc)

    def _load(self) -> None:
        """Read (or create) each session's ledger; account for a restart and for store resets while stopped."""
        # Read, then write in a transaction of its own: on SQLite (WAL) a read transaction that later
        # writes fails at once ("database is locked") if the journal writer committed in between.
        with self._engine.connect() as conn:
            end = conn.execute(select(func.coalesce(func.max(journal_messages.c.id), 0))).scalar_one()
            rows = {r.session: r for r in conn.execute(select(dropcopy_state))}
        new = []
        for s in self._sessions.values():
            view = self._link.view(s.name)
            r = rows.get(s.name)
            if r is None:
                s.ledger = Ledger.fresh(s.name, end, view.stream)
                new.append(self._row(s.ledger))
                log.info("drop-copy session %s is new: copies start after journal id %d", s.name, end)
            else:
                s.ledger = Ledger(s.name, r.sent_id, r.claimed_id, r.acked_id, r.resend_upto, r.stream)
                if s.ledger.sent_id > end:
                    log.warning("drop-copy session %s: its watermark %d is past the journal's last id %d "
                                "(another journal database?); continuing from %d", s.name, s.ledger.sent_id,
                                end, end)
                    s.ledger = Ledger.fresh(s.name, end, s.ledger.stream)
                s.ledger.restarted()
                if s.ledger.stream_changed(view.stream):
                    log.warning("drop-copy session %s: its message store was reset or lost while the gateway "
                                "was stopped; re-sending from the journal after id %d with PossResend",
                                s.name, s.ledger.acked_id)
                s.saved = (r.sent_id, r.claimed_id, r.acked_id, r.resend_upto, r.stream)
            s.last_seqnum = view.next_sender_seqnum
            s.logged_on = view.logged_on
        if new:
            with self._engine.begin() as conn:
                conn.execute(dropcopy_state.insert(), new)
            for s in self._sessions.values():
                if any(row["session"] == s.name for row in new):
                    s.saved = s.ledger.key()
        self._persist()
        self._loaded.set()

    def _cycle(self) -> None:
        # Sessions are looked at on their events and every IDLE_WAKE_S, not after every journal
        # commit: each look is several binding calls (GIL hand-offs) and a file read. A reset seen
        # late only means the copies sent meanwhile are sent once more, marked 97=Y.
        now = time.monotonic()
        if self._drain_events() or now - self._last_observe >= IDLE_WAKE_S:
            self._last_observe = now
            for s in self._sessions.values():
                self._observe(s)
        self._copy_new_rows()
        now = time.monotonic()
        if self._stop.is_set() or now - self._last_persist >= PERSIST_INTERVAL_S:
            self._persist()
        self._probe(now)
        self.cycles += 1

    def _drain_events(self) -> bool:
        """Apply queued session events; True if a session logged on or off."""
        status_changed = False
        while True:
            try:
                ev = self._events.get_nowait()
            except Empty:
                return status_changed
            s = self._sessions.get(getattr(ev, "name", None))
            if s is None:
                continue
            if type(ev) is SessionStatus:
                s.logged_on = ev.up
                s.probe = None
                status_changed = True
                log.info("drop-copy session %s %s", s.name, "logged on" if ev.up else "logged out")
                if ev.up and s.reset_pending is not None:
                    self._apply_reset(s, s.reset_pending)
                    s.reset_pending = None
            elif type(ev) is AckReceived:
                p = s.probe
                if p is not None and p[0] == ev.test_req_id and s.ledger is not None and p[4] == s.ledger.stream:
                    s.ledger.acked(p[1])
                    s.acked_copies = max(s.acked_copies, p[2])
                    s.probe = None
            elif type(ev) is StreamReset:
                if ev.at_logon:
                    s.reset_pending = ev.why  # applied when the logon completes (see _Session.reset_pending)
                else:
                    self._apply_reset(s, ev.why)
                s.probe = None
            elif type(ev) is InboundRefused:
                metrics.DROPCOPY_REFUSED.labels(s.name, ev.msg_type).inc()

    def _apply_reset(self, s: _Session, why: str) -> None:
        if s.ledger is None:
            return
        view = self._link.view(s.name)  # the new store: noted, so it is not taken for another reset
        s.ledger.rewind()
        s.ledger.stream = view.stream or s.ledger.stream
        s.last_seqnum = view.next_sender_seqnum
        log.warning("drop-copy session %s: sequence reset (%s); re-sending from the journal everything "
                    "after id %d, with PossResend (97=Y)", s.name, why, s.ledger.acked_id)

    def _observe(self, s: _Session) -> None:
        """Catch resets no event announced: a new store (its creation time: a new session day, store
        files lost) or, as a safety net, a next sequence number below what our own sends imply."""
        view = self._link.view(s.name)
        if not view.exists or s.ledger is None:
            return
        s.logged_on = view.logged_on
        regressed = 0 < view.next_sender_seqnum < s.last_seqnum
        if s.ledger.stream_changed(view.stream) or regressed:
            if regressed:
                s.ledger.rewind()
            s.probe = None
            log.warning("drop-copy session %s: sequence reset (new message store); re-sending from the journal "
                        "everything after id %d, with PossResend (97=Y)", s.name, s.ledger.acked_id)
        s.last_seqnum = view.next_sender_seqnum

    # ------------------------------------------------------------------ copying
    def _classify(self, session_id: str, direction: str) -> tuple[str, str] | None:
        if direction == "O":
            name = self._clients.get(session_id)
            return (CLIENT, name) if name is not None else None
        name = self._venues.get(session_id)
        return (VENUE, name) if name is not None else None

    def _copy_new_rows(self) -> None:
        """Copy every source row past each session's cursor. Sessions at the same cursor (normally all
        of them) share one query; a session catching up after a reset gets a chunk per round, after
        the sessions that are up to date, so its backlog never holds back their live copies."""
        while True:
            now = time.monotonic()
            groups: dict[int, list[_Session]] = {}
            for s in self._sessions.values():
                if (s.ledger is not None and s.blocked_until <= now and s.reset_pending is None
                        and (s.logged_on or not s.hold_offline)):
                    groups.setdefault(s.ledger.sent_id, []).append(s)
            more = False
            for after in sorted(groups, reverse=True):
                more |= self._copy_chunk(after, groups[after])
            if not more:
                return

    def _copy_chunk(self, after: int, members: list[_Session]) -> bool:
        """Copy the next chunk of source rows after journal id ``after`` to ``members``; True if it was full."""
        rows = self._reader.fetch(after)
        if not rows:
            return False
        last = rows[-1].id
        described = {}
        # the owner, account and venue of a report are looked up only if some scope filters on them
        context = any(s.scope.clients or s.scope.accounts or s.scope.venues for s in members)
        plans: list[tuple[_Session, list]] = []
        for s in members:
            copies = []
            for row in rows:
                d = described.get(row.id)
                if d is None:
                    side, name = self._classify(row.session_id, row.direction)
                    pairs = parse(row.raw)
                    o = origin(side, name, dict(pairs), self._directory) if context else Origin(side, None, None, None)
                    d = described[row.id] = (pairs, o)
                pairs, o = d
                if not s.scope.covers(o):
                    continue
                catch_up = s.ledger.poss_resend(row.id)
                try:
                    text = translate(pairs, s.version, poss_resend=catch_up or bool(row.poss_dup))
                except Untranslatable as exc:
                    self._untranslatable(s, row.id, exc)
                    continue
                copies.append((row.id, text, catch_up, bool(row.poss_dup)))
            plans.append((s, copies))
        # Claim before sending: after a crash, copies up to the claim may have gone out (re-sent with 97=Y).
        if any(copies and s.ledger.claimed_id < last for s, copies in plans):
            for s, copies in plans:
                if copies:
                    s.ledger.claim(last + CLAIM_AHEAD)
            self._persist()
        for s, copies in plans:
            for row_id, text, catch_up, source_resend in copies:
                if not self._send(s, text):
                    s.ledger.advance(row_id - 1)
                    s.blocked_until = time.monotonic() + RETRY_S
                    break
                s.copies += 1
                s.last_seqnum += 1  # a lower bound of the session's next sequence number
                s.sent_metric.inc()
                if catch_up or source_resend:
                    metrics.DROPCOPY_REPLAYED.labels(s.name, "catch_up" if catch_up else "source_resend").inc()
            else:
                s.ledger.advance(last)
        return len(rows) == CHUNK

    def _send(self, s: _Session, text: str) -> bool:
        try:
            if self._link.send(s.name, text):
                return True
            if s.hold_offline and not self._link.view(s.name).logged_on:
                s.logged_on = False  # it logged out just now: the copies wait for its logon (no error)
                return False
            log.error("drop-copy session %s: quickfix refused a copy; retrying in %.0f s", s.name, RETRY_S)
        except Exception:  # noqa: BLE001
            metrics.INTERNAL_ERRORS.labels("dropcopy").inc()
            log.exception("drop-copy session %s: sending a copy failed; retrying in %.0f s", s.name, RETRY_S)
        return False

    def _untranslatable(self, s: _Session, row_id: int, exc: Untranslatable) -> None:
        if row_id in s.untranslatable_logged:
            return
        if len(s.untranslatable_logged) > 10_000:
            s.untranslatable_logged.clear()
        s.untranslatable_logged.add(row_id)
        metrics.DROPCOPY_UNTRANSLATABLE.labels(s.name).inc()
        log.error("drop-copy session %s: journal row %d not copied: %s", s.name, row_id, exc)

    def _probe(self, now: float) -> None:
        for s in self._sessions.values():
            ledger = s.ledger
            if ledger is None:
                continue
            if s.probe is not None and now - s.probe[3] > PROBE_TIMEOUT_S:
                s.probe = None
            if (s.probe is None and s.logged_on and ledger.sent_id > ledger.acked_id
                    and now - s.last_probe_at >= PROBE_INTERVAL_S):
                self._probe_seq += 1
                test_req_id = f"{ACK_PREFIX}{ledger.sent_id}-{self._probe_seq}"
                try:
                    sent = self._link.probe(s.name, test_req_id)
                except Exception:  # noqa: BLE001
                    metrics.INTERNAL_ERRORS.labels("dropcopy").inc()
                    log.exception("drop-copy session %s: acknowledgement TestRequest failed", s.name)
                    sent = False
                if sent:
                    s.last_seqnum += 1
                    s.probe = (test_req_id, ledger.sent_id, s.copies, now, ledger.stream)
                    s.last_probe_at = now

    # ------------------------------------------------------------------ state
    @staticmethod
    def _row(ledger: Ledger) -> dict:
        return {"session": ledger.session, "sent_id": ledger.sent_id, "claimed_id": ledger.claimed_id,
                "acked_id": ledger.acked_id, "resend_upto": ledger.resend_upto, "stream": ledger.stream,
                "updated_us": time.time_ns() // 1000}

    def _persist(self) -> None:
        dirty = [s for s in self._sessions.values() if s.ledger is not None and s.ledger.key() != s.saved]
        self._last_persist = time.monotonic()
        if not dirty:
            return
        with self._engine.begin() as conn:
            for s in dirty:
                values = self._row(s.ledger)
                del values["session"]
                conn.execute(update(dropcopy_state).where(dropcopy_state.c.session == s.name).values(**values))
        for s in dirty:
            s.saved = s.ledger.key()

    # ------------------------------------------------------------------ operator replay
    def replay(self, name: str, filters: Filters) -> dict:
        """Send the journaled ExecutionReports ``filters`` select (and the session's scope covers) to
        session ``name`` again, marked PossResend (97=Y). Runs on the caller's thread (an admin request).

        Raises KeyError for an unknown session, NotLoggedOn if it is not logged on.
        """
        s = self._sessions[name]
        if not self._link.view(name).logged_on:
            raise NotLoggedOn(name)
        counts = {"selected": 0, "sent": 0, "out_of_scope": 0, "not_a_source": 0, "untranslatable": 0}
        rows = stream_rows(self._engine, select_messages(replace(filters, msg_types=("8",))))
        try:
            for row in rows:
                counts["selected"] += 1
                where = self._classify(row.session_id, row.direction)
                if where is None:
                    counts["not_a_source"] += 1
                    continue
                pairs = parse(row.raw)
                if not s.scope.covers(origin(where[0], where[1], dict(pairs), self._directory)):
                    counts["out_of_scope"] += 1
                    continue
                try:
                    text = translate(pairs, s.version, poss_resend=True)
                except Untranslatable as exc:
                    counts["untranslatable"] += 1
                    log.error("replay to %s: journal row %d not copied: %s", name, row.id, exc)
                    continue
                if not self._link.send(name, text):
                    raise NotLoggedOn(name)
                counts["sent"] += 1
                metrics.DROPCOPY_SENT.labels(name).inc()
                metrics.DROPCOPY_REPLAYED.labels(name, "operator").inc()
        finally:
            rows.close()
        return counts
