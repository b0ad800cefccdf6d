"""Drop-copy translation: every source/receiver version pair gives a copy its receiver's dictionary accepts,
marked as a copy, with the original's identifiers."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
import quickfix as fix

from dropcopy.spec import report_spec
from dropcopy.translate import Untranslatable, parse, source_version, translate
from orders.model import ExecKind, OrdStatus, RejectCode
from sessions.codec import encode, tagvalue
from sessions.fixsettings import BEGIN_STRING
from tests.test_codec import dictionaries, report

VERSIONS = ["FIX.4.2", "FIX.4.4", "FIX.5.0"]
PAIRS = [(s, t) for s in VERSIONS for t in VERSIONS]
SOH = "\x01"
# what a receiver de-duplicates and reconciles on: always the original's values
IDENTIFIERS = (17, 11, 37, 41, 1, 30, 54, 55, 32, 31, 14, 151, 6, 38, 44, 60, 58)


def wire(version: str, msg: fix.Message, sender="FIXGW", target="CLIENT", seq="7", extra_header=()) -> str:
    """The raw message as a session of ``version`` puts it on the wire (what the journal holds)."""
    h = msg.getHeader()
    h.setField(8, BEGIN_STRING[version])
    h.setField(49, sender)
    h.setField(56, target)
    h.setField(34, seq)
    h.setField(52, "20261124-06:31:02.123")
    for tag, value in extra_header:
        h.setField(tag, value)
    return msg.toString()


def source(version: str, **kw) -> str:
    return wire(version, encode.encode_exec_report(version, report(**kw)))


def validated(target: str, text: str) -> fix.Message:
    """Send ``text`` the way the drop-copy session does, then parse and validate it as the receiver would."""
    msg = fix.Message(text, False)
    raw = wire(target, msg, target="DC", seq="3")
    dds = dictionaries(target)
    parsed = fix.Message(raw, dds[0], dds[1], True) if len(dds) == 2 else fix.Message(raw, dds[0], True)
    fix.DataDictionary.validate(parsed, dds[0], dds[-1])
    return parsed


def fields_of(msg: fix.Message) -> dict[int, str]:
    return tagvalue.fields(msg)


KINDS = {
    "pending_new": dict(kind=ExecKind.PENDING_NEW, status=OrdStatus.PENDING_NEW, last_qty=D(0), last_px=D(0),
                        cum_qty=D(0), leaves_qty=D(300), avg_px=D(0)),
    "new": dict(kind=ExecKind.NEW, status=OrdStatus.NEW, last_qty=D(0), last_px=D(0), cum_qty=D(0),
                leaves_qty=D(300), avg_px=D(0)),
    "partial": dict(),
    "fill": dict(status=OrdStatus.FILLED, last_qty=D(200), cum_qty=D(300), leaves_qty=D(0), avg_px=D("190.0133333333")),
    "replaced": dict(kind=ExecKind.REPLACED, status=OrdStatus.NEW, orig_cl_ord_id="A0", cl_ord_id="A1",
                     last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(300), avg_px=D(0)),
    "canceled": dict(kind=ExecKind.CANCELED, status=OrdStatus.CANCELED, orig_cl_ord_id="A1", cl_ord_id="X1",
                     last_qty=D(0), last_px=D(0), leaves_qty=D(0)),
    "rejected": dict(kind=ExecKind.REJECTED, status=OrdStatus.REJECTED, reject_code=RejectCode.INCORRECT_QUANTITY,
                     text="quantity not positive", last_qty=D(0), last_px=D(0), cum_qty=D(0), leaves_qty=D(0),
                     avg_px=D(0)),
    "status": dict(kind=ExecKind.ORDER_STATUS, status=OrdStatus.PARTIALLY_FILLED, last_qty=D(0), last_px=D(0)),
    "expired": dict(kind=ExecKind.EXPIRED, status=OrdStatus.EXPIRED, last_qty=D(0), last_px=D(0), leaves_qty=D(0)),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("src, dst", PAIRS)
def test_every_report_kind_copies_valid_into_every_version_keeping_identifiers(src, dst, kind):
    raw = source(src, **KINDS[kind])
    original = parse(raw)
    copy = fields_of(validated(dst, translate(original, dst)))
    orig = dict(original)
    for tag in IDENTIFIERS:
        if tag in orig and tag in report_spec(dst).fields:
            assert copy.get(tag) == orig[tag], (tag, copy.get(tag), orig[tag])
    assert copy[39] == orig[39]
    assert (copy.get(797) == "Y") == (dst != "FIX.4.2")  # CopyMsgIndicator where FIX has it
    assert 97 not in copy and 43 not in copy
    assert copy[56] == "DC" and copy[34] == "3"  # the drop-copy session's header, not the original's


@pytest.mark.parametrize("src, dst", PAIRS)
def test_exec_type_maps_between_42_fills_and_44_trade(src, dst):
    for status, cum, leaves, want42 in ((OrdStatus.PARTIALLY_FILLED, D(100), D(200), "1"),
                                        (OrdStatus.FILLED, D(300), D(0), "2")):
        raw = source(src, status=status, cum_qty=cum, leaves_qty=leaves)
        copy = fields_of(validated(dst, translate(parse(raw), dst)))
        assert copy[150] == (want42 if dst == "FIX.4.2" else "F")
        assert copy.get(20) == ("0" if dst == "FIX.4.2" else None)


@pytest.mark.parametrize("src, dst", PAIRS)
def test_order_status_reply_maps_to_exec_type_i_and_back(src, dst):
    raw = source(src, **KINDS["status"])
    copy = fields_of(validated(dst, translate(parse(raw), dst)))
    if dst == "FIX.4.2":
        assert (copy[150], copy[20]) == ("1", "3")
    else:
        # a 4.2 status reply repeats OrdStatus in ExecType with ExecTransType 3 (Status): it reads as one
        assert copy[150] == "I"


@pytest.mark.parametrize("dst", VERSIONS)
def test_poss_resend_goes_in_the_header_only_when_asked(dst):
    raw = source("FIX.4.4")
    msg = validated(dst, translate(parse(raw), dst, poss_resend=True))
    assert msg.getHeader().getField(97) == "Y" and not msg.isSetField(97)
    assert not validated(dst, translate(parse(raw), dst)).getHeader().isSetField(97)


@pytest.mark.parametrize("dst", VERSIONS)
def test_reject_reason_the_receiver_lacks_becomes_its_other_code(dst):
    raw = source("FIX.5.0", **KINDS["rejected"])
    assert dict(parse(raw))[103] == "13"  # IncorrectQuantity, 4.4 and later
    copy = fields_of(validated(dst, translate(parse(raw), dst)))
    assert copy[103] == ("0" if dst == "FIX.4.2" else "13")
    assert copy[58] == "quantity not positive"


def test_original_header_possdup_and_sequence_never_leak_into_the_copy():
    raw = wire("FIX.4.4", encode.encode_exec_report("FIX.4.4", report()), seq="99",
               extra_header=((43, "Y"), (122, "20261124-06:30:00.000"), (50, "DESK")))
    text = translate(parse(raw), "FIX.4.4")
    assert all(f"{SOH}{t}=" not in SOH + text for t in (8, 9, 10, 34, 43, 49, 50, 52, 56, 122))


def test_venue_report_with_groups_binary_and_custom_tags_copies_without_them():
    # a venue's 4.4 fill: Parties group, MiscFees group, a custom tag, EncodedText (binary)
    body = ("35=8|37=V-9|11=O-1|17=VX1|150=F|39=1|55=AAPL|54=1|38=300|32=100|31=190.01|14=100|151=200|6=190.01|"
            "453=2|448=BRK1|447=D|452=1|448=TRD7|447=D|452=12|136=1|137=0.5|138=USD|139=1|9999=venue-private|"
            "354=3|355=abc|30=XNAS|60=20261124-06:31:02.456|")
    raw = wire("FIX.4.4", fix.Message(body.replace("|", SOH), False), sender="VENUE1", target="FIXGW")
    for dst in VERSIONS:
        copy = fields_of(validated(dst, translate(parse(raw), dst)))
        assert not {453, 448, 447, 452, 136, 137, 138, 139, 9999, 354, 355} & set(copy)
        assert (copy[17], copy[11], copy[37], copy[30], copy[32]) == ("VX1", "O-1", "V-9", "XNAS", "100")


@pytest.mark.parametrize("trans, exec_type, want", [("1", "2", "H"), ("2", "1", "G"), ("3", "1", "I")])
def test_fix42_exec_trans_type_cancel_correct_status_become_exec_types(trans, exec_type, want):
    body = (f"35=8|37=O1|17=E2|19=E1|20={trans}|150={exec_type}|39=1|55=AAPL|54=1|38=300|32=100|31=190|14=100|"
            f"151=200|6=190|")
    raw = wire("FIX.4.2", fix.Message(body.replace("|", SOH), False))
    for dst in ("FIX.4.4", "FIX.5.0"):
        assert fields_of(validated(dst, translate(parse(raw), dst)))[150] == want
    back = fields_of(validated("FIX.4.2", translate(parse(translate_44(raw)), "FIX.4.2")))
    assert back[20] == trans


def translate_44(raw42: str) -> str:
    """A 4.2 report as a 4.4 session would have sent it (to test the way back)."""
    return wire("FIX.4.4", fix.Message(translate(parse(raw42), "FIX.4.4"), False))


def test_fix42_ord_status_replaced_becomes_the_working_state():
    for cum, want in (("0", "0"), ("100", "1")):
        body = (f"35=8|37=O1|17=E3|20=0|150=5|39=5|41=A0|11=A1|55=AAPL|54=1|38=300|14={cum}|"
                f"151=200|6=0|")
        raw = wire("FIX.4.2", fix.Message(body.replace("|", SOH), False))
        copy = fields_of(validated("FIX.4.4", translate(parse(raw), "FIX.4.4")))
        assert (copy[150], copy[39], copy[41]) == ("5", want, "A0")


def test_untranslatable_reports_raise_instead_of_sending_an_invalid_copy():
    triggered = "35=8|37=O1|17=E4|150=L|39=0|55=AAPL|54=1|151=300|14=0|"  # 5.0's Triggered
    raw = wire("FIX.5.0", fix.Message(triggered.replace("|", SOH), False))
    assert fields_of(validated("FIX.5.0", translate(parse(raw), "FIX.5.0")))[150] == "L"
    with pytest.raises(Untranslatable, match="150=L"):
        translate(parse(raw), "FIX.4.4")
    no_exec_id = wire("FIX.4.4", encode.encode_exec_report("FIX.4.4", report()))
    pairs = [(t, v) for t, v in parse(no_exec_id) if t != 17]
    with pytest.raises(Untranslatable, match="17"):
        translate(pairs, "FIX.4.2")
    with pytest.raises(Untranslatable, match="not an ExecutionReport"):
        translate(parse(wire("FIX.4.4", fix.Message("35=D|11=A|".replace("|", SOH), False))), "FIX.4.4")
    with pytest.raises(Untranslatable, match="BeginString"):
        translate([(8, "FIX.4.1"), (35, "8")], "FIX.4.4")


def test_source_version_reads_begin_string_and_appl_ver_id():
    assert source_version(parse(source("FIX.4.2"))) == "FIX.4.2"
    assert source_version(parse(source("FIX.5.0"))) == "FIX.5.0"
    assert source_version([(8, "FIXT.1.1"), (35, "8"), (1128, "6")]) == "FIX.4.4"
