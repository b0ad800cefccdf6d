"""Venue selection. For now: the order's ExDestination if it names a venue, else the
first configured venue that trades the symbol and is logged on. The smart order
router (best price, sweep, failover) replaces ``choose_venue``'s body, not its place.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(slots=True)
class Venue:
    name: str
    symbols: frozenset[str]
    up: bool = False
    meta: dict = field(default_factory=dict)
    md_enabled: bool = True  # subscribe to its bids and offers when its session logs on
    md_depth: int = 5  # MarketDepth asked for: levels per side (0 = the whole book)
    md_incremental: bool = True  # ask for incremental refreshes (X) rather than snapshots (W)
    md_req_id: str | None = None  # the live subscription's MDReqID


@dataclass(slots=True)
class RoutingPolicy:
    """How the router decides: gateway-wide settings ([routing] in the configuration)."""

    max_quote_age: timedelta = timedelta(seconds=5)  # an older quote is not trusted


def choose_venue(symbol: str, ex_destination: str | None, venues: dict[str, Venue],
                 order: list[str]) -> tuple[str | None, str]:
    """Return (venue name, "") or (None, reason why no venue can take the order)."""
    if ex_destination is not None:
        venue = venues[ex_destination]
        if symbol not in venue.symbols:
            return None, f"ExDestination {ex_destination} does not trade {symbol}"
        if not venue.up:
            return None, f"ExDestination {ex_destination} is not connected"
        return ex_destination, ""
    trading = [venues[name] for name in order if symbol in venues[name].symbols]
    for venue in trading:
        if venue.up:
            return venue.name, ""
    names = ", ".join(v.name for v in trading)
    return None, f"no venue trading {symbol} is connected ({names} down)"
