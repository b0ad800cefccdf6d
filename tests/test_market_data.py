"""Market data: the codec (V, W, X, Y in each version), the consolidated book, the core's quotes, the
venue simulator's feed over real sessions, and the gateway subscribing when a venue logs on."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from venuesim.config import SimulatorConfig
from desk.core import Core
from desk.options import ClientOptions
from orders.actions import VenueMarketDataRequest
from orders.commands import MarketData, MarketDataReject, MDEntry, SessionStatus
from orders.model import MDUpdateAction, Side
from routing.quotes import Quotes
from routing.router import RoutingPolicy, Venue
from sessions.codec import decode, encode
from sessions.client import FixClient
from sessions.simulator.market_data import diff_levels
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import free_port
from tests.test_codec import on_the_wire

VERSIONS = ["FIX.4.2", "FIX.4.4", "FIX.5.0"]
T0 = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)


def bid(px, size, **kw) -> MDEntry:
    return MDEntry(Side.BUY, D(px), D(size), **kw)


def ask(px, size, **kw) -> MDEntry:
    return MDEntry(Side.SELL, D(px), D(size), **kw)


def snapshot(venue, symbol, *entries) -> MarketData:
    return MarketData(venue=venue, req_id="R", symbol=symbol, entries=tuple(entries), snapshot=True)


def incremental(venue, *entries) -> MarketData:
    return MarketData(venue=venue, req_id="R", symbol=None, entries=tuple(entries), snapshot=False)


# --------------------------------------------------------------------------- codec
@pytest.mark.parametrize("version", VERSIONS)
def test_market_data_messages_are_valid_for_each_version_and_decode_back(version):
    req = on_the_wire(version, encode.encode_md_request(version, VenueMarketDataRequest(
        "V", "R1", ("AAPL", "MSFT"), depth=5)))
    assert decode.decode_md_request(req.toString()) == decode.MDRequest("R1", "1", 5, True, ("0", "1"),
                                                                      ("AAPL", "MSFT"))
    unsub = on_the_wire(version, encode.encode_md_request(version, VenueMarketDataRequest(
        "V", "R1", ("AAPL",), depth=1, subscribe=False)))
    assert decode.decode_md_request(unsub.toString()).request_type == "2"

    w = on_the_wire(version, encode.encode_md_snapshot(version, "R1", "AAPL", [(D("189.99"), D(500)),
                                                                             (D("189.98"), D(1000))],
                                                      [(D("190.01"), D(500))]))
    md = decode.decode_md_snapshot(w.toString(), "V1")
    assert (md.venue, md.symbol, md.snapshot) == ("V1", "AAPL", True)
    assert md.entries == (bid("189.99", 500), bid("189.98", 1000), ask("190.01", 500))

    x = on_the_wire(version, encode.encode_md_incremental(version, "R1", [
        (MDUpdateAction.CHANGE, Side.BUY, "AAPL", D("189.99"), D(300)),
        (MDUpdateAction.DELETE, Side.SELL, "MSFT", D("410.01"), D(0)),
        (MDUpdateAction.NEW, Side.SELL, "AAPL", D("190.005"), D(100))]))
    md = decode.decode_md_incremental(x.toString(), "V1")
    assert not md.snapshot and md.entries == (
        bid("189.99", 300, action=MDUpdateAction.CHANGE, symbol="AAPL"),
        ask("410.01", 0, action=MDUpdateAction.DELETE, symbol="MSFT"),
        ask("190.005", 100, action=MDUpdateAction.NEW, symbol="AAPL"))

    y = on_the_wire(version, encode.encode_md_reject(version, "R1", "0", "unknown symbol ZZZZ"))
    assert decode.decode_md_reject(y.toString(), "V1") == MarketDataReject("V1", "R1", "0", "unknown symbol ZZZZ")


def test_a_snapshot_keeps_only_bids_and_offers_and_an_empty_book_is_a_book():
    raw = "8=FIX.4.4\x019=0\x0135=W\x0155=AAPL\x01268=3\x01269=2\x01270=190\x01271=5\x01269=0\x01270=189\x01" \
          "271=10\x01269=1\x01270=191\x01271=7\x0110=000\x01"
    md = decode.decode_md_snapshot(raw, "V")
    assert md.entries == (bid("189", 10), ask("191", 7))
    empty = decode.decode_md_snapshot("8=FIX.4.4\x0135=W\x0155=AAPL\x01268=0\x01", "V")
    assert empty.entries == () and empty.snapshot


# --------------------------------------------------------------------------- the consolidated book
def test_a_snapshot_replaces_the_venues_book_and_incrementals_change_it_level_by_level():
    q = Quotes()
    q.apply(snapshot("V1", "AAPL", bid("189.99", 500), bid("189.98", 1000), ask("190.01", 500)), T0)
    top = q.quote("V1", "AAPL")
    assert (top.bid, top.bid_size, top.ask, top.ask_size) == (D("189.99"), D(500), D("190.01"), D(500))
    t1 = T0 + timedelta(seconds=1)
    q.apply(incremental("V1", bid("189.99", 0, action=MDUpdateAction.DELETE, symbol="AAPL"),
                        ask("190.00", 200, symbol="AAPL"), bid("189.98", 700, action=MDUpdateAction.CHANGE,
                                                               symbol="AAPL")), t1)
    top = q.quote("V1", "AAPL")
    assert top.bids == ((D("189.98"), D(700)),) and top.asks == ((D("190.00"), D(200)), (D("190.01"), D(500)))
    assert top.received == t1
    q.apply(snapshot("V1", "AAPL", ask("190.05", 10)), T0 + timedelta(seconds=2))
    assert q.quote("V1", "AAPL").bids == () and q.quote("V1", "AAPL").bid is None


def test_a_quote_older_than_the_maximum_age_is_not_trusted():
    q = Quotes()
    q.apply(snapshot("V1", "AAPL", bid("189.99", 500), ask("190.01", 500)), T0)
    q.apply(snapshot("V2", "AAPL", bid("190.00", 300), ask("190.04", 300)), T0 + timedelta(seconds=4))
    now = T0 + timedelta(seconds=6)
    assert q.fresh("V1", "AAPL", now, timedelta(seconds=5)) is None
    assert q.fresh("V2", "AAPL", now, timedelta(seconds=5)).bid == D("190.00")
    assert q.best("AAPL", ["V1", "V2"], now, timedelta(seconds=5)) == (D("190.00"), D("190.04"))
    assert q.best("AAPL", ["V1", "V2"], T0 + timedelta(seconds=4), timedelta(seconds=5)) == (D("190.00"),
                                                                                            D("190.01"))


def test_a_venue_that_drops_loses_its_quotes():
    q = Quotes()
    q.apply(snapshot("V1", "AAPL", bid("189.99", 500)), T0)
    q.apply(snapshot("V2", "AAPL", bid("190.00", 300)), T0)
    q.drop_venue("V1")
    assert q.quote("V1", "AAPL") is None and q.quote("V2", "AAPL") is not None


# --------------------------------------------------------------------------- the core
class Clock:
    def __init__(self):
        self.t = T0

    def __call__(self):
        return self.t


def make_core(clock=None):
    venues = [Venue("V1", frozenset({"AAPL", "MSFT"}), md_depth=3), Venue("V2", frozenset({"AAPL"}),
                                                                          md_incremental=False),
              Venue("V3", frozenset({"AAPL"}), md_enabled=False)]
    return Core(venues, {"C1": ClientOptions()}, "T", clock=clock or Clock(),
                policy=RoutingPolicy(max_quote_age=timedelta(seconds=5)))


def test_a_venue_logging_on_is_asked_for_its_book_in_every_symbol_it_trades():
    core = make_core()
    out = core.handle(SessionStatus("V1", "venue", True))
    (req,) = out.actions
    assert isinstance(req, VenueMarketDataRequest)
    assert (req.venue, req.symbols, req.depth, req.subscribe, req.incremental) == ("V1", ("AAPL", "MSFT"), 3, True,
                                                                                 True)
    assert not core.handle(SessionStatus("V2", "venue", True)).actions[0].incremental
    assert core.handle(SessionStatus("V3", "venue", True)).actions == []  # market data off for V3
    again = core.handle(SessionStatus("V1", "venue", True)).actions[0]  # a reconnect subscribes again
    assert again.req_id != req.req_id


def test_quotes_feed_the_risk_reference_and_die_with_the_venues_session():
    clock = Clock()
    core = make_core(clock)
    core.handle(SessionStatus("V1", "venue", True))
    core.handle(SessionStatus("V2", "venue", True))
    core.handle(snapshot("V1", "AAPL", bid("189.99", 500), ask("190.01", 500)))
    core.handle(snapshot("V2", "AAPL", bid("190.00", 300), ask("190.04", 300)))
    assert core.risk_state.refs["AAPL"]["mid"] == (D("190.00") + D("190.01")) / 2
    assert [(r["venue"], r["bid"], r["ask"], r["fresh"]) for r in core.quote_table()] == [
        ("V1", D("189.99"), D("190.01"), True), ("V2", D("190.00"), D("190.04"), True)]
    clock.t += timedelta(seconds=6)
    assert [r["fresh"] for r in core.quote_table()] == [False, False]
    core.handle(SessionStatus("V2", "venue", False))
    assert [r["venue"] for r in core.quote_table()] == ["V1"]


def test_market_data_from_an_unknown_venue_is_ignored_and_a_refusal_is_logged():
    core = make_core()
    assert core.handle(snapshot("NOPE", "AAPL", bid("1", 1))).actions == []
    assert core.quote_table() == []
    out = core.handle(MarketDataReject("V1", "T-MD1", "0", "unknown symbol MSFT"))
    assert "V1 refused market data request T-MD1: unknown symbol MSFT" in out.warnings[0]


def test_incremental_differences_turn_the_old_view_into_the_new():
    old = (((D(10), D(5)), (D(9), D(5))), ((D(11), D(5)),))
    new = (((D(10), D(3)), (D("9.5"), D(1))), ())
    changes = diff_levels(old, new, "S")
    assert set(changes) == {(MDUpdateAction.DELETE, Side.BUY, "S", D(9), D(5)),
                            (MDUpdateAction.NEW, Side.BUY, "S", D("9.5"), D(1)),
                            (MDUpdateAction.CHANGE, Side.BUY, "S", D(10), D(3)),
                            (MDUpdateAction.DELETE, Side.SELL, "S", D(11), D(5))}


# --------------------------------------------------------------------------- the simulator's feed
CFG = SimulatorConfig(prices={"AAPL": D("190.00"), "MSFT": D("410.00")}, depth=3, level_size=D(500),
                      md_refresh_s=D(0))


@pytest.fixture(scope="module")
def venue(tmp_path_factory):
    base = tmp_path_factory.mktemp("md-sim")
    port = free_port()
    sim = VenueSimulator("MDSIM", port, CFG, base / "venue", counterparties=("FIXGW", "OTHER")).start()
    clients = {}

    def connect(version, sender="FIXGW"):
        if (sender, version) not in clients:
            clients[(sender, version)] = FixClient(version=version, sender=sender, target="MDSIM", port=port,
                                                   store_dir=base / f"c-{sender}-{version}").start(timeout=5)
        return clients[(sender, version)]

    yield sim, connect
    sim.stop()
    for c in clients.values():
        c.stop()


def wait_raw(client: FixClient, msg_type: str, n: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.raw_messages(msg_type)
        if len(found) >= n:
            return found
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} {msg_type} messages: {client.raw_messages(msg_type)}")


@pytest.mark.parametrize("version", VERSIONS)
def test_a_subscriber_gets_a_snapshot_then_incrementals_as_the_book_trades(venue, version):
    sim, connect = venue
    c = connect(version)
    other = connect(version, "OTHER")
    req = c.market_data_request(["AAPL", "MSFT"], depth=2)
    (w_aapl, w_msft) = [decode.decode_md_snapshot(r, "MDSIM") for r in wait_raw(c, "W", 2)][:2]
    assert (w_aapl.req_id, w_aapl.symbol, w_msft.symbol) == (req, "AAPL", "MSFT")
    assert w_aapl.entries == (bid("189.99", 500), bid("189.98", 1000), ask("190.01", 500), ask("190.02", 1000))

    # another firm's bid improves the book: one incremental, the new level
    cl = other.new_order("AAPL", "1", 200, "189.995")
    other.wait_exec(cl, "0")
    (x,) = [decode.decode_md_incremental(r, "MDSIM") for r in wait_raw(c, "X", 1)]
    assert x.req_id == req and set(x.entries) == {
        bid("189.995", 200, symbol="AAPL"),  # new best bid
        bid("189.98", 1000, action=MDUpdateAction.DELETE, symbol="AAPL")}  # pushed out of the top 2
    # it is canceled: the book is back as it was
    other.wait_exec(other.cancel(cl, "AAPL", "1", 200), "4")
    xs = [decode.decode_md_incremental(r, "MDSIM") for r in wait_raw(c, "X", 2)]
    assert set(xs[1].entries) == {bid("189.995", 200, action=MDUpdateAction.DELETE, symbol="AAPL"),
                                  bid("189.98", 1000, symbol="AAPL")}
    # a marketable order leaves no trace (the venue tops its synthetic levels up): nothing published
    published = sim.md_published
    other.wait_exec(other.new_order("AAPL", "1", 100, "190.05"), "2")
    time.sleep(0.1)
    assert sim.md_published == published
    c.market_data_request(["AAPL", "MSFT"], request_type="2", req_id=req)
    deadline = time.monotonic() + 2
    while sim.subscriptions() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sim.subscriptions()


@pytest.mark.parametrize("version", VERSIONS)
def test_a_snapshot_subscriber_gets_full_refreshes_and_errors_get_a_reject(venue, version):
    sim, connect = venue
    c = connect(version, "OTHER")
    req = c.market_data_request(["MSFT"], depth=1, incremental=False)
    before = len(wait_raw(c, "W", 1))
    cl = c.new_order("MSFT", "2", 100, "410.005")
    c.wait_exec(cl, "0")
    w = decode.decode_md_snapshot(wait_raw(c, "W", before + 1)[-1], "MDSIM")
    assert w.entries == (bid("409.99", 500), ask("410.005", 100))
    c.wait_exec(c.cancel(cl, "MSFT", "2", 100), "4")
    wait_raw(c, "W", before + 2)
    c.market_data_request(["MSFT"], request_type="2", req_id=req)

    c.market_data_request(["ZZZZ"])
    rej = c.wait_for(lambda m: m.get(35) == "Y", what="MarketDataRequestReject")
    assert rej[281] == "0" and "ZZZZ" in rej[58]
    dup = c.market_data_request(["AAPL"])
    c.market_data_request(["AAPL"], req_id=dup)
    rej = c.wait_for(lambda m: m.get(35) == "Y" and m.get(262) == dup, what="duplicate MDReqID reject")
    assert rej[281] == "1"
    c.market_data_request(["AAPL"], request_type="2", req_id=dup)


def test_snapshots_are_refreshed_periodically_while_subscribed(tmp_path):
    port = free_port()
    cfg = CFG.model_copy(update={"md_refresh_s": D("0.1")})
    with VenueSimulator("MDREF", port, cfg, tmp_path / "v") as sim:
        c = FixClient(version="FIX.4.4", sender="FIXGW", target="MDREF", port=port,
                      store_dir=tmp_path / "c").start(timeout=5)
        try:
            c.market_data_request(["AAPL"])
            assert len(wait_raw(c, "W", 4)) >= 4
        finally:
            c.stop()
        assert not sim.subscriptions()  # the session logged out: its subscription is gone


# --------------------------------------------------------------------------- the gateway
def test_the_gateway_subscribes_at_logon_and_keeps_each_venues_top_of_book(stack):
    gw = stack.gateway

    def table():
        return {(r["venue"], r["symbol"]): r for r in gw.engine.call(lambda core: core.quote_table())}

    deadline = time.monotonic() + 5
    while len(table()) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    quotes = table()
    assert set(quotes) == {("VENUE1", s) for s in ("AAPL", "MSFT", "IBM")} | {
        ("VENUE2", s) for s in ("AAPL", "MSFT", "ORCL", "XXXX")}
    v1 = quotes[("VENUE1", "AAPL")]
    assert (v1["bid"], v1["bid_size"], v1["ask"], v1["ask_size"], v1["fresh"]) == (D("189.99"), D(500),
                                                                                   D("190.01"), D(500), True)
    assert (quotes[("VENUE2", "AAPL")]["bid"], quotes[("VENUE2", "AAPL")]["ask"]) == (D("190.00"), D("190.04"))

    # a resting order at VENUE2 becomes its best bid, and the gateway sees it
    c = stack.client("CLIENT44")
    cl = c.new_order("ORCL", "1", 100, "119.99")
    c.wait_exec(cl, "0")
    deadline = time.monotonic() + 5
    while table()[("VENUE2", "ORCL")]["bid"] != D("119.99") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (table()[("VENUE2", "ORCL")]["bid"], table()[("VENUE2", "ORCL")]["bid_size"]) == (D("119.99"), D(100))
    c.wait_exec(c.cancel(cl, "ORCL", "1", 100), "4")
    refs = gw.engine.call(lambda core: dict(core.risk_state.refs["AAPL"]))
    assert refs["mid"] == (D("190.00") + D("190.01")) / 2  # VENUE2's bid, VENUE1's ask


from tests.fix_fixtures import stack  # noqa: E402,F401 - the shared gateway stack fixture
