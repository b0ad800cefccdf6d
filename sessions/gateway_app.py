"""The gateway's quickfix Applications: thin, guarded, decode-and-hand-over.

Each callback runs on a quickfix session thread holding that session's lock. It
reads the message once (``tagvalue.fields``: one ``toString()``), hands a domain
command to the engine's queue and returns. It never touches order state, never waits on anything, and
never lets a Python exception reach quickfix (which would exit the process):

- quickfix's own exceptions (FieldNotFound, IncorrectTagValue, IncorrectDataFormat,
  UnsupportedMessageType, DoNotSend) are raised on purpose so quickfix answers with
  a session-level Reject / BusinessMessageReject, or skips a resend;
- any other exception is a bug: it is logged with the message, counted, and the
  sender gets a BusinessMessageReject naming the problem.
"""
from __future__ import annotations

import logging
import time
from threading import get_ident
from typing import Callable

import quickfix as fix

from fixspecs.redact import redact
from orders.commands import SessionStatus
from sessions.codec import decode, encode, tagvalue

log = logging.getLogger("fixgw.sessions")

QUICKFIX_ERRORS = (fix.FieldNotFound, fix.IncorrectTagValue, fix.IncorrectDataFormat,
                   fix.UnsupportedMessageType, fix.DoNotSend, fix.RejectLogon)

# Orders must never be re-sent to a venue by a sequence-level resend: a stale
# NewOrderSingle replayed with PossDupFlag=Y could trade twice. quickfix sends a
# SequenceReset-GapFill in their place when toApp raises DoNotSend.
NO_RESEND_TYPES = frozenset({"D", "F", "G", "q", "s", "E", "AB", "AC"})

ErrorHook = Callable[[str, str, BaseException], None]  # (callback, session, exc)
# (session name, SessionID text, Username (553) or None, Password (554) or None) -> reason to refuse, or None
LogonCheck = Callable[[str, str, "str | None", "str | None"], "str | None"]
# session name -> extra fields for our own outgoing Logon (an initiator's Username/Password), or None
LogonFields = Callable[[str], "dict[int, str] | None"]


class _Guarded(fix.Application):
    role = "?"
    # The thread that sends the gateway's own messages (the engine's core thread, through Outbound), set
    # once it runs. ``toApp`` on that thread sees only messages the codec encoded, fresh (a resend runs on
    # the session's own thread): it skips the checks meant for quickfix's own and resent messages, each a
    # call into the binding that lets go of the GIL.
    own_sender: int | None = None

    def __init__(self, names: dict[str, str], submit: Callable[[object], None], on_error: ErrorHook | None = None,
                 refuse_logon: LogonCheck | None = None, logon_fields: LogonFields | None = None):
        super().__init__()
        self._names = names  # SessionID text -> session name (the counterparty's CompID)
        self._submit = submit
        self._on_error = on_error or (lambda cb, session, exc: None)
        self._refuse_logon = refuse_logon or (lambda name, key, user, password: None)
        self._logon_fields = logon_fields or (lambda name: None)

    def _name(self, sid: fix.SessionID) -> str:
        key = sid.toString()
        return self._names.get(key, key)

    def _sender_name(self, f: tagvalue.Fields, sid: fix.SessionID) -> str:
        """The session name of an inbound message, from its own header (BeginString, TargetCompID,
        SenderCompID: the SessionID's text, which quickfix has checked against the session): no call into
        the binding, which would let go of the GIL. The SessionID's text if that names no session."""
        try:
            name = self._names.get(f"{f[8]}:{f[56]}->{f[49]}")
        except KeyError:
            name = None
        return name if name is not None else self._name(sid)

    def _bug(self, callback: str, sid: fix.SessionID, exc: BaseException, msg: fix.Message | None = None) -> None:
        """An unexpected exception: log it with the message, count it, tell the sender."""
        try:
            name = self._name(sid)
            raw = redact(msg.toString()).replace("\x01", "|") if msg is not None else ""
            raw = raw.encode("ascii", "backslashreplace").decode("ascii")  # bytes not UTF-8 came as surrogates
            log.error("internal error in %s for session %s: %r; message: %s", callback, name, exc, raw,
                      exc_info=exc, extra={"session": name})
            try:
                self._on_error(callback, name, exc)  # the metric and the journal event
            except Exception as hook:  # noqa: BLE001 - the sender's answer below must go out regardless
                log.critical("error hook failed in %s: %r", callback, hook)
            if msg is not None and callback == "fromApp":
                header = msg.getHeader()
                reject = encode.encode_business_reject(
                    header.getField(35) if header.isSetField(35) else "?",
                    header.getField(34) if header.isSetField(34) else None,
                    f"gateway could not process this message: internal error ({type(exc).__name__}); "
                    "it was journaled and not acted on",
                )
                fix.Session.sendToTarget(reject, sid)
        except BaseException as again:  # noqa: BLE001 - the guard itself must never fail outward
            log.critical("error while handling an error in %s: %r", callback, again)

    # -------------------------------------------------------------- lifecycle callbacks
    def onCreate(self, sid):
        pass

    def onLogon(self, sid):
        try:
            name = self._name(sid)
            log.info("session logged on: %s (%s)", name, sid.toString(), extra={"session": name, "role": self.role})
            self._submit(SessionStatus(name=name, role=self.role, up=True))
        except BaseException as exc:  # noqa: BLE001
            self._bug("onLogon", sid, exc)

    def onLogout(self, sid):
        try:
            name = self._name(sid)
            log.info("session logged out: %s (%s)", name, sid.toString(), extra={"session": name, "role": self.role})
            self._submit(SessionStatus(name=name, role=self.role, up=False))
        except BaseException as exc:  # noqa: BLE001
            self._bug("onLogout", sid, exc)

    def toAdmin(self, msg, sid):
        try:
            if msg.getHeader().getField(35) == "A":
                extra = self._logon_fields(self._name(sid))
                for tag, value in (extra or {}).items():
                    msg.setField(tag, value)  # an initiator's Username (553) / Password (554)
        except BaseException as exc:  # noqa: BLE001
            self._bug("toAdmin", sid, exc)

    def _check_logon(self, msg, sid) -> None:
        """Raise RejectLogon (quickfix answers with a Logout carrying the reason) if this Logon is refused."""
        name = self._name(sid)
        user = msg.getField(553) if msg.isSetField(553) else None
        password = msg.getField(554) if msg.isSetField(554) else None
        reason = self._refuse_logon(name, sid.toString(), user, password)
        del password
        if reason:
            log.warning("logon refused for %s: %s", name, reason, extra={"session": name, "reason": reason})
            raise fix.RejectLogon(reason)

    def fromAdmin(self, msg, sid):
        try:
            msg_type = msg.getHeader().getField(35)
            if msg_type == "A":
                self._check_logon(msg, sid)
            elif msg_type == "3":
                self._session_reject(msg.toString(), sid)
        except fix.RejectLogon:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._bug("fromAdmin", sid, exc)

    def _session_reject(self, raw: str, sid: fix.SessionID) -> None:
        """The peer refused one of our messages at session level (35=3)."""
        log.warning("session %s rejected our message: %s", self._name(sid), redact(raw).replace("\x01", "|"),
                    extra={"session": self._name(sid)})

    def toApp(self, msg, sid):
        pass

    def fromApp(self, msg, sid):
        try:
            self._dispatch(msg.toString(), sid, time.perf_counter_ns())
        except QUICKFIX_ERRORS:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._bug("fromApp", sid, exc, msg)

    def _dispatch(self, raw: str, sid: fix.SessionID, recv_ns: int) -> None:
        raise NotImplementedError


class ClientApplication(_Guarded):
    """Buy-side client sessions on the acceptor."""

    role = "client"
    # gateway.cfg [limits]: the bounds on quantities and prices the decoder accepts (decode.IntakeLimits)
    limits: decode.IntakeLimits = decode.DEFAULT_LIMITS

    def toApp(self, msg, sid):
        if get_ident() == self.own_sender:
            return
        try:
            # quickfix 1.16 puts ApplVerID (1137) in the body of the BusinessMessageReject it
            # generates on FIXT.1.1 sessions; a validating FIX 5.0 client rejects that. Our own
            # messages never carry it, so this one check is all it costs.
            if msg.isSetField(1137):
                msg.removeField(1137)
        except BaseException as exc:  # noqa: BLE001
            self._bug("toApp", sid, exc)

    def _dispatch(self, raw, sid, recv_ns):
        f = tagvalue.parse_fields(raw)
        self._submit(client_command(f, self._sender_name(f, sid), recv_ns, self.limits))


class VenueApplication(_Guarded):
    """Initiator sessions to venues."""

    role = "venue"

    # What we sent each venue by MsgSeqNum (sessions/sent_index.py), to map a Reject's RefSeqNum to a child
    # order; set by the gateway before the engines start.
    sent_index = None

    # Child ClOrdIDs the venue had not answered when the gateway restarted after a crash
    # (gateway.recovery.awaiting_venue): if the venue asks for them again, it never got
    # them, so they are re-sent (PossDupFlag=Y) instead of gap-filled. Filled in before
    # the engine starts; read-only afterwards.
    resendable: frozenset[str] = frozenset()

    # gateway.logon_watch.LogonWatch: says once, clearly, why the venue does not accept our logon; set by the
    # gateway before the engines start
    logon_watch = None

    def onLogon(self, sid):
        super().onLogon(sid)
        watch = self.logon_watch
        if watch is not None:
            try:
                watch.logged_on(self._name(sid))
            except BaseException as exc:  # noqa: BLE001
                self._bug("onLogon", sid, exc)

    def onLogout(self, sid):
        watch = self.logon_watch
        try:
            name = self._name(sid)
            if watch is not None and watch.ended(name):
                # never logged on: the watch said why (one warning, then rate-limited), not "logged out"
                log.debug("session %s (%s) ended before its logon was answered", name, sid.toString(),
                          extra={"session": name, "role": self.role})
                self._submit(SessionStatus(name=name, role=self.role, up=False))
                return
        except BaseException as exc:  # noqa: BLE001
            self._bug("onLogout", sid, exc)
        super().onLogout(sid)

    def toAdmin(self, msg, sid):
        super().toAdmin(msg, sid)
        watch = self.logon_watch
        if watch is not None:
            try:
                if msg.getHeader().getField(35) == "A":
                    watch.attempt(self._name(sid), sid.getBeginString().getValue(),
                                  sid.getSenderCompID().getValue(), sid.getTargetCompID().getValue())
            except BaseException as exc:  # noqa: BLE001
                self._bug("toAdmin", sid, exc)

    def fromAdmin(self, msg, sid):
        super().fromAdmin(msg, sid)
        watch = self.logon_watch
        if watch is not None:
            try:
                if msg.getHeader().getField(35) == "5":
                    watch.logout_received(self._name(sid), msg.getField(58) if msg.isSetField(58) else "")
            except BaseException as exc:  # noqa: BLE001
                self._bug("fromAdmin", sid, exc)

    def toApp(self, msg, sid):
        if get_ident() == self.own_sender:
            return
        try:
            header = msg.getHeader()
            if header.isSetField(43) and header.getField(43) == "Y" and header.getField(35) in NO_RESEND_TYPES:
                cl_ord_id = msg.getField(11) if msg.isSetField(11) else ""
                if cl_ord_id in self.resendable:
                    log.warning("re-sending %s %s to %s with PossDupFlag=Y: it was sent just before a crash "
                                "and the venue never received it", header.getField(35), cl_ord_id,
                                self._name(sid))
                    return
                log.warning("not resending %s %s to %s (stale order messages are gap-filled)",
                            header.getField(35), cl_ord_id or "", self._name(sid),
                            extra={"session": self._name(sid), **({"cl_ord_id": cl_ord_id} if cl_ord_id else {})})
                raise fix.DoNotSend()
        except fix.DoNotSend:
            raise
        except BaseException as exc:  # noqa: BLE001
            self._bug("toApp", sid, exc)

    def _session_reject(self, raw: str, sid: fix.SessionID) -> None:
        """A venue's session-level Reject of one of our messages: the core learns which child it concerns
        (desk/venue_reports.py), by the RefSeqNum of the message we sent."""
        super()._session_reject(raw, sid)
        f = tagvalue.parse_fields(raw)
        self._submit(decode.decode_venue_reject(f, self._sender_name(f, sid), self._ref(sid, f),
                                               time.perf_counter_ns()))

    def _ref(self, sid: fix.SessionID, f: tagvalue.Fields) -> tuple[str, str] | None:
        index = self.sent_index
        ref = f.get(45)
        if index is None or not ref or not ref.isdigit():
            return None
        return index.lookup(sid.toString(), int(ref))

    def _dispatch(self, raw, sid, recv_ns):
        f = tagvalue.parse_fields(raw)
        command = venue_command(f, self._sender_name(f, sid), recv_ns, raw,
                                ref=self._ref(sid, f) if f[35] == "j" else None)
        if command is not None:
            self._submit(command)


def client_command(f: tagvalue.Fields, name: str, recv_ns: int = 0,
                   limits: decode.IntakeLimits = decode.DEFAULT_LIMITS):
    """The domain command for a client's application message; quickfix's exceptions for bad ones.

    What it returns can always be answered: every string the command holds is printable ASCII and every
    number is within ``limits`` (codec, "Intake rule"); anything else raises IncorrectDataFormat (373=6) or
    IncorrectTagValue (373=5) naming the tag, and quickfix sends the session Reject.
    """
    msg_type = f[35]
    if msg_type == "D":
        return decode.decode_new_order(f, name, recv_ns, limits=limits)
    if msg_type == "F":
        return decode.decode_cancel_request(f, name, recv_ns)
    if msg_type == "G":
        return decode.decode_replace_request(f, name, recv_ns, limits=limits)
    if msg_type == "H":
        return decode.decode_status_request(f, name)
    if msg_type == "q":
        return decode.decode_mass_cancel(f, name)
    raise fix.UnsupportedMessageType()


MARKET_DATA_TYPES = frozenset({"W", "X"})


def venue_command(f: tagvalue.Fields, name: str, recv_ns: int = 0, raw: str | None = None,
                  ref: tuple[str, str] | None = None):
    """The domain command for a venue's application message, or None when it needs none.

    ``raw`` (the message's text) is needed for market data, whose repeating groups
    ``f`` (one value per tag) cannot hold. ``ref``: (MsgType, ClOrdID) of what we sent with a
    BusinessMessageReject's RefSeqNum (sessions/sent_index.py; None when replaying the journal).
    """
    msg_type = f[35]
    if msg_type == "8":
        return decode.decode_venue_exec(f, name, recv_ns)
    if msg_type == "9":
        return decode.decode_venue_cancel_reject(f, name, recv_ns)
    if msg_type == "X":
        return decode.decode_md_incremental(raw, name, recv_ns)
    if msg_type == "W":
        return decode.decode_md_snapshot(raw, name, recv_ns)
    if msg_type == "Y":
        return decode.decode_md_reject(raw, name)
    if msg_type == "j":  # a BusinessMessageReject of one of our messages
        return decode.decode_venue_reject(f, name, ref, recv_ns)
    raise fix.UnsupportedMessageType()


def replay_command(role: str, name: str, raw: str, limits: decode.IntakeLimits = decode.DEFAULT_LIMITS):
    """Decode a journaled inbound message as its session's callback would have; None if it is not one
    the gateway acts on (an exception from quickfix's set when it would have been rejected)."""
    f = tagvalue.parse_fields(raw)
    if role == "venue" and f.get(35) in MARKET_DATA_TYPES:
        return None  # quotes from before a restart are stale; the venue sends fresh ones when we subscribe
    try:
        return client_command(f, name, 0, limits) if role == "client" else venue_command(f, name, raw=raw)
    except QUICKFIX_ERRORS:
        return None
