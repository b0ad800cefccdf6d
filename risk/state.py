"""Pre-trade risk state, updated incrementally by pure methods (no I/O, no clock reads).

What it holds:

- open orders by (session, ClOrdID) with quantity, cumulative filled quantity
  and the price used for exposure (the limit price, or the reference price a
  market order was accepted at);
- per (account, symbol): position (quantity and signed cost notional, from
  fills) and open buy / sell quantity and notional;
- per account: gross exposure and the net components, daily notional used
  (notional filled today + open notional) and its trading day;
- per session: open-order count, message times (throttle), breach count and
  its trading day, disabled flag; per account: message times (throttle);
- recent orders for duplicate detection, reference prices, kill switches.

Exposure definitions (all notionals at the order price for open quantity and at
the fill price for positions, i.e. cost basis; never a float):

- per account+symbol, long side = max(position, 0) + open buys, short side =
  max(-position, 0) + open sells; gross = long + short;
  net = max(|position + open buys|, |position - open sells|) (worst case);
- per account: gross = sum of the symbols' gross, net = the same worst case on
  the summed position notional and open buys / sells.

Orders without an Account are booked under the account ``""``.

Per-day usage and the trading day (risk/days.py): ``day`` is the trading day the
accounts' daily notional belongs to, ``session_days`` the day each session's
throttle breaches belong to. ``start_day`` / ``start_session_day`` move them to a
new day (the engine calls them when its clock has passed a boundary). What
changed is kept as plain values for the state log (``day_changes``), so a
restart after a roll starts from the new day's usage, not from every fill of the
orders it still knows (``restore_day``).
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from orders.commands import NewOrder
from orders.model import PlainForm, Side

ZERO = Decimal(0)
KILL_SCOPES = ("global", "session", "account", "symbol")
KILL_MODES = ("halt", "reduce_only")


def sign(side: Side) -> int:
    return 1 if side is Side.BUY else -1


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
    daily_used: dict[str, Decimal] = field(default_factory=dict)  # per account: daily_filled + open notional
    daily_filled: dict[str, Decimal] = field(default_factory=dict)  # per account: notional filled on ``day``
    day: date | None = None  # the trading day of the accounts' daily usage (None: not known yet)
    session_days: dict[str, date] = field(default_factory=dict)  # session -> trading day of its breach count
    refs: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # symbol -> {last, mid, file}
    msg_times: dict[str, deque] = field(default_factory=dict)  # session -> deque[datetime]
    account_msg_times: dict[str, deque] = field(default_factory=dict)  # account -> deque[datetime]
    throttle_breaches: dict[str, int] = field(default_factory=dict)
    disabled_sessions: set[str] = field(default_factory=set)
    recent: dict[tuple, datetime] = field(default_factory=dict)  # duplicate key -> last accepted at
    kill: dict[tuple[str, str], str] = field(default_factory=dict)  # (scope, key) -> mode
    # per-day usage changed since the state log last took it (``day_changes``)
    day_dirty: bool = False
    _day_full: bool = False  # the day moved on: the accounts' usage is written whole
    _filled_changed: set[str] = field(default_factory=set)
    _sessions_changed: set[str] = field(default_factory=set)

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

    def reference(self, symbol: str, sources=("last", "mid", "file")) -> tuple[Decimal, str] | None:
        refs = self.refs.get(symbol)
        if refs:
            for s in sources:
                px = refs.get(s)
                if px is not None:
                    return px, s
        return None

    def message_count(self, session: str, now: datetime, window: timedelta) -> int:
        return _in_window(self.msg_times.get(session), now, window)

    def account_message_count(self, account: str, now: datetime, window: timedelta) -> int:
        return _in_window(self.account_msg_times.get(account), now, window)

    def kill_mode(self, order: NewOrder) -> tuple[str, str, str] | None:
        """The strictest kill switch matching the order: (mode, scope, key), halt before reduce_only."""
        if not self.kill:
            return None
        found = None
        for scope, key in (("global", ""), ("session", order.session), ("account", order.account or ""),
                           ("symbol", order.symbol)):
            mode = self.kill.get((scope, key))
            if mode == "halt":
                return mode, scope, key
            if mode is not None and found is None:
                found = (mode, scope, key)
        return found

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
        self.daily_used[o.account] = self.daily_used.get(o.account, ZERO) + notional
        self._tidy(o.account, o.symbol, ex)

    def _position_delta(self, account: str, symbol: str, side: Side, qty: Decimal, px: Decimal) -> None:
        self._book_position(account, symbol, side, qty, qty * px)

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
        self.daily_used[account] = self.daily_used.get(account, ZERO) + notional
        self.daily_filled[account] = self.daily_filled.get(account, ZERO) + notional
        self._filled_changed.add(account)
        self.day_dirty = True
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

    # ------------------------------------------------------------------ events
    def on_message(self, session: str, now: datetime, window: timedelta, account: str | None = None) -> None:
        """Count one inbound application message for the throttle, for its session and, when it has one, its
        account; forgets times older than ``window``."""
        _count_in(self.msg_times, session, now, window)
        if account is not None:
            _count_in(self.account_msg_times, account, now, window)

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
            key = duplicate_key(order)
            self.recent.pop(key, None)  # re-insert at the end: ``recent`` stays oldest first
            self.recent[key] = now
            if duplicate_window is not None:
                self.prune_recent(now, duplicate_window)

    def on_fill(self, session: str, cl_ord_id: str, qty: Decimal, px: Decimal) -> Decimal:
        """A fill on an open order; returns the quantity booked (never beyond the order's leaves)."""
        o = self.open_orders.get((session, cl_ord_id))
        if o is None or qty <= 0:
            return ZERO
        booked = qty if qty <= o.leaves else o.leaves
        self._open_delta(o, -booked)
        o.cum += booked
        self._position_delta(o.account, o.symbol, o.side, booked, px)
        if o.leaves <= 0:
            self._remove_open(session, cl_ord_id)  # leaves are zero: only the count changes
        return booked

    def on_done(self, session: str, cl_ord_id: str) -> bool:
        """Cancelled, rejected, expired or done for day: the open quantity is released."""
        return self._remove_open(session, cl_ord_id) is not None

    def on_replace(self, session: str, orig_cl_ord_id: str, new: NewOrder, px: Decimal | None = None) -> bool:
        """A replace was confirmed: the old order's leaves are released, the new terms are open.

        FIX semantics: the new OrderQty includes what has already filled, so the
        new leaves are ``new.qty - cum``.
        """
        old = self._remove_open(session, orig_cl_ord_id)
        if old is None:
            return False
        price = new.price if new.price is not None else (px if px is not None else old.px)
        self._add_open(OpenOrder(session, new.cl_ord_id, new.account or "", new.symbol,
                                 Side.BUY if new.side is Side.BUY else Side.SELL, new.qty, old.cum, price))
        return True

    def release_open(self, session: str, cl_ord_id: str) -> OpenOrder | None:
        """Take an open order's exposure out (to check its replacement); ``restore_open`` puts it back."""
        return self._remove_open(session, cl_ord_id)

    def restore_open(self, o: OpenOrder) -> None:
        self._add_open(o)

    def without_order(self, session: str, cl_ord_id: str) -> "RiskState":
        """A copy with one open order's exposure released: what a replace is checked against."""
        clone = copy.deepcopy(self)
        clone._remove_open(session, cl_ord_id)
        return clone

    def new_day(self) -> None:
        """Start of a trading day: daily notional restarts from the still-open orders."""
        self.daily_filled = {}
        self.daily_used = self._open_notional()

    def _open_notional(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for o in self.open_orders.values():
            out[o.account] = out.get(o.account, ZERO) + o.leaves * o.px
        return out

    # ------------------------------------------------------------------ trading days
    def start_day(self, day: date) -> bool:
        """The accounts' per-day usage moves to trading day ``day``: daily notional restarts from the
        still-open orders (an order carried over counts with its open quantity, not with what filled before).

        Returns True when an earlier day's usage was dropped. A first day (none known: a new state, or one
        restored from a state log that did not record it) keeps what is counted, the safe side. A day at or
        before the current one (a clock stepping back) changes nothing.
        """
        old = self.day
        if old is not None and day <= old:
            return False
        self.day = day
        self._day_full = True
        self.day_dirty = True
        if old is None:
            return False
        self.new_day()
        return True

    def start_session_day(self, session: str, day: date) -> int | None:
        """A session's per-day usage (its throttle breach count) moves to trading day ``day``.

        Returns the breaches dropped (0 if none) when an earlier day was rolled, None when nothing rolled
        (the session had no day yet, or ``day`` is not later). A session disabled by its breaches stays
        disabled: only an operator re-enables it.
        """
        old = self.session_days.get(session)
        if old is not None and day <= old:
            return None
        self.session_days[session] = day
        self._sessions_changed.add(session)
        self.day_dirty = True
        if old is None:
            return None
        return self.throttle_breaches.pop(session, 0)

    def day_changes(self) -> tuple | None:
        """What changed in per-day usage since the last call, as plain values for the state log, or None:
        (day ISO or None, whole, {account: notional filled today, text}, {session: its day ISO}).
        ``whole``: the accounts' part is all of them (the day moved on), else only those that changed."""
        if not self.day_dirty:
            return None
        filled = self.daily_filled
        accounts = filled if self._day_full else {a: filled.get(a, ZERO) for a in self._filled_changed}
        out = (None if self.day is None else self.day.isoformat(), self._day_full,
               {a: str(v) for a, v in accounts.items()},
               {s: self.session_days[s].isoformat() for s in self._sessions_changed if s in self.session_days})
        self._clear_day_changes()
        return out

    def day_saved(self) -> dict | None:
        """All per-day usage as plain values, in the form ``fold_day_changes`` builds (for a snapshot)."""
        if self.day is None and not self.session_days:
            return None
        return {"day": None if self.day is None else self.day.isoformat(),
                "filled": {a: str(v) for a, v in self.daily_filled.items()},
                "sessions": {s: d.isoformat() for s, d in self.session_days.items()}}

    def _clear_day_changes(self) -> None:
        self.day_dirty = self._day_full = False
        self._filled_changed.clear()
        self._sessions_changed.clear()

    def restore_day(self, saved: dict | None) -> None:
        """Per-day usage as the state log last recorded it (``fold_day_changes``), on a state whose open orders
        are already restored: daily notional = notional filled on that day + the open orders' notional.
        None (a state log of a version that did not record it): the counts rebuilt from the orders stay, and
        the day is unknown until the engine sets it."""
        if not saved:
            self._clear_day_changes()
            return
        self.day = date.fromisoformat(saved["day"]) if saved.get("day") else None
        self.daily_filled = {a: Decimal(v) for a, v in saved.get("filled", {}).items()}
        used = self._open_notional()
        for a, v in self.daily_filled.items():
            used[a] = used.get(a, ZERO) + v
        self.daily_used = used
        self.session_days = {s: date.fromisoformat(d) for s, d in saved.get("sessions", {}).items()}
        self._clear_day_changes()

    def prune_recent(self, now: datetime, window: timedelta) -> None:
        """Forget orders older than ``window``; ``recent`` is kept oldest first."""
        cutoff = now - window
        recent = self.recent
        expired = []
        for k, t in recent.items():
            if t > cutoff:
                break
            expired.append(k)
        for k in expired:
            del recent[k]

    # ------------------------------------------------------------------ references and operator switches
    def set_last_trade(self, symbol: str, px: Decimal) -> None:
        self.refs.setdefault(symbol, {})["last"] = px

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal) -> None:
        self.refs.setdefault(symbol, {})["mid"] = (bid + ask) / 2

    def set_reference_price(self, symbol: str, px: Decimal) -> None:
        """A value from the reference-price file."""
        self.refs.setdefault(symbol, {})["file"] = px

    def set_kill(self, scope: str, key: str = "", mode: str = "halt") -> None:
        if scope not in KILL_SCOPES:
            raise ValueError(f"kill switch scope must be one of {KILL_SCOPES}, got {scope!r}")
        if mode not in KILL_MODES:
            raise ValueError(f"kill switch mode must be one of {KILL_MODES}, got {mode!r}")
        self.kill[(scope, "" if scope == "global" else key)] = mode

    def clear_kill(self, scope: str, key: str = "") -> bool:
        return self.kill.pop((scope, "" if scope == "global" else key), None) is not None

    def record_breach(self, session: str, disable_after: int | None) -> bool:
        """Count a throttle breach; returns True when this breach disabled the session."""
        n = self.throttle_breaches.get(session, 0) + 1
        self.throttle_breaches[session] = n
        if disable_after is not None and n >= disable_after and session not in self.disabled_sessions:
            self.disabled_sessions.add(session)
            return True
        return False

    def enable_session(self, session: str) -> None:
        """Operator action: re-enable a session disabled by throttle breaches and reset its count."""
        self.disabled_sessions.discard(session)
        self.throttle_breaches.pop(session, None)

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
        st._clear_day_changes()
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
            "daily_used": {a: str(v) for a, v in self.daily_used.items()},
            "daily_filled": {a: str(v) for a, v in self.daily_filled.items()},
            "day": None if self.day is None else self.day.isoformat(),
            "session_days": {s: d.isoformat() for s, d in self.session_days.items()},
            "refs": {sym: {k: str(v) for k, v in r.items()} for sym, r in self.refs.items()},
            "msg_times": {s: [t.isoformat() for t in ts] for s, ts in self.msg_times.items()},
            "account_msg_times": {a: [t.isoformat() for t in ts] for a, ts in self.account_msg_times.items()},
            "throttle_breaches": dict(self.throttle_breaches),
            "disabled_sessions": sorted(self.disabled_sessions),
            "recent": [[list(_jsonable_key(k)), t.isoformat()] for k, t in self.recent.items()],
            "kill": [[scope, key, mode] for (scope, key), mode in self.kill.items()],
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
        st.daily_used = {a: Decimal(v) for a, v in data.get("daily_used", {}).items()}
        st.daily_filled = {a: Decimal(v) for a, v in data.get("daily_filled", {}).items()}
        st.day = date.fromisoformat(data["day"]) if data.get("day") else None
        st.session_days = {s: date.fromisoformat(d) for s, d in data.get("session_days", {}).items()}
        st.refs = {sym: {k: Decimal(v) for k, v in r.items()} for sym, r in data.get("refs", {}).items()}
        st.msg_times = {s: deque(datetime.fromisoformat(t) for t in ts) for s, ts in data.get("msg_times", {}).items()}
        st.account_msg_times = {a: deque(datetime.fromisoformat(t) for t in ts)
                                for a, ts in data.get("account_msg_times", {}).items()}
        st.throttle_breaches = dict(data.get("throttle_breaches", {}))
        st.disabled_sessions = set(data.get("disabled_sessions", []))
        st.recent = {_key_from_json(k): datetime.fromisoformat(t) for k, t in data.get("recent", [])}
        st.kill = {(scope, key): mode for scope, key, mode in data.get("kill", [])}
        st._clear_day_changes()
        return st


def _count_in(book: dict[str, deque], key: str, now: datetime, window: timedelta) -> None:
    times = book.get(key)
    if times is None:
        times = book[key] = deque()
    times.append(now)
    cutoff = now - window
    while times and times[0] <= cutoff:
        times.popleft()


def _in_window(times: deque | None, now: datetime, window: timedelta) -> int:
    if not times:  # non-decreasing times, pruned by on_message
        return 0
    cutoff = now - window
    n = len(times)
    for t in times:  # oldest first: usually already pruned by on_message
        if t > cutoff:
            break
        n -= 1
    return n


def fold_day_changes(saved: dict | None, change: tuple) -> dict:
    """The state log's picture of per-day usage (plain values) with one ``RiskState.day_changes`` applied."""
    day, whole, accounts, sessions = change
    if saved is None:
        saved = {"day": day, "filled": {}, "sessions": {}}
    if whole:
        saved["filled"] = dict(accounts)
    else:
        saved["filled"].update(accounts)
    saved["day"] = day
    saved["sessions"].update(sessions)
    return saved


def duplicate_key(order: NewOrder) -> tuple:
    return (order.session, order.side.value, order.symbol, order.qty, order.price)


def _jsonable_key(k: tuple) -> tuple:
    session, side, symbol, qty, price = k
    return (session, side, symbol, str(qty), None if price is None else str(price))


def _key_from_json(k: list) -> tuple:
    session, side, symbol, qty, price = k
    return (session, side, symbol, Decimal(qty), None if price is None else Decimal(price))
