"""The admin API's session calls: `fixgw sessions list|show|reload`, a session's logout, logon, disable, enable,
set-seqnum and reset, and `fixgw journal replay --to-session` to a drop-copy session."""
from __future__ import annotations

import time

from gateway.admin.names import Names
from gateway.admin.request import AdminError, flag, only, opt_int, opt_str
from gateway.config import ConfigError, describe_schedule
from gateway.scheduling.reload import ReloadBusy
from sessions.fixsettings import in_session_window


class SessionCalls:
    """Shows the gateway's FIX sessions and acts on them for the admin API."""

    def __init__(self, gateway, known: Names):
        self._gw = gateway
        self._known = known

    def rows(self) -> list[dict]:
        """Every running session: role, state, sequence numbers, message counts, schedule, port."""
        gw = self._gw
        rows = []
        cfg = gw.cfg
        for role, sids, configs in (("client", gw.client_sids, cfg.clients), ("venue", gw.venue_sids, cfg.venues),
                                    ("dropcopy", gw.dropcopy_sids, cfg.dropcopy.sessions)):
            for name, sid in sids.items():
                session = gw.session(name)
                c = configs.get(name)
                if c is None:  # a sessions reload is between its two updates
                    continue
                rows.append({
                    "name": name, "role": role, "fix_version": c.fix_version, "session_id": sid.toString(),
                    "logged_on": bool(session is not None and session.isLoggedOn()),
                    "next_sender_seqnum": session.getExpectedSenderNum() if session else None,
                    "next_target_seqnum": session.getExpectedTargetNum() if session else None,
                    "messages_in": sum(n for (s, d, _), n in dict(gw.journal.message_counts).items()
                                       if s == sid.toString() and d == "I"),
                    "messages_out": sum(n for (s, d, _), n in dict(gw.journal.message_counts).items()
                                        if s == sid.toString() and d == "O"),
                    "schedule": describe_schedule(getattr(c, "schedule", None)),
                    "in_session_window": in_session_window(session) if session is not None else None,
                    "end_of_day": (f"{c.end_of_day.isoformat()} {c.timezone}"
                                   if role == "client" and c.end_of_day is not None else None),
                    "port": (cfg.client_port(name) if role == "client" else
                             cfg.dropcopy.port if role == "dropcopy" else c.port),
                })
                if role == "venue" and getattr(gw, "logon_watch", None) is not None:
                    # at, reason (logout, disconnect, timeout), detail, failed_attempts since the last logon
                    rows[-1]["last_logon_failure"] = gw.logon_watch.last_failure(name)
        return rows

    def show(self, name: str) -> dict:
        self._known.check_session(name)
        for s in self.rows():
            if s["name"] == name:
                return s
        raise AdminError(409, f"session {name} is being changed by a sessions reload: ask again")

    def reload(self, payload: dict, operator: str) -> dict:
        dry_run = flag(only(payload, "dry_run"), "dry_run")
        try:
            return self._gw.reload_sessions(operator, dry_run)
        except ConfigError as exc:
            raise AdminError(400, f"{exc}\nthe configuration was refused: nothing was changed") from None
        except ReloadBusy as exc:
            raise AdminError(409, str(exc)) from None

    def action(self, name: str, action: str, payload: dict) -> dict:
        gw = self._gw
        self._known.check_session(name)
        only(payload, *(("sender", "target") if action == "set-seqnum" else ()))
        session = gw.session(name)
        if session is None:
            raise AdminError(409, f"session {name} is not running")
        if action in ("logout", "disable"):
            if action == "disable":
                if name not in gw.client_sids:
                    raise AdminError(400, "only client sessions can be disabled; log a venue out instead")
                gw.engine.call(lambda core: core.operator_disabled.add(name))  # recorded: survives a restart
            was_on = session.isLoggedOn()
            if was_on:
                session.logout(f"{action} by operator")
            if action == "disable":
                # quickfix's logout() also stops the session accepting logons, silently. Once the
                # client is out, let logons through again so the gateway refuses them with a reason.
                deadline = time.monotonic() + 5
                while session.isLoggedOn() and time.monotonic() < deadline:
                    time.sleep(0.05)
                session.logon()
            return {"ok": True, "session": name, "was_logged_on": was_on}
        if action in ("set-seqnum", "reset"):
            if session.isLoggedOn():
                raise AdminError(409, f"session {name} is logged on: log it out first "
                                      f"(fixgw sessions logout {name}), then {action}, then logon")
            if action == "reset":
                session.reset()  # both sequence numbers back to 1, stored messages dropped
            else:
                sender, target = payload.get("sender"), payload.get("target")
                if sender is None and target is None:
                    raise AdminError(400, "give --sender N, --target N or both")
                for label, value in (("sender", sender), ("target", target)):
                    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                        raise AdminError(400, f"--{label} must be a positive whole number, got {value!r}")
                if sender is not None:
                    session.setNextSenderMsgSeqNum(sender)
                if target is not None:
                    session.setNextTargetMsgSeqNum(target)
            answer = {"ok": True, "session": name, "next_sender_seqnum": session.getExpectedSenderNum(),
                      "next_target_seqnum": session.getExpectedTargetNum()}
            if name in gw.dropcopy_sids and gw.dropcopy is not None and (action == "reset" or sender is not None):
                # the copies in the session's store can no longer be re-sent by quickfix: from the journal
                # (after the answer is read: the re-sent copies take the next sequence numbers at once)
                from sessions.dropcopy import StreamReset

                gw.dropcopy.notify(StreamReset(name, f"operator {action}"))
            return answer
        if action in ("logon", "enable"):
            if action == "enable":
                def enable(core):
                    core.operator_disabled.discard(name)
                    core.risk_state.throttle.enable(name)
                gw.engine.call(enable)
            session.logon()  # lets an initiator reconnect / an acceptor session accept again
            return {"ok": True, "session": name}
        raise AdminError(404, f"unknown session action {action} "
                              "(logout, logon, disable, enable, set-seqnum, reset)")

    def dropcopy_replay(self, name: str, payload: dict) -> dict:
        """`fixgw journal replay --to-session NAME`: journaled ExecutionReports to a drop-copy session, 97=Y."""
        from gateway.dropcopy.replay import NotLoggedOn
        from gateway.journal.replay import Filters

        service = self._gw.dropcopy
        self._known.check_dropcopy(name)
        # "session" filters journal rows by quickfix SessionID: history may hold sessions that no longer run
        only(payload, "session", "direction", "since_us", "until_us", "msg_types", "cl_ord_id", "order_id")
        msg_types = payload.get("msg_types") or []
        if not isinstance(msg_types, list) or not all(isinstance(t, str) for t in msg_types):
            raise AdminError(400, f"msg_types must be a list of MsgType strings, got {msg_types!r:.60}")
        if any(t != "8" for t in msg_types):
            raise AdminError(400, "a drop-copy session only takes ExecutionReports (--msg-type 8)")
        filters = Filters(
            session_id=self._known.journal_session_id(payload["session"]) if opt_str(payload, "session") else None,
            direction=opt_str(payload, "direction"),
            since_us=opt_int(payload, "since_us"), until_us=opt_int(payload, "until_us"), msg_types=("8",),
            cl_ord_id=opt_str(payload, "cl_ord_id"), order_id=opt_str(payload, "order_id"))
        if filters.direction not in (None, "I", "O"):
            raise AdminError(400, "direction must be I or O")
        try:
            counts = service.replay(name, filters)
        except NotLoggedOn:
            raise AdminError(409, f"drop-copy session {name} is not logged on: nothing sent "
                                  "(copies replayed to a logged-out session would only wait in its store)") from None
        return {"session": name, **counts}
