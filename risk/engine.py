"""The pre-trade risk engine: runs the configured chain of checks over an order.

Pure Python: the caller passes the state and the time. ``check`` counts the
order as one message of its session (and account) for the throttle, runs the chain in the
configured order, stops at the first blocking reject, still evaluates the
checks after it that are in shadow mode, and applies the throttle's breach
counter: every message rejected by the throttle's thresholds counts one breach,
and at ``throttle_disable_after`` breaches in a trading day the session is disabled until an
operator calls ``enable_session``. Everything needed to journal the decision is
in ``Decision``.

The throttle counts the message types its rules name (``throttle_msg_types``;
by default every inbound application message: D, F, G, H, q): ``message``
counts a cancel, status request or mass cancel and says what the throttle makes
of it. A cancel or mass cancel over a limit is counted but let through unless
``throttle_refuse_cancels`` is set: refusing it would stop a client reducing
its risk exactly when it is sending too much.

Per-day usage rolls at trading-day boundaries (risk/days.py): ``roll`` moves the
state to the trading day of the time it is given, the accounts' at
``account_day_start``, each session's at its own start (``set_session_day_start``:
its FIX schedule's start), and says what it dropped. It is cheap when no
boundary has passed, so the caller runs it before every message that uses
per-day usage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from orders.commands import NewOrder
from risk.checks import CHECKS, CHECKS_UNCOUNTED, Reject, order_price, throttle_reject, throttle_window
from risk.days import MIDNIGHT, day_begins, next_boundary, trading_day
from risk.duplicates import RecentOrders
from risk.rules import EffectiveLimits, RulesFile, resolve_limits
from risk.shared_budget import SharedBudget, check_shared_limits
from risk.state import RiskState

# Messages that only take risk away: the throttle counts them but lets them through unless told otherwise.
RISK_REDUCING = frozenset({"F", "q"})


@dataclass(frozen=True, slots=True)
class Evaluation:
    passed: bool
    shadow: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    text: str | None = None


# Every passed check's evaluation: one shared, read-only instance (a new one per check and order was
# about a third of the chain's time).
PASSED = Evaluation(True)


# Not frozen: one per order checked, on the core thread, where a frozen dataclass's __init__ costs a call of
# object.__setattr__ per field. Nothing hashes it or changes it once made.
@dataclass(slots=True)
class Decision:
    accepted: bool
    reject: Reject | None  # the first blocking reject
    shadow_rejects: tuple[Reject, ...]  # "would have rejected"
    evaluated: dict[str, Evaluation]  # check name -> result, in evaluation order
    logout: bool = False  # throttle: the session should be logged out
    session_disabled: bool = False  # this order's throttle breach disabled the session


def describe_decision(decision: Decision, session: str, cl_ord_id: str) -> str:
    """One journal line for a decision: cheap for an acceptance, the compared values for anything that fired."""
    if decision.accepted and not decision.shadow_rejects:
        return f"{session} {cl_ord_id} accepted: {len(decision.evaluated)} checks passed"
    fired = ([decision.reject] if decision.reject else []) + list(decision.shadow_rejects)
    parts = [f"{r.rule}{' (shadow)' if r.shadow else ''}: {r.text} "
             f"[{', '.join(f'{k}={v}' for k, v in r.values.items())}]" for r in fired]
    verdict = "accepted" if decision.accepted else "REJECTED"
    return f"{session} {cl_ord_id} {verdict}: " + "; ".join(parts)


class RiskEngine:
    def __init__(self, rules: RulesFile, *, account_day_start: time = MIDNIGHT):
        # rules and the limits resolved from them travel together: one reference, swapped whole
        self._active: tuple[RulesFile, dict[tuple, EffectiveLimits]] = (rules, {})
        self.account_day_start = account_day_start  # UTC: when the accounts' daily usage rolls
        self._session_day_starts: dict[str, time] = {}  # UTC, per client session (default midnight)
        # the next boundary ``roll`` must act at, for the state it last rolled (None: work it out again)
        self._roll_due: datetime | None = None
        self._roll_state: RiskState | None = None
        # in a sharded cluster, this shard's grants of the limits the shards share (risk/shared_budget.py)
        self.budget: SharedBudget | None = None

    @property
    def rules(self) -> RulesFile:
        return self._active[0]

    def reload(self, rules: RulesFile) -> None:
        """Swap the rules atomically (one reference rebind); the state is untouched.

        Validate first with ``risk.rules.load_rules``: a file it refuses never gets here.
        """
        self._active = (rules, {})

    def limits_for(self, order: NewOrder, active=None) -> EffectiveLimits:
        return self._limits(order.session, order.account, order.symbol, active)

    def _limits(self, session: str, account: str | None, symbol: str, active=None) -> EffectiveLimits:
        rules, cache = active or self._active
        key = (session, account, symbol)
        lims = cache.get(key)
        if lims is None:
            if len(cache) > 10_000:
                cache.clear()
            lims = cache[key] = resolve_limits(rules, session, account, symbol)
        return lims

    # ------------------------------------------------------------------ trading days
    def set_session_day_start(self, session: str, start: time | None) -> None:
        """When ``session``'s per-day usage rolls (UTC; None: midnight), e.g. its FIX schedule's start."""
        if start is None or start == MIDNIGHT:
            self._session_day_starts.pop(session, None)
        else:
            self._session_day_starts[session] = start
        self._roll_due = None

    def session_day_start(self, session: str) -> time:
        return self._session_day_starts.get(session, MIDNIGHT)

    def roll(self, state: RiskState, now: datetime) -> list[str]:
        """Move per-day usage to the trading day ``now`` is in; one line for each usage dropped (to journal).

        Cheap (one comparison) until the next boundary: run it before any message that uses per-day usage.
        """
        due = self._roll_due
        if due is not None and now < due and state is self._roll_state:
            return []
        events: list[str] = []
        start = self.account_day_start
        day = trading_day(now, start)
        before, used = state.usage.day, {a: v for a, v in state.usage.filled.items() if v}
        if state.start_day(day):
            top = ", ".join(f"{a or '-'} {v}" for a, v in sorted(used.items())[:10]) or "none"
            events.append(f"trading day {day} began at {day_begins(day, start):%Y-%m-%d %H:%M:%S} UTC for accounts: "
                          f"the daily notional filled on {before} no longer counts ({len(used)} account(s): {top}"
                          f"{', ...' if len(used) > 10 else ''}); daily notional restarts from the open orders")
        for session in list(state.usage.session_days):
            s_start = self.session_day_start(session)
            s_day = trading_day(now, s_start)
            dropped = state.start_session_day(session, s_day)
            if dropped is not None:
                events.append(f"trading day {s_day} began at {day_begins(s_day, s_start):%Y-%m-%d %H:%M:%S} UTC for "
                              f"session {session}: its throttle breach count restarts at 0 (was {dropped})"
                              + (" ; it stays disabled until an operator re-enables it"
                                 if session in state.throttle.disabled else ""))
        starts = {start, *(self.session_day_start(s) for s in state.usage.session_days)}
        self._roll_due = min(next_boundary(now, t) for t in starts)
        self._roll_state = state
        return events

    def _breach(self, session: str, lims: EffectiveLimits, state: RiskState, now: datetime) -> bool:
        """Count a throttle breach on the session's trading day; True when it disabled the session."""
        if session not in state.usage.session_days:
            state.start_session_day(session, trading_day(now, self.session_day_start(session)))
            self._roll_due = None  # its boundary is one to watch from now on
        return state.throttle.record_breach(session, lims.value("throttle_disable_after"))

    # ------------------------------------------------------------------ checking
    @staticmethod
    def _count(msg_type: str, session: str, account: str | None, lims: EffectiveLimits, state: RiskState,
               now: datetime) -> bool:
        """Count one message for the throttle if its rules count its type; False if they do not."""
        types = lims.value("throttle_msg_types")
        if types is not None and msg_type not in types:
            return False
        # an account's messages are counted where an account limit applies to them
        state.throttle.count(session, now, throttle_window(lims),
                             account if account is not None and "account_throttle_msgs" in lims.values else None)
        return True

    def count(self, msg_type: str, session: str, state: RiskState, now: datetime, *, account: str | None = None,
              symbol: str = "") -> bool:
        """Count a message for the throttle without judging it (a new order or replace that its own check will
        judge, or one refused before it got there); False if the rules do not count its type."""
        return self._count(msg_type, session, account, self._limits(session, account, symbol), state, now)

    def note_message(self, session: str, state: RiskState, now: datetime, symbol: str = "", account: str | None = None) -> None:
        """Count a message other than a new order for the throttle (kept for callers that only count)."""
        lims = self._limits(session, account, symbol)
        state.throttle.count(session, now, throttle_window(lims))

    def message(self, msg_type: str, session: str, state: RiskState, now: datetime, *, account: str | None = None,
                symbol: str = "") -> Decision | None:
        """Count a cancel (F), status request (H) or mass cancel (q) and judge it: None when the throttle has
        nothing to say (under every limit, or a type it does not count).

        Over a limit: a cancel or mass cancel is let through (reported as a shadow reject) unless
        ``throttle_refuse_cancels``; anything else is refused, counts a breach and may log the session out,
        as a new order would.
        """
        lims = self._limits(session, account, symbol)
        if not self._count(msg_type, session, account, lims, state, now):
            if session in state.throttle.disabled and msg_type not in RISK_REDUCING:
                rej = throttle_reject(session, None, lims, state, now)  # the session's disabled verdict
                return Decision(False, rej, (), {"throttle": Evaluation(False, False, rej.values, rej.text)})
            return None
        rej = throttle_reject(session, account, lims, state, now)
        if rej is None:
            return None
        evaluated = {"throttle": Evaluation(False, rej.shadow, rej.values, rej.text)}
        if rej.shadow:
            return Decision(True, None, (rej,), evaluated)
        if msg_type in RISK_REDUCING and not lims.value("throttle_refuse_cancels", False):
            let = Reject(rej.rule, rej.code, f"{rej.text}; let through: the throttle never refuses a cancel "
                         "(throttle_refuse_cancels = false)", rej.values, rej.scope, shadow=True)
            return Decision(True, None, (let,), evaluated)
        logout = disabled = False
        if "count" in rej.values and "account" not in rej.values:
            logout = rej.logout
            disabled = self._breach(session, lims, state, now)
        return Decision(False, rej, (), evaluated, logout, disabled)

    def check(self, order: NewOrder, state: RiskState, now: datetime, *, count_message: bool = True,
              msg_type: str = "D") -> Decision:
        """Check a new order (``msg_type`` D) or a replace's new terms (G). ``count_message``: count it for the
        throttle first (False when the caller already has)."""
        active = self._active  # one consistent rules version for the whole decision
        lims = self.limits_for(order, active)
        types = lims.values.get("throttle_msg_types")
        counted = types is None or msg_type in types.value
        if count_message and counted:
            state.throttle.count(order.session, now, throttle_window(lims),
                                 order.account if "account_throttle_msgs" in lims.values else None)
        checks = CHECKS if counted else CHECKS_UNCOUNTED  # a type not counted is not limited either
        blocking: Reject | None = None
        shadows: list[Reject] = []
        evaluated: dict[str, Evaluation] = {}
        shadow_checks = lims.shadow_checks
        values = lims.values
        for name in active[0].chain:
            fn, fields = checks[name]
            if blocking is not None:
                # after the first blocking reject only shadow checks still run
                if not (name in shadow_checks or any((r := values.get(f)) is not None and r.shadow for f in fields)):
                    continue
            rej = fn(order, lims, state, now)
            if rej is None:
                evaluated[name] = PASSED
                continue
            evaluated[name] = Evaluation(False, rej.shadow, rej.values, rej.text)
            if rej.shadow:
                shadows.append(rej)
            elif blocking is None:
                blocking = rej
        if blocking is None and self.budget is not None:
            blocking = check_shared_limits(order, lims, state, self.budget, evaluated.__contains__)
            if blocking is not None:
                evaluated[blocking.rule] = Evaluation(False, False, blocking.values, blocking.text)
        disabled = False
        logout = False
        if (blocking is not None and blocking.rule == "throttle" and "count" in blocking.values
                and "account" not in blocking.values):  # (an account over its limit is no one session's breach)
            logout = blocking.logout
            disabled = self._breach(order.session, lims, state, now)
        return Decision(blocking is None, blocking, tuple(shadows), evaluated, logout, disabled)

    def check_replace(self, new: NewOrder, orig_cl_ord_id: str, state: RiskState, now: datetime, *,
                      count_message: bool = True) -> Decision:
        """A replace is checked as its new order against the state with the old order's exposure released.

        The state passed in is not changed (apart from the throttle's message count
        and breach counter); the caller books the replace with ``state.on_replace``
        once the venue confirms it. Conservative: the new order's quantity is counted
        in full even if part of the old one has filled.
        """
        if count_message:
            self.count("G", new.session, state, now, account=new.account, symbol=new.symbol)
        # Release the old order's exposure in place for the check and put it back after: O(1).
        # (A deep copy of the state cost milliseconds per replace with many orders open.)
        old = state.release_open(new.session, orig_cl_ord_id)
        recent, state.duplicates = state.duplicates, RecentOrders()  # a replace is not a duplicate of anything
        try:
            return self.check(new, state, now, count_message=False, msg_type="G")
        finally:
            state.duplicates = recent
            if old is not None:
                state.restore_open(old)

    def hold_replace(self, new: NewOrder, orig_cl_ord_id: str, state: RiskState) -> None:
        """A replace that passed ``check_replace`` went to the venue: its new terms count beside the old order's
        until the venue answers (``RiskState.hold_replace``); a market order's at the reference price."""
        state.hold_replace(new.session, orig_cl_ord_id, new, order_price(new, self.limits_for(new), state))

    def on_accepted(self, order: NewOrder, state: RiskState, now: datetime) -> None:
        """Book an accepted order: market orders are counted at the reference price."""
        lims = self.limits_for(order)
        px = order_price(order, lims, state)
        win = lims.value("duplicate_window_ms")
        state.on_accepted(order, now=now, px=px, duplicate_window=timedelta(milliseconds=win) if win else None)

    # ------------------------------------------------------------------ operator actions
    @staticmethod
    def kill(state: RiskState, scope: str, key: str = "", *, reduce_only: bool = False) -> None:
        """Engage a kill switch: scope global / session / account / symbol; reduce_only lets
        only position-reducing orders through."""
        state.kill_switches.engage(scope, key, "reduce_only" if reduce_only else "halt")

    @staticmethod
    def unkill(state: RiskState, scope: str, key: str = "") -> bool:
        return state.kill_switches.release(scope, key)
