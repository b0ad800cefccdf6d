"""Drop copies across gateway restarts, on SQLite and PostgreSQL: the delivery watermark is persisted, a
receiver that was down gets its copies from the gateway's store after a restart, and when the store is
lost the gateway re-sends from the journal everything the receiver had not acknowledged.

Gateways start one after another in this module only (quickfix has one SessionID registry per process).
"""
from __future__ import annotations

from sqlalchemy import select

from gateway.journal.db import dropcopy_state, make_engine
from tests.dropcopy_fixtures import assert_valid_on_the_wire, by_exec_id, copies, receiver, settle
from tests.fix_fixtures import free_port, start_stack


def start(database_url, tmp, dc_port):
    return start_stack(database_url, tmp, extra_toml=f"""
[dropcopy]
port = {dc_port}
[dropcopy.sessions.DCR]
fix_version = "FIX.5.0"
clients = ["CLIENT44"]
""")


def trade(stack, qty) -> dict[str, dict[int, str]]:
    c = stack.client("CLIENT44")
    cl = c.new_order("AAPL", "1", qty, "190.05")
    c.wait_exec(cl, "2")
    return by_exec_id([m for m in c.app_messages("8") if m.get(11) == cl])


def ledger(url) -> tuple:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            r = conn.execute(select(dropcopy_state).where(dropcopy_state.c.session == "DCR")).one()
            return ((r.sent_xid, r.sent_id), (r.claimed_xid, r.claimed_id), (r.acked_xid, r.acked_id),
                    (r.resend_xid, r.resend_upto))
    finally:
        engine.dispose()


def test_copies_survive_restarts_and_a_lost_store_is_refilled_from_the_journal(database_url, tmp_path):
    rx_store = tmp_path / "rx"
    receivers = []  # stopped whatever happens: a receiver left running would outlive its SessionID's next owner
    try:
        check_restarts(database_url, tmp_path, rx_store, receivers)
    finally:
        for rx in receivers:
            rx.stop()


def check_restarts(database_url, tmp_path, rx_store, receivers):
    def connect(stack, store, extra=None):
        rx = receiver(stack.gateway.cfg.dropcopy.port, "DCR", "FIX.5.0", store, extra)
        receivers.append(rx)
        return rx

    # run 1: the receiver gets one fill, then goes away; a second fill waits in the gateway's store
    stack = start(database_url, tmp_path, free_port())
    try:
        rx = connect(stack, rx_store)
        first = trade(stack, 100)
        settle(stack.gateway, ("DCR",))
        rx.stop()
        missed = trade(stack, 200)
        settle(stack.gateway)
    finally:
        stack.stop()
    assert set(by_exec_id(copies(rx, lambda m: m[17] in first))) == set(first)
    sent, claimed, acked, _ = ledger(database_url)
    assert sent == claimed > acked  # persisted: copied to the store, not yet acknowledged

    # run 2: same store: the receiver logs on and quickfix re-sends what it missed (43=Y)
    stack = start(database_url, tmp_path, free_port())
    try:
        rx = connect(stack, rx_store)
        settle(stack.gateway, ("DCR",))
        got = by_exec_id(copies(rx, lambda m: m[17] in first or m[17] in missed))
        assert set(got) == set(missed) and all(m[43] == "Y" and 97 not in m for m in got.values())
        assert_valid_on_the_wire(rx)
        rx.stop()
        lost = trade(stack, 300)  # copied into the store while the receiver is away ...
        settle(stack.gateway)
    finally:
        stack.stop()

    # ... and the store is lost with the gateway down
    for f in (stack.cfg.data_dir / "store" / "dropcopy").glob("*-FIXGW-DCR.*"):
        f.unlink()
    stack = start(database_url, tmp_path, free_port())
    try:
        # both sides start over: the receiver resets its sequence numbers too
        rx = connect(stack, tmp_path / "rx-fresh", extra={"ResetOnLogon": "Y"})
        settle(stack.gateway, ("DCR",))
        got = by_exec_id(copies(rx, lambda m: m[17] in first or m[17] in missed or m[17] in lost))
        assert set(got) == set(lost)  # everything not acknowledged, nothing that was
        assert all(m[97] == "Y" and m[797] == "Y" for m in got.values())
        assert all(got[e][11] == r[11] and got[e][37] == r[37] for e, r in lost.items())
        assert_valid_on_the_wire(rx)
        rx.stop()
    finally:
        stack.stop()
    sent, claimed, acked, resend_upto = ledger(database_url)
    assert sent == claimed == acked and resend_upto >= acked
