"""Fuzz the gateway's client side over raw sockets: damaged FIX 4.2, 4.4 and 5.0 messages against a live gateway.

Starts, in a temporary directory, `fixgw run` (SQLite journal, the demo's risk
rules with the throttle raised) and two `fixgw venue-sim` processes (VENUE1
FIX.4.4: AAPL, MSFT; VENUE2 FIX.5.0: IBM), all on 127.0.0.1. Three client
sessions (FZ42, FZ44, FZ50) log on with bench/fuzz_wire.py's raw-socket session
(not quickfix: it has to send what quickfix would refuse to build) and send
valid orders, cancels, replaces and status requests, mutated as
bench/fuzz_mutate.py describes: byte flips, tag shuffles, dropped and repeated
fields, boundary and huge numbers, huge values, non-ASCII bytes, odd tags, bad
enums, times and groups, wrong MsgTypes (content mutations); garbage, bad
CheckSum or BodyLength, partial frames (frame mutations); wrong BeginString,
CompIDs, SendingTime, MsgSeqNum (session mutations). One message in ten is sent
unmutated (the controls). Three more sessions (HX42, HX44, HX50) take the
connection tests: a slow sender, a partial frame then a dropped connection, a
huge BodyLength, silent sockets before and after logon, logons in a wrong version
or from an unknown CompID.

What it checks, and the figures it reports (target 0 / 0 / 0 / complete):

- crashes: the gateway or a venue process gone before the harness stopped it, or
  not exiting 0 on SIGTERM;
- unanswered: content mutations and controls that quickfix took (their MsgSeqNum
  was used up) with no answer: an ExecutionReport, OrderCancelReject or
  OrderMassCancelReport with their ClOrdID (11), or a Reject (3) or
  BusinessMessageReject (j) whose RefSeqNum (45) is their MsgSeqNum. Listed
  apart, not counted as unanswered: messages quickfix dropped as invalid and
  later asked us to resend (we gap-filled them: "ignored_by_quickfix"), and
  messages after which the gateway closed the connection ("closed_by_gateway");
- frame mutations get no answer by design; after each, a TestRequest must be
  answered (the session goes on) or the connection closed, never neither ("stuck");
- orders not in a terminal or known state: `fixgw orders list --json` after the
  drain; pending_new / pending_cancel / pending_replace (or anything unknown) count;
- journal completeness: every frame the harness sent whole (or received) must be
  in the journal (SQLite) under the gateway's session name, direction and
  MsgSeqNum, byte for byte; and `fixgw journal verify` must pass.

Bounded: --messages mutated messages (default 10,000) or --duration seconds,
whichever comes first; every wait has a timeout; the processes are stopped at
the end. --smoke: a few hundred messages, well under a minute.

Run:    .venv/bin/python bench/fuzz.py [--messages 10000] [--seed 1] [--duration 900]
Smoke:  .venv/bin/python bench/fuzz.py --smoke --out /tmp/fuzz.json
Output: a summary on stdout, JSON to --out (default bench/results/fuzz-<time>.json).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from fuzz_mutate import Mutant, Orders, damage_frame, join as join_body, mutate  # noqa: E402
from fuzz_wire import RawSession, frame, join, utc_now  # noqa: E402
from ports import free_port  # noqa: E402

FIXGW = [sys.executable, "-m", "gateway.cli"]
VERSIONS = ("FIX.4.2", "FIX.4.4", "FIX.5.0")
MAIN = {"FIX.4.2": "FZ42", "FIX.4.4": "FZ44", "FIX.5.0": "FZ50"}
HOSTILE = {"FIX.4.2": "HX42", "FIX.4.4": "HX44", "FIX.5.0": "HX50"}
WINDOW = 48  # messages in flight per session awaiting their answer
# the gateway's pre-logon timeout in the run (default 10 s): the silent-socket test waits longer than this
PRELOGON_TIMEOUT_S = 2
PENDING = {"pending_new", "pending_cancel", "pending_replace"}
KNOWN = {"new", "partially_filled", "filled", "canceled", "rejected", "expired", "done_for_day"}


# ---------------------------------------------------------------------------- the system under test
def write_config(tmp: Path) -> tuple[Path, dict[str, int]]:
    ports = {"client": free_port(), "http": free_port(), "VENUE1": free_port(), "VENUE2": free_port()}
    rules = tmp / "fuzz-rules.toml"
    rules.write_text((ROOT / "risk" / "demo_rules.toml").read_text()
                     .replace("throttle_msgs = 100 ", "throttle_msgs = 1000000 ")
                     .replace("throttle_logout_msgs = 200 ", "throttle_logout_msgs = 2000000 "))
    clients = "".join(f'[clients.{name}]\nfix_version = "{v}"\n'
                      for v in VERSIONS for name in (MAIN[v], HOSTILE[v]))
    cfg = tmp / "fuzz-gateway.cfg"
    cfg.write_text(f"""
comp_id = "FIXGW"
data_dir = "var"
log_level = "INFO"
[acceptor]
port = {ports["client"]}
prelogon_timeout_s = {PRELOGON_TIMEOUT_S}
[http]
port = {ports["http"]}
[journal]
database_url = "sqlite:///var/journal.db"
[risk]
rules_file = "{rules}"
reference_prices = {{ AAPL = 190.00, MSFT = 410.00, IBM = 230.00 }}
{clients}
[venues.VENUE1]
fix_version = "FIX.4.4"
port = {ports["VENUE1"]}
symbols = ["AAPL", "MSFT"]
reconnect_s = 1
[venues.VENUE1.simulator]
prices = {{ AAPL = 190.00, MSFT = 410.00 }}
[venues.VENUE2]
fix_version = "FIX.5.0"
port = {ports["VENUE2"]}
symbols = ["IBM"]
reconnect_s = 1
[venues.VENUE2.simulator]
prices = {{ IBM = 230.00 }}
""")
    return cfg, ports


class System:
    """The gateway and venue processes, their logs in the run directory."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.cfg, self.ports = write_config(tmp)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.env.pop("FIXGW_DATABASE_URL", None)
        self.procs: dict[str, subprocess.Popen] = {}

    def fixgw(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*FIXGW, *args, "-c", str(self.cfg)], cwd=self.tmp, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def spawn(self, name: str, args: list[str]) -> None:
        with open(self.tmp / f"{name}.log", "w") as out:
            self.procs[name] = subprocess.Popen([*FIXGW, *args], cwd=self.tmp, env=self.env, stdout=out,
                                                stderr=subprocess.STDOUT, text=True)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def start(self) -> None:
        done = self.fixgw("db", "upgrade")
        if done.returncode:
            raise RuntimeError(f"fixgw db upgrade failed: {done.stdout}{done.stderr}")
        for venue in ("VENUE1", "VENUE2"):
            self.spawn(venue, ["venue-sim", "-c", str(self.cfg), "--venue", venue])
        for venue in ("VENUE1", "VENUE2"):
            self._wait(venue, lambda: "listening on port" in self.log(venue), 30)
        self.spawn("gateway", ["run", "-c", str(self.cfg)])
        self._wait("gateway", self._healthy, 60)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['http']}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _wait(self, name: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready within {timeout}s; its log:\n{self.log(name)[-3000:]}")

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.procs.items()}

    def stop(self) -> dict[str, int | None]:
        codes: dict[str, int | None] = {}
        for name in ("gateway", "VENUE1", "VENUE2"):
            p = self.procs.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.terminate()
            try:
                codes[name] = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        return codes


# ---------------------------------------------------------------------------- samples
@dataclass
class Sample:
    n: int
    session: RawSession
    family: str  # none (a control), content, frame, session, connection
    name: str
    msg_type: bytes
    seq: int | None
    cl: bytes | None
    t: float
    connection: int
    outcome: str = ""
    size: int = 0
    seq_if_taken: int | None = None  # sent without using up a MsgSeqNum: the one it has if quickfix took it
    probe_ms: float | None = None  # frame mutations: how long until the session was seen to go on (or not)

    def answered(self) -> bool:
        s = self.session
        if self.seq is not None and self.seq in s.answers_45:
            return True
        if self.cl is not None:
            return any(t >= self.t for t in s.answers_11.get(self.cl, ()))
        return False

    def row(self) -> dict:
        return {"n": self.n, "session": self.session.sender.decode(), "family": self.family, "mutation": self.name,
                "msg_type": self.msg_type.decode(errors="replace"), "seq": self.seq,
                "cl_ord_id": None if self.cl is None else self.cl[:60].decode(errors="replace"),
                "bytes": self.size, "outcome": self.outcome, "probe_ms": self.probe_ms}


class Fuzzer:
    def __init__(self, system: System, rng: random.Random, weights: tuple[float, float, float]):
        self.system = system
        self.rng = rng
        self.weights = weights
        port = system.ports["client"]
        self.sessions = {v: RawSession(v, MAIN[v], "FIXGW", port) for v in VERSIONS}
        self.orders = {v: Orders(v, f"{MAIN[v]}-", rng) for v in VERSIONS}
        self.samples: list[Sample] = []
        self.inflight: dict[str, list[Sample]] = {v: [] for v in VERSIONS}
        self.reconnect_failures = 0
        self.wedged = 0
        self.time_by: collections.Counter[str] = collections.Counter()  # seconds spent sending, per family
        self.probe_ids = 0
        self.connection_tests: list[dict] = []
        self.hostile: dict[str, RawSession] = {}

    # ------------------------------------------------------------------ main loop
    def run(self, count: int, deadline: float) -> None:
        for s in self.sessions.values():
            if not s.connect():
                raise RuntimeError(f"{s.sender.decode()} could not log on")
        mutated = 0
        while mutated < count and time.monotonic() < deadline:
            version = self.rng.choice(VERSIONS)
            s = self.sessions[version]
            if not s.connected() and not s.connect():
                self.reconnect_failures += 1
                time.sleep(0.5)
                continue
            t_window = time.monotonic()
            self._window(version, deadline)
            t_send = time.monotonic()
            self.time_by["window"] += t_send - t_window
            message = self.orders[version].any()
            family = "none"
            try:
                if self.rng.random() < 0.1:
                    self._control(version, message)
                    continue
                mutant = mutate(self.rng, message, self.orders[version], self.weights)
                if mutant.family == "content" and not parseable(mutant):
                    # quickfix drops a message it cannot split into tag=value fields (InvalidMessage) without
                    # using up its MsgSeqNum: that is a frame mutation, not one that can be answered
                    mutant.family, mutant.name = "frame", f"{mutant.name}_unparseable"
                family = mutant.family
                if mutant.family == "frame":
                    self._frame(version, mutant)
                else:
                    self._framed(version, mutant)
                mutated += 1
            except ConnectionError:
                continue
            finally:
                self.time_by[family] += time.monotonic() - t_send

    def _window(self, version: str, deadline: float) -> None:
        """Wait while WINDOW messages of this session await their answer. A message leaves the window when it is
        answered, its connection is gone, or it is 5 s old (the verdict comes after the drain, not here)."""
        pending = self.inflight[version]
        s = self.sessions[version]
        while len(pending) >= WINDOW and time.monotonic() < deadline:
            now = time.monotonic()
            pending[:] = [x for x in pending if not x.answered() and x.connection == s.connections
                          and now - x.t < 5.0]
            if len(pending) < WINDOW:
                return
            if now - s.last_in > 2.0:
                # Nothing at all has come back for 2 s: the session is wedged (quickfix waits for a resend it
                # will not ask for again). A SequenceReset-Reset brings both sides together.
                self.wedged += 1
                pending.clear()
                s.reset_to_next()
                return
            time.sleep(0.002)

    def _add(self, version: str, sample: Sample) -> None:
        self.samples.append(sample)
        if sample.seq is not None or sample.cl is not None:  # something can answer it
            self.inflight[version].append(sample)

    def _control(self, version: str, m) -> None:
        s = self.sessions[version]
        t = time.monotonic()
        seq = s.send(m.msg_type, join_body(m.body), store=True)
        self._add(version, Sample(len(self.samples), s, "none", "control", m.msg_type, seq, m.cl_ord_id, t,
                                  s.connections))

    def _framed(self, version: str, mu: Mutant) -> None:  # noqa: C901 - one header field per branch
        """A content or session mutation: a whole frame, its header as the mutation says."""
        s = self.sessions[version]
        hdr = dict(mu.header or {})

        def build(next_seq: int):
            seq, after = next_seq, next_seq + 1
            if b"34" in hdr:
                delta = int(hdr[b"34"])
                seq = max(1, next_seq + delta)
                after = seq + 1 if delta > 0 else next_seq
            begin = hdr.get(b"8", s.begin)
            if begin != s.begin or mu.msg_type == b"A":
                after = next_seq  # a wrong BeginString, a second Logon: quickfix does not take the MsgSeqNum
            sending = utc_now(float(hdr[b"52"])) if b"52" in hdr else utc_now()
            fields = [(35, mu.msg_type), (49, hdr.get(b"49", s.sender)), (56, hdr.get(b"56", s.target)),
                      (34, seq)]
            fields += [(int(tag), hdr[tag]) for tag in (b"43", b"97", b"1128") if tag in hdr]
            fields.append((52, sending))
            raw = frame(begin, join(fields) + mu.body)
            return raw, seq, after

        t = time.monotonic()
        before = s.next_out
        # kept for a resend in its clean form (quickfix may ask for it after a logout, or after seq_too_high)
        seq = s.send_built(build, store=(mu.msg_type, mu.body))
        consumed = s.next_out != before
        sample = Sample(len(self.samples), s, mu.family, mu.name, mu.msg_type, seq if consumed else None,
                        mu.cl_ord_id if consumed else None, t, s.connections, size=len(mu.body),
                        seq_if_taken=None if consumed else before)
        self._add(version, sample)
        if not consumed:  # quickfix refuses it without taking its MsgSeqNum: does the session go on?
            s.damaged = True  # (it may not even see it as a frame: then it swallows what follows)
            sample.outcome = self._probe(s, before)
            sample.probe_ms = round((time.monotonic() - sample.t) * 1000, 1)
            if sample.outcome == "taken" and mu.name == "seq_too_low":
                sample.outcome = "closed_by_gateway"  # its "MsgSeqNum too low" Logout is the expected answer
        elif mu.family == "session":  # these may end the connection: let it settle before the next message
            s_conn = s.connections
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not sample.answered() and s.sock is not None \
                    and s.connections == s_conn:
                time.sleep(0.005)

    def _frame(self, version: str, mu: Mutant) -> None:
        """A frame mutation: broken bytes (no MsgSeqNum used), then a TestRequest that must be answered."""
        s = self.sessions[version]

        def build(next_seq: int):
            raw = frame(s.begin, s.header(mu.msg_type, next_seq) + mu.body)
            return (raw if mu.name.endswith("_unparseable") else damage_frame(self.rng, mu.name, raw)), None, next_seq

        s.send_built(build)
        sample = Sample(len(self.samples), s, "frame", mu.name, mu.msg_type, None, None, time.monotonic(),
                        s.connections, size=len(mu.body), seq_if_taken=s.next_out)
        self._add(version, sample)
        sample.outcome = self._probe(s, sample.seq_if_taken)
        sample.probe_ms = round((time.monotonic() - sample.t) * 1000, 1)

    def _probe(self, s: RawSession, damage_seq: int) -> str:
        """Does the session go on? TestRequests, three at a time, until one is answered (a frame that is still
        incomplete swallows the first ones; quickfix's parser may drop what it buffered with a broken frame).
        "taken": the gateway logged us out for "MsgSeqNum too low": quickfix did take the broken message.
        Between rounds, what the broken frame swallowed from ``damage_seq`` on is gap-filled, and the last
        ResendRequest answered again (quickfix asks only once for a range, and the answer may have been
        swallowed too); before the last round, a SequenceReset-Reset (RawSession.reset_to_next)."""
        logouts = len(s.logouts)
        for n, (count, wait) in enumerate(((3, 0.2), (3, 1.5), (3, 3.0))):
            if n == 1:
                s.answer_resend_again()
                s.gap_fill_from(damage_seq)
            elif n == 2:
                s.reset_to_next()
            reqs = []
            try:
                for _ in range(count):
                    self.probe_ids += 1
                    reqs.append(b"PROBE%d" % self.probe_ids)
                    s.test_request(reqs[-1])
            except ConnectionError:
                pass
            if s.wait_heartbeat(reqs, wait):
                return "session_continued"
            if any(b"too low" in t for t in s.logouts[logouts:]):
                s.close()
                return "taken"
            if s.sock is None:
                return "closed_by_gateway"
        s.close()  # neither answered nor closed: the harness gives up on this connection
        return "stuck"

    # ------------------------------------------------------------------ connection tests (hostile sessions)
    def run_connection_tests(self, repeat: int, silent_wait: float, silent_versions=VERSIONS) -> None:
        port = self.system.ports["client"]
        for version in VERSIONS:
            hx = RawSession(version, HOSTILE[version], "FIXGW", port, heartbeat_s=30)
            orders = Orders(version, f"{HOSTILE[version]}-", self.rng)
            if not hx.connect():
                self.connection_tests.append({"test": "logon", "session": HOSTILE[version], "ok": False})
                continue
            self.hostile[version] = hx
            for _ in range(repeat):  # slow sender: a valid order in 7-byte pieces, 3 ms apart
                m = orders.new_order()
                t = time.monotonic()
                seq = hx.send(b"D", join_body(m.body), chunk=7, pause_s=0.003)
                self.samples.append(Sample(len(self.samples), hx, "connection", "slow_sender", b"D", seq,
                                           m.cl_ord_id, t, hx.connections))
            for _ in range(repeat):  # half a message, then the connection drops; the session must log on again
                m = orders.new_order()
                hx.send_built(lambda n: (frame(hx.begin, hx.header(b"D", n) + join_body(m.body))[:40], None, n))
                hx.close()
                ok = hx.connect()
                self.connection_tests.append({"test": "partial_frame_then_disconnect", "session": HOSTILE[version],
                                              "ok": ok, "outcome": "logged_on_again" if ok else "logon_failed"})
            if version in silent_versions:
                self._silent_after_logon(hx, version)
        if "FIX.4.4" in self.hostile:
            self._huge_body_length(self.hostile["FIX.4.4"])
        self._silent_sockets(port, repeat * 3, silent_wait)
        self._bad_logons(port)

    def _silent_after_logon(self, hx: RawSession, version: str) -> None:
        """Log on with HeartBtInt 1, then answer nothing: the gateway must drop the connection."""
        if not hx.connect(heartbeat_s=1):
            self.connection_tests.append({"test": "silent_after_logon", "session": hx.sender.decode(), "ok": False,
                                         "outcome": "logon_failed"})
            return
        hx.mute = True
        t0 = time.monotonic()
        with hx.cond:
            hx.cond.wait_for(lambda: hx.sock is None, 10.0)
        closed = hx.sock is None
        self.connection_tests.append({"test": "silent_after_logon", "session": hx.sender.decode(), "ok": closed,
                                      "outcome": "closed_by_gateway" if closed else "still_open",
                                      "seconds": round(time.monotonic() - t0, 2)})
        hx.close()
        hx.connect()  # back to normal for the journal check (and the answers still owed)

    def _huge_body_length(self, hx: RawSession) -> None:
        """BodyLength 99999999: quickfix waits for that many bytes; heartbeats must time the connection out."""
        if not hx.connect(heartbeat_s=1):
            return
        hx.send_built(lambda n: (b"8=FIX.4.4\x019=99999999\x0135=D\x01", None, n))
        t0 = time.monotonic()
        with hx.cond:
            hx.cond.wait_for(lambda: hx.sock is None, 15.0)
        closed = hx.sock is None
        self.connection_tests.append({"test": "huge_body_length", "session": "HX44", "ok": closed,
                                      "outcome": "closed_by_gateway" if closed else "still_open",
                                      "seconds": round(time.monotonic() - t0, 2)})
        hx.close()
        hx.connect()

    def _silent_sockets(self, port: int, count: int, wait: float) -> None:
        """Connections that never say anything: does the gateway close them (and when)?"""
        socks = []
        for _ in range(count):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
        t0 = time.monotonic()
        closed_after: list[float] = []
        open_socks = list(socks)
        while open_socks and time.monotonic() - t0 < wait:
            for sk in list(open_socks):
                sk.settimeout(0.05)
                try:
                    if sk.recv(1) == b"":
                        closed_after.append(round(time.monotonic() - t0, 2))
                        open_socks.remove(sk)
                except socket.timeout:
                    pass
                except OSError:
                    closed_after.append(round(time.monotonic() - t0, 2))
                    open_socks.remove(sk)
        for sk in socks:
            sk.close()
        self.connection_tests.append({"test": "silent_socket", "count": len(socks), "closed": len(closed_after),
                                      "still_open_after_s": wait, "still_open": len(open_socks),
                                      "closed_after_s": closed_after[:10],
                                      "ok": not open_socks})

    def _bad_logons(self, port: int) -> None:
        """Logons the gateway must refuse by closing the connection."""
        cases = {
            "logon_wrong_version": (b"FIX.4.3", b"HX44"),
            "logon_unknown_comp_id": (b"FIX.4.4", b"NOBODY"),
            "garbage_before_logon": None,
        }
        for name, case in cases.items():
            try:
                sk = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue
            if case is None:
                sk.sendall(bytes(self.rng.randrange(256) for _ in range(300)).replace(b"8=", b"8-"))
            else:
                begin, sender = case
                sk.sendall(frame(begin, join([(35, b"A"), (49, sender), (56, b"FIXGW"), (34, 1), (52, utc_now()),
                                              (98, 0), (108, 30)])))
            sk.settimeout(3.0)
            t0 = time.monotonic()
            outcome = "still_open"
            try:
                while time.monotonic() - t0 < 3.0:
                    data = sk.recv(65536)
                    if not data:
                        outcome = "closed_by_gateway"
                        break
                    if b"\x0135=A\x01" in data:
                        outcome = "logged_on"
                        break
            except socket.timeout:
                pass
            except OSError:
                outcome = "closed_by_gateway"
            sk.close()
            self.connection_tests.append({"test": name, "ok": outcome == "closed_by_gateway", "outcome": outcome,
                                          "seconds": round(time.monotonic() - t0, 2)})

    # ------------------------------------------------------------------ the end
    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.sessions.values():
                if not s.connected():
                    s.connect(attempts=2)
            open_ = [x for x in self.samples if x.family != "frame" and not x.answered()
                     and x.seq not in x.session.gap_filled]
            if not open_:
                return
            time.sleep(0.1)

    def classify(self, never_processed: dict[str, set[int]]) -> None:
        """Each sample's outcome. ``never_processed``: per session key, the MsgSeqNums quickfix queued (they came
        after a gap) and never took from its queue (a gap fill or reset went past them): from its own events."""
        for x in self.samples:
            s = x.session
            if x.outcome == "taken":  # quickfix took a message we sent broken: it must be answered after all
                if x.seq_if_taken in s.answers_45:
                    x.outcome = "answered"
                else:
                    # Listed apart: the Logout says quickfix's next expected MsgSeqNum had moved on, but not
                    # what it took (a broken header, or a frame its parser read differently from ours)
                    x.outcome = "taken_without_answer"
                continue
            if x.outcome:  # a probe's verdict
                continue
            if x.answered():
                x.outcome = "answered"
            elif x.seq is not None and x.seq in never_processed.get(s.key, ()):
                x.outcome = "never_processed_by_quickfix"
            elif x.seq is not None and x.seq in s.gap_filled:
                x.outcome = "ignored_by_quickfix"
            elif x.seq is None:
                x.outcome = "not_sent_whole"
            elif ended_soon_after(s, x):
                x.outcome = "closed_by_gateway"
            else:
                x.outcome = "unanswered"

    def logout(self) -> None:
        for s in [*self.sessions.values(), *self.hostile.values()]:
            s.close(logout=True)


def never_processed(system: System) -> dict[str, set[int]]:
    """Per session, the MsgSeqNums quickfix queued ("MsgSeqNum too high, expecting X but received N") and never
    processed from its queue ("Processing QUEUED message: N"), read from the journal's session events."""
    queued: dict[str, set[int]] = collections.defaultdict(set)
    processed: dict[str, set[int]] = collections.defaultdict(set)
    with sqlite3.connect(system.tmp / "var" / "journal.db") as conn:
        for sid, text in conn.execute("SELECT session_id, text FROM session_events WHERE text LIKE 'MsgSeqNum too "
                                      "high%' OR text LIKE 'Processing QUEUED message%'"):
            m = re.search(r"received (\d+)$", text)
            if m:
                queued[sid].add(int(m.group(1)))
            m = re.search(r"QUEUED message: (\d+)", text)
            if m:
                processed[sid].add(int(m.group(1)))
    return {sid: seqs - processed[sid] for sid, seqs in queued.items()}


def unread_at_close(s: RawSession, w) -> bool:
    """Was frame ``w`` written after the gateway's last message on a connection the gateway then closed?"""
    if w.connection not in s.closed_at:
        return False
    last_in = max((x.t for x in s.wire if x.direction == "I" and x.connection == w.connection), default=0.0)
    return w.t >= last_in


def parseable(mu: Mutant) -> bool:
    """Can quickfix split the body into tag=value fields (digits, '=', value) at all, with no BeginString (8),
    BodyLength (9) or CheckSum (10) among them (quickfix then reads the message as garbled and ignores it, as the
    FIX spec says, without a word), and
    does the body still end with SOH (without it quickfix's parser finds no end of frame and runs on into the
    next message)?"""
    if not mu.body.endswith(b"\x01"):
        return False
    for part in mu.body.split(b"\x01"):
        if not part:
            continue
        tag, eq, _ = part.partition(b"=")
        if not eq or not tag.isdigit() or len(tag) > 9 or int(tag) == 0:
            return False
        if int(tag) in (8, 9, 10):  # BeginString, BodyLength or CheckSum inside the body: quickfix reads the
            return False            # message as garbled and ignores it, as FIX says (no answer, no MsgSeqNum used)
    return mu.msg_type != b"" and b"\x01" not in mu.msg_type and b"=" not in mu.msg_type


def ended_soon_after(s: RawSession, x: Sample, within: float = 2.0) -> bool:
    """Did the connection ``x`` was sent on end (the gateway closed it, or we did after its Logout) within
    ``within`` seconds of it? Later than that, the gateway had time to answer on a live connection."""
    end = s.ended_at.get(x.connection)
    return end is not None and end - x.t < within


# ---------------------------------------------------------------------------- checks after the run
def orders_check(system: System) -> dict:
    done = system.fixgw("orders", "list", "--json")
    if done.returncode:
        return {"error": (done.stdout + done.stderr).strip()[-500:], "not_terminal_or_known": None}
    rows = json.loads(done.stdout)["orders"]
    by_status = collections.Counter(r["status"] for r in rows)
    stuck = [r for r in rows if r["status"] in PENDING or r["status"] not in KNOWN]
    return {"total": len(rows), "by_status": dict(by_status), "not_terminal_or_known": len(stuck),
            "stuck": [{k: r.get(k) for k in ("order_id", "session", "cl_ord_id", "symbol", "status", "venue")}
                      for r in stuck[:30]]}


def as_journaled(raw: bytes) -> bytes:
    """The UTF-8 the journal holds for wire bytes ``raw``, by its documented rule (gateway/journal/writer.py): the
    binding hands a byte that is not UTF-8 to Python as a lone surrogate, stored as the text ``\\udcXX``."""
    return raw.decode("utf-8", "surrogateescape").encode("utf-8", "backslashreplace")


def journal_check(system: System, sessions: list[RawSession]) -> dict:
    verify = system.fixgw("journal", "verify")
    out: dict = {"verify_exit": verify.returncode, "verify": (verify.stdout + verify.stderr).strip()[-400:],
                 "sessions": {}}
    db = system.tmp / "var" / "journal.db"
    with sqlite3.connect(db) as conn:
        conn.text_factory = bytes  # the raw text as stored, undecoded
        rows = conn.execute("SELECT session_id, direction, seq_num, raw FROM journal_messages").fetchall()
    journal: dict[tuple[str, str, int | None], list[bytes]] = collections.defaultdict(list)
    for sid, direction, seq, raw in rows:
        journal[(sid.decode(), direction.decode(), seq)].append(raw)
    totals = collections.Counter()
    by_session: dict[str, list[RawSession]] = collections.defaultdict(list)
    for s in sessions:
        by_session[s.key].append(s)
    for key, group in by_session.items():
        counts = collections.Counter()
        examples: list[dict] = []
        for s in group:
            for w in s.wire:
                if w.direction == "O" and not w.framed:
                    continue  # broken on purpose: quickfix need not see it as a message
                direction = "I" if w.direction == "O" else "O"  # the gateway's side
                candidates = journal.get((key, direction, w.seq), [])
                what = "received" if w.direction == "I" else "sent"
                counts[f"{what}_expected"] += 1
                stored = as_journaled(w.raw)
                if stored != w.raw:
                    counts[f"{what}_escaped"] += 1  # non-UTF-8 bytes, kept as \udcXX escapes
                if stored in candidates:
                    candidates.remove(stored)  # each row matches one frame
                elif w.after_damage:
                    counts[f"{what}_swallowed"] += 1  # went into the broken frame before it (expected)
                elif w.direction == "O" and unread_at_close(s, w):
                    counts[f"{what}_unread_at_close"] += 1  # in flight when the gateway closed the connection
                elif candidates:
                    counts[f"{what}_altered"] += 1
                    if len(examples) < 5:
                        examples.append({"what": f"{what} altered", "seq": w.seq,
                                         "ours": w.raw[:200].decode(errors="backslashreplace"),
                                         "journal": candidates[0][:200].decode(errors="backslashreplace")})
                else:
                    counts[f"{what}_missing"] += 1
                    if len(examples) < 5:
                        examples.append({"what": f"{what} missing", "seq": w.seq,
                                         "ours": w.raw[:200].decode(errors="backslashreplace")})
        counts["journal_rows_unmatched"] = sum(len(v) for (sid, _, _), v in journal.items() if sid == key)
        out["sessions"][key] = {**counts, "examples": examples}
        totals.update(counts)
    out.update({k: totals.get(k, 0) for k in ("sent_expected", "sent_missing", "sent_altered", "received_expected",
                                               "received_missing", "received_altered")})
    out["complete"] = (verify.returncode == 0 and not any(totals.get(k) for k in (
        "sent_missing", "sent_altered", "received_missing", "received_altered")))
    return out


ERROR_LINE = re.compile(r"level=(error|critical)|Traceback|Segmentation|core dumped|Fatal Python error")


def log_errors(system: System) -> dict:
    out = {}
    for name in system.procs:
        lines = [ln for ln in system.log(name).splitlines() if ERROR_LINE.search(ln)]
        distinct = list(dict.fromkeys(re.sub(r"ts=\S+ ", "", ln)[:300] for ln in lines))
        out[name] = {"count": len(lines), "distinct": distinct[:15]}
    return out


# ---------------------------------------------------------------------------- report
def summarize(fz: Fuzzer, codes: dict, alive: dict, orders: dict, journal: dict, errors: dict, args,
              elapsed: float, tmp: Path) -> dict:
    samples = fz.samples
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_mutation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for x in samples:
        outcomes[x.family][x.outcome] += 1
        by_mutation[f"{x.family}:{x.name}"][x.outcome] += 1
    unanswered = [x for x in samples if x.outcome == "unanswered"]
    stuck = [x for x in samples if x.outcome == "stuck"]
    crashes = sum(1 for name, up in alive.items() if not up) + sum(
        1 for name, code in codes.items() if alive.get(name) and code not in (0, None))
    versions = collections.Counter(x.session.version for x in samples)
    return {
        "seed": args.seed, "smoke": args.smoke, "elapsed_s": round(elapsed, 1), "run_dir": str(tmp),
        "messages": {"mutated": sum(1 for x in samples if x.family != "none"),
                     "controls": sum(1 for x in samples if x.family == "none"),
                     "by_family": {f: sum(c.values()) for f, c in outcomes.items()},
                     "by_version": dict(versions)},
        "crashes": crashes, "processes": {n: {"alive_at_end": alive.get(n), "exit_code": codes.get(n)} for n in codes},
        "unanswered": len(unanswered),
        "stuck_after_frame_damage": len(stuck),
        "not_terminal_or_known": orders.get("not_terminal_or_known"),
        "journal_complete": journal.get("complete"),
        "outcomes": {f: dict(c) for f, c in outcomes.items()},
        "by_mutation": {k: dict(v) for k, v in sorted(by_mutation.items())},
        "unanswered_samples": [x.row() for x in unanswered[:40]],
        "closed_by_gateway_samples": [x.row() for x in samples if x.outcome == "closed_by_gateway"][:20],
        "slowest_probes": [x.row() for x in sorted((x for x in samples if x.probe_ms is not None),
                                                   key=lambda x: -x.probe_ms)[:10]],
        "connection_tests": fz.connection_tests,
        "sessions": {s.sender.decode(): {"connections": s.connections, "closed_by_gateway": s.closed_by_peer,
                                         "gap_filled": len(s.gap_filled), "resent": len(s.resent),
                                         "logouts": [t.decode(errors="replace")[:160] for t in s.logouts][:20]}
                     for s in fz.sessions.values()},
        "seconds_by_family": {k: round(v, 2) for k, v in fz.time_by.items()},
        "resyncs": {s.sender.decode(): len(s.resyncs) for s in fz.sessions.values()},
        "reconnect_failures": fz.reconnect_failures, "wedged_sessions_relogged": fz.wedged,
        "orders": orders, "journal": journal, "log_errors": errors,
    }


def print_summary(r: dict) -> None:
    m = r["messages"]
    print(f"fuzz: {m['mutated']} mutated + {m['controls']} control messages ({m['by_version']}) in {r['elapsed_s']} s,"
          f" seed {r['seed']}")
    print(f"  crashes                         {r['crashes']}  {r['processes']}")
    print(f"  unanswered application messages {r['unanswered']}")
    print(f"  orders not terminal or known    {r['not_terminal_or_known']}")
    j = r["journal"]
    print(f"  journal complete                {j.get('complete')}  (sent {j.get('sent_expected')}: missing "
          f"{j.get('sent_missing')}, altered {j.get('sent_altered')}; received {j.get('received_expected')}: missing "
          f"{j.get('received_missing')}, altered {j.get('received_altered')}; verify exit {j.get('verify_exit')})")
    print(f"  stuck after frame damage        {r['stuck_after_frame_damage']}")
    for family, c in r["outcomes"].items():
        print(f"  {family:<8} {c}")
    for t in r["connection_tests"]:
        print(f"  connection test {t}")
    for name, e in r["log_errors"].items():
        if e["count"]:
            print(f"  {name}: {e['count']} error lines, e.g. {e['distinct'][:3]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=10_000, help="mutated messages to send (controls come on top)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=900.0, help="stop sending after this many seconds")
    ap.add_argument("--smoke", action="store_true", help="a few hundred messages, short waits (under a minute)")
    ap.add_argument("--out", type=Path, default=None, help="JSON report [bench/results/fuzz-<time>.json]")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs, journal)")
    ap.add_argument("--weights", default="80,12,8", help="content,frame,session shares of the mutations")
    args = ap.parse_args(argv)
    if args.smoke:
        args.messages = min(args.messages, 300)
        args.duration = min(args.duration, 15.0)
    weights = tuple(float(w) for w in args.weights.split(","))
    out = args.out or ROOT / "bench" / "results" / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}.json"
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="fixgw-fuzz-"))
    system = System(tmp)
    t0 = time.monotonic()
    codes: dict = {}
    try:
        system.start()
        fz = Fuzzer(system, rng, weights)  # type: ignore[arg-type]
        fz.run(args.messages, t0 + args.duration)
        fz.run_connection_tests(1 if args.smoke else 5, 3.0 if args.smoke else 10.0,
                                ("FIX.4.4",) if args.smoke else VERSIONS)
        fz.drain(5.0 if args.smoke else 20.0)
        orders = orders_check(system)
        alive = system.alive()
        fz.logout()
        codes = system.stop()
        journal = journal_check(system, [*fz.sessions.values(), *fz.hostile.values()])
        fz.classify(never_processed(system))
        errors = log_errors(system)
        report = summarize(fz, codes, alive, orders, journal, errors, args, time.monotonic() - t0, tmp)
    finally:
        if not codes:
            system.stop()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_summary(report)
    print(f"report: {out}" + (f"; run directory {tmp}" if args.keep else ""))
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
