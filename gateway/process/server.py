"""Process wiring: one Gateway = client acceptor + venue initiator + engine + journal (+ drop copies).

Start order: journal, engine, the drop-copy acceptor and its thread, then the
trading FIX engines (so every message has somewhere to go). Stop order is the
reverse: trading sessions log out first (their Logouts are journaled), then the
engine drains, the drop-copy thread copies everything journaled, the drop-copy
receivers are logged out, and the journal commits what is left.
"""
from __future__ import annotations

import difflib
import gc
import logging
import string
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable


from gateway.observability import metrics
from gateway.security import secretstore
from gateway.admin.api import Admin, admin_token
from gateway.security.auth import DENY_EVENT, UNKNOWN_SESSION_EVENT, LogonGuard, PeerBook, policy_for
from gateway.config import (ClientConfig, ConfigError, GatewayConfig, VenueConfig, load_config,
                            sequence_reset_warnings)
from gateway.security.credentials import CredentialsError, CredentialStore
from gateway.dropcopy.service import CoreDirectory, DropCopyService
from fixspecs.redact import redact
from gateway.security.tls import TlsError, TlsTerminator, client_context, server_context
from gateway.security.frontdoor import FrontDoor
from gateway.process.logon_watch import LogonWatch
from gateway.process.engine import Engine
from gateway.admin.http import HttpEndpoint
from gateway.state import recovery
from gateway.journal.writer import JournalWriter, inbound_after, session_rejected
from gateway.journal.process import ProcessJournalWriter
from gateway.observability.logs import fields
from gateway.scheduling.reload import (ADDED, FAILED, READDED, RECONNECTED, REFUSED, REMOVED, REPLACED, UPDATED, Plan, ReloadBusy,
                            Step, plan)
from gateway.scheduling.schedule import build_scheduler, describe, set_end_of_day, set_risk_day_rolls
from gateway.state.log import StateLog
from gateway.state.records import State, StateLogError
from desk.core import Core
from desk.options import ClientOptions
from orders.model import RiskDayRoll
from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from routing.router import RoutingPolicy, StrategySpec, Venue
from dropcopy.filters import Scope
from fixspecs.raw import field_after
from sessions import filestore
from sessions.codec import IntakeLimits
from sessions.dropcopy import DropCopyApplication, DropCopyLink
from sessions.fixsettings import (BEGIN_STRING, SessionID, build_settings, graceful_stop, graceful_stop_all,
                                  lookup_session, session_id, session_registered, start_engine, start_now)
from sessions.gateway_app import ClientApplication, VenueApplication, replay_command
from sessions.journal_log import JournalLogFactory
from sessions.sent_index import SentIndex
from sessions.outbound import Outbound

log = logging.getLogger("fixgw.gateway")
# quickfix's session events of an initiator (gateway/process/logon_watch.py)
CONNECTING_EVENT = "Connecting to "
LOGON_TIMEOUT_EVENT = "Timed out waiting for logon response"

_B36 = string.digits + string.ascii_uppercase


def order_id_prefix(now: float | None = None) -> str:
    """A prefix unique per start (base-36 seconds since the epoch), so OrderIDs never repeat across restarts."""
    n = int(time.time() if now is None else now)
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return out or "0"


def load_risk(cfg: GatewayConfig) -> RiskEngine | None:
    """The risk engine for cfg's rules file, or None; a bad file raises ConfigError naming every problem."""
    path = cfg.risk.rules_file
    if path is None:
        return None
    try:
        return RiskEngine(load_rules(path.read_text(), str(path)), account_day_start=cfg.risk.trading_day_start)
    except OSError as exc:
        raise ConfigError(f"cannot read risk rules {path}: {exc.strerror}") from None
    except RulesError as exc:
        raise ConfigError(str(exc)) from None


def intake_limits(cfg: GatewayConfig) -> IntakeLimits:
    """gateway.cfg [limits] as the codec's IntakeLimits."""
    return IntakeLimits(cfg.limits.max_qty, cfg.limits.max_price, cfg.limits.max_decimals)


def _callback_error(callback: str, session: str, exc: BaseException) -> None:
    metrics.INTERNAL_ERRORS.labels(callback).inc()


def _journaled_callback_error(journal) -> Callable[[str, str, BaseException], None]:
    """``_callback_error`` plus a journal event (``internal``) naming the session, callback and exception."""
    def on_error(callback: str, session: str, exc: BaseException) -> None:
        _callback_error(callback, session, exc)
        journal.event("internal", f"{session}: internal error in {callback}: {ascii(exc)}")
    return on_error


_journal_log = logging.getLogger("fixgw.journal")


def journal_log_error(where: str, exc: BaseException) -> None:
    """The journal's quickfix Log could not take a message or event (the spool refused it: a full disk,
    say): say so and count it. Trading goes on; the message is in quickfix's store if we sent it."""
    metrics.INTERNAL_ERRORS.labels(where).inc()
    _journal_log.error("could not journal a message or event (%s): %s", where, exc)


def venue_model(name: str, v: VenueConfig) -> Venue:
    """The router's view of a configured venue (it is down until its session logs on)."""
    return Venue(name=name, symbols=frozenset(v.symbols), md_enabled=v.market_data.enabled,
                 md_depth=v.market_data.depth, md_incremental=v.market_data.updates == "incremental",
                 priority=v.priority, take_fee=v.fees.take, make_fee=v.fees.make, on_disconnect=v.on_disconnect,
                 ack_timeout_s=v.ack_timeout_s, status_timeout_s=v.status_timeout_s, status_retry_s=v.status_retry_s,
                 reconcile_on_logon=v.reconcile_on_logon, mass_status=v.mass_status)


def routing_policy(cfg: GatewayConfig) -> RoutingPolicy:
    r = cfg.routing
    return RoutingPolicy(max_quote_age=timedelta(seconds=float(r.max_quote_age_s)),
                         default=StrategySpec(r.strategy, r.preferred_venues),
                         accounts={a: StrategySpec(x.strategy, x.preferred_venues) for a, x in r.accounts.items()},
                         max_reroutes=r.max_reroutes)


def client_options(c: ClientConfig) -> ClientOptions:
    return ClientOptions(pending_new=c.pending_new, cancel_on_disconnect=c.cancel_on_disconnect,
                         accounts=frozenset(c.accounts) if c.accounts is not None else None,
                         strategy=StrategySpec(c.strategy, c.preferred_venues) if c.strategy else None,
                         day_start=c.schedule.start if c.schedule is not None else None)


def _loopback_port() -> int:
    """A port free now on this machine, for a quickfix acceptor only the front door connects to."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _field(raw: str, tag: int) -> str:
    value = field_after(raw, f"\x01{tag}=")
    return "?" if value is None else value


REMOVED_REASON = "session removed from the gateway's configuration"


class Gateway:
    def __init__(self, cfg: GatewayConfig, journal: JournalWriter | None = None, config_path: str | Path | None = None):
        self.cfg = cfg
        self.config_path = Path(config_path).resolve() if config_path is not None else None  # for sessions reload
        writer = ProcessJournalWriter if cfg.journal.writer == "process" else JournalWriter
        self.journal = journal or writer(cfg.journal.database_url, cfg.journal.batch_max,
                                         cfg.journal.flush_interval_ms, spool_dir=cfg.data_dir / "spool")
        self.client_sids = {name: session_id(c.fix_version, cfg.comp_id, name) for name, c in cfg.clients.items()}
        self.venue_sids = {name: session_id(v.fix_version, cfg.comp_id, name) for name, v in cfg.venues.items()}
        venues = [venue_model(name, v) for name, v in cfg.venues.items()]
        clients = {name: client_options(c) for name, c in cfg.clients.items()}
        self.core = Core(venues, clients, order_id_prefix(), risk=load_risk(cfg), policy=routing_policy(cfg),
                         rejected_kept=cfg.limits.rejected_orders_kept)
        for symbol, px in cfg.risk.reference_prices.items():
            self.core.risk_state.set_reference_price(symbol, px)
        self.engine = Engine(self.core, Outbound(self.client_sids, self.venue_sids, self.journal.record),
                             self.journal.event)
        # security: where each logon comes from, its credentials, TLS (docs/security.md)
        self.peers = PeerBook()
        self.credentials = CredentialStore(cfg.data_dir)
        try:
            self.credentials.check()
        except CredentialsError as exc:
            raise ConfigError(str(exc)) from None
        self.logon_guard = LogonGuard(self.credentials, self.peers, self._audit_logon,
                                      policies=self._logon_policies(cfg))
        self.startup_disabled: dict[str, str] = {}  # session -> why its logons are refused (fixgw demo sets it)
        self._server_tls = {}  # client port -> SSLContext
        self._venue_tls = {}  # venue -> SSLContext
        try:
            for name, c in cfg.clients.items():
                if c.tls is not None and cfg.client_port(name) not in self._server_tls:
                    self._server_tls[cfg.client_port(name)] = self._server_context(c)
            for name, v in cfg.venues.items():
                if v.tls is not None:
                    self._venue_tls[name] = self._client_context(v)
                self._venue_logon_fields(name)  # a missing venue password stops start-up here
        except TlsError as exc:
            raise ConfigError(str(exc)) from None
        self.tls = TlsTerminator(self.peers, self._audit_tls)
        # The front door owns the public FIX ports (clients' and drop copy's) and relays vetted connections
        # to quickfix's internal ports, on the TLS terminator's loop thread (gateway/security/frontdoor.py); a logon
        # that bypasses it is refused.
        self.front_door = FrontDoor(self.tls, self._front_door_lookup, self._front_door_unknown,
                                    self._front_door_refused, self._front_door_busy, self._front_door_explain)
        self.logon_guard.front_door_only = True
        self._internal_ports: dict[int, int] = {}  # public client port -> quickfix's loopback-only port behind it
        self._dropcopy_internal_port: int | None = None
        # what we sent each venue by MsgSeqNum, so a venue's session-level Reject maps to a child order
        self.sent_index = SentIndex()
        for sid in self.venue_sids.values():
            self.sent_index.track(sid.toString())
        self._log_factory = JournalLogFactory(self.journal, journal_log_error, on_event=self._quickfix_event,
                                              sent_index=self.sent_index)
        # SessionID text -> name, shared by both Applications; a reload adds to it before starting an engine
        self._names = {sid.toString(): name for name, sid in {**self.client_sids, **self.venue_sids}.items()}
        self.statelog = StateLog(cfg.data_dir / "state", fsync=cfg.recovery.fsync,
                                 rejected_kept=cfg.limits.rejected_orders_kept)
        self.recovered: State | None = None  # what start() found in the state log
        self.client_app = ClientApplication(self._names, self.engine.submit, _journaled_callback_error(self.journal),
                                            self.logon_refusal)
        self.client_app.limits = intake_limits(cfg)  # [limits]: what a client's order may carry at all
        self.venue_app = VenueApplication(self._names, self.engine.submit, _callback_error,
                                          logon_fields=self._venue_logon_fields)
        self.venue_app.sent_index = self.sent_index
        self.logon_watch = LogonWatch()  # why a venue refuses our logon: once, then rate-limited
        self.venue_app.logon_watch = self.logon_watch
        # quickfix engines: acceptors as (engine, SessionIDs, ports), one initiator per venue as (engine, SessionID)
        self._acceptors: list[tuple[object, list[SessionID], set[int]]] = []
        self._initiators: dict[str, tuple[object, SessionID]] = {}
        self.retired_clients: dict[str, ClientConfig] = {}  # removed by a reload: logged out, logons refused
        self._reload_lock = threading.Lock()
        # Drop-copy receivers: their own acceptor (port [dropcopy].port), fed by the drop-copy thread
        # from the journal (gateway/dropcopy/service.py).
        dc = cfg.dropcopy.sessions
        self.dropcopy_sids = {name: session_id(d.fix_version, cfg.comp_id, name) for name, d in dc.items()}
        self.dropcopy: DropCopyService | None = None
        self.dropcopy_acceptor = None
        if dc:
            self.dropcopy = DropCopyService(
                cfg.journal.database_url,
                {name: (d.fix_version, Scope(d.reports, frozenset(d.clients), frozenset(d.accounts),
                                             frozenset(d.venues))) for name, d in dc.items()},
                DropCopyLink(self.dropcopy_sids, cfg.data_dir / "store" / "dropcopy"),
                {sid.toString(): name for name, sid in self.client_sids.items()},
                {sid.toString(): name for name, sid in self.venue_sids.items()},
                CoreDirectory(self.core),
                hold_offline=frozenset(name for name, d in dc.items() if d.resets))
            self.journal.add_commit_listener(self.dropcopy.wake)
            self.dropcopy_app = DropCopyApplication({sid.toString(): name for name, sid in self.dropcopy_sids.items()},
                                                    self.dropcopy.notify, _callback_error, self.logon_refusal)
        self.scheduler = build_scheduler(cfg, self.engine.submit)
        self.http: HttpEndpoint | None = None
        self.started_at: float | None = None

    # ------------------------------------------------------------------ settings and engines
    # One acceptor serves every client at start-up (a session per client, on its port); a reload
    # adds an acceptor for clients on a port no acceptor serves yet. Each venue has an initiator of
    # its own, so one venue can be added, removed or reconnected without touching the others (and
    # each venue's ReconnectInterval is its own: quickfix keeps one per initiator).
    # Source addresses are checked by the gateway at logon (gateway/security/auth.py), not with quickfix's
    # AllowedRemoteAddresses: that takes exact addresses only, refuses without a Logout or a reason, and
    # cannot change on a running session. Every client port's sessions listen on an internal port of their
    # own behind the front door (TLS ports too: the front door does the handshake); quickfix's port still
    # listens on every interface, as quickfix 1.16 has no bind address, but a logon that did not come
    # through the front door is refused.
    def _client_session(self, name: str, c: ClientConfig) -> tuple:
        port = self._internal_ports.setdefault(c.port or self.cfg.acceptor.port, _loopback_port())
        extra = {"SocketAcceptPort": str(port)}
        if c.schedule is not None:
            extra.update(c.schedule.quickfix_settings())
        extra.update(c.reset_settings())  # ResetOnLogon/ResetOnLogout/ResetOnDisconnect
        return session_id(c.fix_version, self.cfg.comp_id, name), c.fix_version, extra

    def _start_acceptor(self, clients: dict[str, ClientConfig], start: bool = True) -> None:
        sessions = [self._client_session(name, c) for name, c in clients.items()]
        settings = build_settings("acceptor", self.cfg.data_dir / "store" / "clients", sessions)
        engine = start_engine("acceptor", self.client_app, settings, self._log_factory, start=start)
        ports = {c.port or self.cfg.acceptor.port for c in clients.values()}
        self._acceptors.append((engine, [sid for sid, _, _ in sessions], ports))
        if start:
            self._open_front_doors(ports)

    def _open_front_doors(self, ports: set[int]) -> None:
        """The front door's listeners for the client ports among ``ports`` (their acceptor is running)."""
        for port in sorted(p for p in ports if p in self._internal_ports):
            if f"port:{port}" not in self.tls.listeners:
                try:
                    self.front_door.serve(f"port:{port}", "client", port, self._internal_ports[port],
                                          self.cfg.acceptor.limits, context=self._server_tls.get(port))
                except TlsError as exc:
                    raise ConfigError(str(exc)) from None

    @property
    def tls_in_use(self) -> bool:
        """Whether any running session depends on the TLS terminator's loop (the front door runs there too)."""
        return bool(self.tls.listeners)

    def _ensure_tls(self) -> None:
        if not self.tls.running:
            self.tls.start()

    def _start_initiator(self, name: str, v: VenueConfig, start: bool = True) -> None:
        sid = session_id(v.fix_version, self.cfg.comp_id, name)
        host, port = v.host, v.port
        if v.tls is not None:  # quickfix connects to the terminator, which connects to the venue over TLS
            self._ensure_tls()
            context = self._venue_tls.get(name) or self._client_context(v)
            port = self.tls.connect_out(f"venue:{name}", v.host, v.port, context, v.tls.server_name)
            host = "127.0.0.1"
        extra = {"SocketConnectHost": host, "SocketConnectPort": str(port), "HeartBtInt": str(v.heartbeat_s),
                 "ReconnectInterval": str(v.reconnect_s)}
        if v.schedule is not None:
            extra.update(v.schedule.quickfix_settings())
        extra.update(v.reset_settings())  # with any of them quickfix's Logon carries 141=Y when at 1/1
        settings = build_settings("initiator", self.cfg.data_dir / "store" / "venues", [(sid, v.fix_version, extra)])
        self._initiators[name] = (start_engine("initiator", self.venue_app, settings, self._log_factory, start=start),
                                  sid)

    def _stop_initiator(self, name: str, reason: str) -> None:
        engine, sid = self._initiators.pop(name)
        graceful_stop(engine, [sid], reason=reason)
        del engine  # destroyed now: quickfix's session registry must not outlive it (quickfix-binding.md)
        self.tls.close_listener(f"venue:{name}")

    # ------------------------------------------------------------------ security
    @staticmethod
    def _server_context(c: ClientConfig):
        t = c.tls
        return server_context(t.cert, t.key, t.client_ca, t.verify_client)

    @staticmethod
    def _client_context(v: VenueConfig):
        t = v.tls
        return client_context(t.ca, t.cert, t.key)

    def _venue_logon_fields(self, name: str) -> dict[int, str] | None:
        """Username (553) / Password (554) for our Logon to a venue; the password from the secrets."""
        v = self.cfg.venues.get(name)
        if v is None or (v.username is None and v.password_secret is None):
            return None
        out = {}
        if v.username is not None:
            out[553] = v.username
        if v.password_secret is not None:
            password = secretstore.get(v.password_secret)
            if password is None:
                raise ConfigError(f"venue {name}: its password secret {v.password_secret} is not set (in the "
                                  f"environment or the secrets file; secrets come from {secretstore.source()})")
            out[554] = password
        return out

    def _audit_logon(self, name: str, session_key: str, text: str, refused: bool) -> None:
        self.journal.event(session_key, text)
        (log.warning if refused else log.info)("%s: %s", name, text, extra=fields(session=name))

    def _audit_tls(self, where: str, text: str, failure: bool) -> None:
        self.journal.event(f"tls:{where}", text)

    def _front_door_lookup(self, kind: str, port: int, begin: str, sender: str, target: str) -> str | None:
        """The session a Logon on a public port is for, if that port serves it (on the front door's thread)."""
        if target != self.cfg.comp_id:
            return None
        if kind == "dropcopy":
            d = self.cfg.dropcopy.sessions.get(sender)
            return sender if d is not None and BEGIN_STRING[d.fix_version] == begin else None
        c = self.cfg.clients.get(sender) or self.retired_clients.get(sender)  # retired: refused with a reason
        if c is None or BEGIN_STRING[c.fix_version] != begin or (c.port or self.cfg.acceptor.port) != port:
            return None
        return sender

    def _front_door_unknown(self, kind: str, raw: bytes, answer: bytes = b"") -> None:
        """A Logon for no session served on its port: journaled (password masked) as quickfix's own refusal was,
        and the Logout the front door answered it with."""
        self.journal.event("*", UNKNOWN_SESSION_EVENT + raw.decode("latin-1"))
        if answer:
            self.journal.event("*", "front door answered with: " + answer.decode("latin-1"))

    def _front_door_explain(self, kind: str, port: int, begin: str, sender: str, target: str) -> str:
        """What is wrong with a Logon for no session on its port, against the sessions that come closest: for
        the log only (the peer is told nothing about the configuration)."""
        cfg = self.cfg
        clients = {n: (BEGIN_STRING[c.fix_version], cfg.client_port(n)) for n, c in cfg.clients.items()}
        copies = {n: (BEGIN_STRING[d.fix_version], cfg.dropcopy.port) for n, d in cfg.dropcopy.sessions.items()}
        served, other, other_kind = ((copies, clients, "client") if kind == "dropcopy"
                                     else (clients, copies, "drop-copy"))
        if sender in served:
            want_begin, want_port = served[sender]
            wrong = []
            if target != cfg.comp_id:
                wrong.append(f"SenderCompID {sender} is configured with TargetCompID {cfg.comp_id}, the logon said "
                             f"{target}")
            if begin != want_begin:
                wrong.append(f"{sender} is configured for BeginString {want_begin}, the logon said {begin}")
            if port != want_port:
                wrong.append(f"{sender} is served on port {want_port}, not {port}")
            return "; ".join(wrong) + "; check the counterparty's settings (or gateway.cfg)"
        if sender in other:
            return (f"{sender} is a {other_kind} session, served on port {other[sender][1]}: the counterparty "
                    f"connected to the wrong port")
        if sender == cfg.comp_id and target in served:
            return (f"SenderCompID and TargetCompID are swapped: the counterparty's SenderCompID must be {target}, "
                    f"its TargetCompID {cfg.comp_id}")
        close = difflib.get_close_matches(sender, list(served), n=3, cutoff=0.6)
        text = f"SenderCompID {sender} is not configured for this port"
        if close:
            text += " (closest: " + ", ".join(f"{n} with TargetCompID {cfg.comp_id}, {served[n][0]}, port "
                                               f"{served[n][1]}" for n in close) + ")"
        if target != cfg.comp_id:
            text += f", and TargetCompID {target} is not the gateway's CompID {cfg.comp_id}"
        return text + "; check the counterparty's CompIDs (or add the session to gateway.cfg)"

    def _front_door_busy(self, kind: str, session: str) -> bool:
        """Whether quickfix still holds this session's previous connection (on the front door's thread)."""
        sid = (self.dropcopy_sids if kind == "dropcopy" else self.client_sids).get(session)
        return sid is not None and session_registered(sid)

    def _front_door_refused(self, kind: str, session: str, text: str) -> None:
        """What a logged-on client sent that the front door would not pass on (not FIX, too large): journaled
        under the session, so its journal shows why the connection ended and what was dropped."""
        sid = (self.dropcopy_sids if kind == "dropcopy" else self.client_sids).get(session)
        self.journal.event(sid.toString() if sid is not None else "*", text)

    def _quickfix_event(self, session_key: str, text: str) -> None:
        """quickfix's engine and session events (on the thread that raised them): sources, refusals."""
        self.peers.connection_event(session_key, text)
        if text.startswith(CONNECTING_EVENT) or text.startswith(LOGON_TIMEOUT_EVENT):
            name = self._names.get(session_key)
            if name in self.venue_sids:
                if text.startswith(CONNECTING_EVENT):
                    self.logon_watch.connecting(name)
                else:
                    self.logon_watch.timed_out(name)
        if text.startswith(UNKNOWN_SESSION_EVENT):
            raw = text[len(UNKNOWN_SESSION_EVENT):]
            log.warning("connection refused by quickfix: no session %s:%s->%s (SenderCompID %s is unknown or not "
                        "served on that port); message: %s", _field("\x01" + raw, 8), _field(raw, 49),
                        _field(raw, 56), _field(raw, 49), redact(raw).replace("\x01", "|"),
                        extra=fields(reason="unknown session"))
        elif text.startswith(DENY_EVENT):
            log.warning("connection refused by quickfix for %s: %s", session_key, text)

    def set_startup_disabled(self, name: str, reason: str) -> None:
        """Refuse a client session's logons with ``reason`` for this run (fixgw demo without its password)."""
        self.startup_disabled[name] = reason

    def served_ports(self) -> set[int]:
        return set().union(*(ports for _, _, ports in self._acceptors))

    @property
    def disabled_sessions(self) -> set[str]:
        """Client sessions disabled by an operator, until `fixgw sessions enable` (kept across restarts)."""
        return self.core.operator_disabled

    # ------------------------------------------------------------------ recovery
    def _store_dir(self, origin: str) -> Path:
        return self.cfg.data_dir / "store" / ("clients" if origin.startswith("client:") else "venues")

    def _sids_by_origin(self) -> dict[str, SessionID]:
        return {**{f"client:{n}": sid for n, sid in self.client_sids.items()},
                **{f"venue:{n}": sid for n, sid in self.venue_sids.items()}}

    def _store_epoch(self, origin: str) -> float | None:
        sid = self._sids_by_origin().get(origin)
        info = filestore.read_info(self._store_dir(origin), sid) if sid is not None else None
        return info.created if info is not None else None

    def _load_state(self) -> State:
        """The order state from the state log, given to the core. Before any engine runs."""
        try:
            state = self.statelog.recover()
        except StateLogError as exc:
            raise ConfigError(str(exc)) from None
        pruned = state.prune(recovery.start_of_day_utc())
        recovery.restore_core(self.core, state)
        n_open = sum(1 for o in state.orders.values() if o.is_open)
        log.info("order state: %d open order(s), %d finished today; %d older finished order(s) forgotten; "
                 "%d order(s) refused today kept", n_open, len(state.orders) - n_open, pruned, len(state.rejected))
        if not state.clean:
            log.warning("the last stop was not clean (%d state record(s) after the snapshot%s): recovering",
                        state.records, ", the last one torn" if state.torn else "")
        return state

    def _unprocessed_commands(self, state: State) -> list[tuple[str, object]]:
        """Inbound messages quickfix accepted and the core never acted on (after an unclean stop), decoded."""
        url = self.journal.database_url
        found = []
        for origin, sid in self._sids_by_origin().items():
            info = filestore.read_info(self._store_dir(origin), sid)
            if info is None:
                continue
            epoch = info.created
            wm = state.watermarks.get(origin)
            after = wm[0] if wm is not None and wm[1] >= epoch else 0
            since_us = int(epoch * 1_000_000)
            text = sid.toString()
            rows = recovery.unprocessed(inbound_after(url, text, since_us, after),
                                        session_rejected(url, text, since_us))
            role, name = origin.split(":", 1)
            for row_id, seq, raw in rows:
                command = replay_command(role, name, raw, self.client_app.limits)
                if command is not None:
                    found.append((row_id, role, command))
            if rows:
                text = (f"recovery: {len(rows)} message(s) received before the crash (MsgSeqNum {rows[0][1]}-"
                        f"{rows[-1][1]}) had not been processed; processing them now")
                self.journal.event(sid.toString(), text)
                log.warning("%s: %s", origin, text)
        found.sort(key=lambda item: item[0])
        return [(role, command) for _, role, command in found]

    def _stored_tail(self, name: str, n: int) -> list[str]:
        origin = f"client:{name}" if name in self.client_sids else f"venue:{name}"
        sid = self._sids_by_origin().get(origin)
        if sid is None:
            return []
        return [raw for _, raw in filestore.sent_messages(self._store_dir(origin), sid, tail=n)]

    def _dropcopy_settings(self, store: Path):
        sessions = []
        for name, d in self.cfg.dropcopy.sessions.items():
            # source addresses and passwords are checked at logon, as for clients (gateway/security/auth.py)
            sessions.append((self.dropcopy_sids[name], d.fix_version, d.reset_settings()))
        if self._dropcopy_internal_port is None:
            self._dropcopy_internal_port = _loopback_port()  # behind the front door on [dropcopy] port
        return build_settings("acceptor", store, sessions, {"SocketAcceptPort": str(self._dropcopy_internal_port)})

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Gateway":
        for warning in sequence_reset_warnings(self.cfg):
            log.warning("%s", warning)
        state = self.recovered = self._load_state()
        self.journal.start()  # imports what the last run spooled and never committed
        replay, pending = [], []
        if not state.clean:
            replay = self._unprocessed_commands(state)
            pending = recovery.unsent(recovery.decided_in_epoch(state.pending, self._store_epoch), self._stored_tail)
            self.venue_app.resendable = frozenset(recovery.awaiting_venue(state))
        self.statelog.open(state)
        self.engine.recorder = recovery.Recorder(self.statelog, self.core, state, self._store_epoch)
        self.engine.start()
        self.engine.submit(RiskDayRoll())  # a restart after a trading-day boundary rolls (and journals) at once
        self.client_app.own_sender = self.venue_app.own_sender = self.engine.sender_thread_id
        if self.dropcopy is not None:
            # before the trading sessions, so the first report already has its drop-copy sessions
            settings = self._dropcopy_settings(self.cfg.data_dir / "store" / "dropcopy")
            self.dropcopy_acceptor = start_engine("acceptor", self.dropcopy_app, settings, self._log_factory)
            try:
                self.front_door.serve("dropcopy", "dropcopy", self.cfg.dropcopy.port, self._dropcopy_internal_port,
                                      self.cfg.dropcopy.limits)
            except TlsError as exc:
                raise ConfigError(str(exc)) from None
            self.dropcopy.start()
            if not self.dropcopy.wait_loaded(10):
                log.error("drop-copy state not loaded within 10 s (%s); copies start when it is",
                          self.dropcopy.last_error)
        # Create the engines (their sessions exist, not connected); recovered work goes first in the
        # engine's queue, each side's before that side's new messages; then connect.
        if self.cfg.clients:
            self._start_acceptor(dict(self.cfg.clients), start=False)
        for name, v in self.cfg.venues.items():
            self._start_initiator(name, v, start=False)
        if pending:
            log.warning("recovery: %d message(s) decided before the crash never reached quickfix; sending them "
                        "now (venue orders once the venue is logged on)", len(pending))
            self.engine.resend(pending)
        for role, command in replay:
            if role == "venue":
                self.engine.submit(command)
        for engine, _ in self._initiators.values():
            start_now(engine)
        client_replay = [command for role, command in replay if role == "client"]
        if client_replay:
            wait = self.cfg.recovery.venue_wait_s
            if not self.wait_venues_up(wait):
                log.warning("recovery: venues still down after %.0f s; processing the %d recovered client "
                            "message(s) anyway (orders for a venue that is down are rejected)", wait,
                            len(client_replay))
            for command in client_replay:
                self.engine.submit(command)
            self.engine.call(lambda core: None, timeout=60)  # all processed before any new client message
        for engine, _, _ in self._acceptors:
            start_now(engine)
        self._open_front_doors(self.served_ports())
        for name, c in self.cfg.clients.items():
            if c.password_required and name not in self.startup_disabled and not self.credentials.has(name):
                log.warning("client session %s requires a password but none is set: its logons are refused until "
                            "`fixgw credentials set %s`", name, name, extra=fields(session=name))
        self.scheduler.start()
        if self.cfg.http.enabled:
            admin = Admin(self, admin_token(self.cfg.data_dir, create=True))
            self.http = HttpEndpoint(self, self.cfg.http.host, self.cfg.http.port, admin, self.cfg.http)
            self.http.start()
        self.started_at = time.time()
        # Everything built so far (configuration, modules, quickfix's proxies, recovered orders) lives as long
        # as the process: take it out of the cyclic garbage collector's full passes, which otherwise walk it
        # again and again while orders come in (measured: most of the collector's share of the core thread).
        gc.collect()
        gc.freeze()
        log.info("gateway %s started: clients on port %d (%s), venues %s", self.cfg.comp_id, self.cfg.acceptor.port,
                 ", ".join(self.cfg.clients) or "none", ", ".join(self.cfg.venues) or "none")
        if self.dropcopy is not None:
            log.info("drop-copy sessions on port %d: %s", self.cfg.dropcopy.port, ", ".join(self.dropcopy_sids))
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        initiators = [(engine, [sid]) for engine, sid in self._initiators.values()]
        self._initiators = {}
        graceful_stop_all(initiators)
        del initiators  # drop the engines now (see _stop_initiator)
        acceptors = [(engine, sids) for engine, sids, _ in self._acceptors]
        self._acceptors = []
        graceful_stop_all(acceptors)
        del acceptors
        self.engine.stop()
        self.client_app.own_sender = self.venue_app.own_sender = None  # (its identifier may be reused)
        if self.dropcopy is not None:
            # copy everything journaled up to now, then let the receivers go
            self.journal.flush()
            self.dropcopy.stop()
        if self.dropcopy_acceptor is not None:
            graceful_stop(self.dropcopy_acceptor, list(self.dropcopy_sids.values()))
            self.dropcopy_acceptor = None
        self.front_door.stop()  # after every session's Logout went out through it
        self.tls.stop()
        if self.engine.recorder is not None:
            self.statelog.close(self.engine.recorder.capture())  # clean: the next start needs no repair
            self.engine.recorder = None
        self.journal.stop()
        log.info("gateway %s stopped", self.cfg.comp_id)

    @staticmethod
    def _logon_policies(cfg: GatewayConfig) -> dict:
        """Who may log on to each client and drop-copy session: address ranges, TLS, password."""
        return {**{n: policy_for(n, c) for n, c in cfg.clients.items()},
                **{n: policy_for(n, d) for n, d in cfg.dropcopy.sessions.items()}}

    def logon_refusal(self, name: str, session_key: str | None = None, username: str | None = None,
                      password: str | None = None) -> str | None:
        """Why a client session may not log on now, or None. Called on its session thread, from fromAdmin.

        With ``session_key`` (the SessionID text of the Logon being processed) the logon is also
        checked against the session's security settings: source address, TLS, username and password.
        """
        if name in self.retired_clients:
            return REMOVED_REASON
        if name in self.startup_disabled:
            return self.startup_disabled[name]
        if name in self.disabled_sessions:
            return "session disabled by an operator"
        if name in self.core.risk_state.disabled_sessions:  # a set read: safe from another thread
            return "session disabled after repeated throttle breaches; an operator must re-enable it"
        if session_key is not None:
            return self.logon_guard.check(name, session_key, username, password)
        return None

    # ------------------------------------------------------------------ queries
    def scheduled_jobs(self) -> list[tuple[str, str]]:
        return describe(self.scheduler) if self.scheduler.running else []

    def session(self, name: str):
        sid = self.client_sids.get(name) or self.venue_sids.get(name) or self.dropcopy_sids.get(name)
        return lookup_session(sid) if sid is not None else None

    def is_logged_on(self, name: str) -> bool:
        s = self.session(name)
        return bool(s is not None and s.isLoggedOn())

    def wait_venues_up(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # quickfix says "logged on" just before our onLogon callback queues the news for the
            # core, so wait until the core has seen it too
            if all(self.is_logged_on(v) for v in self.venue_sids) and \
                    self.engine.call(lambda core: all(v.up for v in core.venues.values())):
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ fixgw sessions reload
    def reload_sessions(self, operator: str = "operator", dry_run: bool = False) -> dict:
        """Re-read the configuration file and apply its session changes where quickfix allows.

        A file that does not load or validate raises ConfigError and nothing changes.
        Otherwise every session's step is reported: added, re-added, removed,
        updated, reconnected, replaced, or refused with the reason (gateway/scheduling/reload.py).
        """
        if self.config_path is None:
            raise ConfigError("this gateway was not started from a configuration file, so there is nothing to reload")
        new = load_config(self.config_path)
        if new.comp_id != self.cfg.comp_id:
            raise ConfigError(f"{self.config_path}: comp_id changed from {self.cfg.comp_id} to {new.comp_id}: "
                              "every session would change; that needs a restart")
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadBusy("another sessions reload is being applied; try again when it has finished")
        try:
            client_open, venue_open = self.engine.call(lambda core: (
                {n: core.open_order_count(session=n) for n in self.cfg.clients},
                {n: core.open_order_count(venue=n) for n in self.cfg.venues}))
            the_plan = plan(self.cfg, new, served_ports=self.served_ports(), retired=dict(self.retired_clients),
                            client_open=client_open, venue_open=venue_open)
            if not dry_run:
                self._apply(the_plan, new)
        finally:
            self._reload_lock.release()
        counts: dict[str, int] = {}
        for step in the_plan.steps:
            counts[step.action] = counts.get(step.action, 0) + 1
        summary = ", ".join(f"{n} {action}" for action, n in counts.items()) or "no session changes"
        if not dry_run:
            self.journal.event("operator", f"sessions reload by {operator} from {self.config_path}: {summary}; " +
                               "; ".join(f"{s.session} {s.action}: {s.detail}" for s in the_plan.steps))
            for step in the_plan.steps:
                (log.warning if step.action in (REFUSED, FAILED) else log.info)(
                    "sessions reload: %s %s %s: %s", step.role, step.session, step.action, step.detail,
                    extra=fields(session=step.session, operator=operator))
            log.info("sessions reload by %s: %s", operator, summary, extra=fields(operator=operator))
        return {"config": str(self.config_path), "dry_run": dry_run, "summary": summary,
                "changes": [s.as_dict() for s in the_plan.steps], "not_applied": the_plan.not_applied}

    def _apply(self, the_plan: Plan, new: GatewayConfig) -> None:
        clients, venues = dict(self.cfg.clients), dict(self.cfg.venues)
        order = {REMOVED: 0, REPLACED: 1, READDED: 2, ADDED: 3, UPDATED: 4, RECONNECTED: 5}
        steps = sorted((s for s in the_plan.steps if s.action != REFUSED), key=lambda s: order[s.action])
        new_clients_by_port: dict[int, list[Step]] = {}
        for step in steps:
            if step.role == "client" and step.action == ADDED:
                new_clients_by_port.setdefault(step.config.port or self.cfg.acceptor.port, []).append(step)
                continue
            try:
                self._apply_step(step, clients, venues)
            except Exception as exc:  # noqa: BLE001 - report it and go on with the other sessions
                self._step_failed(step, exc)
        for port, group in new_clients_by_port.items():
            try:
                self._add_clients(group, clients)
            except Exception as exc:  # noqa: BLE001
                for step in group:
                    self._step_failed(step, exc)
        self.engine.call(lambda core: core.set_routing_order(list(new.venues)))
        # the running configuration: the file's sessions where applied, in the file's order
        def ordered(d: dict, names: list[str]) -> dict:
            return {n: d[n] for n in names if n in d} | {n: v for n, v in d.items() if n not in names}
        self.cfg = self.cfg.model_copy(update={"clients": ordered(clients, list(new.clients)),
                                               "venues": ordered(venues, list(new.venues))})
        set_risk_day_rolls(self.scheduler, self.cfg, self.engine.submit)  # the sessions' schedules may have changed
        # logon checks (addresses, passwords) apply from the next logon on
        self.logon_guard.policies = self._logon_policies(self.cfg)

    def _step_failed(self, step: Step, exc: Exception) -> None:
        log.error("sessions reload: %s %s failed: %s", step.role, step.session, exc, exc_info=exc,
                  extra=fields(session=step.session))
        step.action, step.detail = FAILED, f"{step.detail}; failed: {exc}"

    def _apply_step(self, step: Step, clients: dict, venues: dict) -> None:
        name, cfg = step.session, step.config
        if step.role == "client":
            if step.action == REMOVED:
                self._remove_client(step, clients)
            elif step.action == READDED:
                old = self.retired_clients.pop(name)
                sid = session_id(old.fix_version, self.cfg.comp_id, name)
                self.engine.call(lambda core: core.set_client(name, client_options(cfg)))
                clients[name] = cfg
                self.client_sids = {**self.client_sids, name: sid}
                set_end_of_day(self.scheduler, name, cfg, self.engine.submit)
                session = lookup_session(sid)
                if session is not None:
                    session.logon()  # accept its logons again
            elif step.action == UPDATED:
                self.engine.call(lambda core: core.set_client(name, client_options(cfg)))
                clients[name] = cfg
                set_end_of_day(self.scheduler, name, cfg, self.engine.submit)
            return
        if step.action in (REMOVED, REPLACED):
            self._remove_venue(step, venues)
            if step.action == REMOVED or step.action == REFUSED:
                return
        if cfg is not None and cfg.tls is not None:
            self._venue_tls[name] = self._client_context(cfg)  # a bad file stops this step, not the venue
        if step.action in (ADDED, REPLACED):
            self._add_venue(name, cfg)
            venues[name] = cfg
        elif step.action == RECONNECTED:
            self._stop_initiator(name, reason="connection settings changed by an operator")
            self.engine.call(lambda core: core.update_venue(venue_model(name, cfg)))
            venues[name] = cfg
            self._start_initiator(name, cfg)
        elif step.action == UPDATED:
            self.engine.call(lambda core: core.update_venue(venue_model(name, cfg)))
            venues[name] = cfg

    def _remove_client(self, step: Step, clients: dict) -> None:
        name = step.session
        n = self.engine.call(lambda core: core.close_client(name))  # from now on its new orders are rejected
        if n:
            step.action, step.detail = REFUSED, f"has {n} open order(s) now; cancel them first"
            return
        self.retired_clients[name] = clients.pop(name)
        sid = self.client_sids[name]
        self.client_sids = {k: v for k, v in self.client_sids.items() if k != name}
        set_end_of_day(self.scheduler, name, None, self.engine.submit)
        session = lookup_session(sid)
        if session is not None:
            if session.isLoggedOn():
                session.logout(REMOVED_REASON)
                deadline = time.monotonic() + 2
                while session.isLoggedOn() and time.monotonic() < deadline:
                    time.sleep(0.02)
            # quickfix's logout() also stops the session accepting logons, silently; let them reach
            # logon_refusal instead, which refuses them with the reason
            session.logon()

    def _remove_venue(self, step: Step, venues: dict) -> None:
        name = step.session
        outbound = self.engine.outbound

        def remove(core) -> int:
            n = core.remove_venue(name)
            if n == 0:
                outbound.set_session("venue", name, None)
            return n
        n = self.engine.call(remove)
        if n:
            step.action, step.detail = REFUSED, f"has {n} open order(s) now; cancel them first"
            return
        self.venue_sids = {k: v for k, v in self.venue_sids.items() if k != name}
        venues.pop(name, None)
        self._stop_initiator(name, reason=REMOVED_REASON)

    def _add_venue(self, name: str, cfg: VenueConfig) -> None:
        sid = session_id(cfg.fix_version, self.cfg.comp_id, name)
        self._names[sid.toString()] = name
        self.sent_index.track(sid.toString())
        outbound = self.engine.outbound

        def add(core) -> None:
            core.add_venue(venue_model(name, cfg))
            outbound.set_session("venue", name, sid)
        self.engine.call(add)
        try:
            self._start_initiator(name, cfg)
        except Exception:
            self.engine.call(lambda core: (core.remove_venue(name), outbound.set_session("venue", name, None)))
            raise
        self.venue_sids = {**self.venue_sids, name: sid}

    def _add_clients(self, steps: list[Step], clients: dict) -> None:
        """New client sessions on one port that no acceptor serves: an acceptor of their own."""
        configs = {s.session: s.config for s in steps}
        for c in configs.values():
            port = c.port or self.cfg.acceptor.port
            if c.tls is not None and port not in self._server_tls:
                try:
                    self._server_tls[port] = self._server_context(c)
                except TlsError as exc:
                    raise ConfigError(str(exc)) from None
        sids = {name: session_id(c.fix_version, self.cfg.comp_id, name) for name, c in configs.items()}
        outbound = self.engine.outbound
        for name, sid in sids.items():
            self._names[sid.toString()] = name

        def add(core) -> None:
            for name, c in configs.items():
                core.set_client(name, client_options(c))
                outbound.set_session("client", name, sids[name])
        self.engine.call(add)
        self._start_acceptor(configs)  # on failure the caller reports every step of the group as failed
        clients.update(configs)
        self.client_sids = {**self.client_sids, **sids}
        for name, c in configs.items():
            set_end_of_day(self.scheduler, name, c, self.engine.submit)
