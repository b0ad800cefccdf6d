"""The codec: per-version encoding is valid against each version's data dictionary, decoding is exact."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
import quickfix as fix

from orders.actions import ClientCancelReject, ClientExecReport, VenueCancel, VenueDontKnow, VenueNewOrder
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, OrdType, RejectCode, Side, TimeInForce
from sessions.codec import decode, encode, tagvalue
from sessions.fixsettings import BEGIN_STRING, spec_path

VERSIONS = ["FIX.4.2", "FIX.4.4", "FIX.5.0"]
_DD = {}


def dictionaries(version):
    if version not in _DD:
        if version == "FIX.5.0":
            _DD[version] = (fix.DataDictionary(spec_path("FIXT11.xml")), fix.DataDictionary(spec_path("FIX50.xml")))
        else:
            name = "FIX42.xml" if version == "FIX.4.2" else "FIX44.xml"
            _DD[version] = (fix.DataDictionary(spec_path(name)),)
    return _DD[version]


def on_the_wire(version: str, msg: fix.Message) -> fix.Message:
    """Fill the header as a session would, serialise, and parse back with full validation."""
    h = msg.getHeader()
    h.setField(8, BEGIN_STRING[version])
    h.setField(49, "A")
    h.setField(56, "B")
    h.setField(34, "2")
    h.setField(52, tagvalue.utc_timestamp())
    raw = msg.toString()
    dds = dictionaries(version)
    parsed = fix.Message(raw, dds[0], dds[1], True) if len(dds) == 2 else fix.Message(raw, dds[0], True)
    fix.DataDictionary.validate(parsed, dds[0], dds[-1])  # raises on any missing required field or out-of-range value
    return parsed


def report(kind=ExecKind.TRADE, status=OrdStatus.PARTIALLY_FILLED, **kw) -> ClientExecReport:
    base = dict(session="C", order_id="O1", cl_ord_id="A1", orig_cl_ord_id=None, exec_id="O1.2", kind=kind,
                ord_status=status, symbol="AAPL", side=Side.BUY, order_qty=D(300), ord_type=OrdType.LIMIT,
                price=D("190.05"), tif=TimeInForce.DAY, account="ACC1", last_qty=D(100), last_px=D("190.01"),
                cum_qty=D(100), leaves_qty=D(200), avg_px=D("190.01"), last_mkt="VENUE1")
    base.update(kw)
    return ClientExecReport(**base)


@pytest.mark.parametrize("value, text", [(D("100"), "100"), (D("1E+2"), "100"), (D("190.010"), "190.01"),
                                         (D("0.00000001"), "0.00000001"), (D(1) / D(3), "0.3333333333")])
def test_decimals_are_written_without_exponent_or_trailing_zeros(value, text):
    assert tagvalue.fmt(value) == text


@pytest.mark.parametrize("version", VERSIONS)
def test_fill_report_is_valid_for_the_clients_version(version):
    msg = on_the_wire(version, encode.encode_exec_report(version, report()))
    assert msg.getField(39) == "1" and msg.getField(32) == "100" and msg.getField(30) == "VENUE1"
    assert msg.getField(150) == ("1" if version == "FIX.4.2" else "F")
    assert msg.isSetField(20) == (version == "FIX.4.2")


def test_validation_in_these_tests_catches_an_invalid_message():
    bad = encode.encode_exec_report("FIX.4.2", report())
    bad.removeField(20)
    with pytest.raises(fix.RequiredTagMissing):
        on_the_wire("FIX.4.2", bad)
    bad = encode.encode_exec_report("FIX.4.4", report())
    bad.setField(150, "1")  # 4.2's Partial fill does not exist in 4.4
    with pytest.raises(fix.IncorrectTagValue):
        on_the_wire("FIX.4.4", bad)


def test_fix42_full_fill_uses_exec_type_fill():
    r = report(status=OrdStatus.FILLED, cum_qty=D(300), leaves_qty=D(0))
    assert encode.encode_exec_report("FIX.4.2", r).getField(150) == "2"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code, v42, v44", [(RejectCode.UNKNOWN_SYMBOL, "1", "1"),
                                            (RejectCode.INCORRECT_QUANTITY, "0", "13"),
                                            (RejectCode.OTHER, "0", "99")])
def test_reject_reason_is_a_code_the_version_defines(version, code, v42, v44):
    r = report(kind=ExecKind.REJECTED, status=OrdStatus.REJECTED, reject_code=code, text="why",
               last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(0), avg_px=D(0))
    msg = on_the_wire(version, encode.encode_exec_report(version, r))
    assert msg.getField(103) == (v42 if version == "FIX.4.2" else v44) and msg.getField(58) == "why"
    assert not msg.isSetField(32)


@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_reject_is_valid_for_each_version(version):
    r = ClientCancelReject(session="C", cl_ord_id="X1", orig_cl_ord_id="GHOST", order_id="NONE",
                           ord_status=OrdStatus.REJECTED, response_to=CxlRejResponseTo.CANCEL,
                           reason=CxlRejCode.UNKNOWN_ORDER, text="unknown order")
    msg = on_the_wire(version, encode.encode_cancel_reject(version, r))
    assert (msg.getField(102), msg.getField(434), msg.getField(37)) == ("1", "1", "NONE")


@pytest.mark.parametrize("version", VERSIONS)
def test_venue_messages_are_valid_for_the_venues_version(version):
    nos = VenueNewOrder(venue="V", cl_ord_id="O1", symbol="AAPL", side=Side.SELL, qty=D(5), ord_type=OrdType.LIMIT,
                        price=D("1.5"), stop_px=None, tif=TimeInForce.IOC, account="A")
    msg = on_the_wire(version, encode.encode_venue_new_order(version, nos))
    assert (msg.getField(44), msg.getField(59), msg.isSetField(21)) == ("1.5", "3", version != "FIX.5.0")
    cxl = VenueCancel(venue="V", cl_ord_id="O1.c1", orig_cl_ord_id="O1", venue_order_id="VO", symbol="AAPL",
                      side=Side.SELL, qty=D(5))
    assert on_the_wire(version, encode.encode_venue_cancel(version, cxl)).getField(41) == "O1"
    dk = VenueDontKnow(venue="V", venue_order_id="VO", exec_id="E", symbol="AAPL", side=Side.BUY, last_qty=D(1),
                       last_px=D(2), text="no such order")
    assert on_the_wire(version, encode.encode_dont_know(version, dk)).getField(127) == "D"


@pytest.mark.parametrize("version", VERSIONS)
def test_new_order_decodes_to_one_domain_command_from_any_version(version):
    nos = VenueNewOrder(venue="V", cl_ord_id="A9", symbol="MSFT", side=Side.BUY, qty=D("250"),
                        ord_type=OrdType.LIMIT, price=D("410.10"), stop_px=None, tif=TimeInForce.GTC, account="ACC")
    msg = on_the_wire(version, encode.encode_venue_new_order(version, nos))
    cmd = decode.decode_new_order(msg, "CLIENT", 7)
    assert (cmd.cl_ord_id, cmd.symbol, cmd.side, cmd.qty, cmd.price, cmd.tif, cmd.account, cmd.recv_ns) == \
        ("A9", "MSFT", Side.BUY, D(250), D("410.1"), TimeInForce.GTC, "ACC", 7)


def test_undecodable_values_raise_quickfix_errors_so_quickfix_rejects_the_message():
    msg = encode.encode_venue_new_order("FIX.4.4", VenueNewOrder(
        venue="V", cl_ord_id="A", symbol="X", side=Side.BUY, qty=D(1), ord_type=OrdType.MARKET, price=None,
        stop_px=None, tif=TimeInForce.DAY, account=None))
    msg.setField(54, "7")  # valid FIX side we do not trade
    with pytest.raises(fix.IncorrectTagValue):
        decode.decode_new_order(msg, "C")
    msg.setField(54, "1")
    msg.setField(38, "lots")
    with pytest.raises(fix.IncorrectDataFormat):
        decode.decode_new_order(msg, "C")
    msg.removeField(38)
    with pytest.raises(fix.FieldNotFound):
        decode.decode_new_order(msg, "C")


@pytest.mark.parametrize("version", VERSIONS)
def test_venue_replace_is_valid_and_decodes_back_as_a_replace_request(version):
    from orders.actions import VenueReplace
    vr = VenueReplace(venue="V", cl_ord_id="O1.r1", orig_cl_ord_id="O1", venue_order_id="VO", symbol="AAPL",
                      side=Side.BUY, qty=D(200), ord_type=OrdType.LIMIT, price=D("186.5"), tif=TimeInForce.DAY,
                      account="ACC")
    msg = on_the_wire(version, encode.encode_venue_replace(version, vr))
    req = decode.decode_replace_request(msg, "C")
    assert (req.cl_ord_id, req.orig_cl_ord_id, req.qty, req.price, req.side) == ("O1.r1", "O1", D(200), D("186.5"),
                                                                                 Side.BUY)


@pytest.mark.parametrize("version", ["FIX.4.4", "FIX.5.0"])
def test_mass_cancel_report_is_valid_where_the_version_has_it(version):
    from orders.actions import ClientMassCancelReport
    r = ClientMassCancelReport(session="C", cl_ord_id="Q1", mass_order_id="T-M1", request_type="7", response="7",
                               affected=3)
    msg = on_the_wire(version, encode.encode_mass_cancel_report(version, r))
    assert (msg.getField(531), msg.getField(533)) == ("7", "3")


def test_venue_cancel_reject_says_whether_it_answers_a_cancel_or_a_replace():
    from orders.model import CxlRejResponseTo
    f = {35: "9", 11: "X", 41: "Y", 39: "0", 434: "2", 102: "0"}
    assert decode.decode_venue_cancel_reject(f, "V").response_to is CxlRejResponseTo.REPLACE
    f[434] = "1"
    assert decode.decode_venue_cancel_reject(f, "V").response_to is CxlRejResponseTo.CANCEL


# The exact text of each kind of execution report, per version, as the engine records and sends it (the header is
# quickfix's). Pinned so a faster encoder cannot change a byte: field order included.
_REPORT_CASES = {
    "fill": dict(),
    "pending_new": dict(kind=ExecKind.PENDING_NEW, status=OrdStatus.PENDING_NEW, last_qty=D(0), last_px=D(0),
                        cum_qty=D(0), leaves_qty=D(300), avg_px=D(0), last_mkt=None),
    "full_fill": dict(status=OrdStatus.FILLED, cum_qty=D(300), leaves_qty=D(0), last_qty=D(200)),
    "reject": dict(kind=ExecKind.REJECTED, status=OrdStatus.REJECTED, last_qty=D(0), last_px=D(0), cum_qty=D(0),
                   leaves_qty=D(0), avg_px=D(0), last_mkt=None, reject_code=RejectCode.EXCEEDS_LIMIT,
                   text="max_order_qty: 300 exceeds 100\x01x"),
    "replaced": dict(kind=ExecKind.REPLACED, status=OrdStatus.NEW, orig_cl_ord_id="A0", last_qty=D(0),
                     last_px=D(0), cum_qty=D(0), leaves_qty=D(300), avg_px=D(0), last_mkt=None, account=None),
    "status": dict(kind=ExecKind.ORDER_STATUS, status=OrdStatus.NEW, ord_type=OrdType.MARKET, price=None,
                   last_mkt=None),
}
_REPORT_TEXT = {
    ("fill", "FIX.4.2"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x0120=0\x01150=1\x0139=1\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x0132=100\x0131=190.01\x0130=VENUE1\x01151=200\x0114=100\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("fill", "FIX.4.4"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=F\x0139=1\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x0132=100\x0131=190.01\x0130=VENUE1\x01151=200\x0114=100\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("fill", "FIX.5.0"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=F\x0139=1\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x0132=100\x0131=190.01\x0130=VENUE1\x01151=200\x0114=100\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("pending_new", "FIX.4.2"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x0120=0\x01150=A\x0139=A\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x01151=300\x0114=0\x016=0\x0160=20261203-12:00:00.000\x01',
    ("pending_new", "FIX.4.4"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=A\x0139=A\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x01151=300\x0114=0\x016=0\x0160=20261203-12:00:00.000\x01',
    ("pending_new", "FIX.5.0"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=A\x0139=A\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x01151=300\x0114=0\x016=0\x0160=20261203-12:00:00.000\x01',
    ("full_fill", "FIX.4.2"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x0120=0\x01150=2\x0139=2\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x0132=200\x0131=190.01\x0130=VENUE1\x01151=0\x0114=300\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("full_fill", "FIX.4.4"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=F\x0139=2\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x0132=200\x0131=190.01\x0130=VENUE1\x01151=0\x0114=300\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("full_fill", "FIX.5.0"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=F\x0139=2\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x0132=200\x0131=190.01\x0130=VENUE1\x01151=0\x0114=300\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("reject", "FIX.4.2"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x0120=0\x01150=8\x0139=8\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x01151=0\x0114=0\x016=0\x01103=3\x0158=max_order_qty: 300 exceeds 100 x\x0160=20261203-12:00:00.000\x01',
    ("reject", "FIX.4.4"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=8\x0139=8\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x01151=0\x0114=0\x016=0\x01103=3\x0158=max_order_qty: 300 exceeds 100 x\x0160=20261203-12:00:00.000\x01',
    ("reject", "FIX.5.0"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=8\x0139=8\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x011=ACC1\x01151=0\x0114=0\x016=0\x01103=3\x0158=max_order_qty: 300 exceeds 100 x\x0160=20261203-12:00:00.000\x01',
    ("replaced", "FIX.4.2"): '35=8\x0137=O1\x0111=A1\x0141=A0\x0117=O1.2\x0120=0\x01150=5\x0139=0\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x01151=300\x0114=0\x016=0\x0160=20261203-12:00:00.000\x01',
    ("replaced", "FIX.4.4"): '35=8\x0137=O1\x0111=A1\x0141=A0\x0117=O1.2\x01150=5\x0139=0\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x01151=300\x0114=0\x016=0\x0160=20261203-12:00:00.000\x01',
    ("replaced", "FIX.5.0"): '35=8\x0137=O1\x0111=A1\x0141=A0\x0117=O1.2\x01150=5\x0139=0\x0155=AAPL\x0154=1\x0138=300\x0140=2\x0144=190.05\x0159=0\x01151=300\x0114=0\x016=0\x0160=20261203-12:00:00.000\x01',
    ("status", "FIX.4.2"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x0120=3\x01150=0\x0139=0\x0155=AAPL\x0154=1\x0138=300\x0140=1\x0159=0\x011=ACC1\x01151=200\x0114=100\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("status", "FIX.4.4"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=I\x0139=0\x0155=AAPL\x0154=1\x0138=300\x0140=1\x0159=0\x011=ACC1\x01151=200\x0114=100\x016=190.01\x0160=20261203-12:00:00.000\x01',
    ("status", "FIX.5.0"): '35=8\x0137=O1\x0111=A1\x0117=O1.2\x01150=I\x0139=0\x0155=AAPL\x0154=1\x0138=300\x0140=1\x0159=0\x011=ACC1\x01151=200\x0114=100\x016=190.01\x0160=20261203-12:00:00.000\x01',
}


@pytest.mark.parametrize("case, version", sorted(_REPORT_TEXT))
def test_each_execution_report_has_exactly_its_versions_fields_in_order(case, version, monkeypatch):
    monkeypatch.setattr(encode, "utc_timestamp", lambda: "20261203-12:00:00.000")
    assert encode.encode_exec_report.text(version, report(**_REPORT_CASES[case])) == _REPORT_TEXT[(case, version)]
