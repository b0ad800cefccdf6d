"""A venue that does not accept our logon: one clear warning (the CompID pair, the venue's answer, what to
check), then quiet until the summary interval, a count per reason, the last failure in the admin API, and one
line when the venue accepts us again (gateway/process/logon_watch.py)."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from prometheus_client import REGISTRY

from gateway.admin.api import Admin
from gateway.config import parse_config
from gateway.journal.db import upgrade
from gateway.security.framing import logout_message
from gateway.process.logon_watch import LogonWatch
from gateway.process.server import Gateway
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import free_port, stack_config_text


# ---------------------------------------------------------------------------- the watch alone (a fake clock)
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def attempt(watch: LogonWatch, name: str, version: str = "FIX.4.4") -> None:
    watch.connecting(name)
    watch.attempt(name, version, "FIXGW", name)


def refused(watch: LogonWatch, name: str = "VENUE9", text: str | None = "Unknown CompID") -> bool:
    attempt(watch, name)
    if text is not None:
        watch.logout_received(name, text)
    return watch.ended(name)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fixgw.sessions" and r.levelno == logging.WARNING]


def test_the_first_refusal_is_one_warning_and_repeats_are_summed_up_once_per_interval(caplog):
    caplog.set_level(logging.DEBUG, logger="fixgw.sessions")
    clock = Clock()
    watch = LogonWatch(summary_interval_s=60, clock=clock, wall=clock)
    assert refused(watch)
    assert warnings(caplog) == ["venue VENUE9 refused our logon as SenderCompID=FIXGW TargetCompID=VENUE9 "
                                "(FIX.4.4): Logout text 'Unknown CompID'; check the CompIDs, FIX version and "
                                "Username/Password agreed with the venue (gateway.cfg comp_id or venue_comp_id, [venues.VENUE9])"]
    for _ in range(5):
        clock.now += 2
        assert refused(watch)
    assert len(warnings(caplog)) == 1  # the same answer within the interval: debug lines only
    clock.now += 60
    assert refused(watch)
    assert len(warnings(caplog)) == 2
    assert warnings(caplog)[1].startswith("venue VENUE9 still refuses our logon as SenderCompID=FIXGW "
                                          "TargetCompID=VENUE9 (FIX.4.4): 7 failed attempt(s) since ")
    assert "6 since the last line like this, the last: Logout text 'Unknown CompID'" in warnings(caplog)[1]
    assert watch.last_failure("VENUE9")["failed_attempts"] == 7


def test_another_answer_is_said_at_once_and_a_logon_says_the_recovery_and_starts_afresh(caplog):
    caplog.set_level(logging.INFO, logger="fixgw.sessions")
    clock = Clock()
    watch = LogonWatch(summary_interval_s=60, clock=clock, wall=clock)
    assert refused(watch, text=None)  # closed without an answer
    assert refused(watch, text=None)
    assert refused(watch, text="password expired")  # another answer: at once
    assert [w.split(" as ")[0] for w in warnings(caplog)] == [
        "venue VENUE9 closed the connection without answering our logon", "venue VENUE9 refused our logon"]
    assert "(what a FIX engine does with a Logon for a session it does not know)" in warnings(caplog)[0]
    assert watch.last_failure("VENUE9")["reason"] == "logout"
    attempt(watch, "VENUE9")
    watch.logged_on("VENUE9")
    assert warnings(caplog)[-1].startswith("venue VENUE9 logged on as SenderCompID=FIXGW TargetCompID=VENUE9 "
                                           "(FIX.4.4) after 3 failed logon attempt(s) since ")
    assert watch.ended("VENUE9") is False  # a session that was logged on ends: not a logon failure
    assert refused(watch)  # the first refusal after a logon: a warning again
    assert len(warnings(caplog)) == 4


def test_a_logout_after_the_logon_and_a_timeout_are_told_apart():
    watch = LogonWatch()
    attempt(watch, "V", "FIX.4.2")
    watch.logged_on("V")
    watch.logout_received("V", "end of day")  # logged on: an ordinary logout, not a refusal
    assert watch.ended("V") is False and watch.last_failure("V") is None
    attempt(watch, "V", "FIX.4.2")
    watch.timed_out("V")
    assert watch.ended("V") is True
    assert watch.last_failure("V")["failed_attempts"] == 1 and watch.last_failure("V")["reason"] == "timeout"
    # quickfix generates a Logon right after a disconnect, with no connection, then drops it: not an attempt
    watch.attempt("V", "FIX.4.2", "FIXGW", "V")
    assert watch.ended("V") is True and watch.last_failure("V")["failed_attempts"] == 1


# ---------------------------------------------------------------------------- a real gateway and venues
class RefusingVenue:
    """A venue engine that answers every Logon with a Logout carrying ``text``, then closes (as engines do
    for a wrong password, or CompIDs they know but do not expect from this peer)."""

    def __init__(self, port: int, text: str):
        self.text = text
        self.logons = 0
        self._server = socket.create_server(("127.0.0.1", port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\x0110=" not in data or not data.endswith(b"\x01"):
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    continue
                f = dict(p.split("=", 1) for p in data.decode("latin-1").split("\x01") if "=" in p)
                if f.get("35") != "A":
                    continue
                self.logons += 1
                conn.sendall(logout_message(f["8"], f["56"], f["49"], self.text))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


def failures(name: str, reason: str) -> float:
    return REGISTRY.get_sample_value("fixgw_venue_logon_failures_total", {"venue": name, "reason": reason}) or 0.0


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def refused_gateway(tmp_path, caplog):
    """The gateway with VENUE1's simulator expecting another counterparty (it does not know FIXGW: it closes
    the connection without a word) and VENUE2 a venue that answers our Logon with a Logout."""
    caplog.set_level(logging.DEBUG, logger="fixgw.sessions")
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    upgrade(url)
    v1, v2 = free_port(), free_port()
    cfg = parse_config(stack_config_text(url, tmp_path / "gw", free_port(), v1, v2), tmp_path / "gw", env={})
    sim = VenueSimulator(comp_id="VENUE1", port=v1, sim=cfg.venues["VENUE1"].simulator,
                         store_dir=tmp_path / "venues" / "wrong", counterparties=("SOMEONE",))
    sim.start()
    venue2 = RefusingVenue(v2, "Unknown SenderCompID FIXGW")
    gateway = Gateway(cfg)
    gateway.logon_watch.summary_interval_s = 3600  # no summary line within the test, however slow the machine
    before = {key: failures(*key) for key in (("VENUE1", "disconnect"), ("VENUE2", "logout"))}
    gateway.start()
    held = {"sims": [sim], "venue2": venue2}
    try:
        yield gateway, cfg, held, before
    finally:
        gateway.stop()
        for s in held["sims"]:
            s.stop()
        venue2.stop()


def test_a_venue_that_does_not_know_our_comp_ids_is_named_once_with_the_pair_and_its_answer(refused_gateway, caplog):
    gateway, cfg, held, before = refused_gateway
    watch = gateway.logon_watch
    # quickfix reconnects every second (reconnect_s = 1): a few refused attempts each
    assert wait_for(lambda: all((watch.last_failure(v) or {}).get("failed_attempts", 0) >= 3
                                for v in ("VENUE1", "VENUE2")))
    lines = [r.getMessage() for r in caplog.get_records("setup") + caplog.records
             if r.name == "fixgw.sessions" and r.levelno == logging.WARNING]
    venue1 = [w for w in lines if w.startswith("venue VENUE1 ")]
    venue2 = [w for w in lines if w.startswith("venue VENUE2 ")]
    assert venue1 == ["venue VENUE1 closed the connection without answering our logon as SenderCompID=FIXGW "
                      "TargetCompID=VENUE1 (FIX.4.4) (what a FIX engine does with a Logon for a session it does not "
                      "know); check the SenderCompID, TargetCompID and FIX version agreed with the venue "
                      "(gateway.cfg comp_id or venue_comp_id, [venues.VENUE1])"]
    assert venue2 == ["venue VENUE2 refused our logon as SenderCompID=FIXGW TargetCompID=VENUE2 (FIX.4.2): Logout "
                      "text 'Unknown SenderCompID FIXGW'; check the CompIDs, FIX version and Username/Password "
                      "agreed with the venue (gateway.cfg comp_id or venue_comp_id, [venues.VENUE2])"]
    assert not any(r.getMessage().startswith("session logged out: VENUE")
                   for r in caplog.get_records("setup") + caplog.records)
    assert failures("VENUE1", "disconnect") - before[("VENUE1", "disconnect")] >= 3
    assert failures("VENUE2", "logout") - before[("VENUE2", "logout")] >= 3
    rows = {r["name"]: r for r in Admin(gateway, "unused").sessions.rows()}
    assert rows["VENUE2"]["last_logon_failure"]["reason"] == "logout"
    assert rows["VENUE2"]["last_logon_failure"]["detail"] == "Logout text 'Unknown SenderCompID FIXGW'"
    assert rows["VENUE1"]["last_logon_failure"]["reason"] == "disconnect"
    assert "last_logon_failure" not in rows["CLIENT44"]

    # the venue is put right (it knows FIXGW now): the next attempt logs on, and says so once
    attempts = watch.last_failure("VENUE1")["failed_attempts"]
    held["sims"][0].stop()
    good = VenueSimulator(comp_id="VENUE1", port=cfg.venues["VENUE1"].port, sim=cfg.venues["VENUE1"].simulator,
                          store_dir=cfg.data_dir.parent / "venues" / "right", counterparties=("FIXGW",))
    good.start()
    held["sims"].append(good)
    assert wait_for(lambda: gateway.is_logged_on("VENUE1"))
    assert wait_for(lambda: any(w.startswith("venue VENUE1 logged on") for w in warnings(caplog)))
    recovered = [w for w in warnings(caplog) if w.startswith("venue VENUE1 logged on")]
    assert len(recovered) == 1
    assert recovered[0].startswith("venue VENUE1 logged on as SenderCompID=FIXGW TargetCompID=VENUE1 (FIX.4.4) "
                                   "after ")
    assert int(recovered[0].split(" after ")[1].split()[0]) >= attempts
