"""Coming back after a crash: order state, journal and sequence numbers put back in step.

The durability point is the state log (gateway/state/log.py): the engine writes a
record of what a command changed *before* it sends anything, so nothing the
gateway said to a client or a venue is unknown to it after a restart. At start-up:

1. **Order state.** Fold the snapshot and the log: every open order (and today's
   finished ones, so ClOrdIDs stay unique), today's orders refused at intake (for
   operators; never in the book), child ClOrdIDs, fills, the risk
   exposure of each open order, operator switches (kill switches, disabled
   sessions), per-day risk usage with its trading day, and per session the MsgSeqNum
   of the last inbound message the core processed (the watermark). Exposure is
   recomputed from the orders; daily usage is the recorded day's (a restart after a
   trading-day roll starts from the new day's, not from every fill it still knows).
2. After an unclean stop only:
   - **Journal.** Nothing to do here: the journal writer spools every message to a
     file before queueing it, and imports what the database had not committed
     when it starts (gateway/journal/spool.py, ``Spool``).
   - **Messages received but not processed.** quickfix had accepted them (its
     store counts them as received), the core had not acted on them: the inbound
     application messages journaled after each session's watermark (in the
     current sequence-number epoch, left out those quickfix rejected) are decoded
     again and handed to the core first, in journal order, before any session
     starts. No counterparty is asked to re-send anything.
   - **Unsent messages.** The engine's sender thread may not have sent the last
     record's messages, nor up to ``SEND_BACKLOG_MAX`` before them; those
     missing from the sessions' FileStores are sent now (to a venue once it is
     logged on again). A message decided before its session's FileStore was
     created (a sequence reset since) is never sent again. After a takeover, a
     store rebuilt from the journal may also lack what the old active did send:
     its venue orders, cancels and replaces are reconciled with the venue before
     anything is sent again, its client messages are sent marked PossResend
     (``after_takeover``; docs/failover.md).
   - **Order messages a venue may lack.** A venue asks for a resend of what it did
     not receive; the gateway normally gap-fills stale order messages, but it
     re-sends (PossDupFlag=Y) the ones for orders still waiting for that venue's
     answer, so an order sent just before the crash is not silently lost.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

from risk.kill_switches import KillSwitches
from risk.state import RiskState
from desk.core import Core
from desk.risk_checks import hold_pending_replaces
from orders.actions import (
    ClientCancelReject, ClientExecReport, ClientMassCancelReport, VenueCancel, VenueDontKnow, VenueNewOrder,
    VenueReplace,
)
from orders.commands import (
    CancelRequest, MassCancelRequest, NewOrder, ReplaceRequest, StatusRequest, VenueCancelReject, VenueExecution,
)
from orders.model import OrdStatus
from gateway.state.log import StateLog
from gateway.state.pglog import PgStateLog
from gateway.state.records import State
from sessions.codec.tagvalue import parse_fields

log = logging.getLogger("fixgw.recovery")

_CLIENT_COMMANDS = (NewOrder, CancelRequest, ReplaceRequest, StatusRequest, MassCancelRequest)
_VENUE_COMMANDS = (VenueExecution, VenueCancelReject)


def origin_of(cmd) -> str | None:
    """The session an inbound command came from, as a watermark key ("client:NAME" / "venue:NAME")."""
    t = type(cmd)
    if t in _VENUE_COMMANDS:
        return "venue:" + cmd.venue
    if t in _CLIENT_COMMANDS:
        return "client:" + cmd.session
    return None


_NO_CONTROLS = ((), (), (), ())  # no switch set: what a running gateway has nearly always


def controls_of(core: Core) -> tuple:
    """Operator and risk switches that must survive a restart, in a comparable form (asked after every command:
    with none set, no sorting)."""
    rs = core.risk_state
    throttle = rs.throttle
    engaged, disabled, breaches, operator = (rs.kill_switches.engaged, throttle.disabled, throttle.breaches,
                                             core.operator_disabled)
    if not (engaged or disabled or breaches or operator):
        return _NO_CONTROLS
    return (tuple(sorted(engaged.items())), tuple(sorted(disabled)), tuple(sorted(breaches.items())),
            tuple(sorted(operator)))


class Recorder:
    """The engine's side of the state log: skip already-processed resends, record every change.

    Runs on the core thread only.
    """

    def __init__(self, statelog: StateLog | PgStateLog, core: Core, state: State,
                 store_epoch: Callable[[str], float | None] | None = None):
        self.log = statelog
        self.core = core
        self.watermarks: dict[str, tuple[int, float]] = dict(state.watermarks)
        self._controls = controls_of(core)
        self._store_epoch = store_epoch or (lambda origin: None)
        # Each session's store epoch (its FileStore's creation time) as last seen: at start-up, before
        # quickfix opens the stores, then at each logon. Every sequence reset (ResetSeqNumFlag 141=Y,
        # ResetOnLogon/Logout/Disconnect, a new session day, an operator's reset, lost store files) happens
        # while the session is logged out or during its logon, before onLogon; and the core handles
        # everything received before a logon before that logon. So a different epoch at a logon means
        # the watermark belongs to sequence numbers that no longer exist.
        self._epochs: dict[str, float | None] = {origin: self._store_epoch(origin) for origin in self.watermarks}
        self.skipped = 0
        self.forgotten = 0  # watermarks dropped at a logon after a sequence reset

    def already_processed(self, cmd) -> bool:
        """A re-sent message (PossDupFlag=Y) at or below its session's watermark was acted on before."""
        if not getattr(cmd, "poss_dup", False):
            return False
        wm = self.watermarks.get(origin_of(cmd))
        if wm is not None and cmd.seq <= wm[0]:
            self.skipped += 1
            return True
        return False

    def session_up(self, role: str, name: str) -> int | None:
        """A session logged on: forget its watermark if its sequence numbers were reset since, durably (a
        restart must not bring it back and take the new sequence's low MsgSeqNums for processed ones). Returns
        the ticket of the record written, if any."""
        origin = f"{role}:{name}"
        epoch = self._store_epoch(origin)
        known = origin in self._epochs
        seen = self._epochs.get(origin)
        self._epochs[origin] = epoch
        wm = self.watermarks.get(origin)
        if wm is None or epoch is None:
            return None
        if wm[1] < epoch or (known and seen != epoch):
            del self.watermarks[origin]
            self.forgotten += 1
            log.info("%s: sequence numbers were reset since MsgSeqNum %d was processed; its re-sent messages "
                     "are no longer compared with it", origin, wm[0])
            try:
                return self.log.append(origin, 0, [], [], None, [], None)  # origin with seq 0: watermark dropped
            except Exception:  # noqa: BLE001 - as a failed record: keep trading, say recovery is impaired
                log.critical("could not write the state log: %s's dropped watermark may come back after a "
                             "crash", origin, exc_info=True)
        return None

    def record(self, cmd, outcome, sends: list = ()) -> int | None:
        """Write what ``cmd`` changed; ``sends``: the messages about to go out, [(role, name, body text)]. Returns
        the record's ticket (the messages may go once it is durable), None if there was nothing to record."""
        origin = origin_of(cmd)
        seq = cmd.seq if origin is not None else 0
        touched = self.core.touched(cmd, outcome) if outcome is not None else []
        controls = controls_of(self.core)
        changed = controls != self._controls
        routes = outcome.routes if outcome is not None else []
        usage = self.core.risk_state.usage
        risk_day = usage.changes() if usage.dirty else None
        rejected = outcome.rejected if outcome is not None else None
        if not (touched or seq or changed or sends or routes or risk_day or rejected):
            return None
        if seq:
            self.watermarks[origin] = (seq, time.time())
        open_orders = self.core.risk_state.open_orders
        orders = [(o, open_orders.get((o.session, o.risk_key))) for o in touched]
        trades = None
        if outcome is not None:
            for a in outcome.actions:
                if type(a) is ClientExecReport and a.last_qty and a.last_px:
                    if trades is None:
                        trades = {}
                    trades[a.symbol] = a.last_px
        self._controls = controls
        return self.log.append(origin if seq else None, seq, orders, list(sends), controls if changed else None,
                               routes, trades, risk_day, rejected)

    def record_controls(self) -> int | None:
        """After an operator call ran on the core thread: record switches it changed (the record's ticket)."""
        if controls_of(self.core) != self._controls:
            return self.record(None, None)
        return None

    def capture(self) -> State:
        """The whole current state, for the snapshot written at a clean stop."""
        core = self.core
        open_orders = core.risk_state.open_orders
        open_risk = {}
        for o in core.orders.values():
            ro = open_orders.get((o.session, o.risk_key))
            if ro is not None:
                open_risk[o.order_id] = ro
        last = {sym: refs["last"] for sym, refs in core.risk_state.refs.items() if "last" in refs}
        return State(orders=dict(core.orders), open_risk=open_risk, watermarks=dict(self.watermarks),
                     controls=controls_of(core), last_trades=last, risk_day=core.risk_state.usage.saved(),
                     rejected=dict(core.rejected))


def start_of_day_utc(now: float | None = None) -> float:
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    return now_dt.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def restore_core(core: Core, state: State) -> None:
    """Give the core the recovered orders, recompute risk exposure, restore the switches and per-day usage."""
    orders = list(state.orders.values())
    core.restore(orders)
    core.restore_rejected(state.rejected.values())
    state.rejected = dict(core.rejected)  # the start-up snapshot holds what the core kept (its cap)
    old = core.risk_state
    rebuilt = RiskState.rebuild(
        ((o.account, o.symbol, o.side, o.cum_qty, o.notional) for o in orders),
        state.open_risk.values())
    rebuilt.refs = old.refs  # reference prices from the config
    for symbol, px in state.last_trades.items():
        rebuilt.set_last_trade(symbol, px)
    if state.controls is not None:
        kill, risk_disabled, breaches, operator_disabled = state.controls
        rebuilt.kill_switches = KillSwitches(dict(kill))
        rebuilt.throttle.disabled = set(risk_disabled)
        rebuilt.throttle.breaches = dict(breaches)
        core.operator_disabled = set(operator_disabled)
    # the recorded day's usage; the core's first message (or the scheduled roll) moves it on if that day is over
    rebuilt.restore_day(state.risk_day)
    core.risk_state = rebuilt
    hold_pending_replaces(core, orders)  # (after the day's usage: holds count in the open notional)


def awaiting_venue(state: State) -> set[str]:
    """Child ClOrdIDs of order messages a venue has not answered yet (may be re-sent on its request)."""
    out = set()
    for o in state.orders.values():
        for c in o.children:
            if c.status is OrdStatus.PENDING_NEW:
                out.add(c.child_id)
            if c.pending_cancel:
                out.add(c.pending_cancel)
            if c.pending_replace is not None:
                out.add(c.pending_replace.cl_ord_id)
    return out


# action type -> (attribute naming its session, MsgType, tag and attribute identifying its message)
_ACTION_KEYS = {
    ClientExecReport: ("session", "8", "17", "exec_id"),
    ClientCancelReject: ("session", "9", "11", "cl_ord_id"),
    ClientMassCancelReport: ("session", "r", "11", "cl_ord_id"),
    VenueNewOrder: ("venue", "D", "11", "cl_ord_id"),
    VenueCancel: ("venue", "F", "11", "cl_ord_id"),
    VenueReplace: ("venue", "G", "11", "cl_ord_id"),
    VenueDontKnow: ("venue", "Q", "17", "exec_id"),
}
# MsgType -> the tag identifying a message of that type among a session's sent messages
_IDENT_TAG = {msg_type: tag for _, msg_type, tag, _ in _ACTION_KEYS.values()}


def action_key(action) -> tuple[str, str, str] | None:
    """(session name, MsgType, identifying "tag=value") an action's message can be found by in a FileStore;
    None for actions that are not messages (LogoutClient).

    ``action`` is a domain action (state logs of an older layout) or a message as the state log
    records it: (role, session name, body text starting with "35=").
    """
    if type(action) is tuple:
        _, name, text = action
        msg_type = text[3:text.find("\x01")]
        tag = _IDENT_TAG.get(msg_type)
        if tag is None:
            return None
        value = parse_fields(text).get(int(tag))
        return (name, msg_type, f"{tag}={value}") if value is not None else None
    key = _ACTION_KEYS.get(type(action))
    if key is None:
        return None
    session_attr, msg_type, tag, attr = key
    return getattr(action, session_attr), msg_type, f"{tag}={getattr(action, attr)}"


def unsent(actions: list, stored: Callable[[str, int], list[str]]) -> list:
    """The messages (or actions) whose message is not among the session's last stored sent messages.

    ``stored(name, n)`` returns the raw text of at least the session's ``n`` most recent sent messages
    (``n``: how many of ``actions`` are for it, plus a margin for the session's own messages among them).
    """
    keys = [action_key(a) for a in actions]
    per_session: dict[str, int] = {}
    for key in keys:
        if key is not None:
            per_session[key[0]] = per_session.get(key[0], 0) + 1
    cache: dict[str, list[str]] = {}
    out = []
    for a, key in zip(actions, keys):
        if key is None:
            continue
        name, msg_type, ident = key
        if name not in cache:
            cache[name] = stored(name, per_session[name] + 1000)
        tag35, needle = f"\x0135={msg_type}\x01", f"\x01{ident}\x01"
        if not any(tag35 in raw and needle in raw for raw in cache[name]):
            out.append(a)
    return out


# MsgTypes of the venue messages a takeover does not send again blindly: the order, its cancel and its replace
UNDECIDED_AT_TAKEOVER = frozenset({"D", "F", "G"})


def after_takeover(unsent_messages: list, rebuilt: frozenset[str]) -> tuple[list, list[tuple[str, str, str]]]:
    """Split ``unsent`` messages (decided, not in their session's store) for a takeover whose stores in ``rebuilt``
    ("client:NAME", "venue:NAME") were rebuilt from the journal: (the messages to send as after a crash, the venue
    messages to reconcile first, as (venue, MsgType, ClOrdID)).

    A session store this instance kept (its own, trusted: gateway/cluster/takeover.py) lacks only what never reached
    quickfix, so its messages are sent as after a crash. A rebuilt store also lacks what the old active sent and its
    journal never committed: a NewOrderSingle, cancel or replace to a venue is then undecided (desk/undecided.py
    asks the venue before anything is sent again); a message to a client is sent again marked PossResend (97=Y),
    and the client recognises one it had by its ExecID (or ClOrdID); any other venue message (a DontKnowTrade) is
    sent again as it is: it changes nothing at the venue. Messages of an older state-log layout (domain actions)
    are sent as after a crash.
    """
    resend: list = []
    undecided: list[tuple[str, str, str]] = []
    for m in unsent_messages:
        if type(m) is not tuple or f"{m[0]}:{m[1]}" not in rebuilt:
            resend.append(m)
            continue
        key = action_key(m)
        if m[0] == "venue" and key is not None and key[1] in UNDECIDED_AT_TAKEOVER:
            undecided.append((key[0], key[1], key[2].partition("=")[2]))
        elif m[0] == "client":
            resend.append(poss_resend(m))
        else:
            resend.append(m)
    return resend, undecided


def poss_resend(message: tuple[str, str, str]) -> tuple[str, str, str]:
    """A recorded message (role, session, body text "35=...") marked PossResend (97=Y): the tag follows MsgType, so
    it stays among the header's fields where quickfix reads it from the text."""
    role, name, text = message
    if "\x0197=" in text:
        return message
    end = text.find("\x01")
    return role, name, text[:end + 1] + "97=Y\x01" + text[end + 1:]


def decided_in_epoch(pending: list, epoch: Callable[[str], float | None]) -> list:
    """The messages of ``pending`` [(record time, message)] decided since their session's FileStore was created
    (``epoch(origin)``: its creation time, None if unknown). One decided before is of an earlier sequence (the
    session was reset since) and must not be sent again. Domain actions (state logs of an older layout) are
    kept."""
    out = []
    for ts, m in pending:
        if type(m) is tuple:
            created = epoch(f"{m[0]}:{m[1]}")
            if created is not None and ts < created:
                continue
        out.append(m)
    return out


ADMIN_MSG_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "A"})


def unprocessed(rows, rejected: set[int]) -> list[tuple[int, int, str]]:
    """(journal id, MsgSeqNum, raw) of the application messages among ``rows`` to hand to the core again.

    ``rows``: a session's inbound journal rows (id, seq_num, msg_type, raw) after its
    watermark, in journal order. A MsgSeqNum seen twice (a re-sent copy) is taken
    once; admin messages and messages quickfix answered with a session Reject
    (``rejected``) never reached the core and are left out.
    """
    seen: set[int] = set()
    out = []
    for row in rows:
        if row.seq_num in seen:
            continue
        seen.add(row.seq_num)
        if row.msg_type in ADMIN_MSG_TYPES or row.msg_type is None or row.seq_num in rejected:
            continue
        out.append((row.id, row.seq_num, row.raw))
    return out
