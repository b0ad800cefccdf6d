"""`fixgw journal replay`: journal messages, filtered, in id order, as raw FIX, text or JSON lines.

Streams: one query ordered by id, fetched ``batch`` rows at a time (a server-side
cursor on PostgreSQL), each row formatted and written before the next is read, so
memory stays constant on any journal size.

Formats:

- ``raw``: the message as on the wire, SOH shown as ``|`` (or kept with ``soh=True``).
- ``text``: ``time session dir seq MsgType(Name) tag(Name)=value ...``; enumerated
  values get their meaning in parentheses (``54(Side)=1(BUY)``). BeginString (8),
  BodyLength (9), MsgSeqNum (34), MsgType (35) and CheckSum (10) are left out of the
  field list: 8 is in the session, 34 and 35 are in the line's header, 9 and 10 are framing.
- ``json``: one object per line: id, time, ts_us, session, direction, seq, msg_type,
  msg_type_name, poss_dup and ``fields``: tag (a string) -> {"name", "value"}; a tag
  that occurs more than once (repeating groups) has a list of values, in order.

Names come from the QuickFIX data dictionaries in ``fixspecs/``, chosen by
BeginString: FIX.4.2 -> FIX42, FIX.4.4 -> FIX44, FIXT.1.1 -> FIX50 + FIXT11 (session
layer). Each is parsed once per process with xml.etree and cached.

Every format masks Password (554) and the other secret tags (fixspecs/redact.py),
also in rows journaled before the journal masked them itself.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from xml.etree import ElementTree

from sqlalchemy import select

from gateway.journal.db import journal_messages
from fixspecs.redact import redact
from gateway.journal.queries import stream_rows

SOH = "\x01"
FORMATS = ("raw", "text", "json")
_SPEC_FILES = {
    "FIX.4.2": ("FIX42.xml",),
    "FIX.4.4": ("FIX44.xml",),
    "FIXT.1.1": ("FIX50.xml", "FIXT11.xml"),  # application layer, then the session layer over it
}
_TEXT_SKIP = frozenset(("8", "9", "10", "34", "35"))


# ---------------------------------------------------------------- data dictionaries


@dataclass(frozen=True)
class Dictionary:
    fields: dict[str, str] = field(default_factory=dict)  # tag -> name
    enums: dict[str, dict[str, str]] = field(default_factory=dict)  # tag -> value -> description
    messages: dict[str, str] = field(default_factory=dict)  # MsgType -> name


_EMPTY = Dictionary()


def _load_spec(filename: str, into: Dictionary) -> None:
    root = ElementTree.parse(resources.files("fixspecs").joinpath(filename).open("rb")).getroot()
    for f in root.iterfind("./fields/field"):
        tag = f.get("number")
        if tag is None:
            continue
        into.fields[tag] = f.get("name", "")
        values = {v.get("enum"): v.get("description", "") for v in f.iterfind("value")}
        if values:
            into.enums[tag] = values
    for m in root.iterfind("./messages/message"):
        into.messages[m.get("msgtype", "")] = m.get("name", "")


@lru_cache(maxsize=None)
def dictionary(begin_string: str) -> Dictionary:
    """The field and message names for a BeginString; empty for an unknown one."""
    files = _SPEC_FILES.get(begin_string)
    if files is None:
        return _EMPTY
    d = Dictionary()
    for filename in files:
        _load_spec(filename, d)
    return d


def split_fields(raw: str) -> list[tuple[str, str]]:
    """(tag, value) pairs of a raw SOH-separated message, in order."""
    out = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out.append((tag, value))
    return out


# ---------------------------------------------------------------- query


def parse_time(text: str) -> int:
    """An ISO 8601 date or date-time as microseconds since the epoch; no zone means UTC."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {text!r} (e.g. 2026-11-24T06:31:02Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_time(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us // 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") \
        + f".{ts_us % 1_000_000:06d}Z"


@dataclass(frozen=True)
class Filters:
    session_id: str | None = None
    direction: str | None = None
    since_us: int | None = None  # inclusive
    until_us: int | None = None  # exclusive
    msg_types: Sequence[str] = ()
    cl_ord_id: str | None = None
    order_id: str | None = None


def select_messages(f: Filters):
    """The SELECT for ``f``, in id order."""
    t = journal_messages.c
    stmt = select(t.id, t.session_id, t.direction, t.seq_num, t.msg_type, t.cl_ord_id, t.order_id, t.poss_dup,
                  t.ts_us, t.raw)
    if f.session_id is not None:
        stmt = stmt.where(t.session_id == f.session_id)
    if f.direction is not None:
        stmt = stmt.where(t.direction == f.direction)
    if f.since_us is not None:
        stmt = stmt.where(t.ts_us >= f.since_us)
    if f.until_us is not None:
        stmt = stmt.where(t.ts_us < f.until_us)
    if f.msg_types:
        stmt = stmt.where(t.msg_type.in_(list(f.msg_types)))
    if f.cl_ord_id is not None:
        stmt = stmt.where(t.cl_ord_id == f.cl_ord_id)
    if f.order_id is not None:
        stmt = stmt.where(t.order_id == f.order_id)
    return stmt.order_by(t.id)


def has_session(engine, session_id: str) -> bool:
    """Whether the journal holds a message of ``session_id`` (one index lookup)."""
    t = journal_messages.c
    with engine.connect() as conn:
        return conn.execute(select(t.id).where(t.session_id == session_id).limit(1)).first() is not None


def session_ids(engine, limit: int = 200) -> list[str]:
    """The distinct SessionIDs in the journal, in order, at most ``limit``: one index lookup each (a loose
    index scan), not a scan of the whole table."""
    from sqlalchemy import func

    t = journal_messages.c
    found: list[str] = []
    with engine.connect() as conn:
        while len(found) < limit:
            stmt = select(func.min(t.session_id))
            if found:
                stmt = stmt.where(t.session_id > found[-1])
            sid = conn.execute(stmt).scalar()
            if sid is None:
                break
            found.append(sid)
    return found


def id_range(engine_or_url) -> tuple[int | None, int | None]:
    """The journal's lowest and highest message id (two index lookups), for progress reports."""
    from sqlalchemy import func

    from gateway.journal.db import _engine_for

    engine, owned = _engine_for(engine_or_url)
    try:
        with engine.connect() as conn:
            lo, hi = conn.execute(select(func.min(journal_messages.c.id), func.max(journal_messages.c.id))).one()
            return lo, hi
    finally:
        if owned:
            engine.dispose()


def iter_replay(engine_or_url, filters: Filters = Filters(), batch: int = 1000) -> Iterator:
    """Matching journal rows in id order, streamed."""
    return stream_rows(engine_or_url, select_messages(filters), batch)


# ---------------------------------------------------------------- formats


def _begin_string(pairs: list[tuple[str, str]]) -> str:
    return pairs[0][1] if pairs and pairs[0][0] == "8" else ""


def format_raw(row, soh: bool = False) -> str:
    raw = redact(row.raw)  # rows journaled before masking existed may still hold a password
    return raw if soh else raw.replace(SOH, "|")


def format_text(row) -> str:
    pairs = split_fields(redact(row.raw))
    d = dictionary(_begin_string(pairs))
    names, enums = d.fields, d.enums
    mt = row.msg_type
    mt_text = "-" if mt is None else f"{mt}({d.messages.get(mt, '?')})"
    parts = [format_time(row.ts_us), row.session_id, row.direction, "-" if row.seq_num is None else str(row.seq_num),
             mt_text]
    for tag, value in pairs:
        if tag in _TEXT_SKIP:
            continue
        name = names.get(tag)
        item = f"{tag}({name})={value}" if name else f"{tag}={value}"
        meaning = enums.get(tag, {}).get(value) if tag in enums else None
        parts.append(f"{item}({meaning})" if meaning else item)
    return " ".join(parts)


def format_json(row) -> str:
    pairs = split_fields(redact(row.raw))
    d = dictionary(_begin_string(pairs))
    fields: dict[str, dict] = {}
    for tag, value in pairs:
        entry = fields.get(tag)
        if entry is None:
            fields[tag] = {"name": d.fields.get(tag), "value": value}
        elif isinstance(entry["value"], list):
            entry["value"].append(value)
        else:
            entry["value"] = [entry["value"], value]
    return json.dumps({
        "id": row.id,
        "time": format_time(row.ts_us),
        "ts_us": row.ts_us,
        "session": row.session_id,
        "direction": row.direction,
        "seq": row.seq_num,
        "msg_type": row.msg_type,
        "msg_type_name": d.messages.get(row.msg_type) if row.msg_type is not None else None,
        "poss_dup": bool(row.poss_dup),
        "fields": fields,
    }, ensure_ascii=False)


def formatter(fmt: str, soh: bool = False):
    """The one-row formatting function for ``fmt`` (raw, text or json)."""
    if fmt == "raw":
        return lambda row: format_raw(row, soh)
    if fmt == "text":
        return format_text
    if fmt == "json":
        return format_json
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
