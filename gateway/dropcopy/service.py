"""The drop-copy thread: every journaled ExecutionReport in a drop-copy session's scope, copied to it.

Tap point: the journal. The JournalLogFactory already sees every message on
every wire; the journal writer commits them and the database numbers them. After
each commit the writer wakes this thread ("fixgw-dropcopy"), which reads the new
ExecutionReport rows (after the cursor, a position in the journal's merged stream:
``gateway/journal/stream.py``), decides per drop-copy session whether
each is in scope (``dropcopy.filters``), rewrites it in the session's FIX
version (``dropcopy.translate``) and hands it to quickfix. Why here:

- nothing runs on the quickfix session threads or the core thread: the FIX
  callbacks already queue every raw message for the journal, and the copies'
  work (a query per commit, parsing, translating, sendToTarget) is on this thread;
- every copy is backed by a committed journal row, and its position (the writing
  transaction's id and the journal id, one order for every shard of a cluster)
  orders and names it, so "the last copy delivered" survives restarts,
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

This module is the thread and its copy loop; its collaborators: ``sources.py``
(the source reports and whose they are), ``receiver.py`` (one drop-copy
session's state, events and sends), ``watermarks.py`` (the ledgers in
``dropcopy_state``), ``replay.py`` (an operator's replay to one session).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from queue import Empty, SimpleQueue

from dropcopy.filters import OrderDirectory, Scope
from dropcopy.translate import Untranslatable, translate
from gateway.dropcopy import replay as operator_replay
from gateway.dropcopy.receiver import RETRY_S, Receiver
from gateway.dropcopy.sources import CHUNK, Sources
from gateway.dropcopy.watermarks import Watermarks
from gateway.journal import stream as journal_stream
from gateway.journal.db import make_engine
from gateway.journal.replay import Filters
from gateway.observability import metrics
from orders.commands import SessionStatus
from sessions.dropcopy import AckReceived, DropCopyLink, InboundRefused, StreamReset

log = logging.getLogger("fixgw.dropcopy")

IDLE_WAKE_S = 0.25  # the thread looks at sessions (resets, acknowledgements) at least this often
PERSIST_INTERVAL_S = 0.2  # watermarks that do not guard a send are written at most this often
HELD_INTERVAL_S = 1.0  # how long the merged stream is held back (a gauge) is read this often
# A claim covers this much of the journal's merged stream past the chunk being sent (gateway/journal/stream.py),
# so under load the claim is written about once per so many rows, not once per chunk: CLAIM_AHEAD journal ids on
# SQLite, where the stream is in id order, and CLAIM_AHEAD_XIDS writing transactions on PostgreSQL (a journal
# batch is one, so about as many batches of any shard). The price: after a crash, copies the claim covered that
# had not gone out yet are sent with PossResend (97=Y), i.e. marked as possibly seen before, which costs a
# receiver an ExecID lookup and never a missed or unmarked copy.
CLAIM_AHEAD = 1000
CLAIM_AHEAD_XIDS = 100


class DropCopyService:
    """The fixgw-dropcopy thread: copies each newly committed source report to the sessions in scope."""

    def __init__(self, database_url: str, sessions: dict[str, tuple[str, Scope]], link: DropCopyLink,
                 client_sessions: dict[str, str], venue_sessions: dict[str, str], directory: OrderDirectory,
                 hold_offline: frozenset[str] = frozenset()):
        """``sessions``: name -> (FIX version, scope); ``client_sessions`` / ``venue_sessions``:
        quickfix SessionID text -> session name, for the sessions whose reports are sources;
        ``hold_offline``: the sessions whose copies wait while the receiver is logged out (ResetOn*)."""
        self._engine = make_engine(database_url)
        self._sessions = {name: Receiver(name, version, scope, link, hold_offline=name in hold_offline)
                          for name, (version, scope) in sessions.items()}
        self._link = link
        self._events: SimpleQueue = SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()
        self._probe_ids = itertools.count(1)  # makes each acknowledgement TestReqID unique
        self._last_persist = 0.0
        self.cycles = 0  # completed cycles (tests wait on it)
        self._clean = False  # the last cycle completed
        self.healthy = True
        self.last_error: str | None = None
        self._sources = Sources(self._engine, client_sessions, venue_sessions, directory,
                                {s.scope.reports for s in self._sessions.values()})
        self._watermarks = Watermarks(self._engine)
        self._last_observe = 0.0
        self._last_held = 0.0

    # ------------------------------------------------------------------ other threads
    def wake(self) -> None:
        """New journal rows are committed (the journal writer's commit listener)."""
        self._wake.set()

    def fence(self, fence) -> None:
        """This instance leads its cluster: every ledger write from now on runs ``fence(conn)`` first
        (watermarks.py), so once the term is over no copy goes out past the last claim."""
        self._watermarks.fence = fence

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
        self._sources.close()
        self._engine.dispose()

    def names(self) -> list[str]:
        return list(self._sessions)

    def status(self) -> list[dict]:
        """One dict per session, for /health, the admin API and the metrics (read from another thread)."""
        return [s.status() for s in self._sessions.values()]

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
        """Restore each session's ledger; account for a restart and for store resets while stopped."""
        start, end, rows = self._watermarks.read()
        for s in self._sessions.values():
            view = self._link.view(s.name)
            s.ledger = self._watermarks.restore(s.name, rows.get(s.name), start, end, view.stream)
            s.last_seqnum = view.next_sender_seqnum
            s.logged_on = view.logged_on
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
                s.observe()
        self._copy_new_rows()
        now = time.monotonic()
        if now - self._last_held >= HELD_INTERVAL_S:
            self._last_held = now
            metrics.DROPCOPY_STREAM_HELD.set(self._sources.held_seconds())
        if self._stop.is_set() or now - self._last_persist >= PERSIST_INTERVAL_S:
            self._persist()
        for s in self._sessions.values():
            s.probe_if_due(now, self._probe_ids)
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
                s.logged(ev.up)
                status_changed = True
            elif type(ev) is AckReceived:
                s.acknowledged(ev.test_req_id)
            elif type(ev) is StreamReset:
                s.stream_reset(ev.why, ev.at_logon)
            elif type(ev) is InboundRefused:
                metrics.DROPCOPY_REFUSED.labels(s.name, ev.msg_type).inc()

    # ------------------------------------------------------------------ copying
    def _copy_new_rows(self) -> None:
        """Copy every source row past each session's cursor. Sessions at the same cursor (normally all
        of them) share one query; a session catching up after a reset gets a chunk per round, after
        the sessions that are up to date, so its backlog never holds back their live copies."""
        while True:
            now = time.monotonic()
            groups: dict[tuple[int, int], list[Receiver]] = {}
            for s in self._sessions.values():
                if s.ready(now):
                    groups.setdefault(s.ledger.sent, []).append(s)
            more = False
            for after in sorted(groups, reverse=True):
                more |= self._copy_chunk(after, groups[after])
            if not more:
                return

    def _copy_chunk(self, after: tuple[int, int], members: list[Receiver]) -> bool:
        """Copy the next chunk of source rows after position ``after`` to ``members``; True if it was full."""
        rows = self._sources.fetch(after)
        if not rows:
            return False
        last = rows[-1].position
        described = {}
        # the owner, account and venue of a report are looked up only if some scope filters on them
        context = any(s.scope.clients or s.scope.accounts or s.scope.venues for s in members)
        plans: list[tuple[Receiver, list]] = []
        for s in members:
            copies = []
            for row in rows:
                d = described.get(row.id)
                if d is None:
                    d = described[row.id] = self._sources.describe(row, context)
                pairs, o = d
                if not s.scope.covers(o):
                    continue
                catch_up = s.ledger.poss_resend(row.position)
                try:
                    text = translate(pairs, s.version, poss_resend=catch_up or bool(row.poss_dup))
                except Untranslatable as exc:
                    s.untranslatable(row.id, exc)
                    continue
                copies.append((row.position, text, catch_up, bool(row.poss_dup)))
            plans.append((s, copies))
        # Claim before sending: after a crash, copies up to the claim may have gone out (re-sent with 97=Y).
        if any(copies and s.ledger.claimed < last for s, copies in plans):
            ahead = journal_stream.ahead(last, CLAIM_AHEAD, CLAIM_AHEAD_XIDS)
            for s, copies in plans:
                if copies:
                    s.ledger.claim(ahead)
            self._persist()
        for s, copies in plans:
            for position, text, catch_up, source_resend in copies:
                if not s.send(text):
                    s.ledger.advance(journal_stream.just_before(position))
                    s.blocked_until = time.monotonic() + RETRY_S
                    break
                s.sent(catch_up, source_resend)
            else:
                s.ledger.advance(last)
        return len(rows) == CHUNK

    # ------------------------------------------------------------------ state
    def _persist(self) -> None:
        self._last_persist = time.monotonic()
        self._watermarks.persist(s.ledger for s in self._sessions.values() if s.ledger is not None)

    # ------------------------------------------------------------------ operator replay
    def replay(self, name: str, filters: Filters) -> dict:
        """Send the journaled ExecutionReports ``filters`` select (and the session's scope covers) to
        session ``name`` again, marked PossResend (97=Y). Runs on the caller's thread (an admin request).

        Raises KeyError for an unknown session, NotLoggedOn (gateway/dropcopy/replay.py) if it is not
        logged on.
        """
        return operator_replay.replay(self._sessions[name], self._link, self._sources, self._engine, filters)
