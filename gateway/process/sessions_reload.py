"""`fixgw sessions reload`: re-read the configuration file and apply its session changes to the running gateway,
where quickfix allows (gateway/scheduling/reload.py plans them)."""
from __future__ import annotations

import logging
import threading
import time

from gateway.config import ConfigError, GatewayConfig, VenueConfig, load_config
from gateway.observability.logs import fields
from gateway.process.desk_settings import client_options, venue_model
from gateway.process.gatekeeper import logon_policies
from gateway.scheduling.reload import (ADDED, FAILED, READDED, RECONNECTED, REFUSED, REMOVED, REPLACED, UPDATED, Plan,
                                       ReloadBusy, Step, plan)
from gateway.scheduling.schedule import set_end_of_day, set_risk_day_rolls
from gateway.security.tls import TlsError
from sessions.fixsettings import lookup_session, session_id

log = logging.getLogger("fixgw.gateway")

REMOVED_REASON = "session removed from the gateway's configuration"


class SessionsReload:
    """Applies a reload's plan to the gateway it belongs to: its running configuration and SessionID maps, the
    core (on the core thread), the quickfix engines, the scheduler's jobs and the logon checks. One at a time."""

    def __init__(self, gateway):  # the Gateway (server.py) it belongs to
        self._gw = gateway
        self._lock = threading.Lock()

    def reload(self, operator: str = "operator", dry_run: bool = False) -> dict:
        """Re-read the configuration file and apply its session changes where quickfix allows.

        A file that does not load or validate raises ConfigError and nothing changes.
        Otherwise every session's step is reported: added, re-added, removed,
        updated, reconnected, replaced, or refused with the reason (gateway/scheduling/reload.py).
        """
        gw = self._gw
        if gw.config_path is None:
            raise ConfigError("this gateway was not started from a configuration file, so there is nothing to reload")
        new = load_config(gw.config_path, instance=gw.cfg.cluster.instance_name if gw.cfg.cluster else None)
        if new.comp_id != gw.cfg.comp_id:
            raise ConfigError(f"{gw.config_path}: comp_id changed from {gw.cfg.comp_id} to {new.comp_id}: "
                              "every session would change; that needs a restart")
        if new.venue_sender != gw.cfg.venue_sender:
            raise ConfigError(f"{gw.config_path}: the SenderCompID toward venues changed from {gw.cfg.venue_sender} "
                              f"to {new.venue_sender}: every venue session would change; that needs a restart")
        if not self._lock.acquire(blocking=False):
            raise ReloadBusy("another sessions reload is being applied; try again when it has finished")
        try:
            client_open, venue_open = gw.engine.call(lambda core: (
                {n: core.open_order_count(session=n) for n in gw.cfg.clients},
                {n: core.open_order_count(venue=n) for n in gw.cfg.venues}))
            the_plan = plan(gw.cfg, new, served_ports=gw.served_ports(), retired=dict(gw.retired_clients),
                            client_open=client_open, venue_open=venue_open)
            if not dry_run:
                self._apply(the_plan, new)
        finally:
            self._lock.release()
        counts: dict[str, int] = {}
        for step in the_plan.steps:
            counts[step.action] = counts.get(step.action, 0) + 1
        summary = ", ".join(f"{n} {action}" for action, n in counts.items()) or "no session changes"
        if not dry_run:
            gw.journal.event("operator", f"sessions reload by {operator} from {gw.config_path}: {summary}; " +
                             "; ".join(f"{s.session} {s.action}: {s.detail}" for s in the_plan.steps))
            for step in the_plan.steps:
                (log.warning if step.action in (REFUSED, FAILED) else log.info)(
                    "sessions reload: %s %s %s: %s", step.role, step.session, step.action, step.detail,
                    extra=fields(session=step.session, operator=operator))
            log.info("sessions reload by %s: %s", operator, summary, extra=fields(operator=operator))
        return {"config": str(gw.config_path), "dry_run": dry_run, "summary": summary,
                "changes": [s.as_dict() for s in the_plan.steps], "not_applied": the_plan.not_applied}

    def _apply(self, the_plan: Plan, new: GatewayConfig) -> None:
        gw = self._gw
        clients, venues = dict(gw.cfg.clients), dict(gw.cfg.venues)
        order = {REMOVED: 0, REPLACED: 1, READDED: 2, ADDED: 3, UPDATED: 4, RECONNECTED: 5}
        steps = sorted((s for s in the_plan.steps if s.action != REFUSED), key=lambda s: order[s.action])
        new_clients_by_port: dict[int, list[Step]] = {}
        for step in steps:
            if step.role == "client" and step.action == ADDED:
                new_clients_by_port.setdefault(step.config.port or gw.cfg.acceptor.port, []).append(step)
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
        gw.engine.call(lambda core: core.set_routing_order(list(new.venues)))
        # the running configuration: the file's sessions where applied, in the file's order
        def ordered(d: dict, names: list[str]) -> dict:
            return {n: d[n] for n in names if n in d} | {n: v for n, v in d.items() if n not in names}
        gw.cfg = gw.cfg.model_copy(update={"clients": ordered(clients, list(new.clients)),
                                           "venues": ordered(venues, list(new.venues))})
        set_risk_day_rolls(gw.scheduler, gw.cfg, gw.engine.submit)  # the sessions' schedules may have changed
        # logon checks (addresses, passwords) apply from the next logon on
        gw.logon_guard.policies = logon_policies(gw.cfg)

    def _step_failed(self, step: Step, exc: Exception) -> None:
        log.error("sessions reload: %s %s failed: %s", step.role, step.session, exc, exc_info=exc,
                  extra=fields(session=step.session))
        step.action, step.detail = FAILED, f"{step.detail}; failed: {exc}"

    def _apply_step(self, step: Step, clients: dict, venues: dict) -> None:
        gw = self._gw
        name, cfg = step.session, step.config
        if step.role == "client":
            if step.action == REMOVED:
                self._remove_client(step, clients)
            elif step.action == READDED:
                old = gw.retired_clients.pop(name)
                sid = session_id(old.fix_version, gw.cfg.comp_id, name)
                gw.engine.call(lambda core: core.set_client(name, client_options(cfg)))
                clients[name] = cfg
                gw.client_sids = {**gw.client_sids, name: sid}
                set_end_of_day(gw.scheduler, name, cfg, gw.engine.submit)
                session = lookup_session(sid)
                if session is not None:
                    session.logon()  # accept its logons again
            elif step.action == UPDATED:
                gw.engine.call(lambda core: core.set_client(name, client_options(cfg)))
                clients[name] = cfg
                set_end_of_day(gw.scheduler, name, cfg, gw.engine.submit)
            return
        if step.action in (REMOVED, REPLACED):
            self._remove_venue(step, venues)
            if step.action == REMOVED or step.action == REFUSED:
                return
        if cfg is not None:
            gw.fix_engines.load_venue_tls(name, cfg)  # a bad file stops this step, not the venue
        if step.action in (ADDED, REPLACED):
            self._add_venue(name, cfg)
            venues[name] = cfg
        elif step.action == RECONNECTED:
            gw.fix_engines.stop_initiator(name, reason="connection settings changed by an operator")
            gw.engine.call(lambda core: core.update_venue(venue_model(name, cfg)))
            venues[name] = cfg
            gw.fix_engines.start_initiator(name, cfg)
        elif step.action == UPDATED:
            gw.engine.call(lambda core: core.update_venue(venue_model(name, cfg)))
            venues[name] = cfg

    def _remove_client(self, step: Step, clients: dict) -> None:
        gw = self._gw
        name = step.session
        n = gw.engine.call(lambda core: core.close_client(name))  # from now on its new orders are rejected
        if n:
            step.action, step.detail = REFUSED, f"has {n} open order(s) now; cancel them first"
            return
        gw.retired_clients[name] = clients.pop(name)
        sid = gw.client_sids[name]
        gw.client_sids = {k: v for k, v in gw.client_sids.items() if k != name}
        set_end_of_day(gw.scheduler, name, None, gw.engine.submit)
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
        gw = self._gw
        name = step.session
        outbound = gw.engine.outbound

        def remove(core) -> int:
            n = core.remove_venue(name)
            if n == 0:
                outbound.set_session("venue", name, None)
            return n
        n = gw.engine.call(remove)
        if n:
            step.action, step.detail = REFUSED, f"has {n} open order(s) now; cancel them first"
            return
        gw.venue_sids = {k: v for k, v in gw.venue_sids.items() if k != name}
        venues.pop(name, None)
        gw.fix_engines.stop_initiator(name, reason=REMOVED_REASON)

    def _add_venue(self, name: str, cfg: VenueConfig) -> None:
        gw = self._gw
        sid = session_id(cfg.fix_version, gw.cfg.venue_sender, name)
        gw.session_names[sid.toString()] = name
        gw.sent_index.track(sid.toString())
        outbound = gw.engine.outbound

        def add(core) -> None:
            core.add_venue(venue_model(name, cfg))
            outbound.set_session("venue", name, sid)
        gw.engine.call(add)
        try:
            gw.fix_engines.start_initiator(name, cfg)
        except Exception:
            gw.engine.call(lambda core: (core.remove_venue(name), outbound.set_session("venue", name, None)))
            raise
        gw.venue_sids = {**gw.venue_sids, name: sid}

    def _add_clients(self, steps: list[Step], clients: dict) -> None:
        """New client sessions on one port that no acceptor serves: an acceptor of their own."""
        gw = self._gw
        configs = {s.session: s.config for s in steps}
        for c in configs.values():
            try:
                gw.fix_engines.load_client_tls(c.port or gw.cfg.acceptor.port, c)
            except TlsError as exc:
                raise ConfigError(str(exc)) from None
        sids = {name: session_id(c.fix_version, gw.cfg.comp_id, name) for name, c in configs.items()}
        outbound = gw.engine.outbound
        for name, sid in sids.items():
            gw.session_names[sid.toString()] = name

        def add(core) -> None:
            for name, c in configs.items():
                core.set_client(name, client_options(c))
                outbound.set_session("client", name, sids[name])
        gw.engine.call(add)
        gw.fix_engines.start_acceptor(configs)  # on failure the caller reports every step of the group as failed
        clients.update(configs)
        gw.client_sids = {**gw.client_sids, **sids}
        for name, c in configs.items():
            set_end_of_day(gw.scheduler, name, c, gw.engine.submit)
