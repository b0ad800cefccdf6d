"""quickfix side of the drop-copy sessions: a read-only Application and the sender the drop-copy thread uses.

``DropCopyApplication`` runs on the drop-copy acceptor's session threads. Like
the gateway's other Applications it only reads, hands over and returns, and
never lets a Python exception reach quickfix:

- an application message from a receiver (an order, a cancel, anything) is
  refused with a BusinessMessageReject (35=j, 380=3 Unsupported message type,
  Text saying the session is a read-only drop copy) sent on the same session
  from its own callback (safe: quickfix's session lock is recursive). Nothing
  else happens: it never reaches the engine. Both messages are journaled by the
  JournalLogFactory like all traffic.
- logon and logout are reported to the drop-copy thread (``notify``), and so is
  a Logon with ResetSeqNumFlag (141=Y): quickfix has then reset the session's
  store, so the copies in it can no longer be re-sent;
- a Heartbeat answering one of our acknowledgement TestRequests (TestReqID
  ``DCACK-<journal id>``) is reported too: the receiver has read every copy sent
  before that TestRequest.

``DropCopyLink`` is what the drop-copy thread calls (never a session thread):
send a copy's text, send an acknowledgement TestRequest, and read a session's
state (logged on, next sequence number, the identity of its message store).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import quickfix as fix

from sessions.codec import encode, tagvalue
from sessions.gateway_app import ClientApplication, _Guarded

log = logging.getLogger("fixgw.dropcopy")

ACK_PREFIX = "DCACK-"
SOH = "\x01"
_NAMES = {"D": "NewOrderSingle", "F": "OrderCancelRequest", "G": "OrderCancelReplaceRequest",
          "H": "OrderStatusRequest", "q": "OrderMassCancelRequest", "8": "ExecutionReport"}


@dataclass(frozen=True, slots=True)
class AckReceived:
    """The receiver answered our TestRequest ``test_req_id``."""

    name: str
    test_req_id: str


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The session's sequence numbers and message store were reset: quickfix can no longer re-send
    the copies stored before. (quickfix resets the store before it calls fromAdmin for such a Logon.)"""

    name: str
    why: str
    at_logon: bool = False  # seen in fromAdmin: the drop-copy thread applies it once the logon completes


@dataclass(frozen=True, slots=True)
class InboundRefused:
    name: str
    msg_type: str


class DropCopyApplication(_Guarded):
    """Acceptor sessions of drop-copy receivers: read-only."""

    role = "dropcopy"

    def __init__(self, names: dict[str, str], notify: Callable[[object], None], on_error=None, refuse_logon=None):
        # _Guarded reports onLogon/onLogout as SessionStatus to ``notify`` (the drop-copy thread's queue);
        # ``refuse_logon`` checks address ranges and passwords as for clients (gateway/security/auth.py)
        super().__init__(names, notify, on_error, refuse_logon)

    def fromAdmin(self, msg, sid):
        try:
            header = msg.getHeader()
            msg_type = header.getField(35)
            if msg_type == "A":
                self._check_logon(msg, sid)  # raises RejectLogon with the reason
                if msg.isSetField(141) and msg.getField(141) == "Y":
                    self._submit(StreamReset(self._name(sid), "the receiver logged on with ResetSeqNumFlag (141=Y)",
                                             at_logon=True))
            elif msg_type == "0":
                if msg.isSetField(112):
                    test_req_id = msg.getField(112)
                    if test_req_id.startswith(ACK_PREFIX):
                        self._submit(AckReceived(self._name(sid), test_req_id))
            elif msg_type == "3":
                log.warning("drop-copy receiver %s rejected our message: %s", self._name(sid),
                            msg.toString().replace(SOH, "|"))
        except fix.RejectLogon:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._bug("fromAdmin", sid, exc)

    # as for clients: quickfix 1.16 puts ApplVerID (1137) in the body of the reject it generates on
    # FIXT.1.1 sessions, which a validating FIX 5.0 receiver refuses
    toApp = ClientApplication.toApp

    def _dispatch(self, raw, sid, recv_ns):
        f = tagvalue.parse_fields(raw)
        name = self._name(sid)
        msg_type = f.get(35, "?")
        what = _NAMES.get(msg_type, f"MsgType {msg_type}")
        text = (f"drop-copy session {name} is read-only: {what} ({msg_type}) refused; nothing was done "
                "(send orders and cancels on a trading session)")
        log.warning("drop-copy session %s sent %s (%s): refused, nothing acted on", name, what, msg_type)
        reject = encode.encode_business_reject(msg_type, f.get(34), text, reason="3",
                                              ref_id=f.get(11) or None)
        fix.Session.sendToTarget(reject, sid)
        self._submit(InboundRefused(name, msg_type))


@dataclass(frozen=True, slots=True)
class SessionView:
    exists: bool
    logged_on: bool
    next_sender_seqnum: int
    stream: str | None  # creation time of the message store (whole seconds): rewritten when it is reset


class DropCopyLink:
    """Sends copies to drop-copy sessions. Called from the drop-copy thread and admin requests only."""

    def __init__(self, sids: dict[str, fix.SessionID], store_dir: Path):
        self._sids = dict(sids)
        # quickfix's FileStore keeps the store's creation time in <BeginString>-<Sender>-<Target>.session
        # and rewrites it on every reset. (Session.getStore() is not usable from Python in 1.16: it
        # returns an unwrapped pointer.)
        self._session_files = {
            name: store_dir / (f"{sid.getBeginString().getValue()}-{sid.getSenderCompID().getValue()}-"
                               f"{sid.getTargetCompID().getValue()}.session")
            for name, sid in self._sids.items()}

    def send(self, name: str, text: str) -> bool:
        """Hand one copy (``35=8|...`` text, no session header) to quickfix: stored, and sent if logged on."""
        return fix.Session.sendToTarget(fix.Message(text, False), self._sids[name])

    def probe(self, name: str, test_req_id: str) -> bool:
        """A TestRequest whose answer proves the receiver read everything sent before it."""
        session = fix.Session.lookupSession(self._sids[name])
        if session is None or not session.isLoggedOn():
            return False
        msg = fix.Message(f"35=1{SOH}112={test_req_id}{SOH}", False)
        return fix.Session.sendToTarget(msg, self._sids[name])

    def view(self, name: str) -> SessionView:
        session = fix.Session.lookupSession(self._sids[name])
        if session is None:
            return SessionView(False, False, 0, None)
        try:
            stream = self._session_files[name].read_text().strip() or None  # e.g. 20261124-09:10:11
        except OSError:
            stream = None
        return SessionView(True, session.isLoggedOn(), session.getExpectedSenderNum(), stream)
