"""One drop-copy session as the copying thread sees it: its ledger, whether it is logged on, a floor on
its next sequence number, the acknowledgement probe, and what its session events and store resets do to
them; the sends and probes to it through the quickfix link."""
from __future__ import annotations

import logging
from collections.abc import Iterator

from dropcopy.filters import Scope
from dropcopy.ledger import Ledger
from dropcopy.translate import Untranslatable
from gateway.journal import stream as journal_stream
from gateway.observability import metrics
from sessions.dropcopy import ACK_PREFIX, DropCopyLink

log = logging.getLogger("fixgw.dropcopy")

PROBE_INTERVAL_S = 0.5  # at most one acknowledgement TestRequest per session this often
PROBE_TIMEOUT_S = 3.0  # an unanswered one is forgotten after this long (a new one follows); acks are bookkeeping
RETRY_S = 1.0  # after a failed send or database error


class Receiver:
    """A drop-copy session's copy state. Used on the drop-copy thread (``status`` from any thread)."""

    def __init__(self, name: str, version: str, scope: Scope, link: DropCopyLink, hold_offline: bool = False):
        self.name = name
        self.version = version
        self.scope = scope
        self._link = link
        self.ledger: Ledger | None = None
        self.logged_on = False
        self.last_seqnum = 0
        self.copies = 0  # copies handed over by this process
        self.acked_copies = 0  # of which the receiver acknowledged
        self.probe: tuple | None = None  # (TestReqID, position, copies, monotonic sent, stream)
        self.last_probe_at = 0.0
        self.blocked_until = 0.0
        # A Logon with ResetSeqNumFlag was seen (fromAdmin). quickfix has reset the store by then, but
        # the logon is not complete (our Logon answer is not sent yet); the rewind waits for onLogon so
        # the re-sent copies follow the logon exchange instead of racing it.
        self.reset_pending: str | None = None
        self.untranslatable_logged: set[int] = set()
        # A ResetOn* setting (ResetOnLogon/Logout/Disconnect): quickfix keeps nothing sent while the receiver is
        # logged out (it drops the copy, or discards it with the store at the next reset), so copies wait for
        # the logon instead; the journal holds them meanwhile.
        self.hold_offline = hold_offline
        # this session's child of DROPCOPY_SENT (a labels() lookup per copy is not free)
        self.sent_metric = metrics.DROPCOPY_SENT.labels(name)

    def status(self) -> dict:
        ledger = self.ledger
        return {
            "name": self.name, "fix_version": self.version, "logged_on": self.logged_on,
            "scope": self.scope.describe(),
            # journal ids, and positions in the merged stream ("id@xid" on PostgreSQL: gateway/journal/stream.py)
            "sent_id": ledger.sent[1] if ledger else None, "acked_id": ledger.acked[1] if ledger else None,
            "sent": journal_stream.text(ledger.sent) if ledger else None,
            "acked": journal_stream.text(ledger.acked) if ledger else None,
            "copies_sent": self.copies, "copies_pending": max(0, self.copies - self.acked_copies),
        }

    def ready(self, now: float) -> bool:
        """Copies may be sent to it now."""
        return (self.ledger is not None and self.blocked_until <= now and self.reset_pending is None
                and (self.logged_on or not self.hold_offline))

    # ------------------------------------------------------------------ session events
    def logged(self, up: bool) -> None:
        self.logged_on = up
        self.probe = None
        log.info("drop-copy session %s %s", self.name, "logged on" if up else "logged out")
        if up and self.reset_pending is not None:
            self.reset(self.reset_pending)
            self.reset_pending = None

    def acknowledged(self, test_req_id: str) -> None:
        """The receiver answered a TestRequest: what the probe covered is acknowledged, if it is ours."""
        p = self.probe
        if p is not None and p[0] == test_req_id and self.ledger is not None and p[4] == self.ledger.stream:
            self.ledger.acknowledge(p[1])
            self.acked_copies = max(self.acked_copies, p[2])
            self.probe = None

    def stream_reset(self, why: str, at_logon: bool) -> None:
        if at_logon:
            self.reset_pending = why  # applied when the logon completes (see reset_pending)
        else:
            self.reset(why)
        self.probe = None

    def reset(self, why: str) -> None:
        if self.ledger is None:
            return
        view = self._link.view(self.name)  # the new store: noted, so it is not taken for another reset
        self.ledger.rewind()
        self.ledger.stream = view.stream or self.ledger.stream
        self.last_seqnum = view.next_sender_seqnum
        log.warning("drop-copy session %s: sequence reset (%s); re-sending from the journal everything "
                    "after %s, with PossResend (97=Y)", self.name, why, journal_stream.text(self.ledger.acked))

    def observe(self) -> None:
        """Catch resets no event announced: a new store (its creation time: a new session day, store
        files lost) or, as a safety net, a next sequence number below what our own sends imply."""
        view = self._link.view(self.name)
        if not view.exists or self.ledger is None:
            return
        self.logged_on = view.logged_on
        regressed = 0 < view.next_sender_seqnum < self.last_seqnum
        if self.ledger.stream_changed(view.stream) or regressed:
            if regressed:
                self.ledger.rewind()
            self.probe = None
            log.warning("drop-copy session %s: sequence reset (new message store); re-sending from the journal "
                        "everything after %s, with PossResend (97=Y)", self.name,
                        journal_stream.text(self.ledger.acked))
        self.last_seqnum = view.next_sender_seqnum

    # ------------------------------------------------------------------ copies and probes
    def send(self, text: str) -> bool:
        try:
            if self._link.send(self.name, text):
                return True
            if self.hold_offline and not self._link.view(self.name).logged_on:
                self.logged_on = False  # it logged out just now: the copies wait for its logon (no error)
                return False
            log.error("drop-copy session %s: quickfix refused a copy; retrying in %.0f s", self.name, RETRY_S)
        except Exception:  # noqa: BLE001
            metrics.INTERNAL_ERRORS.labels("dropcopy").inc()
            log.exception("drop-copy session %s: sending a copy failed; retrying in %.0f s", self.name, RETRY_S)
        return False

    def sent(self, catch_up: bool, source_resend: bool) -> None:
        """A copy was handed over."""
        self.copies += 1
        self.last_seqnum += 1  # a lower bound of the session's next sequence number
        self.sent_metric.inc()
        if catch_up or source_resend:
            metrics.DROPCOPY_REPLAYED.labels(self.name, "catch_up" if catch_up else "source_resend").inc()

    def untranslatable(self, row_id: int, exc: Untranslatable) -> None:
        if row_id in self.untranslatable_logged:
            return
        if len(self.untranslatable_logged) > 10_000:
            self.untranslatable_logged.clear()
        self.untranslatable_logged.add(row_id)
        metrics.DROPCOPY_UNTRANSLATABLE.labels(self.name).inc()
        log.error("drop-copy session %s: journal row %d not copied: %s", self.name, row_id, exc)

    def probe_if_due(self, now: float, probe_ids: Iterator[int]) -> None:
        """Send an acknowledgement TestRequest if copies are unacknowledged and none is out."""
        ledger = self.ledger
        if ledger is None:
            return
        if self.probe is not None and now - self.probe[3] > PROBE_TIMEOUT_S:
            self.probe = None
        if (self.probe is None and self.logged_on and ledger.sent > ledger.acked
                and now - self.last_probe_at >= PROBE_INTERVAL_S):
            test_req_id = f"{ACK_PREFIX}{journal_stream.text(ledger.sent)}-{next(probe_ids)}"
            try:
                sent = self._link.probe(self.name, test_req_id)
            except Exception:  # noqa: BLE001
                metrics.INTERNAL_ERRORS.labels("dropcopy").inc()
                log.exception("drop-copy session %s: acknowledgement TestRequest failed", self.name)
                sent = False
            if sent:
                self.last_seqnum += 1
                self.probe = (test_req_id, ledger.sent, self.copies, now, ledger.stream)
                self.last_probe_at = now
