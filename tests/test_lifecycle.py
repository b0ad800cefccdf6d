"""The order lifecycle over real sessions, in each FIX version the gateway speaks.

VENUE1 (first for every symbol) quotes AAPL 189.99 / 190.01 with 500 at the best
level and 1000 at the next; MSFT 409.99 / 410.01.
"""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from sessions.client import FixClient
from tests.fix_fixtures import CLIENTS, start_stack

VERSIONS = list(CLIENTS)
TRADE = ("1", "2", "F")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp,
                    client_options={"CLIENT42": "cancel_on_disconnect = true"})
    yield s
    s.stop()


def fills(client: FixClient, cl: str) -> list[dict]:
    return [m for m in client.exec_reports(cl) if m.get(150) in TRADE]


@pytest.mark.parametrize("name", VERSIONS)
def test_new_then_partial_fill_then_fill(stack, name):
    c = stack.client(name)
    cl = c.new_order("AAPL", "1", 800, ord_type="1")  # market: 500 @ 190.01, then 300 @ 190.02
    partial = c.wait_exec(cl, "1")
    done = c.wait_exec(cl, "2")
    assert (partial[32], partial[31], partial[14], partial[151]) == ("500", "190.01", "500", "300")
    assert (done[32], done[31], done[14], done[151]) == ("300", "190.02", "800", "0")
    assert D(done[6]) == (500 * D("190.01") + 300 * D("190.02")) / 800


@pytest.mark.parametrize("name", VERSIONS)
def test_replace_quantity_up_then_down_then_price_then_fill(stack, name):
    c = stack.client(name)
    cl = c.new_order("AAPL", "1", 100, "185")
    c.wait_exec(cl, "0")

    up = c.replace(cl, "AAPL", "1", 200, "185")
    c.wait_exec(up, "E")  # PendingReplace
    replaced = c.wait_for(lambda m: m.get(11) == up and m.get(150) == "5", what="Replaced")
    assert (replaced[41], replaced[38], replaced[39], replaced[151]) == (cl, "200", "0", "200")

    down = c.replace(up, "AAPL", "1", 150, "185")
    replaced = c.wait_for(lambda m: m.get(11) == down and m.get(150) == "5", what="Replaced")
    assert (replaced[41], replaced[38], replaced[151]) == (up, "150", "150")

    priced = c.replace(down, "AAPL", "1", 150, "190.05")  # now marketable: fills at the venue
    c.wait_for(lambda m: m.get(11) == priced and m.get(150) == "5", what="Replaced")
    done = c.wait_exec(priced, "2")
    assert (done[14], done[31], done[30]) == ("150", "190.01", "VENUE1")


@pytest.mark.parametrize("name", VERSIONS)
def test_cancel_or_replace_of_a_filled_order_is_too_late(stack, name):
    c = stack.client(name)
    cl = c.new_order("MSFT", "2", 100, "409.00")
    c.wait_exec(cl, "2")
    cx = c.cancel(cl, "MSFT", "2", 100)
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == cx, what="OrderCancelReject")
    assert (rej[102], rej[434], rej[39]) == ("0", "1", "2") and "too late" in rej[58]
    rp = c.replace(cl, "MSFT", "2", 200, "409.00")
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == rp, what="OrderCancelReject")
    assert (rej[102], rej[434]) == ("0", "2")


@pytest.mark.parametrize("name", VERSIONS)
def test_status_request_is_answered_from_the_gateways_state(stack, name):
    c = stack.client(name)
    cl = c.new_order("MSFT", "1", 100, "400")
    c.wait_exec(cl, "0")
    c.status(cl, "MSFT", "1")
    st = c.wait_for(lambda m: m.get(11) == cl and m.get(150) in ("I", "0") and m.get(17, "").endswith(".3"),
                    what="status reply")
    assert st[150] == ("0" if name == "CLIENT42" else "I") and (st[39], st[151]) == ("0", "100")
    c.status("NEVER-SEEN", "MSFT", "1")
    unknown = c.wait_exec("NEVER-SEEN", "8")
    assert "unknown order" in unknown[58]
    c.wait_exec(c.cancel(cl, "MSFT", "1", 100), "4")


@pytest.mark.parametrize("name", ["CLIENT44", "CLIENT50"])
def test_mass_cancel_reports_then_cancels_every_open_order(stack, name):
    c = stack.client(name)
    a = c.new_order("AAPL", "1", 100, "180")
    m = c.new_order("MSFT", "2", 100, "420")
    c.wait_exec(a, "0")
    c.wait_exec(m, "0")
    q = c.mass_cancel("7")
    report = c.wait_for(lambda x: x.get(35) == "r" and x.get(11) == q, what="OrderMassCancelReport")
    assert (report[530], report[531], report[533]) == ("7", "7", "2")
    for cl in (a, m):
        done = c.wait_exec(cl, "4")
        assert "mass cancel" in done[58]


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", VERSIONS)
def test_replace_that_changes_side_is_refused_with_a_reason(stack, name):
    c = stack.client(name)
    cl = c.new_order("AAPL", "1", 100, "180")
    c.wait_exec(cl, "0")
    rp = c.replace(cl, "AAPL", "2", 100, "180")
    rej = c.wait_for(lambda m: m.get(35) == "9" and m.get(11) == rp, what="OrderCancelReject")
    assert rej[434] == "2" and "may not change Side" in rej[58]
    c.wait_exec(c.cancel(cl, "AAPL", "1", 100), "4")


@pytest.mark.parametrize("name", VERSIONS)
def test_negative_quantity_is_rejected(stack, name):
    c = stack.client(name)
    rej = c.wait_exec(c.new_order("AAPL", "1", -5, "190"), "8")
    assert "OrderQty must be positive" in rej[58]


@pytest.mark.parametrize("name", VERSIONS)
def test_unknown_time_in_force_gets_a_session_reject_naming_the_tag(stack, name):
    c = stack.client(name)
    cl = c.new_order("AAPL", "1", 100, "190", tif="Z")
    rej = c.wait_for(lambda m: m.get(35) == "3" and m.get(371) == "59", what="session Reject for tag 59")
    assert rej[373] == "5"
    assert not c.exec_reports(cl)


# ---------------------------------------------------------------------------- session events
def test_cancel_on_disconnect_cancels_day_orders_and_the_client_learns_of_it_on_reconnect(stack):
    c = stack.client("CLIENT42")  # configured with cancel_on_disconnect = true
    day = c.new_order("AAPL", "1", 100, "181")
    gtc = c.new_order("AAPL", "1", 100, "182", tif="1")
    c.wait_exec(day, "0")
    c.wait_exec(gtc, "0")
    c.stop()  # logs out

    again = stack.client("CLIENT42")  # same store: resumes its sequence numbers and gets what it missed
    canceled = again.wait_exec(day, "4", timeout=10)
    assert "cancel_on_disconnect" in canceled[58] and canceled.get(43) == "Y"  # delivered as a resend
    again.status(gtc, "AAPL", "1")
    st = again.wait_for(lambda m: m.get(11) == gtc and m.get(150) == "0" and m.get(39) == "0"
                        and m.get(17, "").endswith(".3"), what="GTC status")
    assert st[151] == "100"
    again.wait_exec(again.cancel(gtc, "AAPL", "1", 100), "4")


@pytest.mark.parametrize("name", VERSIONS)
def test_ioc_fills_what_it_can_and_the_rest_is_canceled(stack, name):
    c = stack.client(name)
    cl = c.new_order("MSFT", "2", 2000, "409.98", tif="3")  # IOC: bids 409.99 x500, 409.98 x1000 -> 1500
    canceled = c.wait_exec(cl, "4")
    assert (canceled[14], canceled[151]) == ("1500", "0")
    assert sum(D(m[32]) for m in fills(c, cl)) == D(1500)


@pytest.mark.parametrize("name", VERSIONS)
def test_fok_that_cannot_fill_completely_is_canceled_without_fills(stack, name):
    c = stack.client(name)
    cl = c.new_order("MSFT", "1", 5000, "410.02", tif="4")  # asks up to 410.02: only 1500 available
    canceled = c.wait_exec(cl, "4")
    assert canceled[14] == "0" and fills(c, cl) == []


@pytest.mark.parametrize("name", VERSIONS)
def test_account_is_carried_to_the_venue_and_back(stack, name):
    c = stack.client(name)
    cl = c.new_order("AAPL", "1", 10, "190.05", account="ACC-7")
    done = c.wait_exec(cl, "2")
    assert done[1] == "ACC-7"
    stack.gateway.journal.flush()
    from gateway.journal.queries import iter_messages
    to_venue = [r for r in iter_messages(stack.cfg.journal.database_url, "FIX.4.4:FIXGW->VENUE1", "O")
                if r.msg_type == "D" and r.cl_ord_id == done[37]]
    assert len(to_venue) == 1 and "\x011=ACC-7\x01" in to_venue[0].raw


@pytest.mark.parametrize("first", ["replace", "fill"])
@pytest.mark.parametrize("name", VERSIONS)
def test_replace_racing_a_fill_ends_consistent_whichever_wins(stack, name, first):
    """A resting buy is replaced up while another client's sell hits it: either the fill wins (the
    replace is too late) or the replace wins (the order ends part-filled at its new size)."""
    buyer, seller = stack.client(name), stack.client("CLIENT44" if name != "CLIENT44" else "CLIENT50")
    bid = buyer.new_order("AAPL", "1", 100, "190.00")  # best bid: synthetic bids start at 189.99
    buyer.wait_exec(bid, "0")
    if first == "fill":
        hit = seller.new_order("AAPL", "2", 100, "190.00")
        rp = buyer.replace(bid, "AAPL", "1", 200, "190.00")
    else:
        rp = buyer.replace(bid, "AAPL", "1", 200, "190.00")
        hit = seller.new_order("AAPL", "2", 100, "190.00")
    seller.wait_exec(hit, "2")
    outcome = buyer.wait_for(lambda m: (m.get(35) == "9" and m.get(11) == rp) or
                             (m.get(11) == rp and m.get(150) == "5"), what="replace outcome")
    if outcome[35] == "9":  # the fill won
        assert outcome[434] == "2"
        last = buyer.wait_exec(bid, "2")
        assert (last[14], last[151]) == ("100", "0")
    else:  # the replace won: 100 of 200 filled
        last = buyer.wait_for(lambda m: m.get(11) == rp and m.get(150) in TRADE, what="fill after replace")
        assert (last[14], last[151], last[38]) == ("100", "100", "200")
        buyer.wait_exec(buyer.cancel(rp, "AAPL", "1", 200), "4")
    for m in buyer.exec_reports(bid) + buyer.exec_reports(rp):
        assert D(m[14]) <= D(m[38])  # never an overfill
