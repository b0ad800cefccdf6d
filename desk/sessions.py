"""Session events: a venue or client session up or down, a venue lost, market data subscription and refreshes."""
from __future__ import annotations

from typing import TYPE_CHECKING

from desk import undecided
from desk.cancel import cancel_all
from desk.common import open_orders_of
from desk.lifecycle import child_done
from desk.liveness import reconcile_venue
from orders.actions import Note, Outcome, VenueMarketDataRequest
from orders.commands import MarketData, MarketDataReject, SessionStatus
from orders.model import OrdStatus, TimeInForce
from desk.options import DEFAULT_OPTIONS
from orders.states import Event
from routing.router import Venue

if TYPE_CHECKING:
    from desk.state import DeskState


def handle_session_status(core: DeskState, ev: SessionStatus) -> Outcome:
    out = Outcome()
    if ev.role == "venue" and ev.name in core.venues:
        venue = core.venues[ev.name]
        venue.up = ev.up
        if ev.up:
            subscribe(core, venue, out)
            if venue.reconcile_on_logon:  # what did it do while we were away? (desk.liveness)
                reconcile_venue(core, venue.name, out, "its session logged on")
            elif core.undecided:  # children a takeover holds are asked in any case (desk.undecided)
                undecided.ask(core, venue.name, out)
        else:
            venue.md_req_id = None
            core.quotes.drop_venue(ev.name)  # its quotes die with the session
            if venue.on_disconnect != "hold":
                venue_lost(core, venue, out)
    elif ev.role == "client" and not ev.up and core.clients.get(ev.name, DEFAULT_OPTIONS).cancel_on_disconnect:
        n = cancel_all(core, open_orders_of(core, ev.name, TimeInForce.DAY), out,
                       "the client session disconnected (cancel_on_disconnect)")
        if n:
            out.warnings.append(Note(f"{ev.name} disconnected: canceling its {n} open Day order(s)", session=ev.name))
    return out


def venue_lost(core: DeskState, venue: Venue, out: Outcome) -> None:
    """A venue that cancels its orders when our session drops (on_disconnect = cancel or reroute): its
    children are canceled now; with reroute, what they held goes to the other venues."""
    text = f"the venue disconnected and cancels open orders on disconnect (on_disconnect = {venue.on_disconnect})"
    n = 0
    for order in list(core.orders.values()):
        lost = [c for c in order.live_children if c.venue == venue.name]
        if not lost:
            continue
        for child in lost:
            child.status = OrdStatus.CANCELED
            n += 1
            child_done(core, order, child, Event.VENUE_CANCELED, venue.name, text, out,
                       reroute=venue.on_disconnect == "reroute")
        out.changed.append(order)
    if n:
        out.warnings.append(Note(f"{venue.name} disconnected: {n} child order(s) there treated as canceled "
                                 f"(on_disconnect = {venue.on_disconnect})", venue=venue.name))


def subscribe(core: DeskState, venue: Venue, out: Outcome) -> None:
    """Ask a venue that just logged on for its bids and offers in every symbol it trades."""
    if not venue.md_enabled or not venue.symbols:
        return
    venue.md_req_id = core.new_id("MD")
    out.actions.append(VenueMarketDataRequest(venue=venue.name, req_id=venue.md_req_id,
                                              symbols=tuple(sorted(venue.symbols)), depth=venue.md_depth,
                                              incremental=venue.md_incremental))


def handle_market_data(core: DeskState, md: MarketData) -> Outcome:
    """A venue's full or incremental refresh: update its book; the consolidated best bid and offer
    becomes the risk engine's quote reference."""
    if md.venue not in core.venues:
        return Outcome()
    now = core.clock()
    max_age = core.policy.max_quote_age
    for symbol in core.quotes.apply(md, now):
        bid, ask = core.quotes.best(symbol, core.venue_order, now, max_age)
        if bid is not None and ask is not None:
            core.risk_state.set_quote(symbol, bid, ask)
    return Outcome()


def handle_market_data_reject(core: DeskState, rej: MarketDataReject) -> Outcome:
    out = Outcome()
    out.warnings.append(Note(f"{rej.venue} refused market data request {rej.req_id}: "
                             f"{rej.text or 'no reason given'} (MDReqRejReason {rej.reason or '-'}); "
                             "its quotes are unknown, routing treats it as quoteless", venue=rej.venue))
    return out
