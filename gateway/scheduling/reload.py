"""`fixgw sessions reload`: what a changed configuration file means for the running sessions.

``plan()`` is pure: it compares the running configuration with the file's and
says, session by session, what can be done live and what cannot. The gateway
(``Gateway.reload_sessions``) carries the steps out. What quickfix 1.16 allows
shapes every rule here (docs/quickfix-binding.md, "Sessions at run time"):

- An acceptor's sessions are fixed when it is created, and a port can be served
  by one acceptor only. So a new client session can be added live only on a port
  no running acceptor serves (``clients.NAME.port``): it gets an acceptor of its
  own. A new client on a served port needs a restart.
- Each venue has an initiator of its own, so a venue is added, removed or
  reconnected with new connection settings without touching any other session.
- A running Session's FIX version and schedule cannot be changed from Python, and
  a client's TLS settings belong to its port's listener; such changes need a
  restart. Source addresses, passwords and accounts are the gateway's own checks
  and apply live (from the next logon, or the next order).
- A session that still has open orders is never removed (nor a venue's FIX
  version changed): its orders would lose their only path for reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gateway.config import ClientConfig, GatewayConfig, VenueConfig

class ReloadBusy(Exception):
    """Another `fixgw sessions reload` is being applied."""


# what each step does, as the report says it
ADDED, READDED, REMOVED, UPDATED, RECONNECTED, REPLACED, REFUSED, FAILED = (
    "added", "re-added", "removed", "updated", "reconnected", "replaced", "refused", "failed")

RESET_FIELDS = ("reset_on_logon", "reset_on_logout", "reset_on_disconnect")  # quickfix session settings
CLIENT_RESTART_FIELDS = ("fix_version", "port", "schedule", "tls", *RESET_FIELDS)
# the security settings are the gateway's own checks (gateway/security/auth.py, the core's accounts): live
CLIENT_LIVE_FIELDS = ("pending_new", "cancel_on_disconnect", "end_of_day", "timezone", "allowed_addresses",
                      "password_required", "username", "accounts", "demo_password_env", "strategy",
                      "preferred_venues")
VENUE_CONNECTION_FIELDS = ("host", "port", "heartbeat_s", "reconnect_s", "schedule", "tls", "username",
                           "password_secret", *RESET_FIELDS)
VENUE_LIVE_FIELDS = ("symbols", "fees", "priority", "on_disconnect", "market_data")  # market data: next logon
# sections outside the sessions: a reload reports their changes and leaves them alone
OTHER_SECTIONS = {
    "data_dir": "needs a restart", "log_level": "needs a restart", "log_format": "needs a restart",
    "secrets_file": "needs a restart",
    "acceptor": "needs a restart", "http": "needs a restart", "journal": "needs a restart",
    "risk": "rules: fixgw risk reload; rules_file and reference_prices: a restart",
    "routing": "needs a restart",
    "limits": "needs a restart",
    "cluster": "needs a restart", "instance": "needs a restart",
}


@dataclass
class Step:
    session: str
    role: str  # client | venue
    action: str  # ADDED, READDED, REMOVED, UPDATED, RECONNECTED, REPLACED or REFUSED (FAILED once tried)
    detail: str
    config: ClientConfig | VenueConfig | None = None  # the file's configuration of the session (None: removed)
    changed: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"session": self.session, "role": self.role, "action": self.action, "detail": self.detail}


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)  # other sections that changed

    @property
    def refused(self) -> list[Step]:
        return [s for s in self.steps if s.action == REFUSED]


def _changed(old, new, names) -> tuple[str, ...]:
    return tuple(n for n in names if getattr(old, n) != getattr(new, n))


def plan(current: GatewayConfig, new: GatewayConfig, *, served_ports: set[int],
         retired: dict[str, ClientConfig], client_open: dict[str, int], venue_open: dict[str, int]) -> Plan:
    """The steps that take the running sessions from ``current`` to ``new``.

    ``served_ports``: ports running acceptors listen on; ``retired``: client sessions
    removed earlier in this run (their quickfix Session still exists, logged out
    and refusing logons); ``client_open``/``venue_open``: open orders per session.
    """
    out = Plan()
    main_port = current.acceptor.port  # the running acceptor's; a changed [acceptor] port is not applied

    def port_of(c: ClientConfig) -> int:
        return c.port or main_port

    for section, why in OTHER_SECTIONS.items():
        if getattr(current, section) != getattr(new, section):
            out.not_applied.append(f"[{section}] changed: not applied by a sessions reload ({why})")
    for name in current.clients.keys() - new.clients.keys():
        out.steps.append(_remove(name, "client", client_open.get(name, 0), "--session"))
    for name in current.venues.keys() - new.venues.keys():
        out.steps.append(_remove(name, "venue", venue_open.get(name, 0), "--venue"))
    for name, cfg in new.clients.items():
        old = current.clients.get(name)
        if old is None:
            out.steps.append(_add_client(name, cfg, port_of(cfg), served_ports, retired.get(name), main_port))
            continue
        effective_old = old.model_copy(update={"port": port_of(old)})
        effective_new = cfg.model_copy(update={"port": port_of(cfg)})
        restart = _changed(effective_old, effective_new, CLIENT_RESTART_FIELDS)
        live = _changed(old, cfg, CLIENT_LIVE_FIELDS)
        if restart:
            out.steps.append(Step(name, "client", REFUSED,
                                  f"{', '.join(restart)} changed: quickfix cannot change a running session's "
                                  f"{'/'.join(restart)}; needs a restart (nothing changed for {name})", cfg, restart))
        elif live:
            out.steps.append(Step(name, "client", UPDATED, f"{', '.join(live)} applied live", cfg, live))
    for name, cfg in new.venues.items():
        old = current.venues.get(name)
        if old is None:
            out.steps.append(Step(name, "venue", ADDED, f"new initiator to {cfg.host}:{cfg.port} "
                                  f"({cfg.fix_version}), symbols {', '.join(cfg.symbols)}", cfg))
            continue
        if old.fix_version != cfg.fix_version:
            n = venue_open.get(name, 0)
            if n:
                out.steps.append(Step(name, "venue", REFUSED, f"fix_version changed but {name} has {n} open "
                                      f"order(s): cancel them first (fixgw orders list --open)", cfg, ("fix_version",)))
            else:
                out.steps.append(Step(name, "venue", REPLACED, f"fix_version {old.fix_version} -> {cfg.fix_version}:"
                                      " old session logged out, new session started", cfg, ("fix_version",)))
            continue
        connection = _changed(old, cfg, VENUE_CONNECTION_FIELDS)
        live = _changed(old, cfg, VENUE_LIVE_FIELDS)
        if connection:
            out.steps.append(Step(name, "venue", RECONNECTED, f"{', '.join(connection + live)} applied: "
                                  f"{name}'s initiator restarted (only this venue reconnects)", cfg,
                                  connection + live))
        elif live:
            detail = "; ".join(f"symbols now {', '.join(cfg.symbols)}" if f == "symbols" else
                               f"{f} applied" + (" (subscribed with from its next logon)" if f == "market_data"
                                                 else "") for f in live)
            out.steps.append(Step(name, "venue", UPDATED, detail, cfg, live))
    return out


def _remove(name: str, role: str, n_open: int, flag: str) -> Step:
    if n_open:
        hint = (f"fixgw orders cancel-all --session {name}" if role == "client"
                else "fixgw orders list --open, then cancel them")
        return Step(name, role, REFUSED, f"has {n_open} open order(s); cancel them first ({hint})")
    what = ("logged out; its logons are refused" if role == "client"
            else "logged out; its initiator stopped")
    return Step(name, role, REMOVED, what)


def _add_client(name: str, cfg: ClientConfig, port: int, served_ports: set[int], retired: ClientConfig | None,
                main_port: int) -> Step:
    if retired is not None:
        differs = _changed(retired.model_copy(update={"port": retired.port or main_port}),
                           cfg.model_copy(update={"port": port}), CLIENT_RESTART_FIELDS)
        if differs:
            return Step(name, "client", REFUSED, f"was removed earlier in this run and its quickfix session still "
                        f"exists with the old {', '.join(differs)}; needs a restart", cfg, differs)
        return Step(name, "client", READDED, f"accepted again on port {port}", cfg)
    if port in served_ports:
        return Step(name, "client", REFUSED,
                    f"cannot be added live on port {port}: quickfix fixes an acceptor's sessions when it is "
                    f"created and a running acceptor serves port {port}; give {name} a port of its own "
                    f"(clients.{name}.port) or restart the gateway", cfg)
    return Step(name, "client", ADDED, f"new acceptor on port {port} ({cfg.fix_version})", cfg)
