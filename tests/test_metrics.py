"""The core thread's own bookkeeping: its lock-free histogram exposes exactly what prometheus-client's
Histogram would, the risk chain is timed once per check, and what it holds stays out of the garbage
collector's full passes."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.observability.metrics import CoreHistogram

BUCKETS = (0.0001, 0.001, 0.01)
VALUES = (0.00005, 0.0001, 0.0005, 0.001, 0.002, 0.01, 0.5, 2.0)  # bounds themselves included


def _series(registry) -> list[str]:
    return sorted(line for line in generate_latest(registry).decode().splitlines()
                  if line.startswith("h_") and "_created" not in line)


def test_a_core_histogram_reads_like_a_prometheus_histogram_with_the_same_observations():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    core = CoreHistogram("h", "doc", ("hop",), buckets=BUCKETS, registry=ours)
    reference = Histogram("h", "doc", ["hop"], buckets=BUCKETS, registry=theirs)
    for i, v in enumerate(VALUES):
        hop = "a" if i % 3 else "b"
        core.labels(hop).observe(v)
        reference.labels(hop).observe(v)
    assert _series(ours) == _series(theirs)


def test_an_unlabelled_core_histogram_observes_directly():
    registry = CollectorRegistry()
    h = CoreHistogram("h", "doc", buckets=BUCKETS, registry=registry)
    h.observe(0.0005)
    assert 'h_bucket{le="0.001"} 1.0' in _series(registry)
    assert "h_count 1.0" in _series(registry)


RULES = """
chain = ["kill_switch", "max_order_qty", "max_position"]
[limits]
max_order_qty = 5000
max_position = 20000
"""


class _Outbound:
    """Stands in for the sessions: takes every message, sends nothing."""

    def encode(self, action):
        return None

    def perform(self, action):
        return True


def test_the_engine_times_the_risk_chain_once_per_new_order_and_replace():
    from decimal import Decimal as D

    from gateway.observability import metrics
    from gateway.process.engine import Engine
    from risk.engine import RiskEngine
    from risk.rules import load_rules
    from desk.core import Core
    from desk.options import ClientOptions
    from orders.commands import NewOrder, ReplaceRequest, SessionStatus, VenueExecution
    from orders.model import ExecKind, OrdStatus, OrdType, Side
    from routing.router import Venue

    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T",
                risk=RiskEngine(load_rules(RULES, "test")))
    engine = Engine(core, _Outbound())
    engine._handle(SessionStatus("V1", "venue", True))
    counts = metrics.RISK_CHECK_SECONDS.labels()
    before = sum(counts.counts)
    out = engine._handle(NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100),
                                  ord_type=OrdType.LIMIT, price=D(190)))
    assert len(out.risk_ns) == 1 and out.risk_ns[0] > 0
    order = core.order_for_client("C1", "A1")
    engine._handle(VenueExecution(venue="V1", cl_ord_id=order.venue_cl_ord_id, orig_cl_ord_id=None,
                                  venue_order_id="VO1", exec_id="X1", kind=ExecKind.NEW, ord_status=OrdStatus.NEW,
                                  symbol="AAPL", side=Side.BUY, last_qty=D(0), last_px=D(0), cum_qty=D(0),
                                  leaves_qty=D(100)))
    out = engine._handle(ReplaceRequest(session="C1", cl_ord_id="A2", orig_cl_ord_id="A1", symbol="AAPL",
                                        side=Side.BUY, qty=D(200), ord_type=OrdType.LIMIT, price=D(190)))
    assert len(out.risk_ns) == 1
    assert sum(counts.counts) - before == 2


def test_the_core_thread_keeps_the_orders_it_holds_out_of_the_collectors_full_passes(monkeypatch):
    import gc
    from decimal import Decimal as D

    from gateway.process.engine import Engine
    from desk.core import Core
    from desk.options import ClientOptions
    from orders.commands import NewOrder, SessionStatus
    from orders.model import OrdType, Side
    from routing.router import Venue

    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    engine = Engine(core, _Outbound())
    monkeypatch.setattr(Engine, "FREEZE_EVERY", 50)
    gc.collect()
    gc.unfreeze()  # (what earlier tests froze, back in the collector's reach)
    try:
        engine.start()
        engine.request(SessionStatus("V1", "venue", True))
        for i in range(120):
            engine.submit(NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(10),
                                   ord_type=OrdType.LIMIT, price=D(190)))
        engine.call(lambda c: None)  # the 122nd item: everything before it was handled
        order = core.order_for_client("C1", "A0")
        assert gc.is_tracked(order) and gc.get_freeze_count() > 0
        assert not any(o is order for o in gc.get_objects())  # in no generation: frozen
    finally:
        engine.stop()
        gc.unfreeze()


def test_the_order_flow_leaves_no_reference_cycles_for_the_collector():
    """What the core thread freezes is never collected as a cycle: the flow must not make any."""
    import gc
    from decimal import Decimal as D

    from gateway.process.engine import Engine
    from desk.core import Core
    from desk.options import ClientOptions
    from orders.commands import NewOrder, SessionStatus, VenueExecution
    from orders.model import ExecKind, OrdStatus, OrdType, Side
    from routing.router import Venue

    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    engine = Engine(core, _Outbound())
    engine._handle(SessionStatus("V1", "venue", True))
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for i in range(200):
            engine._handle(NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(100),
                                    ord_type=OrdType.LIMIT, price=D(190)))
            child = core.order_for_client("C1", f"A{i}").venue_cl_ord_id
            for n, kind in enumerate((ExecKind.NEW, ExecKind.TRADE)):
                trade = kind is ExecKind.TRADE
                engine._handle(VenueExecution(
                    venue="V1", cl_ord_id=child, orig_cl_ord_id=None, venue_order_id=f"VO{i}", exec_id=f"X{i}.{n}",
                    kind=kind, ord_status=OrdStatus.FILLED if trade else OrdStatus.NEW, symbol="AAPL", side=Side.BUY,
                    last_qty=D(100) if trade else D(0), last_px=D(190) if trade else D(0),
                    cum_qty=D(100) if trade else D(0), leaves_qty=D(0) if trade else D(100)))
        assert core.order_for_client("C1", "A199").status is OrdStatus.FILLED
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()
