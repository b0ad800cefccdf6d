"""The venue simulator's market data: MarketDataRequest (V) subscriptions, what changed in a symbol's visible
book published to its subscribers, and a fresh snapshot of every subscribed symbol every ``md_refresh_s``.

A MarketDataRequest (V) for bids and offers subscribes the session to the symbols it
names (263=1), answers with one snapshot (W) per symbol at the requested depth (264;
0 = every level), or (263=0) just sends the snapshots; 263=2 ends the subscription
named by its MDReqID. An unknown symbol or a reused MDReqID gets a
MarketDataRequestReject (Y). While subscribed, every request that changes a symbol's
visible book publishes the change, queued under the simulator's lock right after the
request's execution reports (so a subscriber sees the fills before the book they left
behind): as incrementals (X: new, change or delete one price level) when the request
asked for MDUpdateType 265=1, otherwise as a full snapshot (W). Nothing is published
when the visible book did not change (the synthetic levels are topped up after every
request). Every ``md_refresh_s`` seconds each subscription also gets a fresh snapshot
of each of its symbols, so a subscriber can tell a quiet book from a dead feed; with
``md_changes`` off that is all it gets (a conflated feed, whose quotes lag the book).
A session that logs out loses its subscriptions.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import quickfix as fix

from orders.model import MDUpdateAction, Side
from sessions.codec import decode, encode
from sessions.simulator.outbox import Outbox, Outgoing
from venuesim.config import SimulatorConfig
from venuesim.matcher import Matcher

log = logging.getLogger("fixgw.venuesim")

BookView = tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]  # (bids, asks)


@dataclass
class Subscription:
    """One session's market data subscription (MDReqID), and what it was last sent per symbol."""

    owner: str  # session key
    req_id: str
    symbols: tuple[str, ...]
    depth: int  # 0: every level
    incremental: bool
    last: dict[str, BookView] = field(default_factory=dict)


def diff_levels(old: BookView, new: BookView, symbol: str) -> list[tuple]:
    """Incremental entries (MDUpdateAction, Side, symbol, price, size) that turn ``old`` into ``new``."""
    out = []
    for side, before, after in ((Side.BUY, old[0], new[0]), (Side.SELL, old[1], new[1])):
        b, a = dict(before), dict(after)
        for px, size in before:
            if px not in a:
                out.append((MDUpdateAction.DELETE, side, symbol, px, size))
        for px, size in after:
            if px not in b:
                out.append((MDUpdateAction.NEW, side, symbol, px, size))
            elif b[px] != size:
                out.append((MDUpdateAction.CHANGE, side, symbol, px, size))
    return out


class MarketDataFeed:
    """Every live subscription of one simulator, and the thread that refreshes them.

    Shares the simulator's ``lock`` (which guards the matcher): ``request`` and the refresher take it,
    ``book_changed``, ``drop`` and ``clear`` are called holding it. ``logged_on(key)`` says whether a
    session is logged on (read under the lock).
    """

    def __init__(self, name: str, sim: SimulatorConfig, matcher: Matcher, lock: threading.Lock, outbox: Outbox,
                 logged_on: Callable[[str], bool]):
        self._name = name
        self._sim = sim
        self._matcher = matcher
        self._lock = lock
        self._outbox = outbox
        self._logged_on = logged_on
        self._subscriptions: dict[tuple[str, str], Subscription] = {}  # (session key, MDReqID) -> subscription
        self.published = 0  # market data messages queued (snapshots and incrementals)
        self._stopping = threading.Event()
        self._refresher: threading.Thread | None = None

    # ---------------------------------------------------------------- the refresher
    def start(self) -> None:
        self._stopping.clear()
        if self._sim.md_refresh_s > 0:
            self._refresher = threading.Thread(target=self._refresh_loop, name=f"venuesim-md-{self._name}",
                                               daemon=True)
            self._refresher.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        if self._refresher is not None:
            self._refresher.join(timeout)
            self._refresher = None

    def _refresh_loop(self) -> None:
        """Every ``md_refresh_s``: a fresh snapshot of every subscribed symbol (proof the feed is alive)."""
        interval = float(self._sim.md_refresh_s)
        while not self._stopping.wait(interval):
            try:
                with self._lock:
                    if not self._outbox.running:
                        continue
                    for sub in list(self._subscriptions.values()):
                        if self._logged_on(sub.owner):
                            self._send_snapshots(sub)
            except BaseException:  # noqa: BLE001 - the refresher must keep going
                log.exception("venue simulator %s: market data refresh failed", self._name)

    # ---------------------------------------------------------------- subscriptions
    def subscriptions(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(session key, MDReqID, symbols) of every live market data subscription."""
        with self._lock:
            return [(s.owner, s.req_id, s.symbols) for s in self._subscriptions.values()]

    def drop(self, owner: str) -> None:
        """End every subscription of session ``owner`` (a subscription lives as long as its session)."""
        for k in [k for k in self._subscriptions if k[0] == owner]:
            del self._subscriptions[k]

    def clear(self) -> None:
        self._subscriptions.clear()

    def request(self, msg: fix.Message, owner: str, recv_ns: int) -> None:
        """MarketDataRequest (V): snapshot (0), subscribe (1) or unsubscribe (2); see the module docstring."""
        req = decode.decode_md_request(msg.toString())  # quickfix exceptions on bad fields
        version = self._outbox.versions[owner]
        sid = self._outbox.sessions[owner]
        with self._lock:
            key = (owner, req.req_id)
            if req.request_type == "2":
                self._subscriptions.pop(key, None)
                return
            unknown = [s for s in req.symbols if s not in self._matcher.books]
            if not req.symbols or unknown:
                text = f"unknown symbol {', '.join(unknown)}" if unknown else "no symbol requested (146)"
                self._outbox.put([(encode.encode_md_reject(version, req.req_id, "0", text), sid)])
                return
            if req.request_type == "1" and key in self._subscriptions:
                self._outbox.put([(encode.encode_md_reject(version, req.req_id, "1",
                                                           f"duplicate MDReqID {req.req_id}"), sid)])
                return
            sub = Subscription(owner, req.req_id, tuple(dict.fromkeys(req.symbols)), req.depth, req.incremental)
            self._send_snapshots(sub)
            if req.request_type == "1":
                self._subscriptions[key] = sub

    # ---------------------------------------------------------------- publishing
    def _view(self, symbol: str, depth: int) -> BookView:
        book = self._matcher.books[symbol]
        bids, asks = book.depth(Side.BUY), book.depth(Side.SELL)
        if depth:
            bids, asks = bids[:depth], asks[:depth]
        return tuple(bids), tuple(asks)

    def _send_snapshots(self, sub: Subscription) -> None:
        """A full snapshot (W) of each of the subscription's symbols. Under the lock."""
        version, sid = self._outbox.versions[sub.owner], self._outbox.sessions[sub.owner]
        out: Outgoing = []
        for symbol in sub.symbols:
            view = sub.last[symbol] = self._view(symbol, sub.depth)
            out.append((encode.encode_md_snapshot(version, sub.req_id, symbol, view[0], view[1]), sid))
        self.published += len(out)
        self._outbox.put(out)

    def book_changed(self, symbol: str) -> None:
        """Publish ``symbol``'s book to its subscribers if what they see changed. Under the lock, after the
        request's reports were queued."""
        if not self._subscriptions or symbol not in self._matcher.books or not self._sim.md_changes:
            return
        out: Outgoing = []
        views: dict[int, BookView] = {}
        for sub in self._subscriptions.values():
            if symbol not in sub.symbols:
                continue
            view = views.get(sub.depth)
            if view is None:
                view = views[sub.depth] = self._view(symbol, sub.depth)
            old = sub.last.get(symbol)
            if old == view:
                continue
            sub.last[symbol] = view
            version, sid = self._outbox.versions[sub.owner], self._outbox.sessions[sub.owner]
            if sub.incremental and old is not None:
                out.append((encode.encode_md_incremental(version, sub.req_id, diff_levels(old, view, symbol)), sid))
            else:
                out.append((encode.encode_md_snapshot(version, sub.req_id, symbol, view[0], view[1]), sid))
        if out:
            self.published += len(out)
            self._outbox.put(out)
