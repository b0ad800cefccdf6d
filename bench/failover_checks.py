"""The checks bench/failover.py makes after each event, each a function of what the counterparties saw (their wire
logs, the venue simulators' books and counts), what the clients were told and the journal in the database; each
returns a ``Check``: passed or not, a figure or two, and the first problems in words."""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

SOH = "\x01"
KEEP = 8  # problems shown per check in the markdown report (the count is kept whole)
KEEP_JSON = 500  # ... and kept in the JSON


def fields(raw: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in raw.split(SOH):
        tag, sep, value = part.partition("=")
        if sep and tag.isdigit():
            out.setdefault(int(tag), value)  # the first occurrence: the header's, for 34 and 43
    return out


@dataclass
class Check:
    name: str
    figures: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def only_new(self, reported: set[str]) -> "Check":
        """Keep the problems not reported at an earlier event (a state checked again, e.g. the whole journal, shows
        an old problem again: it counts against the event where it appeared)."""
        self.problems = [p for p in self.problems if p not in reported]
        reported.update(self.problems)
        return self

    def row(self) -> dict:
        return {"ok": self.ok, "figures": self.figures, "problems": self.problems[:KEEP_JSON],
                "problem_count": len(self.problems)}


# ---------------------------------------------------------------- sequence numbers
class SeqStream:
    """The MsgSeqNums of one session in one direction, as one side saw them, added as they come.

    Fine: a jump forward later filled (the successor's Logon ``seq_gap`` past the journal's last, the gap filled by
    a SequenceReset-GapFill or resent messages, PossDupFlag set). Not fine: a reset (a Logon with
    ResetSeqNumFlag, a SequenceReset-Reset), a number used by two messages that are not PossDup, a Logout for a
    MsgSeqNum too low, and, once everything is settled, a number never covered."""

    def __init__(self) -> None:
        self.new: set[int] = set()
        self.covered: set[int] = set()
        self.top = 0
        self.jumps = 0
        self.problems: list[str] = []

    def add(self, seq: int | None, msg_type: str | None, poss_dup: bool, f: dict[int, str] | None) -> None:
        if seq is None:
            return
        if msg_type == "A" and f is not None and f.get(141) == "Y":
            self.problems.append(f"Logon {seq} with ResetSeqNumFlag")
        if msg_type == "4" and f is not None:
            if f.get(123) != "Y":
                self.problems.append(f"SequenceReset-Reset at {seq}")
            elif f.get(36, "").isdigit():
                self.covered.update(range(seq, int(f[36])))
        if msg_type == "5" and f is not None and "too low" in f.get(58, ""):
            self.problems.append(f"Logout {seq}: {f.get(58)}")
        if not poss_dup:
            if seq in self.new:
                self.problems.append(f"MsgSeqNum {seq} used by two messages")
            if seq > self.top + 1 and self.top:
                self.jumps += 1
            self.new.add(seq)
        self.covered.add(seq)
        self.top = max(self.top, seq)

    def add_raw(self, raw: str) -> None:
        f = fields(raw)
        seq = f.get(34)
        self.add(int(seq) if seq and seq.isdigit() else None, f.get(35), f.get(43) == "Y", f)

    def holes(self) -> list[int]:
        return [n for n in range(1, self.top + 1) if n not in self.covered]


class WireStreams:
    """SeqStreams of every counterparty's sessions, read on from their wire logs at each check."""

    def __init__(self) -> None:
        self.streams: dict[tuple[str, str, str], SeqStream] = defaultdict(SeqStream)  # (owner, session, dir)
        self._read: dict[str, int] = defaultdict(int)

    def update(self, clients: dict, receiver, venues: dict) -> None:
        for name, peer in [*clients.items(), ("dropcopy " + peer_name(receiver), receiver)]:
            lines = peer.wire.lines
            start, end = self._read[name], len(lines)
            self._read[name] = end
            for direction, raw in lines[start:end]:
                self.streams[(name, peer.sid.toString(), direction)].add_raw(raw)
        for name, sim in venues.items():
            rows = sim.wire.rows
            start, end = self._read[name], len(rows)
            self._read[name] = end
            for session, direction, raw in rows[start:end]:
                self.streams[(name, session, direction)].add_raw(raw)

    def check(self) -> Check:
        c = Check("seq")
        for (owner, session, direction), s in sorted(self.streams.items()):
            where = f"{owner} {session} {'in' if direction == 'I' else 'out'}"
            for p in s.problems:
                c.fail(f"{where}: {p}")
            for n in s.holes():  # one problem per number, so a hole counts once, at the event it appeared
                c.fail(f"{where}: MsgSeqNum {n} never seen nor gap-filled")
        c.figures = {"sessions": len({k[:2] for k in self.streams}),
                     "jumps": sum(s.jumps for s in self.streams.values())}
        return c


def peer_name(peer) -> str:
    return peer.sid.getSenderCompID().getValue()


# ---------------------------------------------------------------- the journal
def read_journal(engine, client_sessions: list[str]):
    """Every journal row's (id, session, direction, seq, type, poss_dup, ts_us) and, where a check needs the
    message (admin messages that move numbers, the client-side ExecutionReports), its raw text."""
    from sqlalchemy import text

    sql = text("SELECT id, session_id, direction, seq_num, msg_type, poss_dup, ts_us, "
               "CASE WHEN msg_type IN ('4', 'A', '5') OR (direction = 'O' AND msg_type = '8' "
               "AND session_id = ANY(:clients)) THEN raw END FROM journal_messages ORDER BY id")
    with engine.connect() as conn:
        return conn.execute(sql, {"clients": client_sessions}).all()


def journal_check(engine, rows, unimported: set = frozenset()) -> Check:
    """No gap and no number twice on any session (the seq_gap jump filled is fine), and the hash chain verifies.
    A missing number that a killed instance had in its spool (``unimported``: not imported at its restart) is left
    to the caller, who names the instance."""
    from gateway.journal.verify import verify_database

    c = Check("journal")
    streams: dict[tuple[str, str], SeqStream] = defaultdict(SeqStream)
    for _id, session, direction, seq, msg_type, poss_dup, _ts, raw in rows:
        if session == "*":
            continue  # the front door's answers to unknown sessions
        streams[(session, direction)].add(seq, msg_type, bool(poss_dup), fields(raw) if raw else None)
    for (session, direction), s in sorted(streams.items()):
        for p in s.problems:
            c.fail(f"{session} {direction}: {p}")
        for n in s.holes():  # (one the old active spooled and did not import is reported with the event's name)
            if (session, direction, n) not in unimported:
                c.fail(f"{session} {direction} {n}: missing")
    result = verify_database(engine)
    breaks = chain_breaks(engine)
    c.figures = {"rows": len(rows), "chain_checked": result.checked, "chain_ok": result.ok,
                 "chain_breaks": len(breaks)}
    if not result.ok:  # first: the chain's problems are what the rest hides
        p = result.problem
        c.problems[:0] = [f"hash chain: row {p.id} ({p.session_id} {p.seq_num}) {p.kind}: {p.what}"] + [
            f"hash chain: row {b} does not chain from the row before it" for b in breaks if b != p.id]
    return c


def chain_breaks(engine) -> list[int]:
    """Every journal row whose chain hash is not computed from the row before it (``fixgw journal verify`` stops at
    the first; this goes on from each row's stored hash, so a later break is seen too)."""
    from sqlalchemy import select

    from gateway.journal.db import journal_messages as t
    from gateway.journal.verify import GENESIS, chain_hash, hasher_factory, key_from_env, read_meta, resolve_key

    breaks = []
    with engine.connect() as conn:
        meta = read_meta(conn)
        new_hasher, prev = hasher_factory(resolve_key(meta, key_from_env())), GENESIS
        start = int(meta.get("chain_start_id", "0"))
        stmt = select(t.c.id, t.c.session_id, t.c.direction, t.c.seq_num, t.c.msg_type, t.c.ts_us, t.c.raw,
                      t.c.chain_hash).where(t.c.id > start).order_by(t.c.id)
        for row in conn.execution_options(yield_per=5000).execute(stmt):
            stored = bytes(row.chain_hash) if row.chain_hash is not None else b""
            if chain_hash(new_hasher, prev, row) != stored:
                breaks.append(row.id)
            prev = stored
    return breaks


# ---------------------------------------------------------------- drop copies
def dropcopy_check(rows, clients: dict, receiver) -> Check:
    """Every client-side ExecutionReport (journaled, or received by a client) reached the receiver exactly once and
    in journal order. A copy received again is a failure unless it is flagged as a possible duplicate (PossResend
    97=Y or PossDupFlag 43=Y), which a receiver drops by ExecID (docs: the drop-copy service re-sends, marked, what
    its ledger had not seen acknowledged); those are counted, not failed."""
    c = Check("dropcopy")
    first_id: dict[str, int] = {}
    rows_of: dict[str, int] = defaultdict(int)  # ExecID -> its rows in the journal that are not PossDup
    for row_id, _s, direction, _q, msg_type, poss_dup, _ts, raw in rows:
        if raw and direction == "O" and msg_type == "8":
            eid = fields(raw).get(17, "")
            first_id.setdefault(eid, row_id)
            rows_of[eid] += not poss_dup
    told = {m.get(17) for cl in clients.values() for m in cl.app_messages("8")}
    expected = set(first_id) | told
    seen: set[str] = set()
    flagged = last = out_of_order = 0
    for m in receiver.app_messages("8"):
        eid = m.get(17)
        if eid in seen:
            if m.get(97) == "Y" or m.get(43) == "Y":
                flagged += 1
            else:
                c.fail(f"ExecID {eid} received twice, the second time not flagged as a possible duplicate"
                       + (f" (the journal has {rows_of[eid]} rows of it)" if rows_of.get(eid, 0) > 1 else ""))
            continue
        seen.add(eid)
        jid = first_id.get(eid)
        if jid is None:
            c.fail(f"ExecID {eid} copied but not in the journal")
        elif jid < last:
            out_of_order += 1
            c.fail(f"ExecID {eid} (journal id {jid}) received after the copy of journal id {last}")
        else:
            last = jid
    missing = expected - seen
    for eid in sorted(missing):
        c.fail(f"ExecID {eid} never copied" + ("" if eid in first_id else " (a client got it; not in the journal)"))
    c.figures = {"expected": len(expected), "received": len(seen), "missing": len(missing),
                 "flagged_resends": flagged, "out_of_order": out_of_order,
                 "not_journaled": len(told - set(first_id))}
    return c


def dropcopy_missing(rows, clients: dict, receiver) -> int:
    """How many client-side reports the receiver has not got yet (the harness waits for zero)."""
    ids = {fields(raw).get(17) for _i, _s, d, _q, t, _p, _ts, raw in rows if raw and d == "O" and t == "8"}
    ids |= {m.get(17) for cl in clients.values() for m in cl.app_messages("8")}
    return len(ids - {m.get(17) for m in receiver.app_messages("8")})


# ---------------------------------------------------------------- orders against the venues
def venue_book(venues: dict) -> dict[str, list[tuple[str, str, Decimal]]]:
    """The gateway's OrderID -> (venue, OrdStatus, CumQty) of each venue order whose first ClOrdID it made (the
    first child's ClOrdID is the OrderID, later ones ``{OrderID}.n2``...: desk/placing.py, orders/states.py)."""
    book: dict[str, list] = defaultdict(list)
    for name, sim in venues.items():
        with sim._lock:
            orders = sim.matcher.all_orders()
            for o in orders:
                book[o.cl_ord_ids[0].partition(".")[0]].append((name, o.status.value, o.cum_qty))
    return book


def _norm(status: str, cum: Decimal) -> str:
    return ("1" if cum else "0") if status == "5" else status  # Replaced (4.2) is a working order's state


def orders_check(tracks, answers: dict, venues: dict) -> Check:
    """Each order the client had an acknowledgement for is known to the gateway (OrderStatusRequest) in the state
    the venue has it: the same OrdStatus and CumQty; an order the venue never got must be Rejected."""
    c = Check("orders")
    book = venue_book(venues)
    for t in tracks:
        ans = answers.get(id(t))
        what = f"{t.client} {t.cur_cl} ({t.spec.kind} {t.spec.symbol}, client told {t.status} cum {t.cum})"
        if ans is None:
            c.fail(f"{what}: no answer to the OrderStatusRequest")
            continue
        gw_status, gw_cum = ans.get(39, "?"), Decimal(ans.get(14, "0"))
        if ans.get(37) == "NONE":
            c.fail(f"{what}: unknown to the gateway ({ans.get(58, '')})")
            continue
        at_venue = book.get(ans.get(37, ""), [])
        if not at_venue:
            if gw_status != "8":
                c.fail(f"{what}: gateway says {gw_status} cum {gw_cum}, no venue has the order")
            continue
        if len(at_venue) > 1:
            c.fail(f"{what}: {len(at_venue)} venue orders {at_venue}; gateway says {gw_status} cum {gw_cum}")
            continue
        venue, v_status, v_cum = at_venue[0]
        if _norm(gw_status, gw_cum) != _norm(v_status, v_cum) or gw_cum != v_cum:
            c.fail(f"{what}: gateway says {gw_status} cum {gw_cum}, {venue} has {v_status} cum {v_cum}")
    c.figures = {"checked": len(tracks)}
    return c


def clordid_check(venues: dict, already: set) -> Check:
    """No venue got a NewOrderSingle with the same ClOrdID twice (``already``: the ones reported before)."""
    c = Check("clordid")
    total = 0
    for name, sim in venues.items():
        with sim._lock:
            counts = sorted(sim.new_order_ids.items())
        for (_session, cl), n in counts:
            if n > 1:
                total += 1
                if (name, cl) not in already:
                    already.add((name, cl))
                    c.fail(f"{name}: ClOrdID {cl} received {n} times")
    c.figures = {"new_orders": sum(sim.orders_received for sim in venues.values()), "twice": total}
    return c


def logon_check(times: dict[str, float | None], limit: float) -> Check:
    """Every client logged on to the successor within ``limit`` seconds of the event."""
    c = Check("logon")
    for name, t in times.items():
        if t is None:
            c.fail(f"{name} did not log on again")
        elif t > limit:
            c.fail(f"{name} logged on again after {t:.2f} s")
    done = [t for t in times.values() if t is not None]
    c.figures = {"max_s": round(max(done), 3) if done else None,
                 "p50_s": round(statistics.median(done), 3) if done else None}
    return c
