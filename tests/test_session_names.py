"""Sessions given by name or by full SessionID, resolved from the configuration and the journal."""
from __future__ import annotations

from pathlib import Path

import pytest

from gateway.admin.names import UnknownName, configured_sessions, journal_session_id, session_name
from gateway.config import parse_config

CFG = parse_config("""
comp_id = "GW"
[clients.CLIENT44]
fix_version = "FIX.4.4"
[clients.CLIENT50]
fix_version = "FIX.5.0"
[venues.VENUE1]
fix_version = "FIX.4.2"
port = 9
symbols = ["AAPL"]
[dropcopy.sessions.DC44]
fix_version = "FIX.4.4"
""", Path("/tmp"), env={})


def test_session_ids_are_built_as_the_gateway_builds_them():
    assert configured_sessions(CFG) == {"CLIENT44": "FIX.4.4:GW->CLIENT44", "CLIENT50": "FIXT.1.1:GW->CLIENT50",
                                        "VENUE1": "FIX.4.2:GW->VENUE1", "DC44": "FIX.4.4:GW->DC44"}


def test_a_name_or_a_full_session_id_gives_the_name():
    assert session_name(CFG, "CLIENT50") == "CLIENT50"
    assert session_name(CFG, "FIXT.1.1:GW->CLIENT50") == "CLIENT50"
    assert session_name(CFG, "FIX.4.2:GW->VENUE1", ("venue",)) == "VENUE1"


def test_an_unknown_session_lists_the_known_ones_of_the_roles_asked_for():
    with pytest.raises(UnknownName, match=r"^unknown client session CLIENT4 \(known: CLIENT44, CLIENT50\)$"):
        session_name(CFG, "CLIENT4", ("client",))
    with pytest.raises(UnknownName, match=r"unknown client session VENUE1"):  # a venue is not a client
        session_name(CFG, "VENUE1", ("client",))
    with pytest.raises(UnknownName, match=r"unknown session FIX.4.2:GW->CLIENT44"):  # wrong version
        session_name(CFG, "FIX.4.2:GW->CLIENT44")


def journal(*held: str):
    return (lambda sid: sid in held), (lambda: sorted(held))


def test_journal_session_id_takes_configured_names_and_journaled_session_ids():
    held = journal("FIX.4.4:GW->CLIENT44", "FIX.4.2:GW->OLD42")
    assert journal_session_id(CFG, "CLIENT44", *held) == "FIX.4.4:GW->CLIENT44"
    assert journal_session_id(CFG, "DC44", *held) == "FIX.4.4:GW->DC44"  # configured, not journaled yet: no rows
    assert journal_session_id(CFG, "FIX.4.2:GW->OLD42", *held) == "FIX.4.2:GW->OLD42"  # removed from the config
    assert journal_session_id(CFG, "OLD42", *held) == "FIX.4.2:GW->OLD42"  # ... and by its name


def test_journal_session_id_refuses_an_unknown_name_listing_configured_and_journal_only_sessions():
    with pytest.raises(UnknownName) as err:
        journal_session_id(CFG, "CLIENT4", *journal("FIX.4.4:GW->CLIENT44", "FIX.4.2:GW->OLD42"))
    assert str(err.value) == ("unknown session CLIENT4 (known: CLIENT44, CLIENT50, DC44, VENUE1; "
                              "in the journal only: FIX.4.2:GW->OLD42)")
    with pytest.raises(UnknownName, match="under several SessionIDs: FIX.4.2:GW->OLD, FIX.4.4:GW->OLD"):
        journal_session_id(CFG, "OLD", *journal("FIX.4.2:GW->OLD", "FIX.4.4:GW->OLD"))


def test_commands_reading_the_configuration_refuse_an_unknown_session_listing_the_known_ones(tmp_path):
    from click.testing import CliRunner

    from gateway.cli.main import main

    cfg = tmp_path / "gw.cfg"
    cfg.write_text(f'comp_id = "GW"\ndata_dir = "{tmp_path}"\n[journal]\ndatabase_url = "sqlite:///{tmp_path}/j.db"\n'
                   '[clients.CLIENT44]\nfix_version = "FIX.4.4"\n[dropcopy.sessions.DC44]\nfix_version = "FIX.4.4"\n')
    rules = tmp_path / "rules.toml"
    rules.write_text("version = 1\n[limits]\nmax_order_qty = 100\n")
    runner = CliRunner()
    res = runner.invoke(main, ["risk", "what-if", str(rules), "--session", "CLIENT4", "-c", str(cfg)])
    assert res.exit_code == 1 and "unknown client session CLIENT4 (known: CLIENT44)" in res.stderr
    res = runner.invoke(main, ["credentials", "set", "FIX.4.4:GW->CLIENT44", "--password-stdin", "-c", str(cfg)],
                        input="a-long-enough-password\n")
    assert res.exit_code == 0 and "password set for CLIENT44" in res.stdout  # a SessionID names it too
    res = runner.invoke(main, ["credentials", "delete", "CLIENT4", "-c", str(cfg)])
    assert res.exit_code == 2 and "unknown session CLIENT4 in" in res.stderr and "CLIENT44, DC44" in res.stderr
