"""Perform the core's actions: encode each in its session's FIX version and send it.

``encode`` runs on the engine's core thread (the state log records the text
before the message is sent); ``send`` and ``perform`` on the engine's sender
thread, which holds no lock of its own while ``sendToTarget`` takes the target
session's lock.
"""
from __future__ import annotations

import threading
from typing import Callable

import quickfix as fix

from orders.actions import (
    ClientCancelReject, ClientExecReport, ClientMassCancelReport, LogoutClient, VenueCancel, VenueDontKnow,
    VenueMarketDataRequest, VenueNewOrder, VenueMassStatusRequest, VenueReplace, VenueStatusRequest,
)
from sessions.codec import encode
from sessions.fixsettings import app_version
from sessions.journal_log import WIRE


class UnknownSession(LookupError):
    pass


class Outbound:
    def __init__(self, clients: dict[str, fix.SessionID], venues: dict[str, fix.SessionID],
                 journal: Callable[[str, str, str], None] | None = None):
        # (SessionID text, "O", raw): quickfix puts a message sent while its session is logged out
        # only in the session's store, and on the wire (and through the Log, into the journal) only
        # when the peer asks for it after logging on again, maybe never; so it is journaled here,
        # exactly when quickfix did not write it to the wire (``journal_log.WIRE``).
        self._journal = journal
        # One quickfix Message per sending thread, refilled for each send (``setString`` clears it first):
        # a new Message per send cost two more calls into the binding (made, then freed), each letting go of
        # the GIL. quickfix keeps nothing of it after ``sendToTarget`` returns.
        self._scratch = threading.local()
        self._clients = {name: (sid, app_version(sid)) for name, sid in clients.items()}
        self._venues = {name: (sid, app_version(sid)) for name, sid in venues.items()}
        # action type -> (its sessions, role, the codec's body-text encoder, attribute naming the session)
        self._encoders = {
            ClientExecReport: (self._clients, "client", encode.encode_exec_report.text, "session"),
            ClientCancelReject: (self._clients, "client", encode.encode_cancel_reject.text, "session"),
            ClientMassCancelReport: (self._clients, "client", encode.encode_mass_cancel_report.text, "session"),
            VenueReplace: (self._venues, "venue", encode.encode_venue_replace.text, "venue"),
            VenueNewOrder: (self._venues, "venue", encode.encode_venue_new_order.text, "venue"),
            VenueCancel: (self._venues, "venue", encode.encode_venue_cancel.text, "venue"),
            VenueDontKnow: (self._venues, "venue", encode.encode_dont_know.text, "venue"),
            VenueStatusRequest: (self._venues, "venue", encode.encode_venue_status_request.text, "venue"),
            VenueMassStatusRequest: (self._venues, "venue", encode.encode_venue_mass_status_request.text, "venue"),
        }

    def set_session(self, role: str, name: str, sid: fix.SessionID | None) -> None:
        """Add, change or (sid None) remove a session; call on the core thread, which is the one sending."""
        table = self._clients if role == "client" else self._venues
        if sid is None:
            table.pop(name, None)
        else:
            table[name] = (sid, app_version(sid))

    def encode(self, action) -> tuple[str, str, str] | None:
        """(role, session name, body text) of an action's message; None for an action ``perform`` does
        itself (a logout, a market data request). Raises UnknownSession for a session not configured, and
        encode.Unencodable for a text the session cannot carry: here, on the core thread, where the engine
        answers it (gateway/process/engine.py), not in ``send``'s string setter on the sender thread."""
        entry = self._encoders.get(type(action))
        if entry is None:
            return None
        table, role, text, attr = entry
        name = getattr(action, attr)
        try:
            _, version = table[name]
        except KeyError:
            raise UnknownSession(f"no session named {name} for {type(action).__name__}") from None
        return role, name, encode.check_encodable(text(version, action))

    def send(self, message: tuple[str, str, str]) -> bool:
        """Send a message ``encode`` made (quickfix stores it, and sends it now if the session is logged on)."""
        role, name, text = message
        try:
            sid = (self._clients if role == "client" else self._venues)[name][0]
        except KeyError:
            raise UnknownSession(f"no {role} session named {name}") from None
        scratch = self._scratch
        msg = getattr(scratch, "msg", None)
        if msg is None:
            msg = scratch.msg = fix.Message()
        msg.setString(text, False)
        return self._send(msg, sid, name)

    def perform(self, action) -> bool:
        """Encode and send one action, or perform one that is not a message."""
        kind = type(action)
        if kind is LogoutClient:
            return self._logout(action)
        if kind is VenueMarketDataRequest:
            entry = self._venues.get(action.venue)
            if entry is None:
                raise UnknownSession(f"no session named {action.venue} for VenueMarketDataRequest")
            return self._send(encode.encode_md_request(entry[1], action), entry[0], action.venue)
        return self.send(self.encode(action))

    def _send(self, msg: fix.Message, sid: fix.SessionID, name: str) -> bool:
        wire = WIRE
        wire.sent = False
        sent = fix.Session.sendToTarget(msg, sid)  # True even when quickfix only stored it
        if not wire.sent and self._journal is not None:
            # quickfix did not write it to the wire (the session is not logged on in its own view, whatever the
            # engine has heard so far)
            if not sent:
                # Logged out with a ResetOn* setting and its store already reset (1/1): quickfix dropped the
                # message ("it would just be cleared") after filling in the header. It never had a MsgSeqNum:
                # journaled without one, so the journal (and the drop copies fed from it) still has it.
                msg.getHeader().removeField(34)
            # it filled in the header and stored it (or dropped it); journal it now
            self._journal(sid.toString(), "O", msg.toString())
        return sent

    def _logout(self, action: LogoutClient) -> bool:
        entry = self._clients.get(action.session)
        if entry is None:
            raise UnknownSession(f"no client session named {action.session}")
        session = fix.Session.lookupSession(entry[0])
        if session is None or not session.isLoggedOn():
            return False
        session.logout(action.reason)
        return True

    def business_reject(self, session: str, ref_msg_type: str, ref_id: str | None, text: str,
                        ref_seq: int | None = None) -> bool:
        """BusinessMessageReject (j) to a client, e.g. when the core failed on its message or an answer to
        it could not be encoded: RefMsgType (372), RefSeqNum (45) when known, BusinessRejectRefID (379)."""
        entry = self._clients.get(session) or self._venues.get(session)
        if entry is None:
            raise UnknownSession(f"no session named {session}")
        reject = encode.encode_business_reject(ref_msg_type, str(ref_seq) if ref_seq else None, text, ref_id=ref_id)
        return self._send(reject, entry[0], session)
