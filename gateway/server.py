"""Process wiring: one Gateway = client acceptor + venue initiator + engine + journal.

Start order: journal, engine, then the FIX engines (so every message has somewhere
to go). Stop order is the reverse: FIX sessions log out first (their Logouts are
journaled), then the engine drains, then the journal commits what is left.
"""
from __future__ import annotations

import logging
import string
import time
from pathlib import Path

import quickfix as fix

from gateway import metrics
from gateway.admin import Admin, admin_token
from gateway.config import ConfigError, GatewayConfig
from gateway.engine import Engine
from gateway.http import HttpEndpoint
from gateway import recovery
from gateway.journal import JournalWriter, inbound_after, session_rejected
from gateway.statelog import State, StateLog, StateLogError
from gateway.schedule import build_scheduler, describe
from routing.core import ClientOptions, Core
from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from routing.router import Venue
from sessions import filestore
from sessions.fixsettings import build_settings, graceful_stop, session_id
from sessions.gateway_app import ClientApplication, VenueApplication, replay_command
from sessions.journal_log import JournalLogFactory
from sessions.outbound import Outbound

log = logging.getLogger("fixgw.gateway")

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
        return RiskEngine(load_rules(path.read_text(), str(path)))
    except OSError as exc:
        raise ConfigError(f"cannot read risk rules {path}: {exc.strerror}") from None
    except RulesError as exc:
        raise ConfigError(str(exc)) from None


def _callback_error(callback: str, session: str, exc: BaseException) -> None:
    metrics.INTERNAL_ERRORS.labels(callback).inc()


class Gateway:
    def __init__(self, cfg: GatewayConfig, journal: JournalWriter | None = None):
        self.cfg = cfg
        self.journal = journal or JournalWriter(cfg.journal.database_url, cfg.journal.batch_max,
                                                cfg.journal.flush_interval_ms, spool_dir=cfg.data_dir / "spool")
        self.client_sids = {name: session_id(c.fix_version, cfg.comp_id, name) for name, c in cfg.clients.items()}
        self.venue_sids = {name: session_id(v.fix_version, cfg.comp_id, name) for name, v in cfg.venues.items()}
        venues = [Venue(name=name, symbols=frozenset(v.symbols)) for name, v in cfg.venues.items()]
        clients = {name: ClientOptions(pending_new=c.pending_new, cancel_on_disconnect=c.cancel_on_disconnect)
                   for name, c in cfg.clients.items()}
        self.core = Core(venues, clients, order_id_prefix(), risk=load_risk(cfg))
        for symbol, px in cfg.risk.reference_prices.items():
            self.core.risk_state.set_reference_price(symbol, px)
        self.engine = Engine(self.core, Outbound(self.client_sids, self.venue_sids), self.journal.event)
        self._log_factory = JournalLogFactory(self.journal, _callback_error)
        names = {sid.toString(): name for name, sid in {**self.client_sids, **self.venue_sids}.items()}
        self.statelog = StateLog(cfg.data_dir / "state", fsync=cfg.recovery.fsync)
        self.recovered: State | None = None  # what start() found in the state log
        self.client_app = ClientApplication(names, self.engine.submit, _callback_error, self.logon_refusal)
        self.venue_app = VenueApplication(names, self.engine.submit, _callback_error)
        self.acceptor = None
        self.initiator = None
        self.scheduler = build_scheduler(cfg, self.engine.submit)
        self.http: HttpEndpoint | None = None
        self.started_at: float | None = None

    # ------------------------------------------------------------------ settings
    def _acceptor_settings(self, store: Path) -> fix.SessionSettings:
        sessions = []
        for name, c in self.cfg.clients.items():
            extra = {}
            if c.allowed_addresses:
                extra["AllowedRemoteAddresses"] = ",".join(c.allowed_addresses)
            sessions.append((self.client_sids[name], c.fix_version, extra))
        return build_settings("acceptor", store, sessions, {"SocketAcceptPort": str(self.cfg.acceptor.port)})

    def _initiator_settings(self, store: Path) -> fix.SessionSettings:
        sessions = [
            (self.venue_sids[name], v.fix_version, {
                "SocketConnectHost": v.host, "SocketConnectPort": str(v.port),
                "HeartBtInt": str(v.heartbeat_s), "ReconnectInterval": str(v.reconnect_s),
            })
            for name, v in self.cfg.venues.items()
        ]
        return build_settings("initiator", store, sessions)

    @property
    def disabled_sessions(self) -> set[str]:
        """Client sessions disabled by an operator, until `fixgw sessions enable` (kept across restarts)."""
        return self.core.operator_disabled

    # ------------------------------------------------------------------ recovery
    def _store_dir(self, origin: str) -> Path:
        return self.cfg.data_dir / "store" / ("clients" if origin.startswith("client:") else "venues")

    def _sids_by_origin(self) -> dict[str, fix.SessionID]:
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
        log.info("order state: %d open order(s), %d finished today; %d older finished order(s) forgotten",
                 n_open, len(state.orders) - n_open, pruned)
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
            wm = state.watermarks.get(origin)
            after = wm[0] if wm is not None and wm[1] >= info.created else 0
            since_us = int(info.created * 1_000_000)
            text = sid.toString()
            rows = recovery.unprocessed(inbound_after(url, text, since_us, after),
                                        session_rejected(url, text, since_us))
            role, name = origin.split(":", 1)
            for row_id, seq, raw in rows:
                command = replay_command(role, name, raw)
                if command is not None:
                    found.append((row_id, role, command))
            if rows:
                text = (f"recovery: {len(rows)} message(s) received before the crash (MsgSeqNum {rows[0][1]}-"
                        f"{rows[-1][1]}) had not been processed; processing them now")
                self.journal.event(sid.toString(), text)
                log.warning("%s: %s", origin, text)
        found.sort(key=lambda item: item[0])
        return [(role, command) for _, role, command in found]

    def _stored_tail(self, name: str) -> list[str]:
        origin = f"client:{name}" if name in self.client_sids else f"venue:{name}"
        sid = self._sids_by_origin().get(origin)
        if sid is None:
            return []
        return [raw for _, raw in filestore.sent_messages(self._store_dir(origin), sid, tail=1000)]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Gateway":
        store = self.cfg.data_dir / "store"
        state = self.recovered = self._load_state()
        self.journal.start()  # imports what the last run spooled and never committed
        replay, pending = [], []
        if not state.clean:
            replay = self._unprocessed_commands(state)
            pending = recovery.unsent(state.pending_actions, self._stored_tail)
            self.venue_app.resendable = frozenset(recovery.awaiting_venue(state))
        self.statelog.open(state)
        self.engine.recorder = recovery.Recorder(self.statelog, self.core, state, self._store_epoch)
        self.engine.start()
        if self.cfg.clients:
            settings = self._acceptor_settings(store / "clients")
            self.acceptor = fix.ThreadedSocketAcceptor(self.client_app, fix.FileStoreFactory(settings), settings,
                                               self._log_factory)
        if self.cfg.venues:
            settings = self._initiator_settings(store / "venues")
            self.initiator = fix.SocketInitiator(self.venue_app, fix.FileStoreFactory(settings), settings,
                                                 self._log_factory)
        # The engines' sessions exist now, not yet connected. Recovered work goes first in the
        # engine's queue, each side's before that side's new messages.
        if pending:
            log.warning("recovery: %d message(s) decided before the crash never reached quickfix; sending them "
                        "now (venue orders once the venue is logged on)", len(pending))
            self.engine.resend(pending)
        for role, command in replay:
            if role == "venue":
                self.engine.submit(command)
        if self.initiator is not None:
            self.initiator.start()
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
        if self.acceptor is not None:
            self.acceptor.start()
        self.scheduler.start()
        if self.cfg.http.enabled:
            admin = Admin(self, admin_token(self.cfg.data_dir, create=True))
            self.http = HttpEndpoint(self, self.cfg.http.host, self.cfg.http.port, admin)
            self.http.start()
        self.started_at = time.time()
        log.info("gateway %s started: clients on port %d (%s), venues %s", self.cfg.comp_id, self.cfg.acceptor.port,
                 ", ".join(self.cfg.clients) or "none", ", ".join(self.cfg.venues) or "none")
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.initiator is not None:
            graceful_stop(self.initiator, list(self.venue_sids.values()))
            self.initiator = None
        if self.acceptor is not None:
            graceful_stop(self.acceptor, list(self.client_sids.values()))
            self.acceptor = None
        self.engine.stop()
        if self.engine.recorder is not None:
            self.statelog.close(self.engine.recorder.capture())  # clean: the next start needs no repair
            self.engine.recorder = None
        self.journal.stop()
        log.info("gateway %s stopped", self.cfg.comp_id)

    def logon_refusal(self, name: str) -> str | None:
        """Why a client session may not log on now, or None. Called on its session thread."""
        if name in self.disabled_sessions:
            return "session disabled by an operator"
        if name in self.core.risk_state.disabled_sessions:  # a set read: safe from another thread
            return "session disabled after repeated throttle breaches; an operator must re-enable it"
        return None

    # ------------------------------------------------------------------ queries
    def scheduled_jobs(self) -> list[tuple[str, str]]:
        return describe(self.scheduler) if self.scheduler.running else []

    def session(self, name: str) -> fix.Session | None:
        sid = self.client_sids.get(name) or self.venue_sids.get(name)
        return fix.Session.lookupSession(sid) if sid is not None else None

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
