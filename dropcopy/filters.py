"""Which ExecutionReports a drop-copy session sees.

A journaled ExecutionReport is a *source report* when it is either
- client-side: sent by the gateway to a client session (journal direction O), or
- venue-side: received by the gateway from a venue session (direction I).
Everything else (admin messages, our own drop copies, orders) is never copied.

A ``Scope`` (one per drop-copy session, from gateway.cfg) says which source
reports it covers: client-side, venue-side or both, and optionally only some
client sessions, accounts and venues (an empty set means all). A source report
is described by ``Origin``: its side, the client session that owns the order,
its account and its venue. Where the message itself does not say, the order
directory (the gateway's live orders, see ``OrderDirectory``) fills in:

- client: the session a client-side report was sent on; for a venue-side report,
  the client session owning the order (directory, by the venue's ClOrdID 11 or
  OrigClOrdID 41).
- account: Account (1) on the report, else the order's account (directory).
- venue: the session a venue-side report came from; for a client-side report the
  venue the gateway routed the order to (directory, by OrderID 37), else
  LastMkt (30). An order the gateway rejected itself never reached a venue.

A filter on clients, accounts or venues does not match a report whose value is
unknown (e.g. a venue report for an order from before a gateway restart, which
the directory no longer holds): a receiver never sees what it may not be
entitled to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

CLIENT = "client"
VENUE = "venue"
BOTH = "both"
ReportSides = Literal["client", "venue", "both"]


@dataclass(frozen=True, slots=True)
class OrderInfo:
    client: str  # client session name
    account: str | None
    venue: str | None


class OrderDirectory(Protocol):
    def by_order_id(self, order_id: str) -> OrderInfo | None: ...

    def by_venue_cl_ord_id(self, venue: str, cl_ord_id: str) -> OrderInfo | None: ...


class NoDirectory:
    """A directory that knows no order (offline use, tests)."""

    def by_order_id(self, order_id: str) -> OrderInfo | None:
        return None

    def by_venue_cl_ord_id(self, venue: str, cl_ord_id: str) -> OrderInfo | None:
        return None


@dataclass(frozen=True, slots=True)
class Origin:
    side: str  # CLIENT or VENUE
    client: str | None
    account: str | None
    venue: str | None


@dataclass(frozen=True)
class Scope:
    reports: ReportSides = CLIENT
    clients: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    venues: frozenset[str] = frozenset()

    def covers(self, o: Origin) -> bool:
        if self.reports != BOTH and o.side != self.reports:
            return False
        if self.clients and o.client not in self.clients:
            return False
        if self.accounts and o.account not in self.accounts:
            return False
        if self.venues and o.venue not in self.venues:
            return False
        return True

    def describe(self) -> str:
        parts = [f"{self.reports}-side reports" if self.reports != BOTH else "client- and venue-side reports"]
        for label, values in (("clients", self.clients), ("accounts", self.accounts), ("venues", self.venues)):
            parts.append(f"{label} {', '.join(sorted(values))}" if values else f"all {label}")
        return "; ".join(parts)


def origin(side: str, session: str, fields: dict[int, str], directory: OrderDirectory) -> Origin:
    """The Origin of a source report: ``session`` is the client or venue session name it was journaled on."""
    account = fields.get(1) or None
    if side == CLIENT:
        order_id = fields.get(37)
        info = directory.by_order_id(order_id) if order_id else None
        venue = info.venue if info is not None and info.venue else (fields.get(30) or None)
        return Origin(CLIENT, session, account or (info.account if info else None), venue)
    info = None
    cl = fields.get(11)
    if cl:
        info = directory.by_venue_cl_ord_id(session, cl)
    if info is None and fields.get(41):
        info = directory.by_venue_cl_ord_id(session, fields[41])
    if info is None:
        return Origin(VENUE, None, account, session)
    return Origin(VENUE, info.client, account or info.account, session)
