"""The order conversation of a `fixgw client` run: one command at a time (from the command line, a file or
the prompt) sent on the session, then its answer waited for (or ``--timeout``), with the exit status each
outcome earns."""
from __future__ import annotations

import time
from decimal import Decimal

import click

from gateway.cli import client_answers as answers
from gateway.cli import client_script as cs
from gateway.cli.client_reports import MSG_TYPES
from gateway.cli.client_session import ClientSession, Lost


class OrderConversation:
    """Sends the run's orders, cancels, replaces, status and mass-cancel requests and waits for their answers,
    which the session's report thread feeds to the tracker."""

    def __init__(self, session: ClientSession, account: str | None, timeout: float, linger: float):
        self.session = session
        self.account = account
        self.timeout = timeout
        self.linger = linger
        self.tracker = answers.Tracker()
        session.listen(self.tracker.feed)
        self._ids = 0
        self._stamp = _base36(int(time.time() * 1000))[-6:]

    def run(self, intents, interactive: bool) -> int:
        """The commands (``intents``: (line number, intent) pairs) or the prompt; then the linger."""
        code = self._prompt() if interactive else self._script(intents)
        self._linger()
        return code

    def _script(self, intents) -> int:
        code = cs.EXIT_OK
        for number, intent in intents:
            if isinstance(intent, cs.Quit):
                break
            code = max(code, self._run_one(intent, number))
            if self.session.lost is not None:
                break
        return code

    def _prompt(self) -> int:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        self.session.note("type help for the commands; quit or Ctrl-D to log out")
        code = cs.EXIT_OK
        while self.session.lost is None:
            try:
                line = input(f"{self.session.name}> ")
            except EOFError:
                click.echo()
                break
            except KeyboardInterrupt:
                click.echo()
                break
            try:
                intent = cs.parse_line(line)
            except cs.CommandError as exc:
                click.echo(f"error: {exc}", err=True)
                continue
            if intent is None:
                continue
            if isinstance(intent, cs.Quit):
                break
            code = max(code, self._run_one(intent, None))
        return code

    # ------------------------------------------------------------------ one command
    def _run_one(self, intent: cs.Intent, number: int | None) -> int:
        try:
            if isinstance(intent, cs.Help):
                click.echo(cs.HELP)
                return cs.EXIT_OK
            if isinstance(intent, cs.Sleep):
                self._sleep(intent.seconds)
                return cs.EXIT_OK
            if isinstance(intent, cs.Wait):
                return self._wait_done(intent)
            req, wait = self._send(intent)
            if not wait:
                return cs.EXIT_OK
            return self._await(req, intent)
        except cs.CommandError as exc:
            where = f"line {number}: " if number is not None else ""
            self.session.note(f"{where}{exc}", error=True)
            return cs.EXIT_USAGE
        except Lost:
            return cs.EXIT_DISCONNECTED

    def _send(self, intent: cs.Intent) -> tuple[answers.Request, bool]:
        fc, tr = self.session.fc, self.tracker
        with self.session.cond:  # held while sending, so that the answer is shown after what was sent
            if isinstance(intent, cs.NewOrder):
                cl = intent.cl_ord_id or self._next_id("C")
                account = intent.account or self.account
                tr.sent_order(intent, cl)
                tr.orders[cl].account = account
                req = tr.expect("D", cl, None)
                extra = {tag: value for tag, value in ((99, intent.stop), (100, intent.venue),
                                                       (9100, intent.strategy)) if value is not None}
                fc.new_order(intent.symbol, intent.side, intent.qty, intent.limit, cl_ord_id=cl,
                             ord_type=intent.ord_type, tif=intent.tif, account=account,
                             extra={k: _text(v) for k, v in extra.items()})
                sent_type, wait = "D", intent.wait
            elif isinstance(intent, cs.Cancel):
                rec = self._order(intent.orig_cl_ord_id, intent.symbol, intent.side, intent.qty, "cancel")
                cl = intent.cl_ord_id or self._next_id("X")
                tr.link(cl, rec)
                req = tr.expect("F", cl, None)
                fc.cancel(rec.cl_ord_id, rec.symbol, rec.side, intent.qty or rec.qty, cl_ord_id=cl)
                sent_type, wait = "F", intent.wait
            elif isinstance(intent, cs.Replace):
                rec = self._order(intent.orig_cl_ord_id, intent.symbol, intent.side, intent.qty, "replace")
                qty = intent.qty or rec.qty
                if qty is None:
                    raise cs.CommandError(f"replace {intent.orig_cl_ord_id}: give --qty (FIX requires OrderQty)")
                price = intent.limit if intent.limit is not None else rec.limit
                cl = intent.cl_ord_id or self._next_id("R")
                tr.link(cl, rec)
                req = tr.expect("G", cl, None)
                fc.replace(rec.cl_ord_id, rec.symbol, rec.side, qty, price, cl_ord_id=cl,
                           ord_type="2" if price is not None else "1")
                sent_type, wait = "G", intent.wait
            elif isinstance(intent, cs.Status):
                rec = self._order(intent.cl_ord_id, intent.symbol, intent.side, None, "status")
                cl = rec.cl_ord_id
                req = tr.expect("H", cl, None)
                fc.status(cl, rec.symbol, rec.side)
                sent_type, wait = "H", True
            elif isinstance(intent, cs.MassCancel):
                cs.check_version(intent, self.session.version)
                cl = self._next_id("Q")
                req = tr.expect("q", cl, None)
                fc.mass_cancel("1" if intent.symbol else "7", intent.symbol, cl_ord_id=cl)
                sent_type, wait = "q", True
            else:  # pragma: no cover - every intent is handled above
                raise AssertionError(intent)
            sent = fc.sent(sent_type, cl)
            if sent is None:  # stored for a resend, not written: the session is not logged on
                tr.pending.remove(req)
                self.session.lost = self.session.lost or "not logged on"
                raise Lost()
            req.seq = sent.get(34)
            self.session.show(time.time(), sent, sent=True)
            return req, wait

    def _order(self, cl_ord_id: str, symbol: str | None, side: str | None, qty: Decimal | None,
               what: str) -> answers.OrderRecord:
        if cl_ord_id == "last":
            if self.tracker.last_order is None:
                raise cs.CommandError(f"{what} last: no order was sent in this run yet")
            cl_ord_id = self.tracker.last_order
        rec = self.tracker.order(cl_ord_id)
        if rec is not None:
            return rec
        if symbol is None or side is None:
            raise cs.CommandError(f"{what} {cl_ord_id}: not an order of this run; give --symbol and --side")
        return self.tracker.adopt(cl_ord_id, symbol, side, qty)

    def _await(self, req: answers.Request, intent: cs.Intent) -> int:
        deadline = time.monotonic() + self.timeout
        with self.session.cond:
            while req.outcome is None and self.session.lost is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.session.cond.wait(left)
            if req in self.tracker.pending:
                self.tracker.pending.remove(req)
            outcome = req.outcome
        if outcome is None:
            if self.session.lost is not None:
                self.session.result(req, "disconnected", cs.EXIT_DISCONNECTED)
                return cs.EXIT_DISCONNECTED
            self.session.note(f"no answer to {MSG_TYPES[req.kind]} {req.cl_ord_id} within {self.timeout:g}s",
                              error=True)
            self.session.result(req, "timeout", cs.EXIT_TIMEOUT)
            return cs.EXIT_TIMEOUT
        code = cs.EXIT_OK if outcome == "ok" else cs.EXIT_REFUSED
        self.session.result(req, outcome, code)
        return code

    def _wait_done(self, intent: cs.Wait) -> int:
        cl = intent.cl_ord_id if intent.cl_ord_id not in (None, "last") else self.tracker.last_order
        if cl is None:
            raise cs.CommandError("wait: no order was sent in this run yet")
        if self.tracker.order(cl) is None:
            raise cs.CommandError(f"wait {cl}: not an order of this run")
        deadline = time.monotonic() + self.timeout
        with self.session.cond:
            while not self.tracker.done(cl) and self.session.lost is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.session.cond.wait(left)
            done = self.tracker.done(cl)
        if done:
            return cs.EXIT_OK
        if self.session.lost is not None:
            return cs.EXIT_DISCONNECTED
        self.session.note(f"wait {cl}: still open after {self.timeout:g}s", error=True)
        return cs.EXIT_TIMEOUT

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self.session.cond:
            while self.session.lost is None and (left := deadline - time.monotonic()) > 0:
                self.session.cond.wait(left)

    def _linger(self) -> None:
        """Reports that follow at once (a fill after New) are shown before logging out."""
        if self.linger <= 0 or self.session.lost is not None:
            return
        open_orders = [cl for cl, rec in self.tracker.orders.items() if rec.ord_status not in answers.DONE]
        if open_orders:
            deadline = time.monotonic() + self.linger
            with self.session.cond:
                while self.session.lost is None and not all(self.tracker.done(cl) for cl in open_orders):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.session.cond.wait(left)

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}-{self._stamp}"  # the run's number first: C1-CJ1MQ1, C2-CJ1MQ1, ...



def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _text(value) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)
