"""The steady order flow of bench/failover.py: one thread that sends the bench's order mix (bench/workload.py) from
the FIX clients at a fixed rate while they are logged on, follows the resting orders up (a third stay, a third are
canceled, a third replaced and then canceled), tracks what each client was told, and answers the harness's
questions: which orders were acknowledged before a moment, are they all settled, and what the gateway answers an
OrderStatusRequest for each."""
from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

from workload import Mix, Spec

TERMINAL = frozenset("248")  # Filled, Canceled, Rejected
PENDING = frozenset("A6E")  # PendingNew, PendingCancel, PendingReplace
ZERO = Decimal(0)


class Track:
    """One order as its client knows it."""

    __slots__ = ("client", "cl", "cur_cl", "spec", "plan", "sent", "acked", "order_id", "status", "cum",
                 "pending", "pending_cl", "due", "rejects")

    def __init__(self, client: str, cl: str, spec: Spec, plan: str, sent: float):
        self.client, self.cl, self.cur_cl, self.spec, self.plan, self.sent = client, cl, cl, spec, plan, sent
        self.acked: float | None = None  # when the first ExecutionReport arrived (monotonic)
        self.order_id: str | None = None  # the gateway's OrderID (37): its venue ClOrdIDs start with it
        self.status: str | None = None
        self.cum = ZERO
        self.pending: str | None = "new"  # the request waiting for its answer: new, cancel, replace
        self.pending_cl: str | None = cl
        self.due: float | None = None  # when the follow-up (cancel, replace) is due
        self.rejects = 0  # cancel/replace rejects

    @property
    def settled(self) -> bool:
        """Nothing asked and unanswered, and in a state the flow leaves it in (a resting order, or done)."""
        if self.acked is None or self.pending is not None or self.status in PENDING:
            return False
        return self.status in TERMINAL or (self.spec.kind == "R" and self.status in ("0", "1", "5"))

    def row(self) -> dict:
        return {"client": self.client, "cl": self.cl, "cur_cl": self.cur_cl, "kind": self.spec.kind,
                "symbol": self.spec.symbol, "plan": self.plan, "order_id": self.order_id, "status": self.status,
                "cum": str(self.cum), "pending": self.pending}


class Flow:
    """The sender thread. ``pause()``/``resume()`` stop and restart new orders and follow-ups; messages are read
    all the time."""

    def __init__(self, clients: dict, rate: float, seed: int):
        self.clients = clients
        self.rate = rate
        self.rng = random.Random(seed)
        self.mix = Mix(seed)
        self.tracks: list[Track] = []
        self.by_cl: dict[tuple[str, str], Track] = {}
        self.answers: dict[tuple[str, str], dict[int, str]] = {}  # (client, ClOrdID) -> its last status answer
        self.skipped = 0  # order slots skipped because the client was logged out
        self._read = dict.fromkeys(clients, 0)
        self._waiting: set[Track] = set()  # tracks with a follow-up due
        self._lock = threading.Lock()
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._n = 0
        self._r = 0
        self._token = f"{int(time.time()) % 100000:05d}"
        self._thread = threading.Thread(target=self._run, name="failover-flow", daemon=True)

    def start(self) -> "Flow":
        self._thread.start()
        return self

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    # ---------------------------------------------------------------- the thread
    def _run(self) -> None:
        names = list(self.clients)
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._drain()
            now = time.monotonic()
            if self._paused.is_set():
                next_at = now
            else:
                self._follow_ups(now)
                if now >= next_at:
                    name = names[self._n % len(names)]
                    self._n += 1
                    if self.clients[name].logged_on:
                        self._send_new(name, now)
                    else:
                        self.skipped += 1
                    next_at = max(next_at + interval, now - 1.0)  # never a burst to catch up after a pause
            time.sleep(max(0.0, min(0.01, next_at - time.monotonic())))

    def _send_new(self, name: str, now: float) -> None:
        spec = self.mix.next()
        plan = "fill"
        if spec.kind == "R":
            plan = ("rest", "cancel", "replace")[self._r % 3]
            self._r += 1
        elif spec.kind == "X":
            plan = "reject"
        cl = f"{name[-1]}{self._token}-{self._n}"
        track = Track(name, cl, spec, plan, now)
        with self._lock:
            self.tracks.append(track)
            self.by_cl[(name, cl)] = track
        self.clients[name].new_order(spec.symbol, "1", spec.qty, spec.price, cl_ord_id=cl)

    def _follow_ups(self, now: float) -> None:
        for t in list(self._waiting):
            if t.due is None or t.due > now or t.pending is not None or t.status not in ("0", "1", "5"):
                if t.due is None or t.status in TERMINAL:
                    self._waiting.discard(t)
                continue
            client = self.clients[t.client]
            if not client.logged_on:
                continue
            t.due = None
            self._waiting.discard(t)
            new_cl = f"{t.cl}{'x' if t.plan == 'cancel' else 'r'}"
            with self._lock:
                self.by_cl[(t.client, new_cl)] = t
            t.pending, t.pending_cl = ("cancel" if t.plan == "cancel" else "replace"), new_cl
            if t.plan == "cancel":
                client.cancel(t.cur_cl, t.spec.symbol, "1", t.spec.qty, cl_ord_id=new_cl)
            else:
                client.replace(t.cur_cl, t.spec.symbol, "1", t.spec.replace_qty, t.spec.price, cl_ord_id=new_cl)

    def _drain(self) -> None:
        now = time.monotonic()
        for name, client in self.clients.items():
            msgs = client.messages
            start, end = self._read[name], len(msgs)
            self._read[name] = end
            for m in msgs[start:end]:
                if m.get(35) == "8":
                    self._report(name, m, now)
                elif m.get(35) == "9":
                    t = self.by_cl.get((name, m.get(11, "")))
                    if t is not None and t.pending_cl == m.get(11):
                        t.pending, t.pending_cl = None, None
                        t.rejects += 1
                        if m.get(39) and m[39] not in PENDING:
                            t.status = m[39]  # the order's state once the cancel or replace was refused

    def _report(self, name: str, m: dict[int, str], now: float) -> None:
        cl = m.get(11, "")
        if m.get(150) == "I":
            with self._lock:
                self.answers[(name, cl)] = m
            return
        t = self.by_cl.get((name, cl)) or self.by_cl.get((name, m.get(41, "")))
        if t is None:
            return
        if t.acked is None:
            t.acked = now
        if m.get(37) and m[37] != "NONE":
            t.order_id = m[37]
        cum = Decimal(m.get(14, "0"))
        status = m.get(39)
        # a resent report (PossDup) may be older than what the client knows: never go back
        if cum >= t.cum and not (t.status in TERMINAL and status not in TERMINAL):
            t.status, t.cum = status, cum
        if t.pending == "new" and cl == t.pending_cl and status != "A":
            t.pending = t.pending_cl = None
        elif t.pending == "replace" and cl == t.pending_cl and (m.get(150) == "5" or status in TERMINAL):
            t.cur_cl = cl if m.get(150) == "5" else t.cur_cl
            t.pending = t.pending_cl = None
            t.plan = "cancel"
            t.due = now + self.rng.uniform(0.3, 1.5)
            self._waiting.add(t)
        elif t.pending == "cancel" and cl == t.pending_cl and status in TERMINAL:
            t.pending = t.pending_cl = None
        if t.plan in ("cancel", "replace") and t.due is None and t.pending is None and status in ("0", "1"):
            t.due = now + self.rng.uniform(0.3, 2.0)
            self._waiting.add(t)

    # ---------------------------------------------------------------- the harness's questions
    def acked_before(self, moment: float) -> list[Track]:
        with self._lock:
            return [t for t in self.tracks if t.acked is not None and t.acked < moment]

    def settle(self, timeout: float) -> list[Track]:
        """Wait (paused) until every order is settled; the ones that are not after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                open_ = [t for t in self.tracks if not t.settled]
            if not open_ or time.monotonic() > deadline:
                return open_
            time.sleep(0.1)

    def ask_status(self, tracks: list[Track], timeout: float) -> dict[int, dict[int, str] | None]:
        """OrderStatusRequest for each track (its current ClOrdID); id(track) -> the answer, or None without one."""
        with self._lock:
            for t in tracks:
                self.answers.pop((t.client, t.cur_cl), None)
        for i, t in enumerate(tracks):
            self.clients[t.client].status(t.cur_cl, t.spec.symbol, "1")
            if i % 50 == 49:
                time.sleep(0.05)  # a steady trickle, not a burst into the throttle
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all((t.client, t.cur_cl) in self.answers for t in tracks):
                    break
            time.sleep(0.05)
        with self._lock:
            return {id(t): self.answers.get((t.client, t.cur_cl)) for t in tracks}
