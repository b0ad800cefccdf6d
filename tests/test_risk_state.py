"""Risk state: incremental bookkeeping equals a from-scratch recomputation; snapshot/restore."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.state import ZERO, RiskState
from orders.commands import NewOrder
from orders.model import OrdType, Side

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=timezone.utc)


def new(cl, qty, px, side=Side.BUY, session="S1", account="ACC1", symbol="AAPL", ord_type=OrdType.LIMIT):
    return NewOrder(session, cl, symbol, side, D(qty), ord_type, None if px is None else D(px), account=account)


# --------------------------------------------------------------------------- from-scratch model
class Model:
    """Keeps the plain history: every order's current terms, its fills, whether it is done."""

    def __init__(self):
        self.orders = {}  # (session, cl) -> dict(account, symbol, side, qty, px, cum, done)
        self.fills = []  # (account, symbol, signed qty, px)

    def recompute(self):
        exp, count, daily = {}, {}, {}
        totals = {}

        def cell(a, s):
            return exp.setdefault((a, s), {"pq": ZERO, "pn": ZERO, "bq": ZERO, "bn": ZERO, "sq": ZERO, "sn": ZERO})

        for a, s, q, px in self.fills:
            c = cell(a, s)
            c["pq"] += q
            c["pn"] += q * px
            daily[a] = daily.get(a, ZERO) + abs(q) * px
        for (session, _), o in self.orders.items():
            leaves = o["qty"] - o["cum"]
            if o["done"] or leaves <= 0:
                continue
            count[session] = count.get(session, 0) + 1
            c = cell(o["account"], o["symbol"])
            k = "b" if o["side"] is Side.BUY else "s"
            c[k + "q"] += leaves
            c[k + "n"] += leaves * o["px"]
            daily[o["account"]] = daily.get(o["account"], ZERO) + leaves * o["px"]
        gross = {}
        for (a, s), c in exp.items():
            gross[a] = gross.get(a, ZERO) + abs(c["pn"]) + c["bn"] + c["sn"]
            t = totals.setdefault(a, {"pn": ZERO, "bn": ZERO, "sn": ZERO})
            for key in t:
                t[key] += c[key]
        net = {a: max(abs(t["pn"] + t["bn"]), abs(t["pn"] - t["sn"])) for a, t in totals.items()}
        exp = {k: v for k, v in exp.items() if any(v.values())}
        return exp, count, daily, gross, net


def assert_matches(state: RiskState, model: Model):
    exp, count, daily, gross, net = model.recompute()
    got = {k: {"pq": e.pos_qty, "pn": e.pos_notional, "bq": e.buy_qty, "bn": e.buy_notional,
               "sq": e.sell_qty, "sn": e.sell_notional} for k, e in state.exposures.items()}
    assert got == exp
    assert state.open_count == count
    assert {a: v for a, v in state.usage.used.items() if v} == {a: v for a, v in daily.items() if v}
    for a in set(gross) | set(state.account_gross):
        g, n = state.account_exposure(a)
        assert g == gross.get(a, ZERO), a
        assert n == net.get(a, ZERO), a
    open_keys = {k for k, o in model.orders.items() if not o["done"] and o["qty"] - o["cum"] > 0}
    assert set(state.open_orders) == open_keys


money = st.decimals(min_value=D("0.01"), max_value=D("500"), places=2)
qtys = st.integers(min_value=1, max_value=1000).map(D)
event = st.one_of(
    st.tuples(st.just("accept"), st.sampled_from(["S1", "S2"]), st.sampled_from(["A", "B", None]),
              st.sampled_from(["X", "Y"]), st.sampled_from([Side.BUY, Side.SELL, Side.SELL_SHORT]), qtys,
              st.one_of(st.none(), money)),
    st.tuples(st.just("fill"), st.integers(0, 50), qtys, money),
    st.tuples(st.just("done"), st.integers(0, 50)),
    st.tuples(st.just("replace"), st.integers(0, 50), qtys, st.one_of(st.none(), money)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=60), money)
def test_incremental_equals_recomputed(events, mkt_ref):
    state, model, n = RiskState(), Model(), 0
    for ev in events:
        keys = list(model.orders)
        if ev[0] == "accept":
            _, session, account, symbol, side, qty, px = ev
            n += 1
            cl = f"o{n}"
            o = NewOrder(session, cl, symbol, side, qty, OrdType.MARKET if px is None else OrdType.LIMIT, px,
                         account=account)
            state.on_accepted(o, now=NOW, px=mkt_ref)
            model.orders[(session, cl)] = dict(account=account or "", symbol=symbol,
                                                side=Side.BUY if side is Side.BUY else Side.SELL, qty=qty,
                                                px=mkt_ref if px is None else px, cum=ZERO, done=False)
        elif not keys:
            continue
        elif ev[0] == "fill":
            _, i, qty, px = ev
            key = keys[i % len(keys)]
            o = model.orders[key]
            booked = state.on_fill(*key, qty, px)
            open_ = not o["done"] and o["qty"] - o["cum"] > 0
            expected = min(qty, o["qty"] - o["cum"]) if open_ else ZERO
            assert booked == expected
            if booked:
                o["cum"] += booked
                model.fills.append((o["account"], o["symbol"], booked if o["side"] is Side.BUY else -booked, px))
        elif ev[0] == "done":
            key = keys[ev[1] % len(keys)]
            state.on_done(*key)
            model.orders[key]["done"] = True
        else:
            _, i, qty, px = ev
            key = keys[i % len(keys)]
            o = model.orders[key]
            n += 1
            cl = f"o{n}"
            side = o["side"]
            repl = NewOrder(key[0], cl, o["symbol"], side, qty, OrdType.MARKET if px is None else OrdType.LIMIT,
                            px, account=o["account"] or None)
            ok = state.on_replace(key[0], key[1], repl, px=mkt_ref)
            open_ = not o["done"] and o["qty"] - o["cum"] > 0
            assert ok == open_
            if ok:
                o["done"] = True
                model.orders[(key[0], cl)] = dict(o, qty=qty, px=mkt_ref if px is None else px, done=False)
        assert_matches(state, model)
    # snapshot survives JSON and restores the same state
    snap = state.snapshot()
    restored = RiskState.restore(json.loads(json.dumps(snap)))
    assert restored.snapshot() == snap
    assert_matches(restored, model)


def test_fill_lifecycle_and_overfill():
    s = RiskState()
    s.on_accepted(new("a", "100", "10"))
    assert s.open_count == {"S1": 1}
    assert s.on_fill("S1", "a", D("40"), D("10.5")) == D(40)
    e = s.exposure("ACC1", "AAPL")
    assert (e.pos_qty, e.pos_notional, e.buy_qty, e.buy_notional) == (D(40), D("420.0"), D(60), D(600))
    assert s.on_fill("S1", "a", D("100"), D("10")) == D(60)  # never beyond leaves
    assert s.open_orders == {} and s.open_count == {}
    assert s.on_fill("S1", "a", D("1"), D("10")) == ZERO  # unknown / done order
    assert s.exposure("ACC1", "AAPL").pos_qty == D(100)


def test_cancel_releases_open_quantity():
    s = RiskState()
    s.on_accepted(new("a", "100", "10", side=Side.SELL))
    assert s.exposure("ACC1", "AAPL").sell_qty == D(100)
    assert s.on_done("S1", "a") is True
    assert s.exposures == {} and s.open_count == {} and s.usage.used["ACC1"] == ZERO
    assert s.on_done("S1", "a") is False


def test_replace_keeps_cum_and_releases_old():
    s = RiskState()
    s.on_accepted(new("a", "100", "10"))
    s.on_fill("S1", "a", D("30"), D("10"))
    assert s.on_replace("S1", "a", new("b", "50", "11"))
    assert ("S1", "a") not in s.open_orders
    b = s.open_orders[("S1", "b")]
    assert (b.leaves, b.px) == (D(20), D(11))
    assert s.exposure("ACC1", "AAPL").buy_notional == D(220)
    # replacing down to what has already filled leaves nothing open
    assert s.on_replace("S1", "b", new("c", "30", "11"))
    assert s.open_orders == {} and s.open_count == {}


def test_market_order_counted_at_given_reference():
    s = RiskState()
    s.on_accepted(new("a", "10", None, ord_type=OrdType.MARKET), px=D("190"))
    assert s.exposure("ACC1", "AAPL").buy_notional == D(1900)


def test_snapshot_is_json_with_decimal_strings():
    s = RiskState()
    s.on_accepted(new("a", "10", "10.25"), now=NOW)
    s.on_fill("S1", "a", D("4"), D("10.2"))
    s.set_quote("AAPL", D("10"), D("10.5"))
    s.throttle.count("S1", NOW, timedelta(seconds=1))
    s.kill_switches.engage("symbol", "MSFT", "reduce_only")
    s.throttle.record_breach("S1", 1)
    snap = s.snapshot()
    text = json.dumps(snap)
    assert '"10.25"' in text and '"40.8"' in text.replace("40.80", "40.8")
    r = RiskState.restore(json.loads(text))
    assert r.snapshot() == snap
    assert r.refs["AAPL"]["mid"] == D("10.25")
    assert r.kill_switches.engaged == {("symbol", "MSFT"): "reduce_only"}
    assert r.throttle.disabled == {"S1"}
    assert r.duplicates.accepted == s.duplicates.accepted
    assert r.throttle.session_count("S1", NOW, timedelta(seconds=1)) == 1


def test_a_snapshot_taken_before_the_state_was_split_restores_the_same_state():
    """``RiskState.snapshot()`` of a running state written before issue 19 split the risk state into its
    collaborators (tests/fixtures/risk_state_before_split/generate.py) restores to the same state."""
    here = Path(__file__).parent / "fixtures" / "risk_state_before_split"
    old = json.loads((here / "risk_snapshot.json").read_text())
    r = RiskState.restore(old)
    assert r.snapshot() == old == json.loads((here / "expected.json").read_text())["running"]
    later = datetime(2026, 11, 25, 14, 0, 4, tzinfo=timezone.utc)
    assert r.throttle.session_count("C1", later, timedelta(seconds=1)) == 1
    order = new("x", "1", "1", session="C1", account="ACC2", symbol="AAPL")
    assert r.kill_switches.matching(order)[:2] == ("reduce_only", "account")


def test_recent_orders_pruned_oldest_first():
    s, w = RiskState(), timedelta(seconds=1)
    a, b = new("a", "1", "1"), new("b", "2", "1")
    s.on_accepted(a, now=NOW, duplicate_window=w)
    s.on_accepted(b, now=NOW + timedelta(milliseconds=500), duplicate_window=w)
    s.on_accepted(new("c", "1", "1"), now=NOW + timedelta(milliseconds=900), duplicate_window=w)  # same key as a
    s.on_accepted(new("d", "3", "1"), now=NOW + timedelta(milliseconds=1600), duplicate_window=w)
    keys = [k[3] for k in s.duplicates.accepted]
    assert keys == [D(1), D(3)]  # b expired; a's key was refreshed by c and kept


def test_message_window_prunes():
    s, w = RiskState(), timedelta(seconds=1)
    for i in range(5):
        s.throttle.count("S1", NOW + timedelta(milliseconds=300 * i), w)
    # 300, 600, 900, 1200 (window is (200, 1200])
    assert s.throttle.session_count("S1", NOW + timedelta(milliseconds=1200), w) == 4
    assert len(s.throttle.session_times["S1"]) == 4


def test_a_replace_in_flight_counts_its_new_terms_until_answered_and_shrinks_with_fills():
    from datetime import date

    st = RiskState()
    st.start_day(date(2026, 12, 7))
    st.on_accepted(NewOrder("S1", "A1", "AAPL", Side.BUY, D(100), OrdType.LIMIT, D(10), account="ACC1"))
    st.hold_replace("S1", "A1", NewOrder("S1", "R1", "AAPL", Side.BUY, D(300), OrdType.LIMIT, D(11),
                                         account="ACC1"))
    ex = st.exposure("ACC1", "AAPL")
    assert (ex.buy_qty, ex.buy_notional, st.usage.used["ACC1"]) == (D(400), D(4300), D(4300))
    st.on_fill("S1", "A1", D(40), D(10))  # the new OrderQty includes this fill: 260 left of it
    ex = st.exposure("ACC1", "AAPL")
    assert (ex.buy_qty, st.holds[("S1", "A1")].leaves) == (D(60 + 260), D(260))
    st.start_day(date(2026, 12, 8))  # a new day's usage starts from what is open, the replace's terms included
    assert st.usage.used["ACC1"] == D(60 * 10 + 260 * 11)
    st.release_hold("S1", "A1")  # the venue refused it
    assert st.holds == {} and st.exposure("ACC1", "AAPL").buy_qty == D(60) and st.usage.used["ACC1"] == D(600)
