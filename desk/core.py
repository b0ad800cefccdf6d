"""The core: single owner of order state. Commands in, actions out; no I/O.

``Core.handle(command)`` returns an ``Outcome`` whose actions the engine performs
in order (send to a client, send to a venue). Business problems become reject
actions, never exceptions. Anything raised from here is a bug, which the engine
catches, logs and counts.

Parents and children: the client sees one order (the parent, ``Order``); the
router places it as one or more child orders at venues (``Child``). Children's
fills are booked on the parent and reported to the client with LastMkt naming
the child's venue. A cancel goes out to every working child and is answered when
all have answered; a replace of an order with one working child is a replace at
its venue, of an order with several a cancel of all of them and a fresh routing
of the new terms once they are canceled. A child a venue rejects has its
quantity routed again, elsewhere (``RoutingPolicy.max_reroutes`` times per
order). When no child works any more the parent ends as the last one did. No
child is ever sent that could make the children's quantities exceed the
parent's (``Order.committed``).
"""
from __future__ import annotations


from desk.cancel import handle_cancel, handle_end_of_day, handle_mass_cancel
from desk.liveness import handle_tick
from desk.new_order import handle_new_order
from desk.operator import (
    handle_kill_switch, handle_operator_cancel, handle_operator_close, handle_operator_reconcile, handle_reload_risk,
)
from desk.placing import strategy_for
from desk.replace import handle_replace
from desk.risk_checks import handle_risk_day_roll, risk_roll
from desk.sessions import handle_market_data, handle_market_data_reject, handle_session_status
from desk.status import handle_status
from desk.undecided import handle_takeover_undecided
from desk.bookings import handle_venue_cancel_reject
from desk.venue_reports import handle_child_not_sent, handle_venue_execution, handle_venue_message_rejected
from desk.state import DeskState
from desk.watch import rewatch
from orders.states import Order
from orders.actions import (
    ClientCancelReject, ClientExecReport, Outcome, VenueCancel, VenueNewOrder, VenueReplace, VenueStatusRequest,
)
from orders.commands import (
    CancelRequest, ChildNotSent, EndOfDay, KillSwitch, MarketData, MarketDataReject, MassCancelRequest, NewOrder,
    OperatorCancel, OperatorClose, OperatorReconcile, ReloadRisk, ReplaceRequest, RiskDayRoll, SessionStatus,
    StatusRequest, TakeoverUndecided, Tick, VenueCancelReject, VenueExecution, VenueMessageRejected,
)
from routing.router import StrategySpec

# Every command the core takes, and the handler in ``desk`` that answers it.
HANDLERS = {
    NewOrder: handle_new_order, CancelRequest: handle_cancel, ReplaceRequest: handle_replace,
    StatusRequest: handle_status, MassCancelRequest: handle_mass_cancel, EndOfDay: handle_end_of_day,
    VenueExecution: handle_venue_execution, VenueCancelReject: handle_venue_cancel_reject,
    VenueMessageRejected: handle_venue_message_rejected,
    ChildNotSent: handle_child_not_sent,  # the engine's safety net: a venue message it could not encode
    SessionStatus: handle_session_status, MarketData: handle_market_data, MarketDataReject: handle_market_data_reject,
    Tick: handle_tick, RiskDayRoll: handle_risk_day_roll,
    KillSwitch: handle_kill_switch, ReloadRisk: handle_reload_risk, OperatorCancel: handle_operator_cancel,
    OperatorReconcile: handle_operator_reconcile, OperatorClose: handle_operator_close,
    TakeoverUndecided: handle_takeover_undecided,  # after a takeover: messages the journal does not show sent
}


class Core(DeskState):
    """The desk: its state (``DeskState``, the interface every handler uses) and the dispatcher.

    ``handle`` hands each command to its handler in ``desk`` (one module per kind of intent), which
    reads and changes the state; what is added here is the dispatch itself, the record of what a command
    touched (for the state log) and the restore that puts recovered children back under watch.
    """

    # ------------------------------------------------------------------ dispatch
    def handle(self, cmd) -> Outcome:
        try:
            handler = HANDLERS[type(cmd)]
        except KeyError:
            raise TypeError(f"core cannot handle {type(cmd).__name__}") from None
        if type(cmd) is VenueExecution and cmd.last_qty and self.risk is not None:
            # a fill after a trading-day boundary counts on the new day: roll before it is booked
            rolled = Outcome()
            risk_roll(self, rolled, self.clock())
            out = handler(self, cmd)
            out.risk_events.extend(rolled.risk_events)
            out.warnings.extend(rolled.warnings)
            return out
        return handler(self, cmd)

    def touched(self, cmd, outcome: Outcome) -> list[Order]:
        """Every order ``cmd`` may have changed: the one it addressed and every one its actions concern.

        What the engine writes to the state log after each command; a superset is harmless,
        a missing order would come back stale after a restart (tests check it never is).
        """
        found: dict[str, Order] = {}
        t = type(cmd)
        order = None
        if t is VenueExecution or t is VenueCancelReject or t is VenueMessageRejected:
            order = self.by_child.get((cmd.venue, cmd.cl_ord_id)) if cmd.cl_ord_id else None
            if order is None and getattr(cmd, "orig_cl_ord_id", None):
                order = self.by_child.get((cmd.venue, cmd.orig_cl_ord_id))
        elif t is CancelRequest or t is ReplaceRequest:
            order = self.by_client.get((cmd.session, cmd.orig_cl_ord_id))
        if order is not None:
            found[order.order_id] = order
        for o in outcome.changed:
            found[o.order_id] = o
        for a in outcome.actions:
            ta = type(a)
            if ta is ClientExecReport or ta is ClientCancelReject:
                o = self.orders.get(a.order_id)
            elif ta is VenueNewOrder or ta is VenueCancel or ta is VenueReplace or ta is VenueStatusRequest:
                o = self.by_child.get((a.venue, a.cl_ord_id))
            else:
                continue
            if o is not None:
                found[o.order_id] = o
        return list(found.values())

    def restore(self, orders: list[Order]) -> None:
        """Take over orders recovered from the state log (at start-up, before any command)."""
        super().restore(orders)
        rewatch(self)

    def strategy_for(self, cmd: NewOrder) -> StrategySpec:
        """The order's strategy: its own (tag 9100), else its account's, its session's, the default."""
        return strategy_for(self, cmd)
