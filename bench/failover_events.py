"""One event of bench/failover.py and what follows it: the active killed (SIGKILL to its process group), paused past
its lease (SIGSTOP, then SIGCONT once the successor serves), cut off from the database (its proxy's connections
closed and refused) or asked for a planned handover to a standby; the takeover and every counterparty's logon timed; the old active brought back as a standby;
then, with the flow paused and every order settled, the checks (bench/failover_checks.py)."""
from __future__ import annotations

import random
import signal
import time

import failover_checks as checks
from failover_stack import CLIENTS, CLUSTER, Stack, wait_until

LOGON_LIMIT_S = 5.0


def _inbound_logon(lines, start: int) -> dict[int, str] | None:
    """The first Logon a counterparty read after ``start`` in a (direction, raw) list."""
    at = _inbound_logon_at(lines, start)
    return checks.fields(lines[at][1]) if at is not None else None


def _inbound_logon_at(lines, start: int) -> int | None:
    """Where in ``lines`` the first Logon read after ``start`` is."""
    for i in range(start, len(lines)):
        direction, raw = lines[i]
        if direction == "I" and f"{checks.SOH}35=A{checks.SOH}" in raw:
            return i
    return None


class Events:
    """Runs events against a started Stack and a running Flow; keeps the wire streams checked across events."""

    def __init__(self, stack: Stack, flow, rng: random.Random, ttl: float):
        self.stack, self.flow, self.rng, self.ttl = stack, flow, rng, ttl
        self.streams = checks.WireStreams()
        self.clordids_twice: set = set()
        self.checked_until = 0.0  # orders acknowledged before this moment were checked at an earlier event
        self.open_at_last: set[int] = set()  # id(track) of orders still working at the last check
        self.reported: dict[str, set[str]] = {}  # check -> problems reported at earlier events
        # (session, direction, MsgSeqNum) a killed instance had spooled and the journal lacked after its restart
        self.unimported: set[tuple[str, str, int]] = set()

    # ---------------------------------------------------------------- marks on every counterparty's wire
    def _peers(self) -> dict:
        return {**self.stack.clients, "receiver": self.stack.receiver}

    def _marks(self) -> dict[str, int]:
        return {**{n: len(p.wire.lines) for n, p in self._peers().items()},
                **{f"{n} events": len(c.wire.events) for n, c in self.stack.clients.items()},
                **{n: len(sim.wire.rows) for n, sim in self.stack.venues.items()}}

    def _venue_lines(self, name: str, start: int = 0) -> list[tuple[str, str]]:
        return [(d, r) for _s, d, r in self.stack.venues[name].wire.rows[start:]]

    def _recovery(self, old: str, marks: dict, t0: float, timeout: float = 40.0) -> dict:
        """Seconds from the event until a successor leads and until each counterparty read its Logon."""
        got: dict = {"attempts": {n: [] for n in CLIENTS}}
        names = [*self._peers(), *self.stack.venues]
        ports = {str(p["acceptor"]): n for n, p in self.stack.ports["instances"].items()}
        seen = {n: marks[f"{n} events"] for n in CLIENTS}
        last_lease = 0.0
        while time.monotonic() - t0 < timeout:
            now = time.monotonic()
            for n in CLIENTS:  # each client's connection attempts, stamped: where the time after a takeover goes
                events = self.stack.clients[n].wire.events
                end = len(events)
                for text in events[seen[n]:end]:
                    if n not in got and len(got["attempts"][n]) < 30:
                        got["attempts"][n].append(f"{now - t0:.2f} {_port_named(text, ports)}")
                seen[n] = end
            if "takeover" not in got and now - last_lease > 0.05:
                last_lease = now
                leader = self.stack.leader()
                if leader is not None and leader != old:
                    got["takeover"], got["new"] = now - t0, leader
            for n, p in self._peers().items():
                if n not in got and _inbound_logon(p.wire.lines, marks[n]) is not None:
                    got[n] = now - t0
            for n, sim in self.stack.venues.items():
                if n not in got and sim.logged_on and _inbound_logon(self._venue_lines(n, marks[n]), 0) is not None:
                    got[n] = now - t0
            if all(n in got for n in names) and "takeover" in got:
                break
            time.sleep(0.01)
        return got

    # ---------------------------------------------------------------- one event
    def run(self, kind: str, index: int, cut_s: float) -> dict:
        stack = self.stack
        old = wait_until(stack.leader, 30, 0.1)
        if old is None:
            return {"index": index, "kind": kind, "error": "no instance leads"}
        inst = stack.instances[old]
        marks = self._marks()
        ev: dict = {"index": index, "kind": kind, "old": old, "token_before": _token(stack)}
        wall0 = time.time()
        t0 = time.monotonic()
        if kind == "kill":
            inst.signal_group(signal.SIGKILL)
        elif kind == "stop":
            inst.signal_group(signal.SIGSTOP)
            time.sleep(0.05)
            spool_before = stack.spool_ends(old)  # stopped: nothing more is appended unless it runs again
        elif kind == "dbcut":
            ev["connections_cut"] = stack.cutter.cut(old, cut_s)
        elif kind == "handover":
            ev["asked"] = self._ask_handover(old)
        got = self._recovery(old, marks, t0)
        ev["takeover_s"] = round(got["takeover"], 3) if "takeover" in got else None
        ev["new"] = got.get("new")
        ev["logon_s"] = {n: (round(got[n], 3) if n in got else None) for n in CLIENTS}
        ev["others_s"] = {n: (round(got[n], 3) if n in got else None)
                          for n in ["receiver", *stack.venues]}
        ev["attempts"] = got["attempts"]
        deposed = checks.Check("deposed")
        if kind == "kill":
            inst.proc.wait(10)
        elif kind == "stop":
            held = max(0.0, self.ttl * 1.5 - (time.monotonic() - t0))
            time.sleep(held)
            ev["held_s"] = round(time.monotonic() - t0, 3)
            self._resume_paused(old, marks, spool_before, wall0, deposed)
        elif kind == "handover":
            self._handed_over(old, marks, got, deposed)
        elif kind == "dbcut":
            code = _wait_exit(inst, self.ttl + 15)
            ev["exit_after_s"] = round(time.monotonic() - t0, 3)
            deposed.figures["exit_code"] = code
            if code != 3:
                deposed.fail(f"the old active {old} ended with {code}, not 3 (lease lost), once cut off")
        spooled = stack.spooled_since(old, int((wall0 - 2) * 1e9))  # its last 2 s before the event
        ev["spool_at_restart"] = {"journal_position": _spool_position(stack, old), "files": sorted(stack.spool_ends(old))}
        stack.restart(old)
        ev["standby_again"] = stack.wait_standby(old, 90)
        if not ev["standby_again"]:
            deposed.fail(f"{old} did not stand by again within 90 s")
        lost = self._not_journaled(spooled)
        ev["spool_not_imported"] = len(lost)
        ev["checks"] = self._checks(t0, deposed, got, lost, old)
        ev["token_after"] = _token(stack)
        return ev

    def _ask_handover(self, old: str) -> dict:
        """`fixgw cluster handover --to` a running standby (its library call, on the harness's engine)."""
        from gateway.cluster.handover import ask_handover

        stack = self.stack
        standbys = sorted(n for n, m in stack.members().items() if m.role == "standby" and n != old)
        to = self.rng.choice(standbys) if standbys else None
        return ask_handover(stack.engine, CLUSTER, self.ttl, sorted(stack.instances), to)

    def _handed_over(self, old: str, marks: dict, got: dict, c: checks.Check) -> None:
        """After a planned handover: the old active ends with code 0, and each client's first message from the
        successor (its Logon) is numbered right after the old active's last message to it, as the journal has it
        (its Logout, which the client may not count: no seq_gap)."""
        from sqlalchemy import text

        code = _wait_exit(self.stack.instances[old], 30)
        c.figures["exit_code"] = code
        if code != 0:
            c.fail(f"the old active {old} ended with {code}, not 0, after the handover")
        for n, p in self.stack.clients.items():
            lines = p.wire.lines
            at = _inbound_logon_at(lines, marks[n])
            if at is None:
                continue  # (the logon check says so)
            seq = int(checks.fields(lines[at][1])[34])
            with self.stack.engine.connect() as conn:
                last = conn.execute(text("SELECT msg_type FROM journal_messages WHERE session_id = :s AND "
                                         "direction = 'O' AND seq_num = :n ORDER BY id LIMIT 1"),
                                    {"s": f"FIX.4.4:FIXGW->{n}", "n": seq - 1}).scalar()
            c.figures[f"{n} logon seq"] = f"{seq}, after the old active's {seq - 1} ({last or 'not sent'})"
            if last is None:
                c.fail(f"{n}: the successor's Logon is {seq}, and the old active never sent {seq - 1}: not continued "
                       "exactly")

    def _not_journaled(self, spooled: list) -> list[tuple[str, str, int]]:
        """The messages the old active spooled that are not in the journal once it stood by again (it imports
        what its last run spooled and never committed before it stands by: docs/failover.md)."""
        from sqlalchemy import text

        if not spooled:
            return []
        with self.stack.engine.connect() as conn:
            have = set(conn.execute(text(
                "SELECT session_id, direction, seq_num, ts_us FROM journal_messages WHERE ts_us >= :t"),
                {"t": min(s[3] for s in spooled)}).all())
        missing = [(s[0], s[1], s[2]) for s in spooled if tuple(s) not in have]
        self.unimported.update(missing)
        return missing

    def _resume_paused(self, old: str, marks: dict, spool_before: dict, wall0: float, c: checks.Check) -> None:
        """SIGCONT the paused old active; it must end (code 3) without sending or journaling anything more."""
        stack, inst = self.stack, self.stack.instances[old]
        from sqlalchemy import text

        with stack.engine.connect() as conn:
            max_id = conn.execute(text("SELECT coalesce(max(id), 0) FROM journal_messages")).scalar_one()
        cont = self._marks()
        inst.signal_group(signal.SIGCONT)
        code = _wait_exit(inst, 15)
        time.sleep(0.5)  # what it may still have had in flight lands now, or never
        c.figures["exit_code"] = code
        if code != 3:
            c.fail(f"the resumed old active {old} ended with {code}, not 3 (lease lost)")
        grown = {f: end for f, end in stack.spool_ends(old).items() if end > spool_before.get(f, 0)}
        c.figures["spool_grown"] = len(grown)
        if grown:
            c.fail(f"{old} spooled more after SIGCONT: {grown} (before: {spool_before})")
        with stack.engine.connect() as conn:
            late = conn.execute(text("SELECT id, session_id, direction, seq_num, msg_type, ts_us FROM journal_messages "
                                     "WHERE id > :m AND ts_us < :t ORDER BY id"),
                                {"m": max_id, "t": int(wall0 * 1_000_000)}).all()
        c.figures["late_rows"] = len(late)
        c.figures["late_rows_first"] = [f"id {r[0]} {r[1]} {r[2]} {r[3]} {r[4]}, captured {(wall0 - r[5] / 1e6):.3f} s "
                                        f"before the SIGSTOP" for r in late[:5]]
        if late:
            c.fail(f"{len(late)} journal row(s) of messages from before the SIGSTOP committed after the SIGCONT "
                   f"(the old active's journal writer committed under a stale token)")
        sent = self._sent_after(marks, cont)
        c.figures["messages_after"] = len(sent)
        for what in sent[: checks.KEEP]:
            c.fail(what)

    def _sent_after(self, marks: dict, cont: dict) -> list[str]:
        """Messages a counterparty read after the SIGCONT that the old active sent: neither a resend (PossDup)
        nor numbered from the successor's Logon on."""
        out = []
        sources = {n: list(p.wire.lines) for n, p in self._peers().items()}
        sources |= {n: self._venue_lines(n) for n in self.stack.venues}
        for n, lines in sources.items():
            by_session: dict = {}
            for direction, raw in lines[marks[n]:]:
                if direction != "I":
                    continue
                f = checks.fields(raw)
                key = (f.get(49), f.get(56))
                if f.get(35) == "A" and key not in by_session:
                    by_session[key] = int(f.get(34, 0))
            for direction, raw in lines[cont[n]:]:
                f = checks.fields(raw)
                first = by_session.get((f.get(49), f.get(56)))
                if direction == "I" and f.get(43) != "Y" and (first is None or int(f.get(34, 0)) < first):
                    out.append(f"{n} read {f.get(35)} {f.get(34)} from the old active after the SIGCONT")
        return out

    # ---------------------------------------------------------------- the checks after an event
    def _checks(self, t0: float, deposed: checks.Check, got: dict, lost: list, old: str) -> dict:
        stack, flow = self.stack, self.flow
        flow.pause()
        try:
            unsettled = flow.settle(20)
            self.streams.update(stack.clients, stack.receiver, stack.venues)
            client_sessions = [f"FIX.4.4:FIXGW->{name}" for name in CLIENTS]
            rows = checks.read_journal(stack.engine, client_sessions)
            deadline = time.monotonic() + 20
            while checks.dropcopy_missing(rows, stack.clients, stack.receiver) and time.monotonic() < deadline:
                time.sleep(0.5)
                rows = checks.read_journal(stack.engine, client_sessions)
            acked = flow.acked_before(t0)
            new = [t for t in acked if t.acked >= self.checked_until or id(t) in self.open_at_last]
            older = [t for t in acked if t.acked < self.checked_until and id(t) not in self.open_at_last]
            sample = self.rng.sample(older, min(50, len(older)))
            tracks = new + sample
            answers = flow.ask_status(tracks, 30)
            self.checked_until = t0
            self.open_at_last = {id(t) for t in acked if t.status not in ("2", "4", "8")}
            time.sleep(0.3)  # the status answers' own drop copies
            rows = checks.read_journal(stack.engine, client_sessions)
            wait_until(lambda: not checks.dropcopy_missing(rows, stack.clients, stack.receiver), 10, 0.2)
            self.streams.update(stack.clients, stack.receiver, stack.venues)
            journal = checks.journal_check(stack.engine, rows, self.unimported)
            for session, direction, seq in lost:
                journal.fail(f"{session} {direction} {seq}: spooled by {old} before the event, not in the journal "
                             f"after its restart (its spool was not imported)")
            again = [self.streams.check(), journal,
                     checks.dropcopy_check(rows, stack.clients, stack.receiver)]
            again.append(checks.orders_check(tracks, answers, stack.venues))  # working orders are asked again
            result = [checks.logon_check({n: got.get(n) for n in CLIENTS}, LOGON_LIMIT_S),
                      *(c.only_new(self.reported.setdefault(c.name, set())) for c in again),
                      checks.clordid_check(stack.venues, self.clordids_twice)]
            if deposed.figures or not deposed.ok:
                result.append(deposed)
            out = {c.name: c.row() for c in result}
            out["orders"]["figures"] |= {"unsettled": len(unsettled), "new": len(new), "sampled_older": len(sample),
                                         "unsettled_rows": [t.row() for t in unsettled[:5]]}
            return out
        finally:
            flow.resume()


def _port_named(text: str, ports: dict[str, str]) -> str:
    """A quickfix event with the instance a port belongs to added ("Connecting to 127.0.0.1 on port 4001 (B)")."""
    for port, name in ports.items():
        if f"port {port}" in text:
            return f"{text} ({name})"
    return text


def _spool_position(stack: Stack, instance: str) -> str | None:
    from gateway.journal.spool import position_key, spool_position

    pos = spool_position(stack.engine, position_key(instance))
    return None if pos is None else f"{pos[0]}:{pos[1]}"


def _token(stack: Stack) -> int | None:
    lease = stack.lease()
    return lease.token if lease is not None else None


def _wait_exit(inst, timeout: float) -> int | None:
    try:
        return inst.proc.wait(timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: still running
        return None
