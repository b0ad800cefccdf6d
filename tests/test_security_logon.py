"""Authenticated logons and access control over real FIX sessions (gateway in this process, SQLite journal).

CLIENT44 needs Username/Password, may log on from 127.0.0.0/8 and use account ACC1 only;
CLIENT42 may log on from 10.0.0.0/8 only (the tests connect from 127.0.0.1).
"""
from __future__ import annotations

import logging
import time

import pytest

from gateway.security.auth import FailureThrottle
from gateway.security.credentials import CredentialStore
from gateway.journal.queries import iter_events, iter_messages
from gateway.journal.spool import read_spool
from gateway.observability.logs import JsonFormatter, LogfmtFormatter
from sessions.client import FixClient
from tests.fix_fixtures import free_port, start_stack

PASSWORD = "correct horse battery staple 44"
WRONG = "Tr0ub4dor&3-wrong-one"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("logon")
    # the password is set before the gateway starts, as `fixgw credentials set` would
    CredentialStore(tmp / "gw").set("CLIENT44", PASSWORD)
    CredentialStore(tmp / "gw").set("DCSEC", PASSWORD)
    s = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, client_options={
        "CLIENT44": 'password_required = true\nusername = "trader44"\nallowed_addresses = ["127.0.0.0/8"]\n'
                    'accounts = ["ACC1"]',
        "CLIENT42": 'allowed_addresses = ["10.0.0.0/8"]',
    }, extra_toml=f"""
[dropcopy]
port = {free_port()}
[dropcopy.sessions.DCSEC]
fix_version = "FIX.4.4"
password_required = true
allowed_addresses = ["127.0.0.0/8"]
[dropcopy.sessions.DCFAR]
fix_version = "FIX.4.4"
allowed_addresses = ["10.0.0.0/8"]
""")
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def fresh_throttle(stack):
    stack.gateway.logon_guard.throttle = FailureThrottle()


def client(stack, name: str, version: str, user: str | None = None, password: str | None = None) -> FixClient:
    fields = {k: v for k, v in ((553, user), (554, password)) if v is not None}
    c = FixClient(version=version, sender=name, target="FIXGW", port=stack.cfg.acceptor.port,
                  store_dir=stack.tmp / "clients", logon_fields=fields)
    stack.clients[f"{name}-{len(stack.clients)}"] = c  # the stack stops it at the end
    return c


def logouts(c: FixClient) -> list[str]:
    """The Text (58) of every Logout the client received."""
    out = []
    for direction, raw in list(c.wire.lines):
        if direction == "I" and "\x0135=5\x01" in raw:
            text = raw.split("\x0158=", 1)[1].split("\x01", 1)[0] if "\x0158=" in raw else ""
            out.append(text)
    return out


def wait_refused(c: FixClient, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for text in logouts(c):
            if needle in text:
                return text
        time.sleep(0.05)
    raise AssertionError(f"no Logout with {needle!r} within {timeout} s; got {logouts(c)}")


def events(stack, session_key: str | None = None) -> list[str]:
    stack.gateway.journal.flush()
    return [e.text for e in iter_events(stack.cfg.journal.database_url, session_key)]


def sid(stack, name: str) -> str:
    return stack.gateway.client_sids[name].toString()


def stop(c: FixClient) -> None:
    c.stop()


def test_the_right_username_and_password_log_on_and_the_logon_is_audited(stack):
    c = client(stack, "CLIENT44", "FIX.4.4", user="trader44", password=PASSWORD).start()
    assert c.session.isLoggedOn()
    assert any("logon accepted from 127.0.0.1 (username and password verified)" in e
               for e in events(stack, sid(stack, "CLIENT44")))
    stop(c)


def test_a_wrong_password_is_refused_with_a_reason_and_audited(stack, caplog):
    caplog.set_level(logging.INFO)
    c = client(stack, "CLIENT44", "FIX.4.4", user="trader44", password=WRONG)
    c._engine.start()
    text = wait_refused(c, "wrong username or password")
    assert not c.wait_logged_on(0.5)
    stop(c)
    assert text == "Rejected Logon Attempt: wrong username or password"  # quickfix adds the prefix
    assert any("logon refused: wrong username or password (from 127.0.0.1)" in e
               for e in events(stack, sid(stack, "CLIENT44")))
    assert any("wrong username or password" in r.getMessage() and r.levelno == logging.WARNING
               and getattr(r, "session", None) == "CLIENT44" for r in caplog.records)


def test_a_wrong_username_is_refused_with_the_same_reason(stack):
    c = client(stack, "CLIENT44", "FIX.4.4", user="CLIENT44", password=PASSWORD)
    c._engine.start()
    assert wait_refused(c, "Rejected Logon") == "Rejected Logon Attempt: wrong username or password"
    stop(c)


def test_a_logon_without_a_password_is_refused(stack):
    c = client(stack, "CLIENT44", "FIX.4.4")
    c._engine.start()
    assert "needs Username (553) and Password (554)" in wait_refused(c, "Rejected Logon")
    stop(c)


def test_repeated_failures_are_throttled_without_checking_the_password(stack, monkeypatch):
    stack.gateway.logon_guard.throttle = FailureThrottle(base_s=5)  # longer than the client's 1 s reconnect
    store = stack.gateway.credentials
    verified = []
    real = store.verify
    monkeypatch.setattr(store, "verify", lambda *a: (verified.append(1), real(*a))[1])
    c = client(stack, "CLIENT44", "FIX.4.4", user="trader44", password=WRONG)
    c._engine.start()  # it reconnects every second: a stream of wrong passwords
    text = wait_refused(c, "too many failed logons", timeout=15)
    stop(c)
    assert "try again in" in text
    assert len(verified) == 3  # three free failures hashed; the throttled ones never reached scrypt
    assert any("too many failed logons" in e for e in events(stack, sid(stack, "CLIENT44")))
    # while the window lasts, even the right password is refused (without hashing)
    right = client(stack, "CLIENT44", "FIX.4.4", user="trader44", password=PASSWORD)
    right._engine.start()
    wait_refused(right, "too many failed logons")
    stop(right)
    assert len(verified) == 3


def test_a_logon_from_a_disallowed_address_is_refused_with_a_reason_and_audited(stack):
    c = client(stack, "CLIENT42", "FIX.4.2")
    c._engine.start()
    text = wait_refused(c, "Rejected Logon")
    stop(c)
    assert text == "Rejected Logon Attempt: source address 127.0.0.1 is not allowed for this session"
    assert any("source address 127.0.0.1 is not allowed" in e for e in events(stack, sid(stack, "CLIENT42")))


def test_an_unknown_comp_id_never_gets_a_session_and_is_audited(stack, caplog):
    caplog.set_level(logging.WARNING)
    c = client(stack, "NOBODY", "FIX.4.4", user="NOBODY", password=PASSWORD)
    c._engine.start()
    assert not c.wait_logged_on(3)
    stop(c)
    # never a session: the only answer (to each reconnect) is the front door's Logout naming what the Logon said
    answers = [raw.split("\x0135=", 1)[1].split("\x01", 1)[0] for d, raw in c.wire.lines if d == "I"]
    assert answers and set(answers) == {"5"}
    assert any(t.startswith("no session FIX.4.4:NOBODY->FIXGW here") for t in c.refusals())
    found = [e for e in events(stack, "*") if "Session not found for incoming message" in e and "49=NOBODY" in e]
    assert found, "quickfix's refusal is journaled"
    assert all(PASSWORD not in e and "554=****" in e for e in found)
    assert any("no session FIX.4.4:NOBODY->FIXGW" in r.getMessage() for r in caplog.records)


def test_an_order_for_an_account_the_session_may_not_use_is_rejected_and_journaled(stack):
    c = client(stack, "CLIENT44", "FIX.4.4", user="trader44", password=PASSWORD).start()
    rej = c.wait_exec(c.new_order("AAPL", "1", 100, "190.05", account="ACC2"), "8")
    assert rej[58] == "account ACC2 is not permitted for session CLIENT44" and rej[103] == "15"
    rej = c.wait_exec(c.new_order("AAPL", "1", 100, "190.05"), "8")
    assert rej[58] == "Account (1) is required on session CLIENT44"
    ok = c.new_order("MSFT", "1", 100, "400", account="ACC1")
    c.wait_exec(ok, "0")
    # a cancel naming another account is refused; the order's own cancel goes through
    bad = c.next_id("X")
    msg_cancel = c.cancel(ok, "MSFT", "1", 100, cl_ord_id=bad)
    c.wait_exec(msg_cancel, "4")  # no Account on it: allowed (it only reduces exposure)
    ok2 = c.new_order("MSFT", "1", 100, "400", account="ACC1")
    c.wait_exec(ok2, "0")
    import quickfix as fix
    from sessions.codec.tagvalue import utc_timestamp

    m = fix.Message()
    m.getHeader().setField(35, "F")
    for tag, value in ((41, ok2), (11, c.next_id("X")), (55, "MSFT"), (54, "1"), (60, utc_timestamp()),
                       (38, "100"), (1, "ACC2")):
        m.setField(tag, value)
    c.send(m)
    cxl = c.wait_for(lambda r: r.get(35) == "9" and r.get(41) == ok2, what="OrderCancelReject")
    assert cxl[58] == "account ACC2 is not permitted for session CLIENT44" and cxl[434] == "1"
    c.wait_exec(c.cancel(ok2, "MSFT", "1", 100), "4")
    stop(c)
    access = events(stack, "access")
    assert any("CLIENT44: order" in e and "account ACC2 is not permitted" in e for e in access)
    assert any("CLIENT44: cancel" in e and "account ACC2 is not permitted" in e for e in access)


def test_the_password_never_appears_in_the_journal_the_spool_or_the_logs(stack, caplog):
    caplog.set_level(logging.DEBUG)
    for password in (PASSWORD, WRONG):
        c = client(stack, "CLIENT44", "FIX.4.4", user="trader44", password=password)
        c._engine.start()
        c.wait_logged_on(3)
        stop(c)
    sent = [raw for c in stack.clients.values() for d, raw in c.wire.lines if d == "O" and "\x0135=A\x01" in raw]
    assert any(PASSWORD in raw for raw in sent) and any(WRONG in raw for raw in sent)  # they did go on the wire
    stack.gateway.journal.flush()
    url = stack.cfg.journal.database_url
    logons = [r.raw for r in iter_messages(url, sid(stack, "CLIENT44"), "I") if r.msg_type == "A"]
    with_password = [raw for raw in logons if "\x01554=" in raw]
    assert with_password and all("\x01554=****\x01" in raw for raw in with_password)
    everything = [r.raw for r in iter_messages(url)] + [e.text for e in iter_events(url)]
    spool = [raw for f in sorted((stack.cfg.data_dir / "spool").glob("spool-*.bin")) for *_, raw, _ in read_spool(f)]
    assert spool and any("\x0135=A\x01" in raw for raw in spool)
    logs = [f.format(r) for r in caplog.records for f in (LogfmtFormatter(), JsonFormatter())]
    logs += [r.getMessage() for r in caplog.records]
    for where, texts in (("journal", everything), ("spool", spool), ("logs", logs)):
        for secret in (PASSWORD, WRONG):
            assert not any(secret in t for t in texts), f"a password is in the {where}"


def test_allowed_addresses_change_live_on_a_sessions_reload(stack):
    text = stack.config_path.read_text()
    stack.config_path.write_text(text.replace('allowed_addresses = ["10.0.0.0/8"]', 'allowed_addresses = ["127.0.0.1/32"]'))
    try:
        result = stack.gateway.reload_sessions("test")
        step = next(s for s in result["changes"] if s["session"] == "CLIENT42")
        assert step["action"] == "updated" and "allowed_addresses" in step["detail"]
        c = client(stack, "CLIENT42", "FIX.4.2").start()
        stop(c)
    finally:
        stack.config_path.write_text(text)
        stack.gateway.reload_sessions("test")


def receiver(stack, name: str, password: str | None = None) -> FixClient:
    c = FixClient(version="FIX.4.4", sender=name, target="FIXGW", port=stack.cfg.dropcopy.port,
                  store_dir=stack.tmp / "receivers", logon_fields={553: name, 554: password} if password else {})
    stack.clients[f"{name}-{len(stack.clients)}"] = c
    return c


def test_a_drop_copy_receiver_needs_its_password_and_an_allowed_address_and_refusals_are_audited(stack):
    ok = receiver(stack, "DCSEC", PASSWORD).start()
    assert ok.session.isLoggedOn()
    stop(ok)
    wrong = receiver(stack, "DCSEC", WRONG)
    wrong._engine.start()
    assert wait_refused(wrong, "Rejected Logon") == "Rejected Logon Attempt: wrong username or password"
    stop(wrong)
    far = receiver(stack, "DCFAR")
    far._engine.start()
    assert "127.0.0.1" in wait_refused(far, "not allowed")
    stop(far)
    key = stack.gateway.dropcopy_sids["DCSEC"].toString()
    assert any("refused" in e for e in events(stack, key))
    assert not any(PASSWORD in e or WRONG in e for e in events(stack))
