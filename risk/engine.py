"""The pre-trade risk engine: runs the configured chain of checks over an order.

Pure Python: the caller passes the state and the time. ``check`` counts the
order as one message of its session for the throttle, runs the chain in the
configured order, stops at the first blocking reject, still evaluates the
checks after it that are in shadow mode, and applies the throttle's breach
counter: every message rejected by the throttle's thresholds counts one breach,
and at ``throttle_disable_after`` breaches the session is disabled until an
operator calls ``enable_session``. Everything needed to journal the decision is
in ``Decision``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from routing.model import NewOrder
from risk.checks import CHECKS, DEFAULT_THROTTLE_WINDOW, Reject, order_price
from risk.rules import EffectiveLimits, RulesFile, resolve_limits
from risk.state import RiskState


@dataclass(frozen=True, slots=True)
class Evaluation:
    passed: bool
    shadow: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    text: str | None = None


# Every passed check's evaluation: one shared, read-only instance (a new one per check and order was
# about a third of the chain's time).
PASSED = Evaluation(True)


@dataclass(frozen=True, slots=True)
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
    def __init__(self, rules: RulesFile):
        # rules and the limits resolved from them travel together: one reference, swapped whole
        self._active: tuple[RulesFile, dict[tuple, EffectiveLimits]] = (rules, {})

    @property
    def rules(self) -> RulesFile:
        return self._active[0]

    def reload(self, rules: RulesFile) -> None:
        """Swap the rules atomically (one reference rebind); the state is untouched.

        Validate first with ``risk.rules.load_rules``: a file it refuses never gets here.
        """
        self._active = (rules, {})

    def limits_for(self, order: NewOrder, active=None) -> EffectiveLimits:
        rules, cache = active or self._active
        key = (order.session, order.account, order.symbol)
        lims = cache.get(key)
        if lims is None:
            if len(cache) > 10_000:
                cache.clear()
            lims = cache[key] = resolve_limits(rules, order.session, order.account, order.symbol)
        return lims

    # ------------------------------------------------------------------ checking
    def note_message(self, session: str, state: RiskState, now: datetime, symbol: str = "", account: str | None = None) -> None:
        """Count a message other than a new order (cancel, replace, status) for the throttle."""
        lims = resolve_limits(self._active[0], session, account, symbol)
        state.on_message(session, now, self._window(lims))

    @staticmethod
    def _window(lims: EffectiveLimits) -> timedelta:
        ms = lims.value("throttle_window_ms")
        return timedelta(milliseconds=ms) if ms else DEFAULT_THROTTLE_WINDOW

    def check(self, order: NewOrder, state: RiskState, now: datetime, *, count_message: bool = True) -> Decision:
        active = self._active  # one consistent rules version for the whole decision
        lims = self.limits_for(order, active)
        if count_message:
            state.on_message(order.session, now, self._window(lims))
        blocking: Reject | None = None
        shadows: list[Reject] = []
        evaluated: dict[str, Evaluation] = {}
        shadow_checks = lims.shadow_checks
        values = lims.values
        for name in active[0].chain:
            fn, fields = CHECKS[name]
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
        disabled = False
        logout = False
        if blocking is not None and blocking.rule == "throttle" and "count" in blocking.values:
            logout = blocking.logout
            disabled = state.record_breach(order.session, lims.value("throttle_disable_after"))
        return Decision(blocking is None, blocking, tuple(shadows), evaluated, logout, disabled)

    def check_replace(self, new: NewOrder, orig_cl_ord_id: str, state: RiskState, now: datetime) -> Decision:
        """A replace is checked as its new order against the state with the old order's exposure released.

        The state passed in is not changed (apart from the throttle's message count
        and breach counter); the caller books the replace with ``state.on_replace``
        once the venue confirms it. Conservative: the new order's quantity is counted
        in full even if part of the old one has filled.
        """
        lims = self.limits_for(new)
        state.on_message(new.session, now, self._window(lims))
        # Release the old order's exposure in place for the check and put it back after: O(1).
        # (A deep copy of the state cost milliseconds per replace with many orders open.)
        old = state.release_open(new.session, orig_cl_ord_id)
        recent, state.recent = state.recent, {}  # a replace is not a duplicate of anything
        try:
            return self.check(new, state, now, count_message=False)
        finally:
            state.recent = recent
            if old is not None:
                state.restore_open(old)

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
        state.set_kill(scope, key, "reduce_only" if reduce_only else "halt")

    @staticmethod
    def unkill(state: RiskState, scope: str, key: str = "") -> bool:
        return state.clear_kill(scope, key)

    @staticmethod
    def enable_session(state: RiskState, session: str) -> None:
        """Re-enable a session the throttle disabled, resetting its breach count."""
        state.enable_session(session)

    @staticmethod
    def disable_session(state: RiskState, session: str) -> None:
        state.disabled_sessions.add(session)
