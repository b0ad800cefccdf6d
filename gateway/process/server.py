"""Process wiring: one Gateway = client acceptor + venue initiator + engine + journal (+ drop copies).

The Gateway builds the parts and owns them; its collaborators in this package do one job each: the desk's view
of the configuration (desk_settings.py), the quickfix engines (session_engines.py), who may log on
(gatekeeper.py), recovery at start-up (startup_recovery.py), `fixgw sessions reload` (sessions_reload.py).

Start order (``Gateway.start``, stage by stage): in a cluster, leadership first (the journal, standing by until
this instance holds the lease, the FIX stores taken over: gateway/cluster/); the order state from the state log,
the journal, what a crash left undone; the engine; the drop-copy acceptor and its thread; then the trading FIX
engines (so every message has somewhere to go), recovered work first. Stop order is the reverse: trading sessions
log out first (their Logouts are journaled), then the engine drains, the drop-copy thread copies everything
journaled, the drop-copy receivers are logged out, the journal commits what is left, and a cluster's active
instance releases the lease.

If the database state log stops for good (fenced, or the database down past its grace), the engine is halted at
once (no message is decided or sent from then on), and ``stop_requested`` tells the process to stop: `fixgw run`
then stops the gateway and exits non-zero (``halted`` says why).
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from gateway.observability import metrics
from gateway.admin.api import Admin, admin_token
from gateway.cluster.leadership import leadership_of
from gateway.security.auth import LogonGuard, PeerBook
from gateway.config import ClientConfig, ConfigError, GatewayConfig, sequence_reset_warnings
from gateway.security.credentials import CredentialsError, CredentialStore
from gateway.security.tls import TlsError, TlsTerminator
from gateway.security.frontdoor import FrontDoor
from gateway.process.cluster_controls import ClusterControls
from gateway.process.dropcopy_wiring import dropcopy_wiring, start_dropcopy
from gateway.process.desk_settings import client_options, intake_limits, load_risk, order_id_prefix, routing_policy, \
    venue_model
from gateway.process.engine import Engine
from gateway.process.gatekeeper import Gatekeeper, logon_policies
from gateway.process.logon_watch import LogonWatch
from gateway.process.session_engines import SessionEngines
from gateway.process.shared_risk import SharedRisk
from gateway.process.sessions_reload import REMOVED_REASON, SessionsReload
from gateway.process.leading import stand_by_then_lead
from gateway.process.startup_recovery import StartupRecovery, UndoneWork, state_log_for
from gateway.admin.http import HttpEndpoint
from gateway.journal.writer import JournalWriter
from gateway.journal.process import ProcessJournalWriter
from gateway.observability.logs import fields
from gateway.scheduling.schedule import build_scheduler, describe
from gateway.state.records import State
from desk.core import Core
from orders.commands import RiskDayRoll
from sessions.closing import closing_anywhere
from sessions.fixsettings import SessionID, lookup_session, session_id
from sessions.gateway_app import ClientApplication, VenueApplication
from sessions.journal_log import JournalLogFactory
from sessions.sent_index import SentIndex
from sessions.threadnames import name_os_threads
from sessions.outbound import Outbound

log = logging.getLogger("fixgw.gateway")


def _journaled_callback_error(journal) -> Callable[[str, str, BaseException], None]:
    """``metrics.count_callback_error`` plus a journal event (``internal``) naming the session, callback and
    exception."""
    def on_error(callback: str, session: str, exc: BaseException) -> None:
        metrics.count_callback_error(callback, session, exc)
        journal.event("internal", f"{session}: internal error in {callback}: {ascii(exc)}")
    return on_error


_journal_log = logging.getLogger("fixgw.journal")


def journal_log_error(where: str, exc: BaseException) -> None:
    """The journal's quickfix Log could not take a message or event (the spool refused it: a full disk,
    say): say so and count it. Trading goes on; the message is in quickfix's store if we sent it."""
    metrics.INTERNAL_ERRORS.labels(where).inc()
    _journal_log.error("could not journal a message or event (%s): %s", where, exc)


class Gateway:
    def __init__(self, cfg: GatewayConfig, journal: JournalWriter | None = None, config_path: str | Path | None = None):
        name_os_threads()  # `top -H` and the benchmark's per-thread CPU tell the gateway's threads apart
        self.cfg = cfg  # the running configuration (a sessions reload replaces its clients and venues)
        self.config_path = Path(config_path).resolve() if config_path is not None else None  # for sessions reload
        self.cluster = leadership_of(cfg)  # an instance of an active/standby cluster (docs/failover.md), or None
        instance = cfg.cluster.instance_name if cfg.cluster is not None else None
        writer = ProcessJournalWriter if cfg.journal.writer == "process" else JournalWriter
        # (a cluster's instance keeps its own spool position and shares its hash chain: gateway/journal/writer.py)
        self.journal = journal or writer(cfg.journal.database_url, cfg.journal.batch_max,
                                         cfg.journal.flush_interval_ms, spool_dir=cfg.data_dir / "spool",
                                         instance=instance if self.cluster is not None else None,
                                         chain=cfg.cluster.journal_chain if self.cluster is not None else "")
        self.client_sids = {name: session_id(c.fix_version, cfg.comp_id, name) for name, c in cfg.clients.items()}
        self.venue_sids = {name: session_id(v.fix_version, cfg.venue_sender, name) for name, v in cfg.venues.items()}
        venues = [venue_model(name, v) for name, v in cfg.venues.items()]
        clients = {name: client_options(c) for name, c in cfg.clients.items()}
        self.core = Core(venues, clients, order_id_prefix(instance=instance), risk=load_risk(cfg),
                         policy=routing_policy(cfg), rejected_kept=cfg.limits.rejected_orders_kept)
        for symbol, px in cfg.risk.reference_prices.items():
            self.core.risk_state.set_reference_price(symbol, px)
        self.engine = Engine(self.core, Outbound(self.client_sids, self.venue_sids, self.journal.record),
                             self.journal.event)
        # security: where each logon comes from, its credentials, TLS (docs/security.md)
        self.gatekeeper = Gatekeeper(self)
        self.peers = PeerBook()
        self.credentials = CredentialStore(cfg.data_dir)
        try:
            self.credentials.check()
        except CredentialsError as exc:
            raise ConfigError(str(exc)) from None
        self.logon_guard = LogonGuard(self.credentials, self.peers, self.gatekeeper.audit_logon,
                                      policies=logon_policies(cfg))
        self.startup_disabled: dict[str, str] = {}  # session -> why its logons are refused (fixgw demo sets it)
        self.retired_clients: dict[str, ClientConfig] = {}  # removed by a reload: logged out, logons refused
        self.tls = TlsTerminator(self.peers, self.gatekeeper.audit_tls)
        # The front door owns the public FIX ports (clients' and drop copy's) and relays vetted connections
        # to quickfix's internal ports, on the TLS terminator's loop thread (gateway/security/frontdoor.py); a logon
        # that bypasses it is refused.
        gk = self.gatekeeper
        self.front_door = FrontDoor(self.tls, gk.lookup, gk.unknown, gk.refused, gk.busy, gk.explain,
                                   closing_anywhere)  # any acceptor's in the process: the numbers are the process's
        self.logon_guard.front_door_only = True
        # what we sent each venue by MsgSeqNum, so a venue's session-level Reject maps to a child order
        self.sent_index = SentIndex()
        for sid in self.venue_sids.values():
            self.sent_index.track(sid.toString())
        # in a cluster, each message quickfix is about to write to a socket first checks this instance still leads
        sink = self.journal if self.cluster is None else self.cluster.guard(self.journal)
        log_factory = JournalLogFactory(sink, journal_log_error, on_event=gk.quickfix_event,
                                        sent_index=self.sent_index)
        # SessionID text -> name, shared by both Applications; a reload adds to it before starting an engine
        self.session_names = {sid.toString(): name for name, sid in {**self.client_sids, **self.venue_sids}.items()}
        self.client_app = ClientApplication(self.session_names, self.engine.submit,
                                            _journaled_callback_error(self.journal), self.logon_refusal)
        self.client_app.limits = intake_limits(cfg)  # [limits]: what a client's order may carry at all
        self.venue_app = VenueApplication(self.session_names, self.engine.submit, metrics.count_callback_error,
                                          logon_fields=gk.venue_logon_fields)
        self.venue_app.sent_index = self.sent_index
        self.logon_watch = LogonWatch()  # why a venue refuses our logon: once, then rate-limited
        self.venue_app.logon_watch = self.logon_watch
        self.fix_engines = SessionEngines(cfg, self.client_app, self.venue_app, log_factory, self.tls,
                                          self.front_door)
        self._internal_ports = self.fix_engines.internal_ports  # (tests connect around the front door with it)
        try:
            for name, c in cfg.clients.items():
                self.fix_engines.load_client_tls(cfg.client_port(name), c)
            for name, v in cfg.venues.items():
                self.fix_engines.load_venue_tls(name, v)
                gk.venue_logon_fields(name)  # a missing venue password stops start-up here
        except TlsError as exc:
            raise ConfigError(str(exc)) from None
        self.halted: str | None = None  # why the gateway stopped trading on its own (the state log failed)
        self.stop_requested = threading.Event()  # set when it did: the process must stop (fixgw run waits on it)
        self.handover: str | None = None  # a cluster's active asked to hand over (to this instance, "*": any)
        self.statelog = state_log_for(cfg, on_fatal=self._state_log_failed)
        self.recovery = StartupRecovery(self.statelog, self.core, self.journal, cfg.data_dir / "store",
                                        self._sids_by_origin, self.client_app.limits)
        self.recovered: State | None = None  # what start() found in the state log
        self.reloader = SessionsReload(self)
        # Drop-copy receivers: their own acceptor (port [dropcopy].port), fed by the drop-copy thread
        # from the journal (gateway/dropcopy/service.py).
        self.dropcopy_sids, self.dropcopy, self.dropcopy_app = dropcopy_wiring(
            cfg, self.client_sids, self.venue_sids, self.core, self.journal, self.logon_refusal)
        self.scheduler = build_scheduler(cfg, self.engine.submit)
        self.http: HttpEndpoint | None = None
        self.controls: ClusterControls | None = None  # a sharded cluster's control plane (cluster_controls.py)
        self.shared_risk: SharedRisk | None = None  # and its accounts' limits shared by the shards (shared_risk.py)
        self.started_at: float | None = None

    # ------------------------------------------------------------------ start and stop
    def start(self) -> "Gateway":
        """Start, one stage after the other: each needs what the ones before it did."""
        for warning in sequence_reset_warnings(self.cfg):
            log.warning("%s", warning)
        self._lead()  # in a cluster: stand by until this instance holds the lease, then take the sessions over
        state, undone = self._rebuild_state()  # the state log -> the core; the journal; what a crash left undone
        self._start_engine(state)  # the core and sender threads, recording to the state log from here on
        self.shared_risk = SharedRisk.start_for(self)  # a sharded cluster's: before any order is checked
        start_dropcopy(self)  # before the trading sessions, so the first report already has its drop-copy sessions
        # The trading engines are created first (their sessions exist, not connected); recovered work goes first
        # in the engine's queue, each side's before that side's new messages; then each side connects.
        self._create_session_engines()
        self._queue_recovered_venue_work(undone)
        self.fix_engines.connect_venues()
        self._process_recovered_client_messages(undone)
        self._accept_clients()
        self._start_operator_surface()
        self._started()
        return self

    def _lead(self) -> None:
        """Failover's seam: a cluster's instance stands by, then takes over (gateway/process/leading.py)."""
        if self.cluster is not None:
            stand_by_then_lead(self)

    def _rebuild_state(self) -> tuple[State, UndoneWork]:
        """The order state from the state log (before the journal starts), and what a crash left undone."""
        state = self.recovered = self.recovery.load_state()
        if self.cluster is None:  # (a cluster's instance started it before standing by: _lead)
            self.journal.start()  # imports what the last run spooled and never committed
        rebuilt = self.cluster.rebuilt if self.cluster is not None else frozenset()  # stores a takeover rebuilt
        undone = self.recovery.undone(state, rebuilt)  # (reads the journal: after the spool's import)
        if not state.clean:
            self.venue_app.resendable = undone.awaiting_venue
        return state, undone

    def _start_engine(self, state: State) -> None:
        """The core and sender threads, recording every change in the state log opened from ``state``."""
        self.engine.recorder = self.recovery.open_state_log(state, self.cluster)
        self.engine.start()
        self.engine.submit(RiskDayRoll())  # a restart after a trading-day boundary rolls (and journals) at once
        self.client_app.own_sender = self.venue_app.own_sender = self.engine.sender_thread_id

    def _create_session_engines(self) -> None:
        if self.cfg.clients:
            self.fix_engines.start_acceptor(dict(self.cfg.clients), start=False)
        for name, v in self.cfg.venues.items():
            self.fix_engines.start_initiator(name, v, start=False)

    def _queue_recovered_venue_work(self, undone: UndoneWork) -> None:
        """Messages decided and never sent (a takeover's undecided venue orders asked about first), then messages
        received from venues and never processed."""
        if undone.undecided is not None:
            self.engine.submit(undone.undecided)
        if undone.unsent:
            log.warning("recovery: %d message(s) decided before the crash never reached quickfix; sending them "
                        "now (venue orders once the venue is logged on)", len(undone.unsent))
            self.engine.resend(undone.unsent)
        for command in undone.received_from("venue"):
            self.engine.submit(command)

    def _process_recovered_client_messages(self, undone: UndoneWork) -> None:
        """Clients' messages received and never processed: processed once the venues are up (or waited for long
        enough), all of them before any new client message."""
        client_replay = undone.received_from("client")
        if not client_replay:
            return
        wait = self.cfg.recovery.venue_wait_s
        if not self.wait_venues_up(wait):
            log.warning("recovery: venues still down after %.0f s; processing the %d recovered client "
                        "message(s) anyway (orders for a venue that is down are rejected)", wait, len(client_replay))
        for command in client_replay:
            self.engine.submit(command)
        self.engine.call(lambda core: None, timeout=60)  # all processed before any new client message

    def _accept_clients(self) -> None:
        self.fix_engines.accept_clients()
        for name, c in self.cfg.clients.items():
            if c.password_required and name not in self.startup_disabled and not self.credentials.has(name):
                log.warning("client session %s requires a password but none is set: its logons are refused until "
                            "`fixgw credentials set %s`", name, name, extra=fields(session=name))

    def _start_operator_surface(self) -> None:
        """The scheduled jobs, a sharded cluster's controls, and the HTTP port: metrics, health, the admin API."""
        self.scheduler.start()
        self.controls = ClusterControls.start_for(self)
        if self.cfg.http.enabled:
            admin = Admin(self, admin_token(self.cfg.data_dir, create=True))
            self.http = HttpEndpoint(self, self.cfg.http.host, self.cfg.http.port, admin, self.cfg.http)
            self.http.start()

    def _started(self) -> None:
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

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for part in (self.controls, self.shared_risk):
            if part is not None:
                part.stop()
        self.fix_engines.stop_trading()
        self.engine.stop()
        self.client_app.own_sender = self.venue_app.own_sender = None  # (its identifier may be reused)
        if self.dropcopy is not None:
            # copy everything journaled up to now, then let the receivers go
            self.journal.flush()
            self.dropcopy.stop()
        self.fix_engines.stop_dropcopy(list(self.dropcopy_sids.values()))
        self.front_door.stop()  # after every session's Logout went out through it
        self.tls.stop()
        if self.engine.recorder is not None:
            self.statelog.close(self.engine.recorder.capture())  # clean: the next start needs no repair
            self.engine.recorder = None
        if self.statelog.kind == "database":
            self.statelog.engine.dispose()
        journaled = self.journal.stop()
        if self.cluster is not None:  # last, once all is written; clean: the successor continues numbers exactly
            self.cluster.stop(clean=journaled and self.halted is None)
        log.info("gateway %s stopped", self.cfg.comp_id)

    def _state_log_failed(self, reason: str) -> None:
        """The database state log stopped for good (on the thread that found it): nothing more may be sent."""
        self.engine.halt(reason)  # first: not one more message
        self.halted = reason
        metrics.STATE_LOG_HALTS.inc()
        log.critical("stopping: the order-state log failed (%s); the gateway decides and sends nothing more "
                     "(the messages of records not committed stay unsent)", reason)
        self.stop_requested.set()

    # ------------------------------------------------------------------ logons
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
        if name in self.core.risk_state.throttle.disabled:  # a set read: safe from another thread
            return "session disabled after repeated throttle breaches; an operator must re-enable it"
        if session_key is not None:
            return self.logon_guard.check(name, session_key, username, password)
        return None

    def set_startup_disabled(self, name: str, reason: str) -> None:
        """Refuse a client session's logons with ``reason`` for this run (fixgw demo without its password)."""
        self.startup_disabled[name] = reason

    @property
    def disabled_sessions(self) -> set[str]:
        """Client sessions disabled by an operator, until `fixgw sessions enable` (kept across restarts)."""
        return self.core.operator_disabled

    # ------------------------------------------------------------------ queries
    @property
    def tls_in_use(self) -> bool:
        """Whether any running session depends on the TLS terminator's loop (the front door runs there too)."""
        return bool(self.tls.listeners)

    def served_ports(self) -> set[int]:
        return self.fix_engines.served_ports()

    def _sids_by_origin(self) -> dict[str, SessionID]:
        return {**{f"client:{n}": sid for n, sid in self.client_sids.items()},
                **{f"venue:{n}": sid for n, sid in self.venue_sids.items()}}

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
        """Re-read the configuration file and apply its session changes where quickfix allows (sessions_reload.py)."""
        return self.reloader.reload(operator, dry_run)
