"""State log records packed by msgspec (gateway/state/records.py, orders/packed.py): every field of an order comes
back exactly, every part of a record too, records that earlier versions pickled are still read, and a packed
record that does not hold what it should stops start-up with its place."""
from __future__ import annotations

import struct
import zlib
from datetime import datetime, timezone
from decimal import Decimal as D

import msgspec
import pytest

from gateway.state.log import StateLog
from gateway.state.records import RecordEncoder, State, StateLogError, load_record
from orders.model import CxlRejCode, OrdStatus, OrdType, RejectCode, Side, TimeInForce
from orders.packed import ORDER_FIELDS_TYPE, order_fields, order_from_fields
from orders.records import RejectedOrder
from orders.states import Child, ChildReplace, Event, Order, PendingReplace
from risk.state import OpenOrder
from tests.legacy_records import RecordPickler

UTC = timezone.utc


def every_field_set() -> Order:
    """An order whose every field holds something other than its default, with two children likewise."""
    def child(n: int) -> Child:
        return Child(child_id=f"O1.n{n}", venue=f"V{n}", qty=D("1E+2"), price=D("190.50"), ord_type=OrdType.LIMIT,
                     tif=TimeInForce.IOC, status=OrdStatus.PENDING_REPLACE, cum_qty=D("40"), notional=D("7620.0"),
                     cl_ord_id=f"O1.r{n}", venue_order_id=f"VO{n}", pending_cancel=f"O1.c{n}",
                     pending_replace=ChildReplace(f"O1.r{n + 2}", D("120"), None, OrdType.MARKET, TimeInForce.DAY),
                     cl_ord_ids=[f"O1.n{n}", f"O1.r{n}"], seen_exec_ids={"X1", "X2", f"X{n}"},
                     asked_at=datetime(2026, 12, 7, 14, 0, 1, 123456, tzinfo=UTC), status_asks=2, in_doubt="silent")

    return Order(order_id="O1", session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.SELL_SHORT, qty=D("200"),
                 ord_type=OrdType.LIMIT,
                 price=D("0.0001"), stop_px=D("189"), tif=TimeInForce.DAY, account="ACC", status=OrdStatus.PARTIALLY_FILLED,
                 cum_qty=D("80"), notional=D("15240.00"), pending_cl_ord_id="K1",
                 pending_replace=PendingReplace("R1", "O1.r3", D("250"), D("191"), OrdType.LIMIT, TimeInForce.DAY),
                 cancel_cause="end of day", risk_key="A1", exec_seq=7, child_seq=4, client_ids=["A0", "A1"],
                 accepted_at=datetime(2026, 12, 7, 14, 0, 0, 500, tzinfo=UTC), strategy="preferred:V2,V1",
                 children=[child(1), child(2)], reroutes=1, cancel_open=True, replace_mode="venue",
                 refusal=(CxlRejCode.TOO_LATE, "V1", "too late to cancel"),
                 released=(Event.VENUE_CANCELED, None, None))


def values(order: Order) -> str:
    """Every field, children's too, with its type: equal only if each came back exactly (Decimal text included)."""
    def typed(v):
        if type(v) is set:
            return set, sorted(v)
        if type(v) in (list, tuple):
            return type(v), [typed(x) for x in v]
        return type(v), v

    return repr([typed(v) for v in order_fields(order)])


def test_every_field_of_an_order_comes_back_exactly_from_its_packed_form():
    order = every_field_set()
    record = RecordEncoder().record("client:C1", 9, [(order, None)], [], None, [], None)
    back = load_record(record).orders[0][0]
    assert back == order and values(back) == values(order)
    assert str(back.qty) == "200" and str(back.children[0].qty) == "1E+2" and str(back.price) == "0.0001"
    assert back.accepted_at.tzinfo is UTC and back.children[0].asked_at == order.children[0].asked_at
    assert type(back.children[0].seen_exec_ids) is set and back.refusal[0] is CxlRejCode.TOO_LATE
    assert back.released == (Event.VENUE_CANCELED, None, None) and back.routes == []


def test_every_part_of_a_record_comes_back_as_the_log_reader_expects_it():
    order = every_field_set()
    open_order = OpenOrder("C1", "A1", "ACC", "AAPL", Side.BUY, D("200"), D("80"), D("190.5"))
    refused = RejectedOrder(order_id="O2", session="C1", cl_ord_id="B1", account=None, symbol="MSFT",
                            side=Side.BUY, qty=D("5"), price=D("1.10"), ord_type=OrdType.LIMIT, tif=TimeInForce.DAY,
                            received_at=datetime(2026, 12, 7, 14, 0, tzinfo=UTC), refused_by="risk: max_order_qty",
                            reject_code=next(iter(RejectCode)), text="order qty 5 exceeds 4", stop_px=None)
    controls = (((("symbol", "IBM"), "halt"),), ("C2",), (("C2", 3),), ("V2",))
    risk_day = ("2026-12-07", False, {"ACC": "15240.00"}, {"C1": "2026-12-07"})
    sends = [("client", "C1", "8=FIX.4.4\x019=5\x0135=8\x01"), ("venue", "V1", "8=FIX.4.2\x0135=D\x01")]
    rec = load_record(RecordEncoder().record("venue:V1", 12, [(order, open_order)], sends, controls, [],
                                             {"AAPL": D("190.50")}, risk_day, [refused]))
    assert (rec.origin, rec.seq) == ("venue:V1", 12) and rec.sends == sends and type(rec.sends[0]) is tuple
    assert rec.controls == controls and rec.trades == {"AAPL": D("190.50")} and str(rec.trades["AAPL"]) == "190.50"
    assert rec.risk_day == risk_day and rec.orders[0][1] == open_order and rec.rejected == [refused]
    state = State()
    state.apply(rec)
    assert state.controls == controls and state.open_risk == {"O1": open_order} and state.orders["O1"] == order
    assert state.rejected == {"O2": refused} and str(state.rejected["O2"].price) == "1.10"


def test_a_log_with_pickled_records_of_an_earlier_version_is_read_then_continued_packed(tmp_path):
    order = every_field_set()
    log = StateLog(tmp_path)
    log.open(State())
    log._encoder = RecordPickler()  # what the gateway wrote before records were packed
    log.append("client:C1", 3, [(order, None)], [], None, [], None)
    order.status, order.cum_qty = OrdStatus.FILLED, D("200")
    log._encoder = RecordEncoder()
    log.append("venue:V1", 4, [(order, None)], [], None, [], None)
    data = (tmp_path / "state.log").read_bytes()
    first = int.from_bytes(data[:4], "little")
    assert data[8:9] == b"\x80" and data[8 + first + 8:8 + first + 9] == b"\x01"  # pickled, then packed
    state = StateLog(tmp_path).recover()
    assert state.orders["O1"] == order and state.watermarks["venue:V1"][0] == 4


def test_a_packed_record_holding_a_value_of_the_wrong_type_stops_start_up_with_its_place(tmp_path):
    log = StateLog(tmp_path)
    log.open(State())
    log.append("client:C1", 3, [(every_field_set(), None)], [], None, [], None)
    first = (tmp_path / "state.log").stat().st_size
    plain = msgspec.msgpack.decode((tmp_path / "state.log").read_bytes()[8 + 1:])
    plain[3][0][0][5] = "two hundred"  # qty: not a Decimal's text
    body = b"\x01" + msgspec.msgpack.encode(plain)
    with open(tmp_path / "state.log", "ab") as f:
        f.write(struct.pack("<II", len(body), zlib.crc32(body)) + body)
    with pytest.raises(StateLogError, match=f"record at byte {first} cannot be read"):
        StateLog(tmp_path).recover()


def test_a_packed_order_is_smaller_than_its_pickled_record():
    order = every_field_set()
    packed = RecordEncoder().record("client:C1", 3, [(order, None)], [], None, [], None)
    pickled = RecordPickler().record("client:C1", 3, [(order, None)], [], None, [], None)
    assert len(packed) < len(pickled)


def test_order_fields_are_the_slim_fields_with_each_child_as_a_tuple():
    order = every_field_set()
    fields = order_fields(order)
    assert len(fields) == len(Order._slim_fields)
    children = fields[Order._slim_fields.index("children")]
    assert all(type(c) is tuple for c in children)
    packed = msgspec.msgpack.Encoder(decimal_format="string").encode(fields)
    assert order_from_fields(msgspec.msgpack.Decoder(ORDER_FIELDS_TYPE).decode(packed)) == order
