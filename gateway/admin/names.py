"""Which session, account and symbol names exist, for the admin API's checks.

An operator's typo must not act on nothing: `fixgw risk kill session CLIENT4`
(meaning CLIENT44) would engage a kill switch no order ever matches and leave
the operator believing CLIENT44 is stopped. Every name an admin call takes is
checked here, and an unknown one is refused (400) with the known ones listed.

What exists:

- sessions: the client, venue and drop-copy sessions the gateway runs now
  (after any `fixgw sessions reload`). Kill switches, order filters and
  cancel-all take client sessions only: orders belong to those.
- accounts: the ones configured (``clients.*.accounts``, ``routing.accounts``,
  ``dropcopy.sessions.*.accounts``, the risk rules' ``accounts`` and
  ``account_symbols``) and the Account (1) of every order the gateway holds. A
  client session without an ``accounts`` list may send any Account: to stop an
  account before its first order, list it in one of those places.
- symbols: the ones a venue trades (``venues.*.symbols``) and those of the
  orders the gateway holds.

Releasing a kill switch (``unkill``) also takes the key of any switch engaged
now, so one engaged on a name that has since gone (a session removed by a
reload) can still be released.

A session is given by its name (as `fixgw sessions list` shows it) or by its full
quickfix SessionID (``FIX.4.4:FIXGW->CLIENT44``), to the admin API and to the
commands that read the configuration and the journal without a running gateway
(`fixgw journal replay --session`, `risk what-if --session`, `credentials`):
:func:`session_name` and :func:`journal_session_id` below, with the SessionIDs
built as the gateway builds them (``sessions.fixsettings.session_id``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

LIST_LIMIT = 50  # names listed in a refusal; more are counted, not listed


class UnknownName(Exception):
    """A name that does not exist; the message names it and lists the known ones (the admin API answers 400)."""


def refusal(kind: str, name: str, known) -> UnknownName:
    names = sorted(set(known))
    shown = ", ".join(names[:LIST_LIMIT]) or "none"
    if len(names) > LIST_LIMIT:
        shown += f", and {len(names) - LIST_LIMIT} more"
    return UnknownName(f"unknown {kind} {name} (known: {shown})")


ROLES = ("client", "venue", "dropcopy")
_KINDS = {("client",): "client session", ("venue",): "venue", ("dropcopy",): "drop-copy session",
          ("client", "dropcopy"): "client or drop-copy session"}


def configured_sessions(cfg, roles: Iterable[str] = ROLES) -> dict[str, str]:
    """name -> quickfix SessionID text of the configuration's sessions of ``roles``, as the gateway builds them."""
    from sessions.fixsettings import session_id

    tables = {"client": cfg.clients, "venue": cfg.venues, "dropcopy": cfg.dropcopy.sessions}
    return {name: session_id(c.fix_version, cfg.venue_sender if role == "venue" else cfg.comp_id, name).toString()
            for role in roles for name, c in tables[role].items()}


def _name_of(value: str, sids: dict[str, str]) -> str | None:
    if value in sids:
        return value
    return next((name for name, sid in sids.items() if sid == value), None)


def session_name(cfg, value: str, roles: tuple[str, ...] = ROLES, kind: str | None = None) -> str:
    """The configured name of the session ``value`` names (a name or a full SessionID); UnknownName listing the
    names otherwise (``kind``: what to call it there, by default from ``roles``)."""
    sids = configured_sessions(cfg, roles)
    name = _name_of(value, sids)
    if name is None:
        raise refusal(kind or _KINDS.get(tuple(roles), "session"), value, sids)
    return name


def journal_session_id(cfg, value: str, journaled: Callable[[str], bool],
                       journal_ids: Callable[[], list[str]]) -> str:
    """The journal's session_id for ``value``: a configured session (name or SessionID), else a SessionID the
    journal holds (a session since removed from the configuration), else the one journaled SessionID whose
    TargetCompID is ``value`` (a removed session by its name). UnknownName lists the configured names and the
    SessionIDs found only in the journal.

    ``journaled(sid)``: whether the journal holds rows of ``sid``; ``journal_ids()``: the SessionIDs it holds.
    """
    sids = configured_sessions(cfg)
    name = _name_of(value, sids)
    if name is not None:
        return sids[name]
    if journaled(value):
        return value
    held = journal_ids()
    by_name = [sid for sid in held if sid.endswith(f"->{value}")]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise UnknownName(f"session {value} is in the journal under several SessionIDs: {', '.join(by_name)}; "
                          "give one of them")
    configured = set(sids.values())
    only = sorted(sid for sid in held if sid not in configured)
    message = str(refusal("session", value, sids))
    if only:
        shown = ", ".join(only[:LIST_LIMIT]) + (f", and {len(only) - LIST_LIMIT} more" if len(only) > LIST_LIMIT
                                                  else "")
        message = message[:-1] + f"; in the journal only: {shown})"
    raise UnknownName(message)


class Names:
    """The names the running gateway knows; order state is read on the core thread, and only when needed."""

    def __init__(self, gateway):
        self._gw = gateway

    def sessions(self) -> list[str]:
        gw = self._gw
        return [*gw.client_sids, *gw.venue_sids, *gw.dropcopy_sids]

    def session_name(self, value: str) -> str:
        """The name of the running session whose full SessionID ``value`` is, else ``value`` itself."""
        gw = self._gw
        for sids in (gw.client_sids, gw.venue_sids, gw.dropcopy_sids):
            for name, sid in list(sids.items()):
                if sid.toString() == value:
                    return name
        return value

    def journal_session_id(self, value: str) -> str:
        """A journal filter: a running session's name -> its SessionID; a SessionID (it has ``->``) as it is,
        also one no longer running; anything else is refused with the names."""
        gw = self._gw
        for sids in (gw.client_sids, gw.venue_sids, gw.dropcopy_sids):
            if value in sids:
                return sids[value].toString()
        if "->" in value:
            return value
        raise refusal("session", value, self.sessions())

    def check_session(self, name: str) -> None:
        if name not in self.sessions():
            raise refusal("session", name, self.sessions())

    def check_client(self, name: str, also=()) -> None:
        if name not in self._gw.client_sids and name not in also:
            raise refusal("client session", name, [*self._gw.client_sids, *also])

    def _configured_accounts(self) -> set[str]:
        cfg = self._gw.cfg
        names = {a for c in cfg.clients.values() for a in (c.accounts or ())}
        names.update(cfg.routing.accounts)
        names.update(a for d in cfg.dropcopy.sessions.values() for a in d.accounts)
        return names

    def check_account(self, name: str, also=()) -> None:
        configured = self._configured_accounts()
        if name in configured or name in also:
            return

        def held(core):
            rules = core.risk.rules if core.risk is not None else None
            from_rules = set(rules.accounts) | set(rules.account_symbols) if rules is not None else set()
            if name in from_rules or any(o.account == name for o in core.orders.values()):
                return None
            return from_rules | {o.account for o in core.orders.values() if o.account}
        known = self._gw.engine.call(held)
        if known is not None:
            raise refusal("account", name, configured | known | set(also))

    def check_symbol(self, name: str, also=()) -> None:
        traded = {s for v in self._gw.cfg.venues.values() for s in v.symbols}
        if name in traded or name in also:
            return

        def held(core):
            if any(o.symbol == name for o in core.orders.values()):
                return None
            return {o.symbol for o in core.orders.values()}
        known = self._gw.engine.call(held)
        if known is not None:
            raise refusal("symbol", name, traded | known | set(also))

    def check_dropcopy(self, name: str) -> None:
        service = self._gw.dropcopy
        if service is None:
            raise UnknownName(f"unknown drop-copy session {name}: this gateway has none "
                              "([dropcopy.sessions] in its config)")
        if name not in service.names():
            raise refusal("drop-copy session", name, service.names())

    def engaged(self, scope: str) -> list[str]:
        """The keys of the kill switches of ``scope`` engaged now."""
        return self._gw.engine.call(lambda core: [k for (s, k) in core.risk_state.kill_switches.engaged if s == scope])

    def check(self, kind: str, name: str, also=()) -> None:
        """``kind``: session (a client session, for filters and kill switches), account or symbol."""
        {"session": self.check_client, "account": self.check_account, "symbol": self.check_symbol}[kind](name, also)
