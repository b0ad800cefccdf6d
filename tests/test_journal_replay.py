"""`fixgw journal replay`: filters, formats, field names, the CLI.

Tests taking ``database_url`` run on SQLite and on PostgreSQL (marker ``postgres``).
"""
from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from gateway.cli.journal import journal as journal_cli
from gateway.journal.queries import iter_messages
from gateway.journal.writer import JournalWriter
from gateway.journal.replay import Filters, format_json, format_text, format_time, iter_replay, parse_time
from tests.test_journal import fix

S42 = "FIX.4.2:FIXGW->CLIENT42"
S44 = "FIX.4.4:FIXGW->CLIENT44"
S50 = "FIXT.1.1:FIXGW->CLIENT50"
V1 = "FIX.4.4:FIXGW->VENUE1"

ORDER = ((11, "{cl}"), (21, "1"), (55, "AAPL"), (54, "1"), (60, "20261124-06:31:02.123"), (38, "500"),
         (40, "2"), (44, "187.25"))


def order(begin, seq, cl, sender, target="FIXGW", extra=()):
    return fix("D", seq, *extra, *[(t, v.format(cl=cl)) for t, v in ORDER], sender=sender, target=target,
               begin=begin)


def report(begin, seq, oid, cl, target, extra=()):
    return fix("8", seq, *extra, (37, oid), (11, cl), (17, f"E{seq}"), (150, "0"), (39, "0"), (55, "AAPL"),
               (54, "1"), (151, "500"), (14, "0"), (6, "0"), sender="FIXGW", target=target, begin=begin)


# (session, direction, raw): FIX 4.2, 4.4 and 5.0 (FIXT.1.1), both directions, admin and app
MESSAGES = [
    (S42, "I", order("FIX.4.2", 2, "A1", "CLIENT42")),
    (S42, "O", report("FIX.4.2", 2, "O1", "A1", "CLIENT42", extra=((20, "0"),))),
    (S44, "I", order("FIX.4.4", 2, "B1", "CLIENT44")),
    (S44, "O", report("FIX.4.4", 2, "O2", "B1", "CLIENT44")),
    (S50, "I", order("FIXT.1.1", 2, "C1", "CLIENT50", extra=((1128, "7"),))),
    (S50, "O", report("FIXT.1.1", 2, "O3", "C1", "CLIENT50", extra=((1128, "7"),))),
    (S44, "I", fix("0", 3, sender="CLIENT44")),
    (V1, "O", order("FIX.4.4", 5, "V1", "FIXGW", target="VENUE1")),
]


@pytest.fixture
def journal_url(database_url):
    """A small journal: MESSAGES in order, at distinct, increasing times."""
    w = JournalWriter(database_url)
    w.start()
    try:
        for sid, direction, raw in MESSAGES:
            w.record(sid, direction, raw)
            time.sleep(0.002)
        assert w.flush(10)
    finally:
        w.stop()
    return database_url


def replay(url, **kw):
    return [(r.session_id, r.direction, r.raw) for r in iter_replay(url, Filters(**kw), batch=3)]


def config(tmp_path, url):
    path = tmp_path / "gw.cfg"
    path.write_text(f'[journal]\ndatabase_url = "{url}"\n')
    return str(path)


# ------------------------------------------------------------------ filters


def test_no_filter_replays_everything_in_id_order(journal_url):
    assert replay(journal_url) == MESSAGES


def test_filters_by_session_and_direction(journal_url):
    assert replay(journal_url, session_id=S44) == [m for m in MESSAGES if m[0] == S44]
    assert replay(journal_url, direction="O") == [m for m in MESSAGES if m[1] == "O"]
    assert replay(journal_url, session_id=S44, direction="I") == [MESSAGES[2], MESSAGES[6]]


def test_filters_by_msg_types_cl_ord_id_and_order_id(journal_url):
    assert replay(journal_url, msg_types=("0",)) == [MESSAGES[6]]
    assert replay(journal_url, msg_types=("8", "0")) == [MESSAGES[i] for i in (1, 3, 5, 6)]
    assert replay(journal_url, cl_ord_id="B1") == [MESSAGES[2], MESSAGES[3]]
    assert replay(journal_url, order_id="O3") == [MESSAGES[5]]
    assert replay(journal_url, cl_ord_id="nope") == []


def test_filters_by_time_range_since_inclusive_until_exclusive(journal_url):
    ts = [r.ts_us for r in iter_messages(journal_url)]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    since, until = parse_time(format_time(ts[2])), parse_time(format_time(ts[5]))
    assert (since, until) == (ts[2], ts[5])
    assert replay(journal_url, since_us=since, until_us=until) == MESSAGES[2:5]
    assert replay(journal_url, since_us=ts[-1] + 1) == []


def test_parse_time_reads_iso_dates_zones_and_z():
    assert parse_time("1970-01-01") == 0
    assert parse_time("1970-01-01T00:00:01.5Z") == 1_500_000
    assert parse_time("1970-01-01T01:00:00+01:00") == 0
    assert format_time(1_500_000) == "1970-01-01T00:00:01.500000Z"
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


# ------------------------------------------------------------------ formats


def test_text_format_names_fields_for_fix_42_44_and_50(journal_url):
    lines = [format_text(r) for r in iter_replay(journal_url)]
    for line, sid in ((lines[0], S42), (lines[2], S44), (lines[4], S50)):
        assert line.split(" ")[1:5] == [sid, "I", "2", "D(NewOrderSingle)"]
        for part in ("49(SenderCompID)=CLIENT", "11(ClOrdID)=", "55(Symbol)=AAPL", "54(Side)=1(BUY)",
                     "40(OrdType)=2(LIMIT)", "44(Price)=187.25"):
            assert part in line, (part, line)
        assert not any(f" {tag}(" in line for tag in ("8", "9", "10", "34", "35"))
    assert "20(ExecTransType)=0(NEW)" in lines[1]  # a FIX 4.2-only field
    assert "1128(ApplVerID)=7(FIX50)" in lines[4]  # FIXT.1.1 messages use FIX50 + FIXT11
    assert " 8(ExecutionReport) " in lines[5] and "150(ExecType)=0(NEW)" in lines[5]
    assert " 0(Heartbeat)" in lines[6]
    assert lines[0].startswith(format_time(next(iter_replay(journal_url)).ts_us))


def test_json_format_has_header_fields_and_fields_by_tag_and_name(journal_url):
    rows = list(iter_replay(journal_url))
    objs = [json.loads(format_json(r)) for r in rows]
    o = objs[3]
    assert {k: o[k] for k in ("id", "session", "direction", "seq", "msg_type", "msg_type_name", "poss_dup")} == {
        "id": rows[3].id, "session": S44, "direction": "O", "seq": 2, "msg_type": "8",
        "msg_type_name": "ExecutionReport", "poss_dup": False}
    assert o["ts_us"] == rows[3].ts_us and o["time"] == format_time(rows[3].ts_us)
    assert o["fields"]["37"] == {"name": "OrderID", "value": "O2"}
    assert o["fields"]["8"] == {"name": "BeginString", "value": "FIX.4.4"}
    assert objs[4]["fields"]["1128"] == {"name": "ApplVerID", "value": "7"}


def test_json_format_keeps_repeated_tags_in_order():
    class Row:
        id, session_id, direction, seq_num, msg_type, poss_dup, ts_us = 1, S44, "I", 1, "D", False, 0
        raw = "8=FIX.4.4\x0135=D\x01453=2\x01448=P1\x01448=P2\x019999=x\x01"

    fields = json.loads(format_json(Row))["fields"]
    assert fields["448"] == {"name": "PartyID", "value": ["P1", "P2"]}
    assert fields["9999"] == {"name": None, "value": "x"}
    assert "9999=x" in format_text(Row) and "448(PartyID)=P2" in format_text(Row)


# ------------------------------------------------------------------ CLI


def test_cli_replay_formats_and_filters(journal_url, tmp_path):
    cfg = config(tmp_path, journal_url)
    runner = CliRunner()
    res = runner.invoke(journal_cli, ["replay", "-c", cfg])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [raw.replace("\x01", "|") for _, _, raw in MESSAGES]

    res = runner.invoke(journal_cli, ["replay", "-c", cfg, "--soh", "--session", S42])
    assert res.output.splitlines() == [raw for s, _, raw in MESSAGES if s == S42]

    res = runner.invoke(journal_cli, ["replay", "-c", cfg, "--format", "text", "--msg-type", "D",
                                      "--msg-type", "0", "--direction", "I"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert [ln.split(" ")[4] for ln in lines] == ["D(NewOrderSingle)"] * 3 + ["0(Heartbeat)"]

    res = runner.invoke(journal_cli, ["replay", "-c", cfg, "--format", "json", "--order-id", "O1"])
    (obj,) = [json.loads(ln) for ln in res.output.splitlines()]
    assert obj["session"] == S42 and obj["fields"]["11"]["value"] == "A1"

    res = runner.invoke(journal_cli, ["replay", "-c", cfg, "--cl-ord-id", "V1", "--since", "2000-01-01",
                                      "--until", "2999-01-01T00:00:00Z"])
    assert res.output.splitlines() == [MESSAGES[7][2].replace("\x01", "|")]


def test_cli_replay_takes_the_session_names_sessions_list_shows(journal_url, tmp_path):
    cfg = tmp_path / "named.cfg"
    cfg.write_text(f'comp_id = "FIXGW"\n[journal]\ndatabase_url = "{journal_url}"\n'
                   '[clients.CLIENT44]\nfix_version = "FIX.4.4"\n[clients.CLIENT42]\nfix_version = "FIX.4.2"\n')
    runner = CliRunner()
    res = runner.invoke(journal_cli, ["replay", "-c", str(cfg), "--session", "CLIENT44"])
    assert res.exit_code == 0 and res.stdout.splitlines() == [raw.replace("\x01", "|") for s, _, raw in MESSAGES
                                                              if s == S44]
    res = runner.invoke(journal_cli, ["replay", "-c", str(cfg), "--session", "CLIENT50"])  # not configured now
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 2
    res = runner.invoke(journal_cli, ["replay", "-c", str(cfg), "--session", "CLIENT4"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.strip() == ("Error: unknown session CLIENT4 (known: CLIENT42, CLIENT44; in the journal only: "
                                  f"{V1}, {S50})")


def test_journal_session_ids_are_listed_without_reading_every_row(journal_url):
    from gateway.journal.db import make_engine
    from gateway.journal.replay import has_session, session_ids

    engine = make_engine(journal_url)
    try:
        every = session_ids(engine)
        assert sorted(every) == sorted({S42, S44, S50, V1})  # in the database's collation order
        assert session_ids(engine, limit=2) == every[:2]
        assert has_session(engine, S50) and not has_session(engine, "FIX.4.4:FIXGW->NOPE")
    finally:
        engine.dispose()


def test_cli_replay_errors_are_one_line_with_exit_code_2(tmp_path, sqlite_url):
    runner = CliRunner()
    res = runner.invoke(journal_cli, ["replay", "-c", str(tmp_path / "nope.cfg")])
    assert res.exit_code == 2 and "cannot read config" in res.output and "nope.cfg" in res.output
    assert "Traceback" not in res.output

    cfg = config(tmp_path, sqlite_url)
    res = runner.invoke(journal_cli, ["replay", "-c", cfg, "--since", "last tuesday"])
    assert res.exit_code == 2 and "not an ISO 8601" in res.output

    res = runner.invoke(journal_cli, ["replay", "-c", cfg, "--direction", "X"])
    assert res.exit_code == 2  # click's own usage error

    res = runner.invoke(journal_cli, ["replay", "-c", cfg])  # no schema yet
    assert res.exit_code == 2 and "fixgw db upgrade" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
