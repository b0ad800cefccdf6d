"""The front door's FIX framing check (gateway/security/framing.py): quickfix's message boundaries, a size limit, garbage."""
from __future__ import annotations

import pytest

from gateway.security.framing import GARBAGE, TOO_LARGE, FrameChecker, FrameError, logon_fields

SOH = "\x01"


def message(body: str, begin: str = "FIX.4.4") -> bytes:
    body = body.replace("|", SOH)
    head = f"8={begin}{SOH}9={len(body)}{SOH}{body}"
    checksum = sum(head.encode()) % 256
    return f"{head}10={checksum:03d}{SOH}".encode()


LOGON = message("35=A|34=1|49=CLIENT44|52=20240502-07:30:01.123|56=FIXGW|98=0|108=30|")
ORDER = message("35=D|34=2|49=CLIENT44|56=FIXGW|11=C1|55=AAPL|54=1|38=100|40=2|44=190.05|")


def test_whole_messages_are_counted_and_the_first_ones_end_is_known():
    c = FrameChecker(65536)
    c.feed(LOGON + ORDER + ORDER)
    assert c.messages == 3 and c.first_end == len(LOGON)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 64])
def test_a_stream_split_anywhere_frames_the_same(step):
    stream = LOGON + ORDER + message("35=0|34=3|", "FIXT.1.1") + message("", "FIX.4.2")
    c = FrameChecker(65536)
    for i in range(0, len(stream), step):
        c.feed(stream[i:i + step])
    assert c.messages == 4 and c.first_end == len(LOGON)


def test_an_announced_body_length_over_the_limit_is_refused_before_the_body_arrives():
    c = FrameChecker(65536)
    with pytest.raises(FrameError) as e:
        c.feed(b"8=FIX.4.4\x019=99999999\x01")
    assert e.value.reason == TOO_LARGE and "BodyLength 99999999" in e.value.text


def test_a_message_that_runs_past_its_body_length_without_a_checksum_is_refused_at_the_limit():
    c = FrameChecker(1024)
    c.feed(b"8=FIX.4.4\x019=10\x0135=D\x0134=2\x01")
    with pytest.raises(FrameError) as e:
        for _ in range(100):
            c.feed(b"58=" + b"x" * 50 + b"\x01")
    assert e.value.reason == TOO_LARGE


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01", b"9=5\x0135=A\x01",
                                  b"8=FIX.4.4\x0135=A\x019=5\x01", b"8=FIX.4.4\x019=abc\x01",
                                  b"8=" + b"F" * 100])
def test_bytes_that_are_not_fix_are_garbage(junk):
    with pytest.raises(FrameError) as e:
        FrameChecker(65536).feed(junk)
    assert e.value.reason == GARBAGE


def test_garbage_after_a_good_message_is_garbage():
    c = FrameChecker(65536)
    with pytest.raises(FrameError) as e:
        c.feed(LOGON + b"hello")
    assert e.value.reason == GARBAGE and c.messages == 1


def test_a_wrong_body_length_is_framed_as_quickfix_frames_it_by_the_next_checksum_field():
    # BodyLength too short: quickfix searches for <SOH>10= from the body's last byte on, as we do
    body = "35=0|34=5|49=C|56=G|".replace("|", SOH)
    raw = f"8=FIX.4.4{SOH}9=3{SOH}{body}10=000{SOH}".encode()
    c = FrameChecker(65536)
    c.feed(raw + ORDER)
    assert c.messages == 2


def test_the_logons_fields_are_read_and_anything_else_first_is_not_a_logon():
    assert logon_fields(LOGON) == {8: "FIX.4.4", 35: "A", 49: "CLIENT44", 56: "FIXGW"}
    assert logon_fields(ORDER) is None


def test_an_error_says_how_many_bytes_of_the_chunk_were_whole_messages_before_it():
    c = FrameChecker(65536)
    with pytest.raises(FrameError) as e:
        c.feed(LOGON + ORDER + b"\x00garbage")
    assert e.value.reason == GARBAGE and e.value.good == len(LOGON) + len(ORDER)
    c = FrameChecker(65536)
    c.feed(ORDER[:10])  # a message begun in an earlier chunk, ended in this one
    with pytest.raises(FrameError) as e:
        c.feed(ORDER[10:] + b"9=5\x01")
    assert e.value.good == len(ORDER) - 10
