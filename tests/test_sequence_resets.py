"""Sequence-number resets over real sessions: a counterparty's ResetSeqNumFlag (141=Y) and the ResetOnLogon /
ResetOnLogout / ResetOnDisconnect settings of clients, venues and drop-copy sessions.

What the gateway must get right around them: both sides start again at 1; its own watermark of processed
MsgSeqNums (which skips re-sent messages it acted on before a restart) is forgotten, so the new sequence's low
numbers are never taken for processed ones, also across a restart; orders keep flowing; nothing handed to a
logged-out session is lost from the journal or the drop copies.
"""
from __future__ import annotations

import logging
import time

import pytest

from gateway.journal.queries import iter_messages
from gateway.process.server import Gateway
from sessions.client import FixClient
from sessions.simulator.venue import VenueSimulator
from tests.dropcopy_fixtures import by_exec_id, copies, receiver, settle
from tests.fix_fixtures import CLIENTS, free_port, start_stack

SOH = "\x01"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resets")
    dc_port = free_port()
    dropcopy = (f"[dropcopy]\nport = {dc_port}\n"
                '[dropcopy.sessions.DCRESET]\nfix_version = "FIX.4.4"\nreset_on_logout = true\n')
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=dropcopy,
                    client_options={"CLIENT42": "reset_on_logon = true",
                                    "CLIENT50": "reset_on_logout = true\nreset_on_disconnect = true"},
                    venue_options={"VENUE2": "reset_on_disconnect = true\non_disconnect = \"cancel\""})
    s.dc_port = dc_port
    yield s
    s.stop()


def client(env, name: str, **kw) -> FixClient:
    """A new client engine for session ``name`` (the same store as env.client's), logged on."""
    old = env.clients.get(name)
    if old is not None:
        old.stop()
    c = env.clients[name] = FixClient(version=CLIENTS[name], sender=name, target="FIXGW",
                                      port=env.cfg.acceptor.port, store_dir=env.tmp / "clients", **kw).start()
    return c


def logons(c: FixClient, direction: str) -> list[dict[int, str]]:
    from sessions.client import parse
    return [parse(raw) for d, raw in list(c.wire.lines) if d == direction and f"{SOH}35=A{SOH}" in raw]


def gateway_session(env, name: str):
    import quickfix as fix
    return fix.Session.lookupSession(env.gateway.client_sids[name])


def watermarks(gw: Gateway) -> dict:
    return gw.engine.call(lambda core: dict(gw.engine.recorder.watermarks))


def fill(c: FixClient, n: int = 1) -> None:
    for _ in range(n):
        c.wait_exec(c.new_order("AAPL", "1", 10, "190.10"), "2")


def offline_order_resent_after_logon(c: FixClient) -> str:
    """Log out without stopping the engine, send an order (stored, not on the wire), log on again: the
    gateway asks for it and gets it re-sent with PossDupFlag (43=Y) under a low MsgSeqNum. Returns its ClOrdID."""
    c.session.logout("going away for a moment")
    assert c.wait_logged_on(10, up=False)
    cl = c.new_order("AAPL", "1", 10, "190.10")
    c.session.logon()
    assert c.wait_logged_on(10)
    return cl


def watermark_dropped(env, origin: str, timeout: float = 5.0) -> bool:
    """Whether the gateway dropped ``origin``'s watermark within ``timeout``: the engine thread applies a reset
    logon just after the client has seen the gateway's Logon (and before any message of the new sequence, which
    the same session thread hands over after it), so a test looks a moment later."""
    deadline = time.monotonic() + timeout
    while origin in watermarks(env.gateway) and time.monotonic() < deadline:
        time.sleep(0.01)
    return origin not in watermarks(env.gateway)


def test_a_client_logging_on_with_reset_seqnum_flag_restarts_both_sides_at_1_and_its_orders_are_processed(env):
    c = client(env, "CLIENT44")
    fill(c, 4)
    assert watermarks(env.gateway)["client:CLIENT44"][0] >= 5  # the gateway processed MsgSeqNums up to here

    c = client(env, "CLIENT44", reset_seqnum_flag=True)  # straight back, with 141=Y: often the same second
    (ours,), (theirs,) = logons(c, "O"), logons(c, "I")
    assert ours[34] == "1" and ours[141] == "Y"
    assert theirs[34] == "1" and theirs[141] == "Y"  # the gateway honoured it: its own numbers restart too
    assert watermark_dropped(env, "client:CLIENT44")  # the old sequence's watermark is gone

    # The first message of the new sequence to arrive is a re-sent one with a MsgSeqNum (3) far below the
    # old watermark: it was never processed, so it must be, not skipped as "processed before".
    c.reset_seqnum_flag = False
    cl = offline_order_resent_after_logon(c)
    filled = c.wait_exec(cl, "2")
    assert filled[11] == cl
    resent = [raw for d, raw in list(c.wire.lines) if d == "O" and f"{SOH}11={cl}{SOH}" in raw]
    assert any(f"{SOH}43=Y{SOH}" in m and f"{SOH}34=3{SOH}" in m for m in resent), resent
    assert env.gateway.engine.recorder.skipped == 0
    fill(c)
    assert gateway_session(env, "CLIENT44").getExpectedTargetNum() < 10


def test_after_a_gateway_restart_a_clients_reset_still_clears_the_watermark_it_recovered(env):
    c = client(env, "CLIENT44")
    fill(c, 6)
    high = watermarks(env.gateway)["client:CLIENT44"][0]
    assert high >= 7
    c.stop()
    env.gateway.stop()
    env.gateway = Gateway(env.cfg, config_path=env.config_path).start()
    assert env.gateway.wait_venues_up(20)
    assert env.gateway.recovered.clean
    assert watermarks(env.gateway)["client:CLIENT44"][0] == high  # recovered from the snapshot

    c = client(env, "CLIENT44", reset_seqnum_flag=True)
    assert logons(c, "I")[0][34] == "1"
    assert watermark_dropped(env, "client:CLIENT44")
    c.reset_seqnum_flag = False
    cl = offline_order_resent_after_logon(c)  # re-sent as MsgSeqNum 3 <= the recovered watermark
    c.wait_exec(cl, "2")
    assert env.gateway.engine.recorder.skipped == 0
    assert watermarks(env.gateway)["client:CLIENT44"][0] == 3  # the new sequence's


def test_a_client_session_with_reset_on_logon_starts_again_at_1_at_every_logon(env):
    for round_ in range(2):
        c = client(env, "CLIENT42", extra={"ResetOnLogon": "Y"})  # the client agrees: it resets too (141=Y)
        (ours,), (theirs,) = logons(c, "O"), logons(c, "I")
        assert ours[34] == "1" and ours[141] == "Y"
        assert theirs[34] == "1", f"round {round_}: the gateway answered with {theirs[34]}"
        fill(c, 3)
        assert gateway_session(env, "CLIENT42").getExpectedTargetNum() == 5  # Logon, 3 orders
        assert gateway_session(env, "CLIENT42").getExpectedSenderNum() > 5  # Logon, PendingNew/New/Fill...
    c.stop()
    assert env.gateway.engine.recorder.skipped == 0


def test_a_venue_with_reset_on_disconnect_logs_on_again_at_1_and_orders_still_flow(env):
    c = client(env, "CLIENT44")
    first = c.new_order("ORCL", "1", 10, "119.00")  # rests at VENUE2 (the only venue with ORCL)
    c.wait_exec(first, "0")
    old = env.venues["VENUE2"]
    old.stop()  # the connection ends: the gateway resets its VENUE2 store (reset_on_disconnect)
    c.wait_exec(first, "4")  # on_disconnect = "cancel": the venue canceled it
    sim = VenueSimulator(comp_id="VENUE2", port=env.cfg.venues["VENUE2"].port, sim=env.cfg.venues["VENUE2"].simulator,
                         store_dir=env.tmp / "venues" / "VENUE2", counterparties=(env.cfg.comp_id,))
    env.venues["VENUE2"] = sim.start()
    deadline = time.monotonic() + 20
    while not env.gateway.is_logged_on("VENUE2") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.gateway.is_logged_on("VENUE2")
    env.gateway.journal.flush()
    sid = env.gateway.venue_sids["VENUE2"].toString()
    our_logons = [r.raw for r in iter_messages(env.cfg.journal.database_url, session_id=sid, direction="O")
                  if r.msg_type == "A"]
    assert f"{SOH}34=1{SOH}" in our_logons[-1] and f"{SOH}141=Y{SOH}" in our_logons[-1]  # a fresh start, said so
    second = c.new_order("ORCL", "1", 10, "119.00")
    c.wait_exec(second, "0")
    c.wait_exec(c.cancel(second, "ORCL", "1", 10), "4")


def test_a_report_for_a_logged_out_client_whose_store_was_reset_is_journaled_without_a_seqnum(env):
    resets = {"ResetOnLogout": "Y", "ResetOnDisconnect": "Y"}  # the client's side of the agreement
    c = client(env, "CLIENT50", extra=resets)
    resting = c.new_order("ORCL", "1", 10, "119.00")
    order_id = c.wait_exec(resting, "0")[37]
    c.stop()  # Logout: the gateway resets CLIENT50's store (reset_on_logout); quickfix will keep nothing for it
    from orders.commands import OperatorCancel
    assert env.gateway.engine.request(OperatorCancel(order_id=order_id, operator="test")).result["canceled"] == 1
    sid = env.gateway.client_sids["CLIENT50"].toString()

    def canceled():
        env.gateway.journal.flush()
        return [r for r in iter_messages(env.cfg.journal.database_url, session_id=sid, direction="O")
                if r.order_id == order_id and f"{SOH}39=4{SOH}" in r.raw]
    deadline = time.monotonic() + 5
    while not canceled() and time.monotonic() < deadline:
        time.sleep(0.05)
    (row,) = canceled()
    assert row.seq_num is None and f"{SOH}34=" not in row.raw  # quickfix dropped it: it never had one
    assert gateway_session(env, "CLIENT50").getExpectedSenderNum() == 1  # nothing stored
    c = client(env, "CLIENT50", extra=resets)
    assert logons(c, "O")[0][34] == "1" and logons(c, "O")[0][141] == "Y"
    # not re-delivered by FIX (the reset dropped it); the client asks for the order's status instead
    c.status(resting, "ORCL", "1")
    status = c.wait_for(lambda m: m.get(35) == "8" and m.get(11) == resting and m.get(150) == "I")
    assert status[39] == "4"


def test_a_drop_copy_session_with_reset_on_logout_holds_copies_while_the_receiver_is_away(env, caplog):
    rx = receiver(env.dc_port, "DCRESET", "FIX.4.4", env.tmp / "receivers" / "DCRESET",
                  {"ResetOnLogout": "Y"})
    c = client(env, "CLIENT44")
    before = c.new_order("AAPL", "1", 10, "190.10")
    c.wait_exec(before, "2")
    settle(env.gateway, logged_on=("DCRESET",))
    assert copies(rx, lambda m: m[11] == before)
    rx.stop()  # Logout: both sides reset; quickfix would drop any copy sent now
    caplog.set_level(logging.INFO, logger="fixgw.dropcopy")
    away = [c.new_order("AAPL", "1", 10, "190.10") for _ in range(3)]
    for cl in away:
        c.wait_exec(cl, "2")
    settle(env.gateway)
    assert env.gateway.dropcopy.healthy
    assert not [r for r in caplog.records if "refused a copy" in r.getMessage()]

    rx = receiver(env.dc_port, "DCRESET", "FIX.4.4", env.tmp / "receivers" / "DCRESET", {"ResetOnLogout": "Y"})
    assert logons(rx, "O")[0][141] == "Y"
    settle(env.gateway, logged_on=("DCRESET",))
    got = by_exec_id(copies(rx))
    for cl in away:  # every report made while it was away: PendingNew, New, Filled
        assert sorted(m[39] for m in got.values() if m[11] == cl) == ["0", "2", "A"], cl
    rx.stop()


# --------------------------------------------------------------------------- configuration
def test_the_reset_keys_become_quickfixs_settings_and_their_costs_are_warned_about(tmp_path):
    from gateway.config import parse_config, sequence_reset_warnings

    cfg = parse_config("""
[clients.C1]
fix_version = "FIX.4.4"
reset_on_logon = true
[clients.C2]
fix_version = "FIX.4.4"
[venues.V1]
fix_version = "FIX.4.4"
port = 5001
symbols = ["AAPL"]
reset_on_disconnect = true
reconcile_on_logon = false
[venues.V2]
fix_version = "FIX.4.4"
port = 5002
symbols = ["AAPL"]
reset_on_logout = true
on_disconnect = "cancel"
[dropcopy.sessions.DC1]
fix_version = "FIX.4.4"
reset_on_logout = true
""", tmp_path, env={})
    assert cfg.clients["C1"].reset_settings() == {"ResetOnLogon": "Y"}
    assert cfg.clients["C2"].reset_settings() == {} and not cfg.clients["C2"].resets
    assert cfg.venues["V1"].reset_settings() == {"ResetOnDisconnect": "Y"}
    assert cfg.dropcopy.sessions["DC1"].reset_settings() == {"ResetOnLogout": "Y"}
    warnings = sequence_reset_warnings(cfg)
    assert len(warnings) == 2, warnings  # C1 (reports while away) and V1 (hold, not reconciled); not V2, not DC1
    assert warnings[0].startswith("clients.C1") and "OrderStatusRequest" in warnings[0]
    assert warnings[1].startswith("venues.V1") and "hold" in warnings[1]
    with pytest.raises(Exception, match="reset_on_logn"):
        parse_config('[clients.C1]\nfix_version = "FIX.4.4"\nreset_on_logn = true\n', tmp_path, env={})
