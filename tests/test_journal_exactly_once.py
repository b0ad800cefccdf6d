"""Every message the gateway sends is journaled exactly once, whether quickfix put it on the wire or only
stored it for a session that was away: the sender decides from quickfix's own view (``journal_log.WIRE``),
not from what the engine has heard of logons and logouts so far."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from gateway.journal.queries import iter_messages
from orders.commands import OperatorCancel
from tests.fix_fixtures import start_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exactly_once")
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp)
    yield s
    s.stop()


def sent_rows(stack, name: str):
    stack.gateway.journal.flush()
    sid = stack.gateway.client_sids[name].toString()
    return list(iter_messages(stack.cfg.journal.database_url, sid, "O"))


def assert_each_sent_once(rows) -> None:
    firsts = Counter(r.seq_num for r in rows if not r.poss_dup)
    assert [seq for seq, n in firsts.items() if n > 1] == [], "a message journaled twice"
    resends = Counter(r.seq_num for r in rows if r.poss_dup)
    assert [seq for seq, n in resends.items() if n > 1] == [], "a resend journaled twice"


def wait_down(stack, name: str, timeout: float = 5.0) -> None:
    session = stack.gateway.session(name)
    deadline = time.monotonic() + timeout
    while session.isLoggedOn() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not session.isLoggedOn()


def test_reports_sent_while_the_client_is_away_are_journaled_once_then_their_resends_once(stack):
    c = stack.client("CLIENT44")
    resting = c.new_order("ORCL", "1", 100, "119.00")  # rests at VENUE2
    c.wait_exec(resting, "0")
    order_id = c.exec_reports(resting)[-1][37]
    c.stop()
    wait_down(stack, "CLIENT44")
    assert stack.gateway.engine.request(OperatorCancel(order_id=order_id, operator="test")).result["ok"]
    deadline = time.monotonic() + 5
    while stack.gateway.engine.call(lambda core: core.orders[order_id].is_open) and time.monotonic() < deadline:
        time.sleep(0.02)
    away = [r for r in sent_rows(stack, "CLIENT44") if r.msg_type == "8" and resting in r.raw]
    assert [("39=6" in r.raw, "39=4" in r.raw) for r in away[-2:]] == [(True, False), (False, True)]
    assert not any(r.poss_dup for r in away)

    c = stack.client("CLIENT44")  # logs on again; quickfix re-sends what it stored, with PossDupFlag
    c.wait_for(lambda m: m.get(35) == "8" and m.get(11) == resting and m.get(39) == "4", what="the Canceled resend")
    time.sleep(0.2)
    rows = sent_rows(stack, "CLIENT44")
    assert_each_sent_once(rows)
    canceled = [r for r in rows if r.msg_type == "8" and resting in r.raw and "\x0139=4\x01" in r.raw]
    assert sorted(r.poss_dup for r in canceled) == [False, True]  # stored once, re-sent once


def test_a_message_sent_just_after_a_logon_the_engine_has_not_handled_yet_is_journaled_once(stack):
    """The race of issue 17, item 11: the client is logged on in quickfix's view while the engine's core thread
    has not reached the queued logon yet (held here on purpose); what is sent then went on the wire, and is
    journaled once, by the session's Log only."""
    import threading

    release = threading.Event()
    holding = threading.Event()

    def hold(core):
        holding.set()
        release.wait(20)

    blocker = threading.Thread(target=stack.gateway.engine.call, args=(hold, 30), daemon=True)
    blocker.start()
    assert holding.wait(5)
    try:
        before = len(sent_rows(stack, "CLIENT42"))
        c = stack.client("CLIENT42")  # logs on now; the engine hears of it only after the release
        assert c.wait_logged_on()
        outbound = stack.gateway.engine.outbound
        for i in range(5):
            assert outbound.business_reject("CLIENT42", "D", f"PROBE{i}", "probe: exactly once")
    finally:
        release.set()
        blocker.join(10)
    c.wait_for(lambda m: m.get(35) == "j" and m.get(379) == "PROBE4", what="the last probe")
    rows = sent_rows(stack, "CLIENT42")
    probes = [r for r in rows[before:] if "PROBE" in r.raw]
    assert len(probes) == 5 and not any(r.poss_dup for r in probes)
    assert_each_sent_once(rows)
