"""Valid client messages and the ways bench/fuzz.py damages them. Pure: no sockets, no quickfix.

``Orders`` makes valid NewOrderSingle (D), OrderCancelRequest (F),
OrderCancelReplaceRequest (G), OrderStatusRequest (H) and OrderMassCancelRequest
(q) bodies for one session's FIX version, remembering its ClOrdIDs so cancels,
replaces and status requests refer to real orders.

A mutation takes one valid message and returns a ``Mutant``: the MsgType and body
to send (header fields are the session's, except where a mutation changes them)
and which family it belongs to, because each family has its own expected outcome:

- ``content``: the body is damaged, the frame is rebuilt (BodyLength and CheckSum
  right). quickfix parses it; the message must be answered: an ExecutionReport,
  OrderCancelReject or OrderMassCancelReport for its ClOrdID, or a Reject (3) or
  BusinessMessageReject (j) whose RefSeqNum is its MsgSeqNum.
- ``frame``: the bytes are not a valid frame (garbage, a wrong CheckSum or
  BodyLength, a partial frame, non-ASCII in the framing fields). quickfix cannot
  take it: no answer is expected, but the session must go on (or be closed).
  It does not use up a MsgSeqNum.
- ``session``: the header is wrong (another FIX version, CompID, SendingTime,
  MsgSeqNum): quickfix answers with a Reject and/or a Logout; being logged out
  is an acceptable outcome.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from fuzz_wire import utc_now

Body = list[tuple[bytes, bytes]]

REFERENCE = {b"AAPL": Decimal("190.00"), b"MSFT": Decimal("410.00"), b"IBM": Decimal("230.00")}
# valid messages now and then name a symbol no venue trades, or one the risk rules restrict
OTHER_SYMBOLS = (b"ZZZZ", b"XXXX")
NUMERIC_TAGS = (b"38", b"44", b"99", b"110", b"111", b"21", b"54", b"40", b"59", b"530", b"14")
BOUNDARY_VALUES = (
    b"0", b"-1", b"-0", b"1", b"0.0000000001", b"1e-10", b"1E+5", b"1e308", b"-1e308", b"NaN", b"nan", b"Infinity",
    b"-Infinity", b"+5", b".5", b"5.", b"00000100", b"9223372036854775807", b"-9223372036854775808",
    b"9223372036854775808", b"18446744073709551616", b"4294967296", b"2147483648", b"99999999999999999999.99",
    b"1" * 400, b"0." + b"0" * 300 + b"1", b"1,000", b"1 000", b"0x10", b"\xd9\xa3", b"", b" ", b"100 ",
)
TIME_VALUES = (b"00000000-00:00:00", b"99991231-23:59:59.999", b"20240230-25:61:61", b"yesterday", b"1" * 40,
               b"20240101-00:00:00.0000000000000001", b"")
ENUM_VALUES = (b"Z", b"0", b"99", b"-", b"11", b"\xff", b"", b"1 ", b"a")
# (not admin types, nor j: a client may send a BusinessMessageReject, which is not answered)
MSG_TYPES = (b"ZZ", b"B", b"AF", b"8", b"9", b"E", b"q", b"V", b"x", b"D ", b"", b"\xc3\xa9", b"AAAAAAAA")
ODD_TAGS = (b"9999", b"5001", b"0", b"99999999999", b"-1", b"abc", b"007", b"10", b"8", b"9", b"35", b"1137",
            b"5000000000")
NON_ASCII = (b"\x80", b"\xff", b"\xfe\xff", b"\x00", b"\x7f", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x92\xa5",
             b"\xed\xa0\x80", b"\xc0\xaf", b"\x1b[31m", b"\r\n", b"'; DROP TABLE orders; --", b"%s%n%x", b"\\x01")


@dataclass
class Message:
    msg_type: bytes
    body: Body
    cl_ord_id: bytes | None  # what an answer echoes in ClOrdID (11); None: only RefSeqNum (45) can match


@dataclass
class Mutant:
    family: str  # content | frame | session | none
    name: str
    msg_type: bytes
    body: bytes  # after the header's standard fields
    cl_ord_id: bytes | None
    header: dict[bytes, bytes] | None = None  # replaced or added header fields (49, 56, 52, 34, 43, 97, 1128, 8)
    frame: str = ""  # frame family: how to break the frame


def join(pairs: Body) -> bytes:
    return b"".join(tag + b"=" + value + b"\x01" for tag, value in pairs)


class Orders:
    """Valid application messages for one session, with its ClOrdIDs remembered."""

    def __init__(self, version: str, prefix: str, rng: random.Random):
        self.version = version
        self.prefix = prefix.encode()
        self.rng = rng
        self.n = 0
        self.placed: list[tuple[bytes, bytes, bytes]] = []  # (ClOrdID, symbol, side) of every D sent

    def next_id(self, kind: str) -> bytes:
        self.n += 1
        return b"%s%s%d" % (self.prefix, kind.encode(), self.n)

    def _now(self) -> bytes:
        return utc_now()

    def _handl(self) -> Body:
        return [] if self.version == "FIX.5.0" else [(b"21", b"1")]

    def new_order(self) -> Message:
        r = self.rng
        symbol = r.choice(OTHER_SYMBOLS) if r.random() < 0.03 else r.choice(tuple(REFERENCE))
        ref = REFERENCE.get(symbol, Decimal("10"))
        side = r.choice((b"1", b"2"))
        market = r.random() < 0.1
        cl = self.next_id("D")
        body: Body = [(b"11", cl), *self._handl(), (b"55", symbol), (b"54", side), (b"60", self._now()),
                      (b"38", str(r.randint(1, 400)).encode()), (b"40", b"1" if market else b"2")]
        if not market:
            ticks = r.randint(-6, 6)
            body.append((b"44", str(ref + Decimal(ticks) * Decimal("0.01") * (1 if side == b"1" else -1)).encode()))
        body.append((b"59", r.choice((b"0", b"0", b"0", b"3", b"1"))))
        self.placed.append((cl, symbol, side))
        return Message(b"D", body, cl)

    def _earlier(self) -> tuple[bytes, bytes, bytes]:
        if not self.placed:
            return b"NEVER-SENT", b"AAPL", b"1"
        return self.rng.choice(self.placed[-200:])

    def cancel(self) -> Message:
        orig, symbol, side = self._earlier()
        cl = self.next_id("F")
        return Message(b"F", [(b"41", orig), (b"11", cl), (b"55", symbol), (b"54", side), (b"60", self._now()),
                              (b"38", str(self.rng.randint(1, 400)).encode())], cl)

    def replace(self) -> Message:
        orig, symbol, side = self._earlier()
        cl = self.next_id("G")
        ref = REFERENCE.get(symbol, Decimal("10"))
        return Message(b"G", [(b"41", orig), (b"11", cl), *self._handl(), (b"55", symbol), (b"54", side),
                              (b"60", self._now()), (b"38", str(self.rng.randint(1, 400)).encode()), (b"40", b"2"),
                              (b"44", str(ref - Decimal("0.05") if side == b"1" else ref + Decimal("0.05")).encode())],
                       cl)

    def status(self) -> Message:
        orig, symbol, side = self._earlier()
        return Message(b"H", [(b"11", orig), (b"55", symbol), (b"54", side)], orig)

    def mass_cancel(self) -> Message:
        cl = self.next_id("Q")
        symbol = self.rng.choice(tuple(REFERENCE))
        return Message(b"q", [(b"11", cl), (b"530", b"1"), (b"55", symbol), (b"60", self._now())], cl)

    def any(self) -> Message:
        x = self.rng.random()
        if x < 0.55:
            return self.new_order()
        if x < 0.72:
            return self.cancel()
        if x < 0.86:
            return self.replace()
        if x < 0.97 or self.version == "FIX.4.2":
            return self.status()
        return self.mass_cancel()


# ---------------------------------------------------------------------------- content mutations
def _cl(body: Body) -> bytes | None:
    """The ClOrdID an answer would echo: the (first) 11 left in the body, if any."""
    for tag, value in body:
        if tag == b"11":
            return value
    return None


def _pick(rng: random.Random, body: Body) -> int:
    return rng.randrange(len(body))


def byte_flip(rng, m: Message, orders: Orders) -> Mutant:
    raw = bytearray(join(m.body))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(raw))
        raw[i] ^= 1 << rng.randrange(8)
    # the ClOrdID an answer could echo is whatever 11 now holds
    cl = None
    for part in bytes(raw).split(b"\x01"):
        if part.startswith(b"11="):
            cl = part[3:]
            break
    return Mutant("content", "byte_flip", m.msg_type, bytes(raw), cl)


def tag_shuffle(rng, m, orders) -> Mutant:
    body = list(m.body)
    rng.shuffle(body)
    return Mutant("content", "tag_shuffle", m.msg_type, join(body), _cl(body))


def drop_field(rng, m, orders) -> Mutant:
    body = list(m.body)
    del body[_pick(rng, body)]
    return Mutant("content", "drop_field", m.msg_type, join(body), _cl(body))


def duplicate_field(rng, m, orders) -> Mutant:
    body = list(m.body)
    i = _pick(rng, body)
    tag, value = body[i]
    body.insert(rng.randrange(len(body) + 1), (tag, value if rng.random() < 0.5 else rng.choice(BOUNDARY_VALUES)))
    return Mutant("content", "duplicate_field", m.msg_type, join(body), _cl(body))


def _set(body: Body, tag: bytes, value: bytes) -> Body:
    out = [(t, value if t == tag else v) for t, v in body]
    if tag not in [t for t, _ in body]:
        out.append((tag, value))
    return out


def boundary_number(rng, m, orders) -> Mutant:
    tag = rng.choice([t for t, _ in m.body if t in NUMERIC_TAGS] or [b"38"])
    body = _set(m.body, tag, rng.choice(BOUNDARY_VALUES))
    return Mutant("content", f"boundary_number_{tag.decode()}", m.msg_type, join(body), _cl(body))


def huge_value(rng, m, orders) -> Mutant:
    tag = rng.choice((b"11", b"58", b"55", b"1", b"44", b"38", b"41"))
    size = rng.choice((256, 1024, 8192, 65000))
    value = (rng.choice((b"A", b"9", b"\xe2\x82\xac")) * size)[:size]
    body = _set(m.body, tag, value)
    return Mutant("content", f"huge_value_{tag.decode()}", m.msg_type, join(body), _cl(body))


def non_ascii(rng, m, orders) -> Mutant:
    body = list(m.body)
    i = _pick(rng, body)
    tag, value = body[i]
    cut = rng.randint(0, len(value))
    body[i] = (tag, value[:cut] + rng.choice(NON_ASCII) + value[cut:])
    if rng.random() < 0.3:
        body.append((b"58", bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 40)))))
    return Mutant("content", "non_ascii", m.msg_type, join(body), _cl(body))


def odd_tag(rng, m, orders) -> Mutant:
    body = list(m.body)
    body.insert(rng.randrange(len(body) + 1), (rng.choice(ODD_TAGS), rng.choice((b"x", b"1", b"", b"\xff"))))
    return Mutant("content", "odd_tag", m.msg_type, join(body), _cl(body))


def empty_value(rng, m, orders) -> Mutant:
    body = list(m.body)
    i = _pick(rng, body)
    body[i] = (body[i][0], b"")
    return Mutant("content", "empty_value", m.msg_type, join(body), _cl(body))


def bad_enum(rng, m, orders) -> Mutant:
    tags = [t for t, _ in m.body if t in (b"54", b"40", b"59", b"21", b"530")] or [b"54"]
    body = _set(m.body, rng.choice(tags), rng.choice(ENUM_VALUES))
    return Mutant("content", "bad_enum", m.msg_type, join(body), _cl(body))


def bad_time(rng, m, orders) -> Mutant:
    body = _set(m.body, b"60", rng.choice(TIME_VALUES))
    return Mutant("content", "bad_time", m.msg_type, join(body), _cl(body))


def wrong_msg_type(rng, m, orders) -> Mutant:
    return Mutant("content", "wrong_msg_type", rng.choice(MSG_TYPES), join(m.body), m.cl_ord_id)


def bad_group(rng, m, orders) -> Mutant:
    body = list(m.body)
    count_tag, entry = rng.choice(((b"453", [(b"448", b"P1"), (b"447", b"D"), (b"452", b"3")]),
                                   (b"78", [(b"79", b"ACC1"), (b"80", b"10")]),
                                   (b"386", [(b"336", b"S1")])))
    count = rng.choice((b"2", b"0", b"-1", b"99999999999", b"x", b"1"))
    body += [(count_tag, count), *entry[:rng.randint(0, len(entry))]]
    return Mutant("content", "bad_group", m.msg_type, join(body), _cl(body))


def unknown_order(rng, m, orders) -> Mutant:
    if m.msg_type in (b"F", b"G"):
        body = _set(m.body, b"41", b"NO-SUCH-" + orders.next_id("U"))
    elif m.msg_type == b"H":
        body = _set(m.body, b"11", b"NO-SUCH-" + orders.next_id("U"))
    else:  # a new order reusing an earlier ClOrdID
        body = _set(m.body, b"11", orders._earlier()[0])
    return Mutant("content", "unknown_order" if m.msg_type != b"D" else "duplicate_clordid", m.msg_type, join(body),
                  _cl(body))


def poss_resend(rng, m, orders) -> Mutant:
    return Mutant("content", "poss_resend", m.msg_type, join(m.body), m.cl_ord_id, header={b"97": b"Y"})


def appl_ver_id(rng, m, orders) -> Mutant:
    return Mutant("content", "appl_ver_id", m.msg_type, join(m.body), m.cl_ord_id,
                  header={b"1128": rng.choice((b"2", b"4", b"99", b"", b"\xff", b"9"))})


def header_in_body(rng, m, orders) -> Mutant:
    body = list(m.body)
    body.insert(rng.randrange(len(body) + 1), (rng.choice((b"49", b"56", b"52", b"34", b"43")), b"X"))
    return Mutant("content", "header_tag_in_body", m.msg_type, join(body), _cl(body))


CONTENT = (byte_flip, tag_shuffle, drop_field, duplicate_field, boundary_number, boundary_number, huge_value,
           non_ascii, non_ascii, odd_tag, empty_value, bad_enum, bad_time, wrong_msg_type, bad_group, unknown_order,
           poss_resend, appl_ver_id, header_in_body)


# ---------------------------------------------------------------------------- frame and session mutations
FRAMES = ("garbage", "bad_checksum", "bad_body_length", "partial_frame", "non_ascii_framing", "soh_in_framing",
          "no_checksum")
SESSIONS = ("wrong_begin_string", "wrong_comp_id", "sending_time_skew", "seq_too_high", "seq_too_low",
            "poss_dup_without_orig_time", "logon_mid_session")
OTHER_BEGIN = (b"FIX.4.2", b"FIX.4.4", b"FIXT.1.1", b"FIX.4.3", b"FIX.9.9", b"fix.4.4", b"FIX.4.4 ", b"")


def frame_mutant(rng, m: Message) -> Mutant:
    return Mutant("frame", rng.choice(FRAMES), m.msg_type, join(m.body), None, frame="")


def session_mutant(rng, m: Message) -> Mutant:
    name = rng.choice(SESSIONS)
    header: dict[bytes, bytes] = {}
    msg_type = m.msg_type
    if name == "wrong_begin_string":
        header[b"8"] = rng.choice(OTHER_BEGIN)
    elif name == "wrong_comp_id":
        header[rng.choice((b"49", b"56"))] = rng.choice((b"NOBODY", b"", b"FIXGW", b"\xff"))
    elif name == "sending_time_skew":
        header[b"52"] = rng.choice((b"-7200", b"+7200", b"-86400"))  # seconds, applied by the sender
    elif name == "seq_too_high":
        header[b"34"] = b"+%d" % rng.randint(1, 5)
    elif name == "seq_too_low":
        header[b"34"] = b"-%d" % rng.randint(1, 3)
    elif name == "poss_dup_without_orig_time":
        header[b"43"] = b"Y"
    elif name == "logon_mid_session":
        msg_type = b"A"
    return Mutant("session", name, msg_type, join(m.body) if msg_type != b"A" else b"98=0\x01108=30\x01",
                  m.cl_ord_id if msg_type != b"A" else None, header=header)


def damage_frame(rng, kind: str, raw: bytes) -> bytes:
    """A well-formed frame ``raw`` broken in the way ``kind`` names."""
    if kind == "garbage":
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
        return junk.replace(b"8=", b"8-")
    if kind == "bad_checksum":
        cks = int(raw[-4:-1])
        return raw[:-4] + b"%03d" % ((cks + rng.randint(1, 255)) % 256) + b"\x01"
    if kind == "bad_body_length":
        first = raw.index(b"\x01") + 1
        second = raw.index(b"\x01", first)
        length = int(raw[first + 2:second])
        return raw[:first] + b"9=%d" % max(0, length + rng.choice((-20, -3, -1, 1, 2, 7))) + raw[second:]
    if kind == "partial_frame":
        return raw[:rng.randint(3, len(raw) - 5)]
    if kind == "non_ascii_framing":
        first = raw.index(b"\x01") + 1
        return raw[:first + 2] + rng.choice((b"\xff", b"\xd9\xa3", b"\x00")) + raw[first + 2:]
    if kind == "soh_in_framing":
        return raw.replace(b"8=", b"8=\x01", 1)
    if kind == "no_checksum":
        return raw[:raw.rindex(b"10=")]
    raise ValueError(kind)


def mutate(rng, m: Message, orders: Orders, weights: tuple[float, float, float]) -> Mutant:
    """One mutant of ``m``: content, frame or session, by ``weights``."""
    family = rng.choices(("content", "frame", "session"), weights)[0]
    if family == "frame":
        return frame_mutant(rng, m)
    if family == "session":
        return session_mutant(rng, m)
    return rng.choice(CONTENT)(rng, m, orders)
