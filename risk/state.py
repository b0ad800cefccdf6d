"""Pre-trade risk state: the open orders and the exposure they and the fills make, and the collaborators that
keep the rest of what the checks read. Updated incrementally by pure methods (no I/O, no clock reads).

What ``RiskState`` holds itself:

- open orders by (session, ClOrdID) with quantity, cumulative filled quantity
  and the price used for exposure (the limit price, or the reference price a
  market order was accepted at); each session's open-order count;
- per (account, symbol): position (quantity and signed cost notional, from
  fills) and open buy / sell quantity and notional; per account: gross
  exposure and the net components;
- reference prices per symbol (last trade, quote mid, the reference file).

What it owns and books into: ``usage`` (risk/daily_usage.py: each account's
daily notional and the trading days), ``throttle`` (risk/throttle.py: message
times, breaches, disabled sessions), ``kill_switches`` (risk/kill_switches.py)
and ``duplicates`` (risk/duplicates.py: when each order key was last accepted).

Exposure definitions (all notionals at the order price for open quantity and at
the fill price for positions, i.e. cost basis; never a float):

- per account+symbol, long side = max(position, 0) + open buys, short side =
  max(-position, 0) + open sells; gross = long + short;
  net = max(|position + open buys|, |position - open sells|) (worst case);
- per account: gross = sum of the symbols' gross, net = the same worst case on
  the summed position notional and open buys / sells.

Orders without an Account are booked under the account ``""``.

Per-day usage and the trading day (risk/days.py, risk/daily_usage.py):
``start_day`` / ``start_session_day`` move it to a new day (the engine calls
them when its clock has passed a boundary); the accounts' daily notional then
restarts from the open orders, a session's breach count from zero.
``restore_day`` puts back what the state log recorded of it after a restart.

The state log keeps ``OpenOrder`` by this module's name (``open_order_from_state_log``
in its records, the class in its snapshots): both stay here so that state files
written by any version still load.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from orders.commands import NewOrder
from orders.model import PlainForm, Side
from risk.daily_usage import DailyUsage
from risk.duplicates import RecentOrders
from risk.kill_switches import KillSwitches
from risk.throttle import Throttle

ZERO = Decimal(0)


@dataclass(slots=True)
class OpenOrder:
    session: str
    cl_ord_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    cum: Decimal
    px: Decimal

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.cum


_OPEN_FIELDS = ("session", "cl_ord_id", "account", "symbol", "side", "qty", "cum", "px")
_OPEN_FORM = PlainForm(OpenOrder, _OPEN_FIELDS)


def open_order_state_log_form(o: OpenOrder) -> list:
    """An open order as plain values (``PlainForm``), for the state log."""
    return _OPEN_FORM.dump([o.session, o.cl_ord_id, o.account, o.symbol, o.side, o.qty, o.cum, o.px])


def open_order_from_state_log(v: list) -> OpenOrder:
    return OpenOrder(*_OPEN_FORM.load(v))


def replaced_terms(old: OpenOrder, new: NewOrder, px: Decimal | None) -> OpenOrder:
    """``old`` under a replace's new terms (FIX: the new OrderQty includes what has filled, so its leaves are
    ``new.qty - cum``); a market order's price is ``px``, else the old one's."""
    price = new.price if new.price is not None else (px if px is not None else old.px)
    return OpenOrder(old.session, new.cl_ord_id, new.account or "", new.symbol,
                     Side.BUY if new.side is Side.BUY else Side.SELL, new.qty, old.cum, price)


@dataclass(slots=True)
class Exposure:
    """One account+symbol (or an account's sums): position from fills, open orders."""

    pos_qty: Decimal = ZERO
    pos_notional: Decimal = ZERO  # signed cost: buys +, sells -
    buy_qty: Decimal = ZERO
    buy_notional: Decimal = ZERO
    sell_qty: Decimal = ZERO
    sell_notional: Decimal = ZERO

    @property
    def gross(self) -> Decimal:
        return max(self.pos_notional, ZERO) + max(-self.pos_notional, ZERO) + self.buy_notional + self.sell_notional

    @property
    def net(self) -> Decimal:
        return max(abs(self.pos_notional + self.buy_notional), abs(self.pos_notional - self.sell_notional))

    @property
    def worst_position(self) -> Decimal:
        return max(abs(self.pos_qty + self.buy_qty), abs(self.pos_qty - self.sell_qty))

    def is_zero(self) -> bool:
        return not (self.pos_qty or self.pos_notional or self.buy_qty or self.buy_notional
                    or self.sell_qty or self.sell_notional)


@dataclass(slots=True)
class RiskState:
    open_orders: dict[tuple[str, str], OpenOrder] = field(default_factory=dict)
    open_count: dict[str, int] = field(default_factory=dict)  # per session
    exposures: dict[tuple[str, str], Exposure] = field(default_factory=dict)  # (account, symbol)
    account_totals: dict[str, Exposure] = field(default_factory=dict)  # linear sums per account
    account_gross: dict[str, Decimal] = field(default_factory=dict)  # sum of symbol gross
    refs: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # symbol -> {last, mid, file}
    usage: DailyUsage = field(default_factory=DailyUsage)
    throttle: Throttle = field(default_factory=Throttle)
    kill_switches: KillSwitches = field(default_factory=KillSwitches)
    duplicates: RecentOrders = field(default_factory=RecentOrders)
    # a replace in flight: (session, the order's ClOrdID) -> its new terms, counted beside the old order's
    # until the venue confirms or refuses it (``hold_replace``); not in the state log: a restart holds them again
    # from the orders' pending replaces (desk.risk_checks.hold_pending_replaces)
    holds: dict[tuple[str, str], OpenOrder] = field(default_factory=dict)

    # ------------------------------------------------------------------ reads
    def exposure(self, account: str | None, symbol: str) -> Exposure:
        return self.exposures.get((account or "", symbol)) or Exposure()

    def account_exposure(self, account: str | None) -> tuple[Decimal, Decimal]:
        """(gross, net) notional for an account."""
        acct = account or ""
        tot = self.account_totals.get(acct)
        if tot is None:
            return ZERO, ZERO
        return self.account_gross.get(acct, ZERO), tot.net

    def firm_gross(self) -> Decimal:
        """Every account's gross notional together (``[firm] max_gross_exposure``): a sum over the accounts."""
        return sum(self.account_gross.values(), ZERO)

    def reference(self, symbol: str, sources=("last", "mid", "file")) -> tuple[Decimal, str] | None:
        refs = self.refs.get(symbol)
        if refs:
            for s in sources:
                px = refs.get(s)
                if px is not None:
                    return px, s
        return None

    # ------------------------------------------------------------------ internal bookkeeping
    def _touch(self, account: str, symbol: str) -> tuple[Exposure, Exposure]:
        key = (account, symbol)
        ex = self.exposures.get(key)
        if ex is None:
            ex = self.exposures[key] = Exposure()
        tot = self.account_totals.get(account)
        if tot is None:
            tot = self.account_totals[account] = Exposure()
        return ex, tot

    def _open_delta(self, o: OpenOrder, qty: Decimal) -> None:
        """Add ``qty`` (may be negative) of open quantity of ``o`` to the aggregates."""
        if not qty:
            return
        ex, tot = self._touch(o.account, o.symbol)
        before = ex.gross
        notional = qty * o.px
        if o.side is Side.BUY:
            ex.buy_qty += qty
            ex.buy_notional += notional
            tot.buy_qty += qty
            tot.buy_notional += notional
        else:
            ex.sell_qty += qty
            ex.sell_notional += notional
            tot.sell_qty += qty
            tot.sell_notional += notional
        self.account_gross[o.account] = self.account_gross.get(o.account, ZERO) + ex.gross - before
        self.usage.add_open(o.account, notional)
        self._tidy(o.account, o.symbol, ex)

    def _book_position(self, account: str, symbol: str, side: Side, qty: Decimal, notional: Decimal) -> None:
        """Fills of ``qty`` on ``side`` costing ``notional`` in all (unsigned)."""
        ex, tot = self._touch(account, symbol)
        before = ex.gross
        q = qty if side is Side.BUY else -qty
        n = notional if side is Side.BUY else -notional
        ex.pos_qty += q
        ex.pos_notional += n
        tot.pos_qty += q
        tot.pos_notional += n
        self.account_gross[account] = self.account_gross.get(account, ZERO) + ex.gross - before
        self.usage.add_fill(account, notional)
        self._tidy(account, symbol, ex)

    def _tidy(self, account: str, symbol: str, ex: Exposure) -> None:
        if ex.is_zero():
            del self.exposures[(account, symbol)]

    def _add_open(self, o: OpenOrder) -> None:
        if o.leaves <= 0:
            return
        self.open_orders[(o.session, o.cl_ord_id)] = o
        self.open_count[o.session] = self.open_count.get(o.session, 0) + 1
        self._open_delta(o, o.leaves)

    def _remove_open(self, session: str, cl_ord_id: str) -> OpenOrder | None:
        o = self.open_orders.pop((session, cl_ord_id), None)
        if o is None:
            return None
        n = self.open_count[session] - 1
        if n:
            self.open_count[session] = n
        else:
            del self.open_count[session]
        self._open_delta(o, -o.leaves)
        return o

    def _open_notional(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for o in (*self.open_orders.values(), *self.holds.values()):
            out[o.account] = out.get(o.account, ZERO) + o.leaves * o.px
        return out

    # ------------------------------------------------------------------ events
    def on_accepted(self, order: NewOrder, now: datetime | None = None, px: Decimal | None = None,
                    duplicate_window: timedelta | None = None) -> None:
        """An order passed risk: it is open for its full quantity.

        ``px`` is the price its exposure is counted at when it has none (market
        order: the reference price at acceptance; zero if there is none).
        ``now`` records it for duplicate detection.
        """
        price = order.price if order.price is not None else (px if px is not None else ZERO)
        self._add_open(OpenOrder(order.session, order.cl_ord_id, order.account or "", order.symbol,
                                 Side.BUY if order.side is Side.BUY else Side.SELL, order.qty, ZERO, price))
        if now is not None:
            self.duplicates.remember(order, now, duplicate_window)

    def on_fill(self, session: str, cl_ord_id: str, qty: Decimal, px: Decimal) -> Decimal:
        """A fill on an open order; returns the quantity booked (never beyond the order's leaves)."""
        o = self.open_orders.get((session, cl_ord_id))
        if o is None or qty <= 0:
            return ZERO
        booked = qty if qty <= o.leaves else o.leaves
        self._open_delta(o, -booked)
        o.cum += booked
        self._book_position(o.account, o.symbol, o.side, booked, booked * px)
        self.release_hold(session, cl_ord_id, booked)  # a replace in flight: its new OrderQty includes the fill
        if o.leaves <= 0:
            self.release_hold(session, cl_ord_id)
            self._remove_open(session, cl_ord_id)  # leaves are zero: only the count changes
        return booked

    def on_done(self, session: str, cl_ord_id: str) -> bool:
        """Cancelled, rejected, expired or done for day: the open quantity (and a replace's in flight) is
        released."""
        self.release_hold(session, cl_ord_id)
        return self._remove_open(session, cl_ord_id) is not None

    def hold_replace(self, session: str, orig_cl_ord_id: str, new: NewOrder, px: Decimal | None = None) -> None:
        """A replace of open order ``orig_cl_ord_id`` went to the venue: until it is confirmed (``on_replace``),
        refused (``release_hold``) or the order ends, its new terms count beside the old ones (the safe side)."""
        self.release_hold(session, orig_cl_ord_id)
        old = self.open_orders.get((session, orig_cl_ord_id))
        hold = None if old is None else replaced_terms(old, new, px)
        if hold is not None and hold.leaves > 0:
            self.holds[(session, orig_cl_ord_id)] = hold
            self._open_delta(hold, hold.leaves)

    def release_hold(self, session: str, orig_cl_ord_id: str, filled: Decimal | None = None) -> None:
        """The replace in flight of ``orig_cl_ord_id`` was refused or the order ended (``filled`` None): its new
        terms no longer count; or the old order filled ``filled``, which the new OrderQty includes too."""
        hold = self.holds.get((session, orig_cl_ord_id)) if self.holds else None
        if hold is None:
            return
        d = hold.leaves if filled is None or filled > hold.leaves else filled
        self._open_delta(hold, -d)
        hold.cum += d
        if hold.leaves <= 0:
            del self.holds[(session, orig_cl_ord_id)]

    def on_replace(self, session: str, orig_cl_ord_id: str, new: NewOrder, px: Decimal | None = None) -> bool:
        """A replace was confirmed: the old order's leaves are released, the new terms are open.

        FIX semantics: the new OrderQty includes what has already filled, so the
        new leaves are ``new.qty - cum``.
        """
        self.release_hold(session, orig_cl_ord_id)
        old = self._remove_open(session, orig_cl_ord_id)
        if old is None:
            return False
        self._add_open(replaced_terms(old, new, px))
        return True

    def release_open(self, session: str, cl_ord_id: str) -> OpenOrder | None:
        """Take an open order's exposure out (to check its replacement); ``restore_open`` puts it back."""
        return self._remove_open(session, cl_ord_id)

    def restore_open(self, o: OpenOrder) -> None:
        self._add_open(o)

    # ------------------------------------------------------------------ trading days
    def start_day(self, day: date) -> bool:
        """The accounts' per-day usage moves to trading day ``day`` (``DailyUsage.start_day``): daily notional
        restarts from the still-open orders. True when an earlier day's usage was dropped."""
        return self.usage.start_day(day, self._open_notional)

    def start_session_day(self, session: str, day: date) -> int | None:
        """A session's per-day usage (its throttle breach count) moves to trading day ``day``.

        Returns the breaches dropped (0 if none) when an earlier day was rolled, None when nothing rolled
        (the session had no day yet, or ``day`` is not later). A session disabled by its breaches stays
        disabled: only an operator re-enables it.
        """
        if not self.usage.start_session_day(session, day):
            return None
        return self.throttle.drop_breaches(session)

    def new_day(self) -> None:
        """Start of a trading day: daily notional restarts from the still-open orders."""
        self.usage.restart(self._open_notional())

    def restore_day(self, saved: dict | None) -> None:
        """Per-day usage as the state log last recorded it (``DailyUsage.load_saved``), on a state whose open
        orders are already restored."""
        self.usage.load_saved(saved, self._open_notional())

    # ------------------------------------------------------------------ references and operator switches
    def set_last_trade(self, symbol: str, px: Decimal) -> None:
        self.refs.setdefault(symbol, {})["last"] = px

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        self.refs.setdefault(symbol, {})["mid"] = (bid + ask) / 2

    def set_reference_price(self, symbol: str, px: Decimal) -> None:
        """A value from the reference-price file."""
        self.refs.setdefault(symbol, {})["file"] = px

    # ------------------------------------------------------------------ snapshot / restore
    @classmethod
    def rebuild(cls, fills, open_orders) -> "RiskState":
        """Exposure recomputed from the orders themselves, as after a restart.

        ``fills``: (account, symbol, side, filled quantity, filled notional) per order
        (notional = the sum of qty * px of its fills, exact); ``open_orders``: the
        ``OpenOrder`` of every order still working. Positions and open exposure come
        out as the incremental updates would have left them; daily notional counts
        every fill given, whatever its day: ``restore_day`` then puts back the usage
        of the trading day the state log recorded.
        Throttle windows, duplicate-detection memory, references and switches are
        not orders' business: the caller restores what it keeps of them.
        """
        st = cls()
        for account, symbol, side, qty, notional in fills:
            if qty:
                st._book_position(account or "", symbol, side, qty, notional)
        for o in open_orders:
            st._add_open(OpenOrder(o.session, o.cl_ord_id, o.account, o.symbol, o.side, o.qty, o.cum, o.px))
        st.usage.clear_changes()
        return st

    def snapshot(self) -> dict:
        """A plain, JSON-able dict (Decimals and datetimes as strings)."""
        return {
            "version": 1,
            "open_orders": [
                {"session": o.session, "cl_ord_id": o.cl_ord_id, "account": o.account, "symbol": o.symbol,
                 "side": o.side.value, "qty": str(o.qty), "cum": str(o.cum), "px": str(o.px)}
                for o in self.open_orders.values()
            ],
            "positions": [
                {"account": a, "symbol": s, "qty": str(ex.pos_qty), "notional": str(ex.pos_notional)}
                for (a, s), ex in self.exposures.items() if ex.pos_qty or ex.pos_notional
            ],
            "refs": {sym: {k: str(v) for k, v in r.items()} for sym, r in self.refs.items()},
            **self.usage.snapshot(), **self.throttle.snapshot(), **self.duplicates.snapshot(),
            **self.kill_switches.snapshot(),
        }

    @classmethod
    def restore(cls, data: dict) -> "RiskState":
        st = cls()
        for p in data.get("positions", []):
            ex, tot = st._touch(p["account"], p["symbol"])
            q, n = Decimal(p["qty"]), Decimal(p["notional"])
            before = ex.gross
            ex.pos_qty += q
            ex.pos_notional += n
            tot.pos_qty += q
            tot.pos_notional += n
            st.account_gross[p["account"]] = st.account_gross.get(p["account"], ZERO) + ex.gross - before
        for d in data.get("open_orders", []):
            st._add_open(OpenOrder(d["session"], d["cl_ord_id"], d["account"], d["symbol"], Side(d["side"]),
                                   Decimal(d["qty"]), Decimal(d["cum"]), Decimal(d["px"])))
        st.refs = {sym: {k: Decimal(v) for k, v in r.items()} for sym, r in data.get("refs", {}).items()}
        st.usage = DailyUsage.from_snapshot(data)  # (the daily notional as saved, not as the orders above made it)
        st.throttle = Throttle.from_snapshot(data)
        st.duplicates = RecentOrders.from_snapshot(data)
        st.kill_switches = KillSwitches.from_snapshot(data)
        return st
