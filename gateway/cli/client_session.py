"""The FIX session of one `fixgw client` run: the logon (through the TLS terminator for a ``tls`` session),
the thread that shows every message as it arrives and hands it to the run's listeners, and the run's output.

- the thread ("fixgw-client-reports") shows each message as it arrives and passes it, under the session's
  condition, to the listeners (the order conversation's tracker, a drop-copy watch's count);
- the quickfix store is a fresh temporary directory, removed at exit, and every Logon carries
  ResetSeqNumFlag (141=Y): each run is a new FIX session starting at MsgSeqNum 1 on both sides, so two
  runs never share files and nothing is left behind. The price: reports the gateway sent while no client
  was logged on are not re-sent (ask with ``status``);
- a TLS session goes through gateway/security/tls.py's terminator, as the gateway's venue sessions do
  (quickfix has no TLS).
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from gateway.cli import client_reports as reports
from gateway.cli.client_answers import Request
from gateway.cli import client_script as cs
from gateway.config import GatewayConfig

Message = dict[int, str]


@dataclass(frozen=True)
class TlsOptions:
    ca: Path | None
    cert: Path | None
    key: Path | None
    server_name: str


class Lost(Exception):
    """The session ended while the run was going on."""


class ClientSession:
    """Logs on as one session of the gateway, shows what it sends and receives, and says why it ended."""

    def __init__(self, cfg: GatewayConfig, name: str, host: str, port: int, logon_fields: dict[int, str],
                 timeout: float, as_json: bool, tls: TlsOptions | None = None, version: str | None = None):
        self.cfg, self.name, self.host, self.port = cfg, name, host, port
        self.tls = tls
        self.tls_failures: list[str] = []
        self.version = version or cfg.clients[name].fix_version
        self.logon_fields = logon_fields
        self.timeout = timeout
        self.as_json = as_json
        self.cond = threading.Condition()  # guards what the listeners keep and the output order
        self.lost: str | None = None  # why the session ended early
        self.stopping = False
        self.fc = None
        self._listeners: list[Callable[[Message], None]] = []

    def listen(self, listener: Callable[[Message], None]) -> None:
        """Have ``listener`` see every received message, in order, under ``cond`` (waiters are woken after)."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ run
    def run(self, job: Callable[[], int]) -> int:
        """Log on, run ``job`` (its exit status) while the reports are shown, log out; EXIT_DISCONNECTED at
        least if the session ended early, 130 on Ctrl-C."""
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
            code = job()
            if self.lost is not None:
                self.note(f"session ended: {self.lost}", error=True)
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
            self.note(f"logged on to {where} as {self.name} -> {self.cfg.comp_id}, {begin}{over}", event="logon")
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
                        self.show(now, m)
                    for listener in self._listeners:
                        listener(m)
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

    def show(self, t: float, m: Message, sent: bool = False) -> None:
        if m.get(35) in reports.QUIET:
            return
        if self.as_json:
            click.echo(reports.json_line(reports.as_json(t, m, sent)))
        else:
            click.echo(reports.human_line(t, m, sent))

    def note(self, text: str, error: bool = False, event: str = "note") -> None:
        if self.as_json:
            if error:
                click.echo(text, err=True)
            else:
                click.echo(reports.json_line({"event": event, "text": text, "session": self.name,
                                         "fix_version": self.version}))
        else:
            click.echo(text, err=error)

    def result(self, req: Request, outcome: str, code: int) -> None:
        if self.as_json:
            with self.cond:
                click.echo(reports.json_line({"event": "result", "msg_type": req.kind, "cl_ord_id": req.cl_ord_id,
                                         "outcome": outcome, "exit": code}))
