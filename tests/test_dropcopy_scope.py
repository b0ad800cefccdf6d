"""Drop-copy scope (which reports a receiver sees), delivery ledger (what it is owed) and configuration."""
from __future__ import annotations

from pathlib import Path

import pytest

from dropcopy.filters import CLIENT, VENUE, NoDirectory, OrderInfo, Origin, Scope, origin
from dropcopy.ledger import Ledger
from gateway.config import ConfigError, parse_config


class Directory:
    """Orders as the gateway's core knows them: OrderID -> info, (venue, venue ClOrdID) -> info."""

    def __init__(self):
        self.orders = {"O-1": OrderInfo("CLIENT44", "ACC1", "VENUE1"), "O-2": OrderInfo("CLIENT42", None, "VENUE2")}
        self.children = {("VENUE1", "O-1"): self.orders["O-1"], ("VENUE1", "O-1.r1"): self.orders["O-1"],
                         ("VENUE2", "O-2"): self.orders["O-2"]}

    def by_order_id(self, order_id):
        return self.orders.get(order_id)

    def by_venue_cl_ord_id(self, venue, cl_ord_id):
        return self.children.get((venue, cl_ord_id))


D = Directory()


# ------------------------------------------------------------------ origin


def test_client_side_report_takes_session_and_the_orders_venue_and_account_from_the_directory():
    # a PendingNew carries neither venue nor (here) account; the directory knows both
    assert origin(CLIENT, "CLIENT44", {37: "O-1", 39: "A"}, D) == Origin(CLIENT, "CLIENT44", "ACC1", "VENUE1")
    # the report's own Account wins
    assert origin(CLIENT, "CLIENT44", {37: "O-1", 1: "OTHER"}, D).account == "OTHER"


def test_client_side_report_of_an_unknown_order_falls_back_to_last_mkt_or_no_venue():
    assert origin(CLIENT, "CLIENT42", {37: "NONE", 1: "A9"}, D) == Origin(CLIENT, "CLIENT42", "A9", None)
    assert origin(CLIENT, "CLIENT42", {37: "OLD-7", 30: "VENUE2"}, D).venue == "VENUE2"


def test_venue_side_report_finds_its_client_by_venue_cl_ord_id_or_orig_cl_ord_id():
    assert origin(VENUE, "VENUE1", {11: "O-1", 37: "V-55"}, D) == Origin(VENUE, "CLIENT44", "ACC1", "VENUE1")
    assert origin(VENUE, "VENUE1", {11: "O-1.c9", 41: "O-1.r1"}, D).client == "CLIENT44"
    # same ClOrdID from another venue: not ours
    assert origin(VENUE, "VENUE2", {11: "O-1"}, D) == Origin(VENUE, None, None, "VENUE2")
    assert origin(VENUE, "VENUE1", {11: "O-1"}, NoDirectory()).client is None


# ------------------------------------------------------------------ scope


A = Origin(CLIENT, "CLIENT44", "ACC1", "VENUE1")
B = Origin(VENUE, "CLIENT42", None, "VENUE2")
UNKNOWN = Origin(VENUE, None, None, "VENUE1")


def test_scope_by_side():
    assert Scope("client").covers(A) and not Scope("client").covers(B)
    assert Scope("venue").covers(B) and not Scope("venue").covers(A)
    assert Scope("both").covers(A) and Scope("both").covers(B)


def test_scope_by_clients_accounts_and_venues():
    assert Scope("both", clients=frozenset({"CLIENT44"})).covers(A)
    assert not Scope("both", clients=frozenset({"CLIENT44"})).covers(B)
    assert Scope("both", accounts=frozenset({"ACC1"})).covers(A)
    assert not Scope("both", accounts=frozenset({"ACC1"})).covers(B)  # no account: not ACC1's
    assert Scope("both", venues=frozenset({"VENUE2"})).covers(B) and not Scope("both", venues=frozenset({"VENUE2"})).covers(A)
    assert Scope("both", clients=frozenset({"CLIENT44"}), venues=frozenset({"VENUE2"})).covers(A) is False


def test_a_report_whose_owner_is_unknown_is_seen_only_by_scopes_without_that_filter():
    assert Scope("venue").covers(UNKNOWN)
    assert Scope("venue", venues=frozenset({"VENUE1"})).covers(UNKNOWN)
    assert not Scope("venue", clients=frozenset({"CLIENT44"})).covers(UNKNOWN)
    assert not Scope("venue", accounts=frozenset({"ACC1"})).covers(UNKNOWN)


def test_scope_describes_itself():
    assert Scope().describe() == "client-side reports; all clients; all accounts; all venues"
    assert Scope("both", accounts=frozenset({"B", "A"})).describe() == \
        "client- and venue-side reports; all clients; accounts A, B; all venues"


# ------------------------------------------------------------------ ledger


def p(ident: int, xid: int = 0) -> tuple[int, int]:
    """A position in the journal's merged stream (gateway/journal/stream.py)."""
    return (xid, ident)


def test_a_new_session_gets_copies_of_what_is_journaled_from_now_on():
    led = Ledger.fresh("DC44", p(120), "20261124-06:00:00")
    assert (led.sent, led.claimed, led.acked, led.resend_upto) == (p(120), p(120), p(120), p(0))
    assert not led.poss_resend(p(121))


def test_after_a_restart_possibly_sent_copies_are_marked_poss_resend():
    led = Ledger("DC44", sent=p(100), claimed=p(150), acked=p(90), stream="s1")
    led.restarted()
    assert led.sent == p(100) and led.poss_resend(p(150)) and not led.poss_resend(p(151))


def test_a_store_reset_rewinds_to_the_last_acknowledged_copy():
    led = Ledger("DC44", sent=p(200), claimed=p(200), acked=p(180), stream="s1")
    assert led.stream_changed("s1") is False
    assert led.stream_changed("s2") is True
    assert (led.sent, led.claimed, led.acked, led.stream) == (p(180), p(180), p(180), "s2")
    assert led.poss_resend(p(200)) and not led.poss_resend(p(201))  # only what may have gone out before


def test_the_first_stream_seen_is_recorded_not_treated_as_a_reset():
    led = Ledger("DC44", sent=p(5), claimed=p(5), acked=p(1), stream=None)
    assert led.stream_changed("s1") is False and led.sent == p(5) and led.stream == "s1"
    assert led.stream_changed(None) is False and led.stream == "s1"


def test_acknowledgements_never_pass_what_was_sent_and_never_go_back():
    led = Ledger("DC44", sent=p(50), claimed=p(60), acked=p(10))
    led.acknowledge(p(70))
    assert led.acked == p(50)
    led.acknowledge(p(20))
    assert led.acked == p(50)
    led.claim(p(80))
    led.advance(p(80))
    assert (led.sent, led.claimed) == (p(80), p(80))


def test_positions_order_by_writing_transaction_then_journal_id():
    """Two shards commit side by side: a lower id written by a later transaction comes after a higher id of an
    earlier one, and a row written before revision 0012 (xid 0) before both."""
    led = Ledger("DC44", sent=p(900, xid=7001), claimed=p(900, xid=7001), acked=p(40))
    assert led.poss_resend(p(10**6)) is False
    led.restarted()
    assert led.poss_resend(p(950, xid=7000)) and led.poss_resend(p(900, xid=7001))
    assert not led.poss_resend(p(899, xid=7002))  # a lower id, but a later transaction: not sent yet
    led.advance(p(899, xid=7002))
    assert led.sent == p(899, xid=7002) > p(10**9)


# ------------------------------------------------------------------ configuration

BASE = """
[clients.CLIENT44]
fix_version = "FIX.4.4"
[venues.VENUE1]
fix_version = "FIX.4.4"
port = 9881
symbols = ["AAPL"]
"""


def cfg(text: str):
    return parse_config(BASE + text, Path("/tmp"), env={})


def test_dropcopy_config_reads_sessions_and_filters():
    c = cfg("""
[dropcopy]
port = 9977
[dropcopy.sessions.DC44]
fix_version = "FIX.4.4"
allowed_addresses = ["127.0.0.1"]
[dropcopy.sessions.DC42]
fix_version = "FIX.4.2"
reports = "both"
clients = ["CLIENT44"]
accounts = ["ACC1"]
venues = ["VENUE1"]
""")
    assert c.dropcopy.port == 9977
    dc44, dc42 = c.dropcopy.sessions["DC44"], c.dropcopy.sessions["DC42"]
    assert (dc44.reports, dc44.clients, dc44.allowed_addresses) == ("client", (), ("127.0.0.1",))
    assert (dc42.reports, dc42.clients, dc42.accounts, dc42.venues) == ("both", ("CLIENT44",), ("ACC1",), ("VENUE1",))
    assert cfg("").dropcopy.sessions == {}


@pytest.mark.parametrize("text, problem", [
    ('[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\nreport = "client"\n', "report"),
    ('[dropcopy.sessions.DC44]\nfix_version = "FIX.4.3"\n', "fix_version"),
    ('[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\nreports = "all"\n', "reports"),
    ('[dropcopy]\nbind = "0.0.0.0"\n', "bind"),
    ('[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\nclients = ["CLIENT99"]\n', "unknown client session(s) CLIENT99"),
    ('[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\nvenues = ["VENUE9"]\n', "unknown venue(s) VENUE9"),
    ('[dropcopy.sessions.CLIENT44]\nfix_version = "FIX.4.4"\n', "also used for a client or venue"),
    ('[dropcopy.sessions.FIXGW]\nfix_version = "FIX.4.4"\n', "comp_id FIXGW"),
    ('[dropcopy]\nport = 9876\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\n', "client acceptor's port"),
    ('[dropcopy]\nport = 9878\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\n', "HTTP port"),
])
def test_dropcopy_config_mistakes_stop_start_up_with_their_name(text, problem):
    with pytest.raises(ConfigError) as err:
        cfg(text)
    assert problem in str(err.value)


def test_shipped_demo_config_has_dc44_on_9877_seeing_all_client_side_reports():
    from gateway.config import load_config

    c = load_config(Path(__file__).resolve().parent.parent / "gateway.cfg", env={})
    assert c.dropcopy.port == 9877
    dc44 = c.dropcopy.sessions["DC44"]
    assert (dc44.fix_version, dc44.reports, dc44.clients, dc44.accounts, dc44.venues) == \
        ("FIX.4.4", "client", (), (), ())
