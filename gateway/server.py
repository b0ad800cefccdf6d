"""Process wiring: one Gateway = client acceptor + venue initiator + engine + journal.

Start order: journal, engine, then the FIX engines (so every message has somewhere
to go). Stop order is the reverse: FIX sessions log out first (their Logouts are
journaled), then the engine drains, then the journal commits what is left.
"""
from __future__ import annotations

import logging
import string
import threading
import time
from datetime import timedelta
from pathlib import Path

import quickfix as fix

from gateway import metrics
from gateway.admin import Admin, admin_token
from gateway.config import ClientConfig, ConfigError, GatewayConfig, VenueConfig, load_config
from gateway.engine import Engine
from gateway.http import HttpEndpoint
from gateway import recovery
from gateway.journal import JournalWriter, inbound_after, session_rejected
from gateway.logs import fields
from gateway.reload import (ADDED, FAILED, READDED, RECONNECTED, REFUSED, REMOVED, REPLACED, UPDATED, Plan, Step,
                            plan)
from gateway.schedule import build_scheduler, describe, set_end_of_day
from gateway.statelog import State, StateLog, StateLogError
from routing.core import ClientOptions, Core
from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from routing.router import RoutingPolicy, StrategySpec, Venue
from sessions import filestore
from sessions.fixsettings import build_settings, graceful_stop, graceful_stop_all, session_id, start_engine, start_now
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


def venue_model(name: str, v: VenueConfig) -> Venue:
    """The router's view of a configured venue (it is down until its session logs on)."""
    return Venue(name=name, symbols=frozenset(v.symbols), md_enabled=v.market_data.enabled,
                 md_depth=v.market_data.depth, md_incremental=v.market_data.updates == "incremental",
                 priority=v.priority, take_fee=v.fees.take, make_fee=v.fees.make, on_disconnect=v.on_disconnect)


def routing_policy(cfg: GatewayConfig) -> RoutingPolicy:
    r = cfg.routing
    return RoutingPolicy(max_quote_age=timedelta(seconds=float(r.max_quote_age_s)),
                         default=StrategySpec(r.strategy, r.preferred_venues),
                         accounts={a: StrategySpec(x.strategy, x.preferred_venues) for a, x in r.accounts.items()},
                         max_reroutes=r.max_reroutes)


def client_options(c: ClientConfig) -> ClientOptions:
    return ClientOptions(pending_new=c.pending_new, cancel_on_disconnect=c.cancel_on_disconnect,
                         strategy=StrategySpec(c.strategy, c.preferred_venues) if c.strategy else None)


class ReloadBusy(Exception):
    """Another `fixgw sessions reload` is being applied."""


REMOVED_REASON = "session removed from the gateway's configuration"


class Gateway:
    def __init__(self, cfg: GatewayConfig, journal: JournalWriter | None = None, config_path: str | Path | None = None):
        self.cfg = cfg
        self.config_path = Path(config_path).resolve() if config_path is not None else None  # for sessions reload
        self.journal = journal or JournalWriter(cfg.journal.database_url, cfg.journal.batch_max,
                                                cfg.journal.flush_interval_ms, spool_dir=cfg.data_dir / "spool")
        self.client_sids = {name: session_id(c.fix_version, cfg.comp_id, name) for name, c in cfg.clients.items()}
        self.venue_sids = {name: session_id(v.fix_version, cfg.comp_id, name) for name, v in cfg.venues.items()}
        venues = [venue_model(name, v) for name, v in cfg.venues.items()]
        clients = {name: client_options(c) for name, c in cfg.clients.items()}
        self.core = Core(venues, clients, order_id_prefix(), risk=load_risk(cfg), policy=routing_policy(cfg))
        for symbol, px in cfg.risk.reference_prices.items():
            self.core.risk_state.set_reference_price(symbol, px)
        self.engine = Engine(self.core, Outbound(self.client_sids, self.venue_sids), self.journal.event)
        self._log_factory = JournalLogFactory(self.journal, _callback_error)
        # SessionID text -> name, shared by both Applications; a reload adds to it before starting an engine
        self._names = {sid.toString(): name for name, sid in {**self.client_sids, **self.venue_sids}.items()}
        self.statelog = StateLog(cfg.data_dir / "state", fsync=cfg.recovery.fsync)
        self.recovered: State | None = None  # what start() found in the state log
        self.client_app = ClientApplication(self._names, self.engine.submit, _callback_error, self.logon_refusal)
        self.venue_app = VenueApplication(self._names, self.engine.submit, _callback_error)
        # quickfix engines: acceptors as (engine, SessionIDs, ports), one initiator per venue as (engine, SessionID)
        self._acceptors: list[tuple[object, list[fix.SessionID], set[int]]] = []
        self._initiators: dict[str, tuple[object, fix.SessionID]] = {}
        self.retired_clients: dict[str, ClientConfig] = {}  # removed by a reload: logged out, logons refused
        self._reload_lock = threading.Lock()
        self.scheduler = build_scheduler(cfg, self.engine.submit)
        self.http: HttpEndpoint | None = None
        self.started_at: float | None = None

    # ------------------------------------------------------------------ settings and engines
    # One acceptor serves every client at start-up (a session per client, on its port); a reload
    # adds an acceptor for clients on a port no acceptor serves yet. Each venue has an initiator of
    # its own, so one venue can be added, removed or reconnected without touching the others (and
    # each venue's ReconnectInterval is its own: quickfix keeps one per initiator).
    def _client_session(self, name: str, c: ClientConfig) -> tuple:
        extra = {"SocketAcceptPort": str(c.port or self.cfg.acceptor.port)}
        if c.allowed_addresses:
            extra["AllowedRemoteAddresses"] = ",".join(c.allowed_addresses)
        if c.schedule is not None:
            extra.update(c.schedule.quickfix_settings())
        return session_id(c.fix_version, self.cfg.comp_id, name), c.fix_version, extra

    def _start_acceptor(self, clients: dict[str, ClientConfig], start: bool = True) -> None:
        sessions = [self._client_session(name, c) for name, c in clients.items()]
        settings = build_settings("acceptor", self.cfg.data_dir / "store" / "clients", sessions)
        engine = start_engine("acceptor", self.client_app, settings, self._log_factory, start=start)
        self._acceptors.append((engine, [sid for sid, _, _ in sessions],
                                {c.port or self.cfg.acceptor.port for c in clients.values()}))

    def _start_initiator(self, name: str, v: VenueConfig, start: bool = True) -> None:
        sid = session_id(v.fix_version, self.cfg.comp_id, name)
        extra = {"SocketConnectHost": v.host, "SocketConnectPort": str(v.port), "HeartBtInt": str(v.heartbeat_s),
                 "ReconnectInterval": str(v.reconnect_s)}
        if v.schedule is not None:
            extra.update(v.schedule.quickfix_settings())
        settings = build_settings("initiator", self.cfg.data_dir / "store" / "venues", [(sid, v.fix_version, extra)])
        self._initiators[name] = (start_engine("initiator", self.venue_app, settings, self._log_factory, start=start),
                                  sid)

    def _stop_initiator(self, name: str, reason: str) -> None:
        engine, sid = self._initiators.pop(name)
        graceful_stop(engine, [sid], reason=reason)
        del engine  # destroyed now: quickfix's session registry must not outlive it (quickfix-binding.md)

    def served_ports(self) -> set[int]:
        return set().union(*(ports for _, _, ports in self._acceptors))

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
        initiators = [(engine, [sid]) for engine, sid in self._initiators.values()]
        self._initiators = {}
        graceful_stop_all(initiators)
        del initiators  # drop the engines now (see _stop_initiator)
        acceptors = [(engine, sids) for engine, sids, _ in self._acceptors]
        self._acceptors = []
        graceful_stop_all(acceptors)
        del acceptors
        self.engine.stop()
        if self.engine.recorder is not None:
            self.statelog.close(self.engine.recorder.capture())  # clean: the next start needs no repair
            self.engine.recorder = None
        self.journal.stop()
        log.info("gateway %s stopped", self.cfg.comp_id)

    def logon_refusal(self, name: str) -> str | None:
        """Why a client session may not log on now, or None. Called on its session thread."""
        if name in self.retired_clients:
            return REMOVED_REASON
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

    # ------------------------------------------------------------------ fixgw sessions reload
    def reload_sessions(self, operator: str = "operator", dry_run: bool = False) -> dict:
        """Re-read the configuration file and apply its session changes where quickfix allows.

        A file that does not load or validate raises ConfigError and nothing changes.
        Otherwise every session's step is reported: added, re-added, removed,
        updated, reconnected, replaced, or refused with the reason (gateway/reload.py).
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
                session = fix.Session.lookupSession(sid)
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
        session = fix.Session.lookupSession(sid)
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
