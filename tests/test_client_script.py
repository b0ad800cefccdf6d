"""`fixgw client`'s pure part: the command grammar (gateway/cli/client_script.py), what answers a request
(client_answers.py), and how reports read (client_reports.py); plus the command's checks that refuse a bad
command before connecting."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import client_answers as answers
from gateway.cli import client_reports as reports
from gateway.cli import client_script as cs
from gateway.cli.main import main

SHIPPED_CFG = str(Path(__file__).resolve().parents[1] / "gateway.cfg")


# ------------------------------------------------------------------------------------------ grammar
def test_an_order_line_parses_into_a_new_order_with_its_options():
    o = cs.parse_line("buy 100 AAPL --limit 190.50 --tif ioc --account ACC1 --venue VENUE2 --strategy sweep "
                      "--id B1")
    assert o == cs.NewOrder(side="1", qty=Decimal(100), symbol="AAPL", limit=Decimal("190.50"), tif="3",
                            account="ACC1", venue="VENUE2", strategy="sweep", cl_ord_id="B1")
    assert o.ord_type == "2"
    assert cs.parse_words(["sell", "5", "MSFT"]).ord_type == "1"  # no limit: a market order
    assert cs.parse_words(["short", "5", "MSFT", "--stop=400"]).ord_type == "3"
    assert cs.parse_words(["SELL", "5", "MSFT", "--stop", "400", "--limit", "399"]).ord_type == "4"
    assert cs.parse_line("buy 1 IBM --no-wait").wait is False


def test_cancel_replace_status_and_the_rest_parse():
    assert cs.parse_line("cancel C1") == cs.Cancel(orig_cl_ord_id="C1")
    assert cs.parse_line("cancel C1 --symbol AAPL --side sell --qty 10 --id X9") == cs.Cancel(
        orig_cl_ord_id="C1", symbol="AAPL", side="2", qty=Decimal(10), cl_ord_id="X9")
    assert cs.parse_line("replace C1 --qty 150") == cs.Replace(orig_cl_ord_id="C1", qty=Decimal(150))
    assert cs.parse_line("status C1 --symbol IBM --side buy") == cs.Status("C1", "IBM", "1")
    assert cs.parse_line("mass-cancel") == cs.MassCancel()
    assert cs.parse_line("mass-cancel MSFT") == cs.MassCancel("MSFT")
    assert cs.parse_line("wait") == cs.Wait()
    assert cs.parse_line("wait C1") == cs.Wait("C1")
    assert cs.parse_line("sleep 0.5") == cs.Sleep(0.5)
    assert isinstance(cs.parse_line("help"), cs.Help) and isinstance(cs.parse_line("quit"), cs.Quit)


def test_blank_lines_and_comments_are_not_commands():
    assert cs.parse_line("") is None
    assert cs.parse_line("   # rest one order") is None
    assert cs.parse_line("buy 1 AAPL  # a comment after a command") == cs.NewOrder("1", Decimal(1), "AAPL")


@pytest.mark.parametrize("line, says", [
    ("purchase 100 AAPL", "unknown command 'purchase'"),
    ("buy 100", "buy needs QTY SYMBOL"),
    ("buy 0 AAPL", "QTY must be positive"),
    ("buy ten AAPL", "QTY 'ten' is not a number"),
    ("buy 1e3 AAPL", "not a plain decimal"),
    ("buy 100 AAPL --limit", "--limit needs a value"),
    ("buy 100 AAPL --limit -5", "--limit must be positive"),
    ("buy 100 AAPL --tif gtd", "--tif gtd: use one of day, gtc, ioc, fok"),
    ("buy 100 AAPL --qty 5", "buy: unknown option --qty"),
    ("buy 100 AAPL --limit 1 --limit 2", "--limit given twice"),
    ("buy 100 AAPL --no-wait=yes", "--no-wait takes no value"),
    ("cancel", "cancel needs CLORDID"),
    ("cancel C1 --side up", "--side up: use buy, sell or short"),
    ("replace C1", "give --qty and/or --limit"),
    ("status C1 --limit 5", "status: unknown option --limit"),
    ("sleep soon", "not a number of seconds"),
    ("buy 100 'AA PL'", "printable ASCII without spaces"),
    ("buy 100 'AAPL", "cannot split"),
])
def test_a_bad_command_gets_a_specific_message(line, says):
    with pytest.raises(cs.CommandError) as err:
        cs.parse_line(line)
    assert says in str(err.value)


def test_mass_cancel_is_refused_for_fix_42_only():
    with pytest.raises(cs.CommandError, match="FIX 4.4 or 5.0"):
        cs.check_version(cs.MassCancel(), "FIX.4.2")
    assert cs.check_version(cs.MassCancel(), "FIX.5.0") == cs.MassCancel()


# ------------------------------------------------------------------------------------------ formatting
ER_NEW = {35: "8", 37: "O-1", 11: "C1", 17: "E1", 150: "0", 39: "0", 55: "AAPL", 54: "1", 38: "100", 40: "2",
          44: "190", 59: "0", 151: "100", 14: "0", 6: "0"}


def test_an_execution_report_reads_as_one_line():
    assert reports.describe(ER_NEW) == "ExecutionReport New C1 buy 100 AAPL @190 OrderID=O-1 cum 0 leaves 100"
    fill = {**ER_NEW, 150: "F", 39: "1", 32: "40", 31: "189.99", 30: "VENUE1", 14: "40", 151: "60", 6: "189.99"}
    assert reports.describe(fill) == ("ExecutionReport PartiallyFilled C1 buy 100 AAPL @190 OrderID=O-1 "
                                      "last 40 @189.99 VENUE1 cum 40 leaves 60 avg 189.99")
    replaced = {**ER_NEW, 150: "5", 11: "R1", 41: "C1"}
    assert reports.describe(replaced).startswith("ExecutionReport Replaced (New) R1 (was C1) buy")
    status_42 = {**ER_NEW, 150: "0", 20: "3"}
    assert reports.describe(status_42).startswith("ExecutionReport Status New C1")


def test_rejects_show_their_reason_and_text():
    rejected = {**ER_NEW, 150: "8", 39: "8", 103: "1", 58: "unknown symbol ZZZZ", 55: "ZZZZ"}
    assert reports.describe(rejected).endswith('reason 1 (unknown symbol) "unknown symbol ZZZZ"')
    cxl = {35: "9", 11: "X1", 41: "C1", 39: "8", 434: "1", 102: "1", 58: "unknown order: OrigClOrdID C1"}
    assert reports.describe(cxl) == ('OrderCancelReject X1 (cancel of C1) reason 1 (unknown order) order is Rejected '
                                     '"unknown order: OrigClOrdID C1"')
    bmr = {35: "j", 372: "D", 45: "7", 379: "C1", 380: "0", 58: "internal error"}
    assert reports.describe(bmr) == ('BusinessMessageReject for NewOrderSingle C1 (seq 7) reason 0 (other) '
                                     '"internal error"')
    rej = {35: "3", 45: "7", 372: "D", 371: "38", 373: "5", 58: "Value is incorrect (out of range) for this tag"}
    assert reports.describe(rej) == ('Reject of NewOrderSingle seq 7 tag 38 reason 5 (value out of range) '
                                     '"Value is incorrect (out of range) for this tag"')
    assert reports.describe({35: "5", 58: "wrong username or password"}) == 'Logout "wrong username or password"'


def test_json_names_the_main_fields_and_keeps_every_tag_but_a_password():
    obj = reports.as_json(0.0, {**ER_NEW, 554: "secret"})
    assert obj["name"] == "ExecutionReport" and obj["event"] == "received" and obj["time"].endswith("Z")
    assert obj["cl_ord_id"] == "C1" and obj["ord_status_name"] == "New" and obj["side_name"] == "buy"
    assert obj["fields"]["44"] == "190" and "554" not in obj["fields"]
    assert json.loads(reports.json_line(obj)) == obj
    sent = reports.as_json(0.0, {35: "D", 11: "C1", 55: "AAPL"}, sent=True)
    assert sent["event"] == "sent" and sent["name"] == "NewOrderSingle"


# ------------------------------------------------------------------------------------------ answers
def _tracked_order(tracker: answers.Tracker, cl="C1") -> answers.Request:
    tracker.sent_order(cs.NewOrder("1", Decimal(100), "AAPL", limit=Decimal(190)), cl)
    return tracker.expect("D", cl, seq="5")


def test_an_order_is_answered_by_its_first_report_past_pending_new():
    tr = answers.Tracker()
    req = _tracked_order(tr)
    assert tr.feed({**ER_NEW, 150: "A", 39: "A"}) == [] and req.outcome is None
    assert tr.feed({**ER_NEW, 11: "OTHER"}) == []
    assert tr.feed(ER_NEW) == [req] and req.outcome == "ok" and tr.pending == []
    assert not tr.done("C1")
    tr.feed({**ER_NEW, 150: "F", 39: "2"})
    assert tr.done("C1")


@pytest.mark.parametrize("answer", [
    {**ER_NEW, 150: "8", 39: "8"},
    {35: "3", 45: "5", 372: "D"},  # a session Reject names only our MsgSeqNum
    {35: "j", 45: "99", 379: "C1"},
])
def test_an_order_is_refused_by_a_reject_of_any_kind(answer):
    tr = answers.Tracker()
    req = _tracked_order(tr)
    tr.feed(answer)
    assert req.outcome == "refused"


def test_a_session_reject_of_another_message_does_not_answer_the_order():
    tr = answers.Tracker()
    req = _tracked_order(tr)
    tr.feed({35: "3", 45: "4", 372: "D"})
    assert req.outcome is None


def test_cancel_replace_status_and_mass_cancel_answers():
    tr = answers.Tracker()
    _tracked_order(tr)
    tr.feed(ER_NEW)
    rec = tr.order("C1")
    tr.link("R1", rec)
    rep = tr.expect("G", "R1", "6")
    tr.feed({**ER_NEW, 11: "R1", 41: "C1", 150: "E", 39: "E"})
    assert rep.outcome is None
    tr.feed({**ER_NEW, 11: "R1", 41: "C1", 150: "5", 39: "0", 38: "150"})
    assert rep.outcome == "ok" and rec.cl_ord_id == "R1" and rec.qty == Decimal(150)
    st = tr.expect("H", "R1", "7")
    tr.feed({**ER_NEW, 11: "R1", 150: "I", 39: "0"})
    assert st.outcome == "ok"
    tr.link("X1", rec)
    cxl = tr.expect("F", "X1", "8")
    tr.feed({35: "9", 11: "X1", 41: "R1", 102: "0"})
    assert cxl.outcome == "refused"
    unknown = tr.expect("H", "NOPE", "9")
    tr.feed({**ER_NEW, 11: "NOPE", 150: "I", 39: "8", 103: "5"})
    assert unknown.outcome == "refused"
    mass = tr.expect("q", "Q1", "10")
    tr.feed({35: "r", 11: "Q1", 530: "7", 531: "7", 533: "0"})
    assert mass.outcome == "ok"


# ------------------------------------------------------------------------------------------ the command's own checks
@pytest.mark.parametrize("args, says", [
    (["CLIENT44", "cancel", "C1"], "needs --symbol and --side"),
    (["CLIENT44", "replace", "C1", "--limit", "5", "--symbol", "AAPL", "--side", "buy"], "needs --qty"),
    (["CLIENT42", "mass-cancel"], "FIX 4.4 or 5.0"),
    (["CLIENT44", "wait"], "for a file of commands or the prompt"),
    (["CLIENT44", "buy", "100"], "buy needs QTY SYMBOL"),
])
def test_a_bad_one_shot_command_is_refused_before_connecting(args, says):
    result = CliRunner().invoke(main, ["client", "-c", SHIPPED_CFG, "--port", "1", *args])
    assert result.exit_code == cs.EXIT_USAGE, result.output
    assert says in result.output


def test_a_bad_line_in_a_command_file_names_the_line_and_nothing_is_sent(tmp_path):
    cmds = tmp_path / "cmds.txt"
    cmds.write_text("# ok so far\nbuy 100 AAPL --limit 150\nbuy 100 AAPL --limt 150\n")
    result = CliRunner().invoke(main, ["client", "-c", SHIPPED_CFG, "--port", "1", "CLIENT44", "--file", str(cmds)])
    assert result.exit_code == cs.EXIT_USAGE
    assert f"{cmds}:3: buy: unknown option --limt" in result.output
    assert "could not log on" not in result.output  # it never tried


def test_an_unknown_session_and_a_password_session_without_a_password_are_clear_errors():
    result = CliRunner().invoke(main, ["client", "-c", SHIPPED_CFG, "NOPE", "buy", "1", "AAPL"])
    assert result.exit_code == 1 and "NOPE is not a client or drop-copy session" in result.output
    assert "CLIENT44" in result.output and "DC44" in result.output
    result = CliRunner(env={"FIXGW_CLIENT_PASSWORD": None, "FIXGW_DEMO_SECURE_PASSWORD": None}).invoke(
        main, ["client", "-c", SHIPPED_CFG, "SECURE44", "buy", "1", "AAPL"])
    assert result.exit_code == 1 and "SECURE44 needs a password" in result.output
