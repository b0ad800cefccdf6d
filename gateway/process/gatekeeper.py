"""Who may connect and log on: the front door's questions about each Logon, our credentials for venues, the journal's
record of logon and TLS events, and what quickfix's connection events say."""
from __future__ import annotations

import difflib
import logging

from gateway.config import ConfigError, GatewayConfig
from gateway.observability import metrics
from gateway.observability.logs import fields
from gateway.security import secretstore
from gateway.security.auth import DENY_EVENT, UNKNOWN_SESSION_EVENT, policy_for
from fixspecs.raw import field_after
from fixspecs.redact import redact
from sessions.closing import CONNECTING_EVENT, DISCONNECTING_EVENT, INITIATOR_WAIT_S, ClosingConnections, \
    settle
from sessions.fixsettings import BEGIN_STRING, session_registered

log = logging.getLogger("fixgw.gateway")
# quickfix's session events of an initiator (gateway/process/logon_watch.py; "Connecting to ": sessions/closing.py)
LOGON_TIMEOUT_EVENT = "Timed out waiting for logon response"


def logon_policies(cfg: GatewayConfig) -> dict:
    """Who may log on to each client and drop-copy session: address ranges, TLS, password."""
    return {**{n: policy_for(n, c) for n, c in cfg.clients.items()},
            **{n: policy_for(n, d) for n, d in cfg.dropcopy.sessions.items()}}


def _field(raw: str, tag: int) -> str:
    value = field_after(raw, f"\x01{tag}=")
    return "?" if value is None else value


class Gatekeeper:
    """Answers for the gateway's sessions as they are now (a sessions reload changes them): the callbacks given to
    the front door, the logon guard, the TLS terminator, the venue Application and the journal's quickfix Log."""

    def __init__(self, gateway):  # the Gateway (server.py) it belongs to
        self._gw = gateway
        self.closing_connections = ClosingConnections(session_registered,
                                                      on_unreleased=metrics.QUICKFIX_UNRELEASED.inc)

    def venue_logon_fields(self, name: str) -> dict[int, str] | None:
        """Username (553) / Password (554) for our Logon to a venue; the password from the secrets."""
        v = self._gw.cfg.venues.get(name)
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

    def audit_logon(self, name: str, session_key: str, text: str, refused: bool) -> None:
        self._gw.journal.event(session_key, text)
        (log.warning if refused else log.info)("%s: %s", name, text, extra=fields(session=name))

    def audit_tls(self, where: str, text: str, failure: bool) -> None:
        self._gw.journal.event(f"tls:{where}", text)

    # ------------------------------------------------------------------ the front door (on its thread)
    def lookup(self, kind: str, port: int, begin: str, sender: str, target: str) -> str | None:
        """The session a Logon on a public port is for, if that port serves it."""
        cfg = self._gw.cfg
        if target != cfg.comp_id:
            return None
        if kind == "dropcopy":
            d = cfg.dropcopy.sessions.get(sender)
            return sender if d is not None and BEGIN_STRING[d.fix_version] == begin else None
        c = cfg.clients.get(sender) or self._gw.retired_clients.get(sender)  # retired: refused with a reason
        if c is None or BEGIN_STRING[c.fix_version] != begin or (c.port or cfg.acceptor.port) != port:
            return None
        return sender

    def unknown(self, kind: str, raw: bytes, answer: bytes = b"") -> None:
        """A Logon for no session served on its port: journaled (password masked) as quickfix's own refusal was,
        and the Logout the front door answered it with."""
        self._gw.journal.event("*", UNKNOWN_SESSION_EVENT + raw.decode("latin-1"))
        if answer:
            self._gw.journal.event("*", "front door answered with: " + answer.decode("latin-1"))

    def explain(self, kind: str, port: int, begin: str, sender: str, target: str) -> str:
        """What is wrong with a Logon for no session on its port, against the sessions that come closest: for
        the log only (the peer is told nothing about the configuration)."""
        cfg = self._gw.cfg
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

    def busy(self, kind: str, session: str) -> bool:
        """Whether quickfix still holds this session's previous connection."""
        sid = (self._gw.dropcopy_sids if kind == "dropcopy" else self._gw.client_sids).get(session)
        return sid is not None and session_registered(sid)

    def refused(self, kind: str, session: str, text: str) -> None:
        """What a logged-on client sent that the front door would not pass on (not FIX, too large): journaled
        under the session, so its journal shows why the connection ended and what was dropped."""
        sid = (self._gw.dropcopy_sids if kind == "dropcopy" else self._gw.client_sids).get(session)
        self._gw.journal.event(sid.toString() if sid is not None else "*", text)

    def _acceptor_sid(self, session_key: str):
        """The SessionID of a client or drop-copy session (the ThreadedSocketAcceptor's) by its text, or None."""
        for sid in (*self._gw.client_sids.values(), *self._gw.dropcopy_sids.values()):
            if sid.toString() == session_key:
                return sid
        return None

    # ------------------------------------------------------------------ quickfix (on the thread that raised it)
    def quickfix_event(self, session_key: str, text: str) -> None:
        """quickfix's engine and session events: sources, refusals, a venue's connection attempts."""
        gw = self._gw
        if text == DISCONNECTING_EVENT:
            sid = self._acceptor_sid(session_key)
            if sid is not None:
                self.closing_connections.closing(session_key, sid)
            return
        gw.peers.connection_event(session_key, text)
        if text.startswith(CONNECTING_EVENT):
            settle(INITIATOR_WAIT_S)  # the venue initiator opens its socket when this returns (sessions/closing.py)
        if text.startswith(CONNECTING_EVENT) or text.startswith(LOGON_TIMEOUT_EVENT):
            name = gw.session_names.get(session_key)
            if name in gw.venue_sids:
                if text.startswith(CONNECTING_EVENT):
                    gw.logon_watch.connecting(name)
                else:
                    gw.logon_watch.timed_out(name)
        if text.startswith(UNKNOWN_SESSION_EVENT):
            raw = text[len(UNKNOWN_SESSION_EVENT):]
            log.warning("connection refused by quickfix: no session %s:%s->%s (SenderCompID %s is unknown or not "
                        "served on that port); message: %s", _field("\x01" + raw, 8), _field(raw, 49),
                        _field(raw, 56), _field(raw, 49), redact(raw).replace("\x01", "|"),
                        extra=fields(reason="unknown session"))
        elif text.startswith(DENY_EVENT):
            log.warning("connection refused by quickfix for %s: %s", session_key, text)
