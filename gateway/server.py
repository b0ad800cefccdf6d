"""Process wiring: one Gateway = client acceptor + venue initiator + engine + journal (+ drop copies).

Start order: journal, engine, the drop-copy acceptor and its thread, then the
trading FIX engines (so every message has somewhere to go). Stop order is the
reverse: trading sessions log out first (their Logouts are journaled), then the
engine drains, the drop-copy thread copies everything journaled, the drop-copy
receivers are logged out, and the journal commits what is left.
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
from gateway.dropcopy import CoreDirectory, DropCopyService
from gateway.engine import Engine
from gateway.http import HttpEndpoint
from gateway.journal import JournalWriter
from gateway.schedule import build_scheduler, describe
from routing.core import ClientOptions, Core
from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from routing.router import Venue
from dropcopy.filters import Scope
from sessions.dropcopy import DropCopyApplication, DropCopyLink
from sessions.fixsettings import build_settings, graceful_stop, session_id
from sessions.gateway_app import ClientApplication, VenueApplication
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
                                                cfg.journal.flush_interval_ms)
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
        self.disabled_sessions: set[str] = set()  # by an operator, until `fixgw sessions enable`
        self.client_app = ClientApplication(names, self.engine.submit, _callback_error, self.logon_refusal)
        self.venue_app = VenueApplication(names, self.engine.submit, _callback_error)
        self.acceptor = None
        self.initiator = None
        # Drop-copy receivers: their own acceptor (port [dropcopy].port), fed by the drop-copy thread
        # from the journal (gateway/dropcopy.py).
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
                CoreDirectory(self.core))
            self.journal.add_commit_listener(self.dropcopy.wake)
            self.dropcopy_app = DropCopyApplication({sid.toString(): name for name, sid in self.dropcopy_sids.items()},
                                                    self.dropcopy.notify, _callback_error)
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

    def _dropcopy_settings(self, store: Path) -> fix.SessionSettings:
        sessions = []
        for name, d in self.cfg.dropcopy.sessions.items():
            extra = {"AllowedRemoteAddresses": ",".join(d.allowed_addresses)} if d.allowed_addresses else {}
            sessions.append((self.dropcopy_sids[name], d.fix_version, extra))
        return build_settings("acceptor", store, sessions, {"SocketAcceptPort": str(self.cfg.dropcopy.port)})

    def _initiator_settings(self, store: Path) -> fix.SessionSettings:
        sessions = [
            (self.venue_sids[name], v.fix_version, {
                "SocketConnectHost": v.host, "SocketConnectPort": str(v.port),
                "HeartBtInt": str(v.heartbeat_s), "ReconnectInterval": str(v.reconnect_s),
            })
            for name, v in self.cfg.venues.items()
        ]
        return build_settings("initiator", store, sessions)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Gateway":
        store = self.cfg.data_dir / "store"
        self.journal.start()
        self.engine.start()
        if self.dropcopy is not None:
            # before the trading sessions, so the first report already has its drop-copy sessions
            settings = self._dropcopy_settings(store / "dropcopy")
            self.dropcopy_acceptor = fix.ThreadedSocketAcceptor(self.dropcopy_app, fix.FileStoreFactory(settings),
                                                                settings, self._log_factory)
            self.dropcopy_acceptor.start()
            self.dropcopy.start()
            if not self.dropcopy.wait_loaded(10):
                log.error("drop-copy state not loaded within 10 s (%s); copies start when it is",
                          self.dropcopy.last_error)
        if self.cfg.clients:
            settings = self._acceptor_settings(store / "clients")
            self.acceptor = fix.ThreadedSocketAcceptor(self.client_app, fix.FileStoreFactory(settings), settings,
                                               self._log_factory)
            self.acceptor.start()
        if self.cfg.venues:
            settings = self._initiator_settings(store / "venues")
            self.initiator = fix.SocketInitiator(self.venue_app, fix.FileStoreFactory(settings), settings,
                                                 self._log_factory)
            self.initiator.start()
        self.scheduler.start()
        if self.cfg.http.enabled:
            admin = Admin(self, admin_token(self.cfg.data_dir, create=True))
            self.http = HttpEndpoint(self, self.cfg.http.host, self.cfg.http.port, admin)
            self.http.start()
        self.started_at = time.time()
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
        if self.initiator is not None:
            graceful_stop(self.initiator, list(self.venue_sids.values()))
            self.initiator = None
        if self.acceptor is not None:
            graceful_stop(self.acceptor, list(self.client_sids.values()))
            self.acceptor = None
        self.engine.stop()
        if self.dropcopy is not None:
            # copy everything journaled up to now, then let the receivers go
            self.journal.flush()
            self.dropcopy.stop()
        if self.dropcopy_acceptor is not None:
            graceful_stop(self.dropcopy_acceptor, list(self.dropcopy_sids.values()))
            self.dropcopy_acceptor = None
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
        sid = self.client_sids.get(name) or self.venue_sids.get(name) or self.dropcopy_sids.get(name)
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
