"""The intake rule: whatever the decoder accepts from a client, every encoder can write back, exactly.

Wide generated inputs (hypothesis) go through the client-side decoders; each accepted command is run
through the core and every action it yields is encoded in every FIX version and set into a quickfix
Message as the sender would. Values the gateway could not write back are refused by the decoder with the
quickfix exception that makes quickfix answer with a session Reject naming the tag.
"""
from __future__ import annotations

from decimal import Decimal as D

import pytest
import quickfix as fix
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.config import parse_config
from desk.core import Core
from desk.options import ClientOptions
from orders.actions import (
    ClientCancelReject, ClientExecReport, ClientMassCancelReport, VenueCancel, VenueDontKnow, VenueNewOrder,
    VenueReplace,
)
from orders.commands import CancelRequest, ChildNotSent, NewOrder, ReplaceRequest, SessionStatus
from orders.model import CxlRejCode, CxlRejResponseTo, ExecKind, OrdStatus, OrdType, Side, TimeInForce
from routing.router import RoutingPolicy, Venue
from sessions.codec import decode, encode, tagvalue
from sessions.gateway_app import client_command
from sessions.outbound import Outbound

VERSIONS = tagvalue.VERSIONS
REFUSED = (fix.FieldNotFound, fix.IncorrectDataFormat, fix.IncorrectTagValue)
ENCODERS = {ClientExecReport: encode.encode_exec_report, ClientCancelReject: encode.encode_cancel_reject,
            ClientMassCancelReport: encode.encode_mass_cancel_report, VenueNewOrder: encode.encode_venue_new_order,
            VenueCancel: encode.encode_venue_cancel, VenueReplace: encode.encode_venue_replace,
            VenueDontKnow: encode.encode_dont_know}

# Wide inputs: any text (lone surrogates included: what quickfix hands over for bytes that are not UTF-8),
# mostly-plausible identifiers, and numbers in every shape Decimal or a sender might produce.
surrogate = st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)])  # st.characters() leaves these out
any_text = st.text(st.one_of(st.characters(), surrogate), min_size=1, max_size=12)
ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
odd_text = st.one_of(any_text, st.sampled_from(["A\udcff\udcfe", "caf\u00e9", "a\tb"]))


def mostly(usual, odd, one_in: int):
    """``odd`` one time in ``one_in``, else ``usual``: plausible enough that many examples are accepted."""
    return st.integers(0, one_in - 1).flatmap(lambda i: odd if i == 0 else usual)


identifier = mostly(ascii_text, odd_text, 10)
plain_number = st.one_of(  # what a sender might write: digits, a point, a sign, of any size and precision
    st.decimals(min_value=D("-1e20"), max_value=D("1e20"), allow_nan=False, allow_infinity=False).map(
        lambda d: format(d, "f")),
    st.integers(min_value=-10**35, max_value=10**35).map(str),
    st.builds(lambda i, f: f"{i}.{f}", st.integers(min_value=0, max_value=10**16),
              st.from_regex(r"[0-9]{0,10}", fullmatch=True)),
)
odd_number = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),  # exponents, NaN, Infinity
    st.sampled_from(["1e5", "1E+2", "NaN", "Infinity", "-0", "0.0", "1_000", " 5", "+5", "1.", ".5", ".", "-",
                     "", "1" + "0" * 30, "123456789012345678901234567890", "0." + "0" * 40 + "1"]),
)
number = mostly(plain_number, odd_number, 6)


def new_order_fields(cl, symbol, qty, price, account, stop_px=None) -> dict[int, str]:
    f = {35: "D", 34: "7", 11: cl, 55: symbol, 54: "1", 38: qty, 40: "2", 44: price}
    if account is not None:
        f[1] = account
    if stop_px is not None:
        f[99] = stop_px
    return f


def encode_everywhere(actions) -> None:
    """Encode each action in every version as Outbound does, and hand the text to the binding as the sender
    does (``setString``): neither may raise."""
    msg = fix.Message()
    for action in actions:
        encoder = ENCODERS.get(type(action))
        if encoder is None:
            continue
        for version in VERSIONS:
            text = encode.check_encodable(encoder.text(version, action))
            msg.setString(text, False)


def core_for(symbol: str) -> Core:
    core = Core([Venue("V1", frozenset({symbol, "AAPL"}))], {"C1": ClientOptions()}, "T")
    core.handle(SessionStatus("V1", "venue", True))
    return core


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cl=identifier, symbol=identifier, account=st.none() | identifier, qty=number, price=number,
       stop_px=st.none() | number)
def test_any_new_order_the_decoder_accepts_can_be_answered_and_forwarded_in_every_version(
        cl, symbol, account, qty, price, stop_px):
    try:
        cmd = client_command(new_order_fields(cl, symbol, qty, price, account, stop_px), "C1")
    except REFUSED as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("accepted")
    for value in (cmd.cl_ord_id, cmd.symbol, cmd.account or "A"):
        assert decode.printable_ascii(value)
    for value in (cmd.qty, cmd.price, cmd.stop_px):
        if value is not None:
            assert D(tagvalue.fmt(value)) == value  # written back exactly, never rounded
    out = core_for(cmd.symbol).handle(cmd)
    assert out.actions, "every accepted order gets an answer"
    encode_everywhere(out.actions)


@settings(max_examples=200, deadline=None)
@given(cl=identifier, orig=st.one_of(st.just("SEED"), identifier), symbol=identifier,
       account=st.none() | identifier, qty=number, price=number, msg_type=st.sampled_from(["F", "G", "H", "q"]))
def test_any_cancel_replace_status_or_mass_cancel_the_decoder_accepts_can_be_answered(
        cl, orig, symbol, account, qty, price, msg_type):
    f = {35: msg_type, 34: "9", 11: cl, 41: orig, 55: symbol, 54: "1", 38: qty, 40: "2", 44: price, 530: "7",
         37: orig}
    if account is not None:
        f[1] = account
    try:
        cmd = client_command(f, "C1")
    except REFUSED as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event(f"accepted {msg_type}")
    symbol = cmd.symbol or "AAPL"
    core = core_for(symbol)
    # the order it refers to (when its OrigClOrdID is "SEED"; otherwise it is answered as unknown)
    encode_everywhere(core.handle(NewOrder(session="C1", cl_ord_id="SEED", symbol=symbol, side=Side.BUY,
                                           qty=D(1000), ord_type=OrdType.LIMIT, price=D(10))).actions)
    out = core.handle(cmd)
    assert out.actions, "every accepted request gets an answer"
    encode_everywhere(out.actions)
    # and as if it were for an order the gateway knows: the echoed fields in every answer it could get
    if isinstance(cmd, (CancelRequest, ReplaceRequest)):
        report = ClientExecReport(
            session="C1", order_id="O1", cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=cmd.orig_cl_ord_id, exec_id="E1",
            kind=ExecKind.REPLACED, ord_status=OrdStatus.NEW, symbol=cmd.symbol, side=Side.BUY,
            order_qty=getattr(cmd, "qty", D(1)), ord_type=OrdType.LIMIT, price=getattr(cmd, "price", None),
            tif=TimeInForce.DAY, account=cmd.account, last_qty=D(0), last_px=D(0), cum_qty=D(0),
            leaves_qty=getattr(cmd, "qty", D(1)), avg_px=D(0))
        reject = ClientCancelReject(session="C1", cl_ord_id=cmd.cl_ord_id, orig_cl_ord_id=cmd.orig_cl_ord_id,
                                    order_id="O1", ord_status=OrdStatus.NEW, response_to=CxlRejResponseTo.CANCEL,
                                    reason=CxlRejCode.TOO_LATE, text="x", account=cmd.account)
        encode_everywhere([report, reject])


@pytest.mark.parametrize("tag, value", [(11, "A\udcff\udcfe"), (55, "caf\u00e9"), (1, "tab\there"), (100, "\x7f")])
def test_a_string_outside_printable_ascii_is_refused_as_incorrect_data_format_naming_its_tag(tag, value):
    f = new_order_fields("C1", "AAPL", "100", "10", "ACC")
    f[tag] = value
    with pytest.raises(fix.IncorrectDataFormat) as refused:
        client_command(f, "C1")
    assert str(tag) in str(refused.value)


@pytest.mark.parametrize("tag, qty, price, refusal", [
    (38, "1" + "0" * 30, "10", fix.IncorrectTagValue),  # above max_qty
    (44, "100", "123456789012345678901234567890", fix.IncorrectTagValue),  # above max_price
    (44, "100", "10.123456789", fix.IncorrectTagValue),  # 9 decimal places, max_decimals is 8
    (38, "1e5", "10", fix.IncorrectDataFormat),  # no exponents in FIX
    (38, "1_000", "10", fix.IncorrectDataFormat),
    (44, "100", "NaN", fix.IncorrectDataFormat),
])
def test_a_number_beyond_the_limits_or_not_in_fix_format_is_refused_naming_its_tag(tag, qty, price, refusal):
    with pytest.raises(refusal) as refused:
        client_command(new_order_fields("C1", "AAPL", qty, price, None), "C1")
    assert str(tag) in str(refused.value)


def test_trailing_zeros_do_not_count_as_decimal_places_and_limits_are_configurable():
    cmd = client_command(new_order_fields("C1", "AAPL", "100.000000000000", "10.50000000000", None), "C1")
    assert (cmd.qty, cmd.price) == (D(100), D("10.5"))
    tight = decode.IntakeLimits(max_qty=D(1000), max_price=D(100), max_decimals=2)
    with pytest.raises(fix.IncorrectTagValue):
        client_command(new_order_fields("C1", "AAPL", "1001", "10", None), "C1", limits=tight)
    with pytest.raises(fix.IncorrectTagValue):
        client_command(new_order_fields("C1", "AAPL", "100", "10.125", None), "C1", limits=tight)


def test_the_limits_are_read_from_gateway_cfg_and_capped_at_what_the_codec_writes_exactly(tmp_path):
    cfg = parse_config("[limits]\nmax_qty = 5000\nmax_decimals = 2\n", tmp_path, env={})
    assert (cfg.limits.max_qty, cfg.limits.max_price, cfg.limits.max_decimals) == (D(5000), D(10) ** 12, 2)
    from gateway.config import ConfigError
    for bad in ("max_qty = 1e16", "max_decimals = 11", "max_price = 0"):
        with pytest.raises(ConfigError, match="limits"):
            parse_config(f"[limits]\n{bad}\n", tmp_path, env={})


def test_free_text_outside_ascii_is_written_as_question_marks_not_refused():
    report = ClientExecReport(
        session="C1", order_id="O1", cl_ord_id="A1", orig_cl_ord_id=None, exec_id="E1", kind=ExecKind.REJECTED,
        ord_status=OrdStatus.REJECTED, symbol="AAPL", side=Side.BUY, order_qty=D(1), ord_type=OrdType.LIMIT,
        price=D(1), tif=TimeInForce.DAY, account=None, last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(0),
        avg_px=D(0), text="rejected by V1: pr\u00e9sent \udcff")
    text = encode.encode_exec_report.text("FIX.4.4", report)
    assert "\x0158=rejected by V1: pr?sent ?\x01" in text
    bmr = encode.encode_business_reject("D", "5", "reason \u00e9", ref_id="A\udcff")
    assert "379=A?" in bmr.toString() and "58=reason ?" in bmr.toString()


def test_outbound_refuses_a_text_the_session_cannot_carry_on_the_core_thread_naming_the_tag():
    outbound = Outbound({"C1": fix.SessionID("FIX.4.4", "FIXGW", "C1")}, {})
    report = ClientExecReport(
        session="C1", order_id="O1", cl_ord_id="A\udcff", orig_cl_ord_id=None, exec_id="E1", kind=ExecKind.NEW,
        ord_status=OrdStatus.NEW, symbol="AAPL", side=Side.BUY, order_qty=D(1), ord_type=OrdType.LIMIT,
        price=D(1), tif=TimeInForce.DAY, account=None, last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(1),
        avg_px=D(0))
    with pytest.raises(encode.Unencodable) as refused:
        outbound.encode(report)
    assert refused.value.tag == "11"
    with pytest.raises(TypeError):  # what the sender thread met before: the binding's string setter
        fix.Message().setString("35=8\x0111=A\udcff\x01", False)


# ------------------------------------------------------------------ the core's side of the safety net
def two_venue_core(max_reroutes=0) -> Core:
    core = Core([Venue("V1", frozenset({"AAPL"})), Venue("V2", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T",
                policy=RoutingPolicy(max_reroutes=max_reroutes))
    for name in ("V1", "V2"):
        core.handle(SessionStatus(name, "venue", True))
    return core


def place(core) -> VenueNewOrder:
    out = core.handle(NewOrder(session="C1", cl_ord_id="A1", symbol="AAPL", side=Side.BUY, qty=D(100),
                               ord_type=OrdType.LIMIT, price=D(10)))
    return next(a for a in out.actions if type(a) is VenueNewOrder)


def test_a_child_that_could_not_be_sent_is_rejected_to_the_client_and_nothing_is_left_pending():
    core = two_venue_core()
    child = place(core)
    out = core.handle(ChildNotSent(child.venue, child.cl_ord_id, "D", "not sent to V1: internal error (X)"))
    report = next(a for a in out.actions if type(a) is ClientExecReport)
    assert (report.kind, report.cl_ord_id) == (ExecKind.REJECTED, "A1") and "not sent to V1" in report.text
    order = core.order_for_client("C1", "A1")
    assert not order.is_open and not order.live_children


def test_a_child_that_could_not_be_sent_is_routed_again_when_re_routing_is_on():
    core = two_venue_core(max_reroutes=1)
    child = place(core)
    out = core.handle(ChildNotSent(child.venue, child.cl_ord_id, "D", "not sent"))
    again = [a for a in out.actions if type(a) is VenueNewOrder]
    assert [a.venue for a in again] == ["V2" if child.venue == "V1" else "V1"]
    assert not [a for a in out.actions if type(a) is ClientExecReport]


def test_a_cancel_that_could_not_be_sent_is_refused_to_the_client_and_the_order_works_on():
    core = two_venue_core()
    child = place(core)
    core.handle(_venue_ack(child))
    out = core.handle(CancelRequest(session="C1", cl_ord_id="X1", orig_cl_ord_id="A1", symbol="AAPL",
                                    side=Side.BUY))
    cancel = next(a for a in out.actions if type(a) is VenueCancel)
    out = core.handle(ChildNotSent(cancel.venue, cancel.cl_ord_id, "F", "not sent to V1: internal error (X)",
                                   orig_cl_ord_id=cancel.orig_cl_ord_id))
    reject = next(a for a in out.actions if type(a) is ClientCancelReject)
    assert reject.cl_ord_id == "X1" and "not sent to V1" in reject.text
    assert core.order_for_client("C1", "A1").status is OrdStatus.NEW


def _venue_ack(child: VenueNewOrder):
    from orders.commands import VenueExecution
    return VenueExecution(venue=child.venue, cl_ord_id=child.cl_ord_id, orig_cl_ord_id=None, venue_order_id="VO1",
                          exec_id="E1", kind=ExecKind.NEW, ord_status=OrdStatus.NEW, symbol="AAPL", side=Side.BUY,
                          last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(100))
