"""The journal's rows made from queue entries: the tags the table indexes picked out of each raw message
(``parse_message``), and every value made text the database stores (``table_rows``)."""
from __future__ import annotations

from fixspecs.raw import field_after as _field

EVENT = "E"  # a session event: its kind in the queue and its direction in a spool record
DIRECTIONS = frozenset(("I", "O"))  # a message: received, sent

MESSAGE_COLUMNS = ("session_id", "direction", "seq_num", "msg_type", "cl_ord_id", "order_id", "poss_dup",
                   "ts_us", "raw", "recovered")
# A message imported at start-up from the spool of a run that died before committing it: its direction in lower
# case in the queue (only there), so the row says ``recovered`` (revision 0008).
RECOVERED = {"i": "I", "o": "O"}
EVENT_COLUMNS = ("session_id", "ts_us", "text")


def _storable(s: str) -> str:
    """``s`` with anything UTF-8 cannot encode (lone surrogates) backslash-escaped."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_text(value: object) -> str:
    """Whatever a caller passed, as str, so no row can violate the schema and block the journal."""
    if value.__class__ is str:
        return value  # type: ignore[return-value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def parse_message(raw: str) -> tuple[int | None, str | None, str | None, str | None, bool]:
    """(MsgSeqNum, MsgType, ClOrdID, OrderID, PossDup) of a raw SOH-separated FIX message.

    Cheap on purpose: the first occurrence of "<SOH>tag=" for each tag, so 11 never
    matches inside 111 or 211, and the leading "8=FIX..." field is never needed.
    A missing field gives None, and so does a MsgSeqNum that is not 1 to 18 ASCII
    digits (it must fit BIGINT). PossDup is True only for the exact field "43=Y".
    """
    s = _field(raw, "\x0134=")
    seq = int(s) if s is not None and s.isascii() and s.isdigit() and len(s) < 19 else None  # not " 1", "+1"
    return (seq, _field(raw, "\x0135="), _field(raw, "\x0111="), _field(raw, "\x0137="),
            "\x0143=Y\x01" in raw)


def table_rows(entries: list, pg: bool, counts: dict) -> tuple[list, list, tuple[str, int] | None]:
    """(message rows in MESSAGE_COLUMNS order, event rows in EVENT_COLUMNS order, the spool position of the
    last spooled entry or None) of queue entries (ns, session, kind, payload, spool position or None); a kind
    of ``RECOVERED`` is a message imported from an old spool.

    Text the database cannot store is escaped: lone surrogates as ``\\udcXX`` and, on PostgreSQL (``pg``),
    NUL as the four characters ``\\x00``. ``counts`` ((session, direction, MsgType) -> messages) is updated.
    """
    msgs = []
    events = []
    add_msg = msgs.append
    directions = DIRECTIONS
    parse = parse_message
    spooled = None
    for ts, sid, kind, payload, pos in entries:
        recovered = False
        if kind in RECOVERED:
            kind, recovered = RECOVERED[kind], True
        if kind in directions:
            if pos is not None:
                spooled = pos
            if payload.__class__ is not str or sid.__class__ is not str:
                payload, sid = _as_text(payload), _as_text(sid)
            if not payload.isascii():
                payload = _storable(payload)
            if pg and "\x00" in payload:
                payload = payload.replace("\x00", "\\x00")
            seq, msg_type, cl_ord_id, order_id, poss_dup = parse(payload)
            add_msg((sid, kind, seq, msg_type, cl_ord_id, order_id, poss_dup, ts // 1000, payload, recovered))
            key = (sid, kind, msg_type)
            counts[key] = counts.get(key, 0) + 1
        elif kind == EVENT:
            if pos is not None:
                spooled = pos
            text = _storable(_as_text(payload))
            if pg:
                text = text.replace("\x00", "\\x00")
            events.append((_storable(_as_text(sid)), ts // 1000, text))
    return msgs, events, spooled
