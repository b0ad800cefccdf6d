"""`fixgw client`: a FIX client in the box, for sending orders by hand or from a script.

    fixgw client CLIENT44 buy 100 AAPL --limit 190      one command, then log out
    fixgw client CLIENT44                               a prompt (stdin is a terminal)
    fixgw client CLIENT44 --file cmds.txt               a file of commands (or piped on stdin)

It logs on as one of the gateway's client sessions, with the CompIDs, FIX version and port the gateway's
configuration gives it, through the gateway's own session code (``sessions.client.FixClient``, quickfix),
so it is also the reference for how a client connects. The grammar, the answer rules and the report
formatting are in gateway/cli/client_script.py; this module runs the session:

- a thread ("fixgw-client-reports") shows every message as it arrives and notes what it answers;
- the main thread sends one command at a time and waits for its answer (or ``--timeout``);
- the quickfix store is a fresh temporary directory, removed at exit, and every Logon carries
  ResetSeqNumFlag (141=Y): each run is a new FIX session starting at MsgSeqNum 1 on both sides, so two
  runs never share files and nothing is left behind. The price: reports the gateway sent while no client
  was logged on are not re-sent (ask with ``status``);
- a TLS session (``tls`` in its table) goes through gateway/security/tls.py's terminator, as the gateway's venue
  sessions do (quickfix has no TLS).
"""
from __future__ import annotations

import calendar
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import click

from gateway.cli import client_script as cs
from gateway.cli.common import CONFIG_OPTION as CONFIG
from gateway.cli.common import JSON
from gateway.config import ConfigError, GatewayConfig, load_config

PASSWORD_ENV = "FIXGW_CLIENT_PASSWORD"


class CommandFileError(click.ClickException):
    exit_code = cs.EXIT_USAGE


@click.command("client", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("action", nargs=-1, type=click.UNPROCESSED)
@CONFIG
@click.option("-f", "--file", "command_file", type=click.File("r"), default=None,
              help="run the commands in this file, one per line ('-': stdin)")
@click.option("--host", default="127.0.0.1", show_default=True, help="the gateway's host")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="the gateway's port (default: the session's port in the configuration)")
@click.option("--account", default=None,
              help="Account (1) for orders that name none (default: the session's first allowed account, if "
                   "it has a list)")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="seconds to wait for the logon and for each answer")
@click.option("--linger", type=click.FloatRange(0, 3600), default=0.5, show_default=True,
              help="after the last command, keep showing reports this long while an order of the run is open")
@click.option("--tls-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS sessions: CA certificates (PEM) the gateway's certificate must chain to (default: the "
                   "system's)")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS sessions: our client certificate (PEM), for a port that asks for one")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS sessions: its private key (PEM, unencrypted, readable by you only)")
@click.option("--tls-server-name", default=None, help="TLS sessions: the name the gateway's certificate must "
                                                      "carry (default: --host)")
@click.option("--password-stdin", is_flag=True,
              help=f"read the session's password from the first line of stdin (or set {PASSWORD_ENV})")
@click.option("--count", type=click.IntRange(1), default=None,
              help="drop-copy sessions: log out after this many ExecutionReports of events since the start (the "
                   "history re-sent at logon is shown, not counted)")
@click.option("--for", "watch_s", type=click.FloatRange(0.1, 86400), default=None,
              help="drop-copy sessions: log out after this many seconds (default: Ctrl-C, or --count)")
@JSON
def client(name: str, action: tuple[str, ...], config_path: str, command_file, host: str, port: int | None,
           account: str | None, timeout: float, linger: float, tls_ca: Path | None, tls_cert: Path | None,
           tls_key: Path | None, tls_server_name: str | None, password_stdin: bool, count: int | None,
           watch_s: float | None, as_json: bool) -> None:
    """Log on as client session NAME and send orders: one ACTION, a prompt, or a file of commands.

    NAME may also be a drop-copy session: the client then only watches, showing every copy as it arrives."""
    cfg = _load(config_path)
    session = cfg.clients.get(name)
    if session is None and name in cfg.dropcopy.sessions:
        if action or command_file is not None:
            raise click.UsageError(f"{name} is a drop-copy session: it only receives copies (no ACTION, no --file)")
        _watch(cfg, name, host, port, timeout, count, watch_s, password_stdin, as_json)
    if count is not None or watch_s is not None:
        raise click.UsageError("--count and --for are for watching a drop-copy session")
    if session is None:
        known = ", ".join(cfg.clients) or "none"
        dropcopy = ", ".join(cfg.dropcopy.sessions) or "none"
        raise click.ClickException(f"{name} is not a client or drop-copy session in {config_path} (client "
                                   f"sessions: {known}; drop-copy sessions: {dropcopy})")
    tls = None
    if session.tls is not None:
        tls = TlsOptions(ca=tls_ca, cert=tls_cert, key=tls_key, server_name=tls_server_name or host)
    elif tls_ca or tls_cert or tls_key or tls_server_name:
        raise click.UsageError(f"{name} is a plaintext session (no tls in {config_path}): drop the --tls-* options")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if action and command_file is not None:
        raise click.UsageError("give either an ACTION or --file, not both")

    password = _password(name, session, password_stdin)
    interactive = False
    if action:
        intents = [(None, _one_shot(action, session.fix_version))]
    elif command_file is not None:
        intents = _read_commands(command_file, getattr(command_file, "name", "file"), session.fix_version)
    elif sys.stdin.isatty():
        intents, interactive = None, True
    else:
        intents = _read_commands(sys.stdin, "stdin", session.fix_version)

    logon_fields = {}
    if password is not None:
        logon_fields = {553: session.expected_username(name), 554: password}
    default_account = account or (session.accounts[0] if session.accounts else None)
    runner = ClientRun(cfg, name, host, port or cfg.client_port(name), logon_fields, default_account, timeout,
                       linger, as_json, tls)
    code = runner.run(intents, interactive)
    sys.exit(code)


client.help = (
    f"{client.help}\n\nWithout ACTION or --file: a prompt when stdin is a terminal, else commands from stdin."
    "\n\n\b\nACTION, or one line of a file or the prompt (# starts a comment):\n"
    + "\n".join(cs.HELP.splitlines()[1:])
    + "\n\nExit status: 0 answered and accepted; 1 no logon (refused: the Logout's text is shown) or bad "
    "configuration; 2 a command that does not parse; 3 refused (Rejected, OrderCancelReject, Reject, "
    "BusinessMessageReject, unknown order); 4 no answer within --timeout; 5 the session ended early. With "
    "several commands: the highest of theirs.")


def _watch(cfg: GatewayConfig, name: str, host: str, port: int | None, timeout: float, count: int | None,
           watch_s: float | None, password_stdin: bool, as_json: bool) -> None:
    """Log on as drop-copy session NAME and show the copies as they arrive, as a broker's receiver would.

    Its Logon resets the sequence numbers (141=Y), so the gateway first re-sends from its journal what the
    session has not acknowledged (PossResend, 97=Y): shown, and counted only if its event happened after
    the watch started (TransactTime, 60), as copies held for the reset did. Exit 0 after --count such reports,
    or at --for or Ctrl-C; 4 when --for ends before --count was reached."""
    session = cfg.dropcopy.sessions[name]
    password = _password(name, session, password_stdin)
    logon_fields = {553: session.expected_username(name), 554: password} if password is not None else {}
    runner = ClientRun(cfg, name, host, port or cfg.dropcopy.port, logon_fields, None, timeout, 0, as_json,
                       version=session.fix_version)
    sys.exit(runner.run(None, False, watch=(count, watch_s)))


def _load(config_path: str) -> GatewayConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _one_shot(action: tuple[str, ...], version: str) -> cs.Intent:
    try:
        intent = cs.check_version(cs.parse_words(action), version)
    except cs.CommandError as exc:
        raise click.UsageError(str(exc)) from None
    if isinstance(intent, (cs.Cancel, cs.Replace, cs.Status)) and (intent.symbol is None or intent.side is None):
        what = {cs.Cancel: "cancel", cs.Replace: "replace", cs.Status: "status"}[type(intent)]
        raise click.UsageError(f"{what} of an order sent by an earlier run needs --symbol and --side (FIX "
                               "requires them); in a file or at the prompt, orders sent earlier in the run "
                               "need nothing more")
    if isinstance(intent, cs.Replace) and intent.qty is None:
        raise click.UsageError("replace of an order sent by an earlier run needs --qty (FIX requires OrderQty)")
    if isinstance(intent, (cs.Wait, cs.Sleep, cs.Help, cs.Quit)):
        raise click.UsageError(f"{action[0]} is for a file of commands or the prompt")
    return intent


def _read_commands(stream, source: str, version: str) -> list[tuple[int, cs.Intent]]:
    """Every command of a file, checked before anything is sent: a line that does not parse stops the run."""
    intents = []
    for number, line in enumerate(stream, 1):
        try:
            intent = cs.check_version(cs.parse_line(line), version)
        except cs.CommandError as exc:
            raise CommandFileError(f"{source}:{number}: {exc}") from None
        if intent is not None:
            intents.append((number, intent))
    return intents


def _password(name: str, session, password_stdin: bool) -> str | None:
    """The session's password (never from the command line): --password-stdin, FIXGW_CLIENT_PASSWORD, the
    demo's own variable (demo_password_env), else asked for on a terminal."""
    if not session.password_required:
        if password_stdin:
            raise click.UsageError(f"{name} does not take a password (password_required is not set)")
        return None
    if password_stdin:
        if sys.stdin.isatty():
            return click.prompt(f"password for {name}", hide_input=True)
        line = sys.stdin.readline()
        if not line.strip():
            raise click.ClickException("--password-stdin: the first line of stdin is empty")
        return line.rstrip("\r\n")
    for var in (PASSWORD_ENV, getattr(session, "demo_password_env", None)):
        if var and os.environ.get(var):
            return os.environ[var]
    if sys.stdin.isatty():
        return click.prompt(f"password for {name}", hide_input=True)
    raise click.ClickException(f"{name} needs a password: --password-stdin, or set {PASSWORD_ENV}")


@dataclass(frozen=True)
class TlsOptions:
    ca: Path | None
    cert: Path | None
    key: Path | None
    server_name: str


class _Lost(Exception):
    """The session ended while the run was going on."""


class ClientRun:
    def __init__(self, cfg: GatewayConfig, name: str, host: str, port: int, logon_fields: dict[int, str],
                 account: str | None, timeout: float, linger: float, as_json: bool, tls: TlsOptions | None = None,
                 version: str | None = None):
        self.cfg, self.name, self.host, self.port = cfg, name, host, port
        self.tls = tls
        self.tls_failures: list[str] = []
        self.version = version or cfg.clients[name].fix_version
        self.exec_reports = 0  # ExecutionReports of events since the run started (what a drop-copy watch counts)
        self.started = time.time()
        self.logon_fields = logon_fields
        self.account = account
        self.timeout = timeout
        self.linger = linger
        self.as_json = as_json
        self.tracker = cs.Tracker()
        self.cond = threading.Condition()  # guards the tracker and the output order
        self.lost: str | None = None  # why the session ended early
        self.stopping = False
        self.fc = None
        self._ids = 0
        self._stamp = _base36(int(time.time() * 1000))[-6:]

    # ------------------------------------------------------------------ run
    def run(self, intents, interactive: bool, watch: tuple[int | None, float | None] | None = None) -> int:
        from sessions.client import FixClient  # quickfix: only when a session is really needed

        store = Path(tempfile.mkdtemp(prefix=f"fixgw-client-{self.name}-"))
        pump = terminator = None
        try:
            host, port = self.host, self.port
            if self.tls is not None:
                terminator, host, port = self._tls_tunnel()
            self.fc = FixClient(version=self.version, sender=self.name, target=self.cfg.comp_id, host=host,
                                port=port, store_dir=store, logon_fields=self.logon_fields,
                                reset_seqnum_flag=True,
                                # one logon attempt: a refused one is not repeated (lockouts count failures)
                                extra={"ReconnectInterval": "3600"})
            self._logon()
            pump = threading.Thread(target=self._pump, name="fixgw-client-reports", daemon=True)
            pump.start()
            if watch is not None:
                code = self._watch(*watch)
            else:
                code = self._prompt() if interactive else self._script(intents)
            self._linger()
            if self.lost is not None:
                self._note(f"session ended: {self.lost}", error=True)
                code = max(code, cs.EXIT_DISCONNECTED)
            return code
        except KeyboardInterrupt:
            return 130
        finally:
            self.stopping = True
            if self.fc is not None:
                self.fc.stop()
            if pump is not None:
                pump.join(2)
            if terminator is not None:
                terminator.stop()
            shutil.rmtree(store, ignore_errors=True)

    def _tls_tunnel(self):
        """quickfix has no TLS (docs/quickfix-binding.md): as the gateway does for its venues, the session
        connects in plaintext to a local port of the gateway's TLS terminator (gateway/security/tls.py), which opens
        the TLS connection and verifies the gateway's certificate."""
        import logging

        from gateway.security.auth import PeerBook
        from gateway.security.tls import TlsError, TlsTerminator, client_context

        logging.getLogger("fixgw.tls").addHandler(logging.NullHandler())  # failures are shown as ours, once
        tls = self.tls
        try:
            context = client_context(tls.ca, tls.cert, tls.key)
            terminator = TlsTerminator(PeerBook(), lambda where, text, failure: failure and self.tls_failures.append(
                text)).start()
        except TlsError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            local = terminator.connect_out(self.name, self.host, self.port, context, tls.server_name)
        except Exception:
            terminator.stop()
            raise
        return terminator, "127.0.0.1", local

    def _logon(self) -> None:
        where = f"{self.host}:{self.port}"
        self.fc.connect()
        outcome, text = self.fc.logon_outcome(self.timeout)
        if outcome == "logged_on":
            begin = "FIXT.1.1 (FIX.5.0)" if self.version == "FIX.5.0" else self.version
            over = ", TLS" if self.tls is not None else ""
            self._note(f"logged on to {where} as {self.name} -> {self.cfg.comp_id}, {begin}{over}", event="logon")
            return
        if outcome == "refused":
            raise click.ClickException(f"the gateway at {where} refused the logon of {self.name}: "
                                       f"{text or 'Logout without a reason'}")
        if outcome == "closed":
            if self.tls_failures:
                raise click.ClickException(f"could not log on to {where} as {self.name}: {self.tls_failures[-1]}")
            raise click.ClickException(f"could not log on to {where} as {self.name}: the connection was refused "
                                       "or closed before any answer (is the gateway running there, and serving "
                                       f"{self.name} on port {self.port}?)")
        raise click.ClickException(f"no answer to the logon of {self.name} from {where} within {self.timeout:g}s")

    def _script(self, intents) -> int:
        code = cs.EXIT_OK
        for number, intent in intents:
            if isinstance(intent, cs.Quit):
                break
            code = max(code, self._run_one(intent, number))
            if self.lost is not None:
                break
        return code

    def _prompt(self) -> int:
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
        self._note("type help for the commands; quit or Ctrl-D to log out")
        code = cs.EXIT_OK
        while self.lost is None:
            try:
                line = input(f"{self.name}> ")
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

    def _watch(self, count: int | None, seconds: float | None) -> int:
        """Until ``count`` ExecutionReports arrived, ``seconds`` passed, the session ended or Ctrl-C."""
        deadline = None if seconds is None else time.monotonic() + seconds
        with self.cond:
            while self.lost is None and (count is None or self.exec_reports < count):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self.cond.wait(1.0 if left is None else min(left, 1.0))
            if count is not None and self.exec_reports < count:
                self._note(f"{self.exec_reports} of {count} ExecutionReport(s) received", error=True)
                return cs.EXIT_TIMEOUT if self.lost is None else cs.EXIT_OK
        return cs.EXIT_OK

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
            self._note(f"{where}{exc}", error=True)
            return cs.EXIT_USAGE
        except _Lost:
            return cs.EXIT_DISCONNECTED

    def _send(self, intent: cs.Intent) -> tuple[cs.Request, bool]:
        fc, tr = self.fc, self.tracker
        with self.cond:  # held while sending, so that the answer is shown after what was sent
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
                cs.check_version(intent, self.version)
                cl = self._next_id("Q")
                req = tr.expect("q", cl, None)
                fc.mass_cancel("1" if intent.symbol else "7", intent.symbol, cl_ord_id=cl)
                sent_type, wait = "q", True
            else:  # pragma: no cover - every intent is handled above
                raise AssertionError(intent)
            sent = fc.sent(sent_type, cl)
            if sent is None:  # stored for a resend, not written: the session is not logged on
                tr.pending.remove(req)
                self.lost = self.lost or "not logged on"
                raise _Lost()
            req.seq = sent.get(34)
            self._show(time.time(), sent, sent=True)
            return req, wait

    def _order(self, cl_ord_id: str, symbol: str | None, side: str | None, qty: Decimal | None,
               what: str) -> cs.OrderRecord:
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

    def _await(self, req: cs.Request, intent: cs.Intent) -> int:
        deadline = time.monotonic() + self.timeout
        with self.cond:
            while req.outcome is None and self.lost is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            if req in self.tracker.pending:
                self.tracker.pending.remove(req)
            outcome = req.outcome
        if outcome is None:
            if self.lost is not None:
                self._result(req, "disconnected", cs.EXIT_DISCONNECTED)
                return cs.EXIT_DISCONNECTED
            self._note(f"no answer to {cs.MSG_TYPES[req.kind]} {req.cl_ord_id} within {self.timeout:g}s", error=True)
            self._result(req, "timeout", cs.EXIT_TIMEOUT)
            return cs.EXIT_TIMEOUT
        code = cs.EXIT_OK if outcome == "ok" else cs.EXIT_REFUSED
        self._result(req, outcome, code)
        return code

    def _wait_done(self, intent: cs.Wait) -> int:
        cl = intent.cl_ord_id if intent.cl_ord_id not in (None, "last") else self.tracker.last_order
        if cl is None:
            raise cs.CommandError("wait: no order was sent in this run yet")
        if self.tracker.order(cl) is None:
            raise cs.CommandError(f"wait {cl}: not an order of this run")
        deadline = time.monotonic() + self.timeout
        with self.cond:
            while not self.tracker.done(cl) and self.lost is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            done = self.tracker.done(cl)
        if done:
            return cs.EXIT_OK
        if self.lost is not None:
            return cs.EXIT_DISCONNECTED
        self._note(f"wait {cl}: still open after {self.timeout:g}s", error=True)
        return cs.EXIT_TIMEOUT

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self.cond:
            while self.lost is None and (left := deadline - time.monotonic()) > 0:
                self.cond.wait(left)

    def _linger(self) -> None:
        """Reports that follow at once (a fill after New) are shown before logging out."""
        if self.linger <= 0 or self.lost is not None:
            return
        open_orders = [cl for cl, rec in self.tracker.orders.items() if rec.ord_status not in cs.DONE]
        if open_orders:
            deadline = time.monotonic() + self.linger
            with self.cond:
                while self.lost is None and not all(self.tracker.done(cl) for cl in open_orders):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)

    # ------------------------------------------------------------------ reports
    def _pump(self) -> None:
        index = 0
        fc = self.fc
        while True:
            new = fc.messages_after(index, 0.2)
            for m in new:
                now = time.time()
                with self.cond:
                    if not (m.get(35) == "A" and not self.as_json):
                        self._show(now, m)
                    self.tracker.feed(m)
                    if m.get(35) == "8" and _sent_at(m) >= self.started:
                        self.exec_reports += 1  # not the history the journal re-sends after the reset logon
                    self.cond.notify_all()
            index += len(new)
            if not fc.logged_on:
                if self.stopping:
                    return
                if not new:  # everything received is shown: the session is over
                    with self.cond:
                        logout = [m.get(58, "") for m in fc.messages if m.get(35) == "5"]
                        self.lost = (f"the gateway logged the session out: {logout[-1]}" if logout and logout[-1]
                                     else "the connection closed")
                        self.cond.notify_all()
                    return

    def _show(self, t: float, m: dict[int, str], sent: bool = False) -> None:
        if m.get(35) in cs.QUIET:
            return
        if self.as_json:
            click.echo(cs.json_line(cs.as_json(t, m, sent)))
        else:
            click.echo(cs.human_line(t, m, sent))

    def _note(self, text: str, error: bool = False, event: str = "note") -> None:
        if self.as_json:
            if error:
                click.echo(text, err=True)
            else:
                click.echo(cs.json_line({"event": event, "text": text, "session": self.name,
                                         "fix_version": self.version}))
        else:
            click.echo(text, err=error)

    def _result(self, req: cs.Request, outcome: str, code: int) -> None:
        if self.as_json:
            with self.cond:
                click.echo(cs.json_line({"event": "result", "msg_type": req.kind, "cl_ord_id": req.cl_ord_id,
                                         "outcome": outcome, "exit": code}))

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}-{self._stamp}"  # the run's number first: C1-CJ1MQ1, C2-CJ1MQ1, ...


def _sent_at(m: dict[int, str]) -> float:
    """When the event it reports happened: TransactTime (60), else OrigSendingTime (122) of a re-send, else
    SendingTime (52); epoch seconds, 0 when none parses."""
    stamp = m.get(60) or m.get(122) or m.get(52) or ""
    try:
        whole = calendar.timegm(time.strptime(stamp[:17], "%Y%m%d-%H:%M:%S"))
        return whole + (float("0" + stamp[17:]) if stamp[17:18] == "." else 0.0)
    except ValueError:
        return 0.0


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _text(value) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)
