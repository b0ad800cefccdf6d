"""The desk's state and the interface its handlers use: the order book, its indexes, venues, clients, risk.

``DeskState`` is everything a handler in ``desk`` reads and changes, under public names: the orders and
their indexes by client and by venue ClOrdID, the children awaiting an answer (``watch``), the venues and
clients with their options, risk, quotes and the clock. ``Core`` (desk.core) is this state plus the
dispatcher that hands each command to its handler; handlers are typed against ``DeskState`` so they never
import the dispatcher. No I/O.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from desk.options import ClientOptions
from orders.actions import Outcome
from orders.records import RejectedOrder
from orders.states import Child, Order
from risk.engine import RiskEngine
from risk.shared_budget import shared_limits_table
from risk.state import RiskState
from routing.quotes import Quotes
from routing.router import RoutingPolicy, Venue

REJECTED_KEPT = 10_000  # refused new orders kept for operators, by default ([limits] rejected_orders_kept)


@dataclass(frozen=True, slots=True)
class Undecided:
    """A message to a venue that a takeover cannot tell was sent, held for its child until the venue says
    (desk.undecided): what it asked ("new", "cancel", "replace") and its ClOrdID."""

    kind: str
    cl_ord_id: str


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class DeskState:
    """The order book and everything a handler needs to answer a command: venues, clients, risk state, quotes.

    Only the core thread changes it (the engine runs every command and configuration change there); the
    drop-copy thread reads ``order_by_venue_cl_ord_id``, one dict read.
    """

    def __init__(self, venues: list[Venue], clients: dict[str, ClientOptions], id_prefix: str,
                 risk: RiskEngine | None = None, risk_state: RiskState | None = None,
                 clock: Callable[[], datetime] = _utcnow, policy: RoutingPolicy | None = None,
                 rejected_kept: int = REJECTED_KEPT):
        self.risk = risk
        self.policy = policy if policy is not None else RoutingPolicy()
        self.quotes = Quotes()  # every venue's bids and offers per symbol (not kept across restarts)
        self.risk_state = risk_state if risk_state is not None else RiskState()
        self.clock = clock
        self.venues = {v.name: v for v in venues}
        self.venue_order = list(self.venues)
        self.clients = clients
        if risk is not None:
            for name, options in clients.items():
                risk.set_session_day_start(name, options.day_start)
        self.closed_sessions: set[str] = set()  # client sessions removed by `fixgw sessions reload`
        self._ids = itertools.count(1)
        self.id_prefix = id_prefix  # starts every OrderID and request ID this process makes
        self.orders: dict[str, Order] = {}
        self.by_client: dict[tuple[str, str], Order] = {}
        self.by_child: dict[tuple[str, str], Order] = {}
        # New orders refused at intake, oldest first, at most ``rejected_kept`` (the oldest go first): for
        # operators, and for a client's OrderStatusRequest (answered Rejected with the refusal's reason). Not orders
        # of the book: no duplicate check or risk usage sees them.
        self.rejected: dict[str, RejectedOrder] = {}  # OrderID -> the refusal
        self.rejected_by_client: dict[tuple[str, str], str] = {}  # (session, ClOrdID) -> OrderID of its last refusal
        self.rejected_kept = rejected_kept
        self.rejected_dropped = 0  # refusals dropped past the cap since start-up
        self.operator_disabled: set[str] = set()  # client sessions an operator disabled (refused at logon)
        self.watch: dict[tuple[str, str], Order] = {}  # (venue, child_id) -> order: children awaiting an answer
        self.mass_status: dict[str, tuple[str, set[str]]] = {}  # MassStatusReqID -> (venue, child IDs not reported yet)
        self.restored_at: datetime | None = None  # when orders were restored (the liveness clocks restart there)
        # (venue, child_id) -> the message a takeover cannot tell was sent, held until the venue says (desk.undecided)
        self.undecided: dict[tuple[str, str], Undecided] = {}

    def new_id(self, kind: str = "") -> str:
        """A new ID unique in this process: the prefix, the kind ("" an OrderID, "M" a mass cancel,
        "MD" a market data request, "MS" a mass status request, "S" a status ExecID) and a counter."""
        return f"{self.id_prefix}-{kind}{next(self._ids)}"

    # ------------------------------------------------------------------ queries
    def order_for_client(self, session: str, cl_ord_id: str) -> Order | None:
        return self.by_client.get((session, cl_ord_id))

    def order_by_venue_cl_ord_id(self, venue: str, cl_ord_id: str) -> Order | None:
        """The order a ClOrdID the gateway sent to ``venue`` belongs to (new, cancel or replace).

        One dict read: the drop-copy thread calls it (under the GIL a dict read is atomic) and
        uses only the fields fixed when an order is accepted: session, account and venue.
        """
        return self.by_child.get((venue, cl_ord_id))

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_open]

    def restore(self, orders: list[Order]) -> None:
        """Index orders recovered from the state log (at start-up, before any command); ``Core.restore``
        also puts their unanswered children back under watch."""
        for order in orders:
            self.orders[order.order_id] = order
            ids = set(order.client_ids) | {order.cl_ord_id}
            if order.pending_cl_ord_id:
                ids.add(order.pending_cl_ord_id)
            if order.pending_replace is not None:
                ids.add(order.pending_replace.cl_ord_id)
            for cl in ids:
                self.by_client[(order.session, cl)] = order
            for child in order.children:
                for cl in {*child.cl_ord_ids, child.child_id, child.cl_ord_id}:
                    self.by_child[(child.venue, cl)] = order

    def restore_rejected(self, rejected) -> None:
        """Take over refused orders recovered from the state log (oldest first), up to the cap."""
        for r in rejected:
            self.keep_rejected(r)

    def keep_rejected(self, r: RejectedOrder, out: Outcome | None = None) -> None:
        if self.rejected_kept <= 0:
            return
        self.rejected[r.order_id] = r
        self.rejected_by_client[(r.session, r.cl_ord_id)] = r.order_id
        if out is not None:
            out.rejected.append(r)
        rejected, by_client = self.rejected, self.rejected_by_client
        while len(rejected) > self.rejected_kept:
            old = rejected.pop(next(iter(rejected)))
            if by_client.get((old.session, old.cl_ord_id)) == old.order_id:
                del by_client[(old.session, old.cl_ord_id)]
            self.rejected_dropped += 1

    def refusal(self, session: str, cl_ord_id: str) -> RejectedOrder | None:
        """The last refusal of the new order ``cl_ord_id`` of ``session``, if it is still kept."""
        order_id = self.rejected_by_client.get((session, cl_ord_id))
        return self.rejected.get(order_id) if order_id is not None else None

    def index_client(self, order: Order, cl_ord_id: str) -> None:
        self.by_client[(order.session, cl_ord_id)] = order
        order.client_ids.append(cl_ord_id)

    def index_child(self, order: Order, child: Child, cl_ord_id: str) -> None:
        self.by_child[(child.venue, cl_ord_id)] = order
        child.cl_ord_ids.append(cl_ord_id)

    def open_order_count(self, *, session: str | None = None, venue: str | None = None) -> int:
        """Open orders of a client session, or with a child working at a venue."""
        return sum(1 for o in self.orders.values()
                   if o.is_open and (session is None or o.session == session)
                   and (venue is None or any(c.venue == venue for c in o.live_children)))

    # ------------------------------------------------------------------ configuration (`fixgw sessions reload`)
    # Called on the core thread (Engine.call), so a check and the change it allows are one step.
    def add_venue(self, venue: Venue) -> None:
        self.venues[venue.name] = venue
        if venue.name not in self.venue_order:
            self.venue_order.append(venue.name)

    def remove_venue(self, name: str) -> int:
        """Stop routing to a venue; refused (returns its open order count) while it holds open orders."""
        n = self.open_order_count(venue=name)
        if n == 0:
            self.venues.pop(name, None)
            self.venue_order = [v for v in self.venue_order if v != name]
        return n

    def update_venue(self, new: Venue) -> None:
        """A venue's changed configuration (symbols, fees, priority, market data); its session state is kept.
        A changed market data setting or symbol list is subscribed with at the venue's next logon."""
        old = self.venues[new.name]
        new.up, new.md_req_id, new.meta = old.up, old.md_req_id, old.meta
        self.venues[new.name] = new

    def set_routing_order(self, names: list[str]) -> None:
        """Venues in the configuration file's order (routing prefers the first that trades a symbol)."""
        self.venue_order = [n for n in names if n in self.venues] + [n for n in self.venue_order
                                                                       if n not in names and n in self.venues]

    def set_client(self, name: str, options: ClientOptions) -> None:
        self.clients[name] = options
        if self.risk is not None:
            self.risk.set_session_day_start(name, options.day_start)
        self.closed_sessions.discard(name)

    def close_client(self, name: str) -> int:
        """Refuse a client session's new orders from now on; refused (returns the count) while it has open orders."""
        n = self.open_order_count(session=name)
        if n == 0:
            self.closed_sessions.add(name)
        return n

    # ------------------------------------------------------------------ for operators
    def in_doubt_orders(self) -> list[Order]:
        """Orders in doubt (every one has a watched child: no scan of the whole book)."""
        seen: dict[str, Order] = {}
        for order in list(self.watch.values()):
            if order.order_id not in seen and order.in_doubt:
                seen[order.order_id] = order
        return list(seen.values())

    def quote_table(self) -> list[dict]:
        """Every venue's top of book per symbol with its age, for operators."""
        now = self.clock()
        max_age = self.policy.max_quote_age
        rows = []
        for q in self.quotes.all():
            age = q.age(now)
            rows.append({"venue": q.venue, "symbol": q.symbol, "bid": q.bid, "bid_size": q.bid_size, "ask": q.ask,
                         "ask_size": q.ask_size, "age_ms": int(age.total_seconds() * 1000),
                         "fresh": age <= max_age})
        return rows

    def risk_summary(self) -> dict:
        state = self.risk_state
        return {
            "enabled": self.risk is not None,
            "kill_switches": {f"{scope} {key}".strip(): mode for (scope, key), mode in
                              state.kill_switches.engaged.items()},
            "disabled_sessions": sorted(state.throttle.disabled),
            "open_orders": len(state.open_orders),
            "trading_day": state.usage.day.isoformat() if state.usage.day is not None else None,  # of the accounts' usage
            "throttle_breaches": dict(state.throttle.breaches),  # per session, this trading day
            **({"shared_limits": shared_limits_table(self.risk.budget, state)}
               if self.risk is not None and self.risk.budget is not None else {}),
        }
