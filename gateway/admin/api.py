"""The admin API: JSON on the gateway's HTTP endpoint under /admin/, for `fixgw` operator commands.

Every call needs the admin token (``Authorization: Bearer <token>``): from the
environment variable FIXGW_ADMIN_TOKEN, or else generated at start-up into
``<data_dir>/admin.token`` (mode 0600), where the CLI on the same machine finds
it. Every call, allowed or not, is logged and journaled as an operator action
(who, from where, what, the answer) in the journal's session_events table under
the session name ``operator``: also one the HTTP layer refused or dropped
(malformed framing, too large, too slow, the client gone: ``Admin.refused``).

Requests are checked before anything acts on them: the body is a JSON object
with only the fields the call takes, each of its type; every session, account
and symbol name must exist (gateway/admin/names.py). A malformed request gets a
400 naming the problem.

Reads of order state and every change run on the engine's core thread.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.security import secretstore
from gateway.admin.names import Names, UnknownName
from gateway.config import ConfigError, describe_schedule
from gateway.scheduling.reload import ReloadBusy
from risk.rules import RulesError, load_rules
from orders.commands import KillSwitch, OperatorCancel, OperatorClose, OperatorReconcile, ReloadRisk
from orders.model import OrdStatus
from orders.states import Event
from sessions.codec.encode import ord_rej_reason
from sessions.codec.tagvalue import fmt
from sessions.fixsettings import in_session_window

log = logging.getLogger("fixgw.admin")
TOKEN_ENV = "FIXGW_ADMIN_TOKEN"
TOKEN_FILE = "admin.token"


def admin_token(data_dir: Path, create: bool = False) -> str | None:
    """The admin token: the environment's, else the token file's (made if ``create``)."""
    env = secretstore.get(TOKEN_ENV)  # the environment or the secrets file
    if env:
        return env
    path = data_dir / TOKEN_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


ORDER_STATES = tuple(s.name.lower() for s in OrdStatus)  # what `orders list --state` takes
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _time(dt: datetime | None) -> str | None:
    """A time as operators read it: ISO 8601, UTC, milliseconds."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _order_row(o) -> dict:
    row = {
        "order_id": o.order_id, "session": o.session, "cl_ord_id": o.cl_ord_id, "account": o.account,
        "symbol": o.symbol, "side": o.side.name.lower(), "qty": str(o.qty), "price": str(o.price) if o.price else None,
        "ord_type": o.ord_type.name.lower(), "tif": o.tif.name.lower(), "status": o.status.name.lower(),
        "cum_qty": str(o.cum_qty), "leaves_qty": str(o.leaves_qty), "avg_px": fmt(o.avg_px),
        "venue": ",".join(o.venues) or None, "venue_cl_ord_id": o.venue_cl_ord_id,
        "venue_order_id": o.venue_order_id, "strategy": o.strategy, "in_doubt": o.in_doubt,
        "time": _time(o.accepted_at),
    }
    released = o.released
    if o.status is OrdStatus.REJECTED and released is not None and released[0] is Event.VENUE_REJECT:
        # every child was rejected at its venue: the Text the client got (desk.core, ``_finish``)
        row |= {"refused_by": f"venue {released[1]}",
                "reason": f"rejected by {released[1]}: {released[2] or 'no reason given'}"}
    return row


def _rejected_row(r, fix_version: str | None) -> dict:
    """An order refused at intake (``orders.records.RejectedOrder``), with the fields of a book order's row."""
    return {
        "order_id": r.order_id, "session": r.session, "cl_ord_id": r.cl_ord_id, "account": r.account,
        "symbol": r.symbol, "side": r.side.name.lower(), "qty": str(r.qty), "price": str(r.price) if r.price else None,
        "ord_type": r.ord_type.name.lower(), "tif": r.tif.name.lower(), "status": "rejected",
        "cum_qty": "0", "leaves_qty": "0", "avg_px": "0", "venue": None, "venue_cl_ord_id": None,
        "venue_order_id": None, "strategy": None, "in_doubt": None, "time": _time(r.received_at),
        "refused_by": r.refused_by, "reject_code": r.reject_code.value,
        "ord_rej_reason": ord_rej_reason(fix_version, r.reject_code) if fix_version else None,
        "reason": r.text, "refused_at_intake": True,
    }


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _payload(body: bytes) -> dict:
    """A POST's body: empty, or one JSON object."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except RecursionError:
        raise AdminError(400, "request body is not usable JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8/16/32
        raise AdminError(400, f"request body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AdminError(400, f"request body must be a JSON object ({{...}}), got {_json_kind(value)}")
    return value


def _only(payload: dict, *allowed: str) -> dict:
    """Refuse fields the call does not take: a misspelt one would otherwise be ignored, silently."""
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
        raise AdminError(400, f"unknown field(s) {', '.join(unknown)} in the request body ({takes})")
    return payload


def _opt_str(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(400, f"{key} must be a string, got {_json_kind(value)}")
    return value


def _opt_int(payload: dict, key: str) -> int | None:
    value = payload.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise AdminError(400, f"{key} must be a whole number, got {_json_kind(value)}")
    return value


def _flag(payload: dict, key: str) -> bool:
    value = payload.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise AdminError(400, f"{key} must be true or false, got {_json_kind(value)}")
    return value


def _operator(headers) -> str:
    """Who the caller says they are (X-Fixgw-Operator; the CLI sends the OS user): printable, at most 64 chars."""
    given = "".join(c for c in str(headers.get("X-Fixgw-Operator") or "") if c.isprintable())
    return given[:64] or "unknown"


def _px(v) -> str | None:
    return None if v is None else fmt(v)


def route_row(d) -> dict:
    """A RouteDecision as JSON: what the router saw, what it chose and why."""
    return {
        "at": d.at.isoformat(timespec="milliseconds"), "reason": d.reason, "strategy": d.strategy,
        "side": d.side.name.lower(), "qty": fmt(d.qty), "limit": _px(d.limit),
        "split": [{"venue": v, "qty": fmt(q), "child": child} for v, q, child in d.split],
        "unrouted": fmt(d.unrouted), "note": d.note,
        "quotes": [{"venue": q.venue, "up": q.up, "trades": q.trades, "bid": _px(q.bid), "bid_size": fmt(q.bid_size),
                    "ask": _px(q.ask), "ask_size": fmt(q.ask_size), "age_ms": q.age_ms, "trusted": q.trusted,
                    "take_fee": fmt(q.take_fee), "make_fee": fmt(q.make_fee), "priority": q.priority}
                   for q in d.quotes],
    }


def child_row(c) -> dict:
    return {"venue": c.venue, "child": c.child_id, "cl_ord_id": c.cl_ord_id, "qty": fmt(c.qty),
            "price": _px(c.price), "status": c.status.name.lower(), "cum_qty": fmt(c.cum_qty),
            "avg_px": fmt(c.avg_px), "venue_order_id": c.venue_order_id, "awaiting": c.awaiting,
            "status_asks": c.status_asks, "in_doubt": c.in_doubt}


def _order_detail(o) -> dict:
    """One order for `fixgw orders show`: its row, its children, and every routing decision taken for it."""
    return _order_row(o) | {"children": [child_row(c) for c in o.children],
                            "routes": [route_row(d) for d in o.routes]}


def _states(values: list[str]) -> set[OrdStatus] | None:
    """``state`` filters (repeated, or comma-separated) as OrdStatus; None: any."""
    wanted = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower().replace("-", "_")
            if not name:
                continue
            if name not in ORDER_STATES:
                raise AdminError(400, f"unknown order state {part.strip()!r} (valid: {', '.join(ORDER_STATES)})")
            wanted.add(OrdStatus[name.upper()])
    if values and not wanted:
        raise AdminError(400, f"state is empty (valid: {', '.join(ORDER_STATES)})")
    return wanted or None


def _time_filter(query: dict, key: str) -> int | None:
    """``since`` / ``until``: ISO 8601, parsed as `fixgw journal replay --since` parses it; microseconds."""
    from gateway.journal.replay import parse_time

    if key not in query:
        return None
    try:
        return parse_time(query[key][-1])
    except ValueError as exc:
        raise AdminError(400, f"{key}: {exc}") from None


def _brief(d: dict | None) -> dict | None:
    """What reconciliation can change in an order, for before/after."""
    if d is None:
        return None
    return {"status": d["status"], "cum_qty": d["cum_qty"], "avg_px": d["avg_px"], "in_doubt": d["in_doubt"],
            "children": [{k: c[k] for k in ("venue", "child", "status", "cum_qty", "in_doubt")}
                         for c in d["children"]]}


class Admin:
    def __init__(self, gateway, token: str):
        self._gw = gateway
        self._token = token.encode()
        self._known = Names(gateway)

    def handle(self, method: str, raw_path: str, body: bytes, headers, peer: str) -> tuple[int, dict]:
        operator = _operator(headers)
        url = urlsplit(raw_path)
        try:
            self._authorize(headers)
            payload = _payload(body) if method == "POST" else {}
            status, answer = 200, self._route(method, url.path, parse_qs(url.query), payload, operator)
        except AdminError as exc:
            status, answer = exc.status, {"error": str(exc)}
        except UnknownName as exc:
            status, answer = 400, {"error": str(exc)}
        self._journal(operator, peer, method, raw_path, body, str(status), answer.get("error") if status >= 400
                      else None)
        return status, answer

    def refused(self, method: str, raw_path: str, headers, peer: str, status: int | None, message: str) -> None:
        """Journal an admin call the HTTP layer refused (``status``) or dropped unanswered (None), and why.

        The token is not checked first: the request may not have arrived whole. The
        line says whether the caller presented a valid one.
        """
        try:
            self._authorize(headers)
            who = _operator(headers)
        except AdminError:
            who = f"{_operator(headers)} (no valid token)"
        self._journal(who, peer, method, raw_path, b"", "closed" if status is None else str(status), message)

    def _journal(self, operator: str, peer: str, method: str, raw_path: str, body: bytes, outcome: str,
                 error: str | None) -> None:
        what = f"{operator} from {peer}: {method} {raw_path[:500]}"
        if body:
            what += f" {body[:500].decode(errors='replace')}"
        line = f"{what} -> {outcome}" + (f" ({error[:300]})" if error else "")
        self._gw.journal.event("operator", line)
        (log.info if error is None else log.warning)("admin %s", line, extra={"operator": operator, "peer": peer})

    def _authorize(self, headers) -> None:
        given = headers.get("Authorization") or ""
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip().encode(), self._token):
            raise AdminError(401, "permission denied: missing or wrong admin token")

    # ------------------------------------------------------------------ routes
    def _route(self, method: str, path: str, query: dict, payload: dict, operator: str) -> dict:
        parts = [unquote(p) for p in path.split("/") if p][1:]  # drop "admin"
        if len(parts) >= 2 and parts[0] in ("sessions", "dropcopy"):
            parts[1] = self._known.session_name(parts[1])  # a full SessionID works as well as the name
        gw = self._gw
        if method == "GET" and parts == ["status"]:
            return self._status()
        if method == "GET" and parts == ["sessions"]:
            return {"sessions": self._sessions()}
        if method == "GET" and len(parts) == 2 and parts[0] == "sessions":
            self._known.check_session(parts[1])
            for s in self._sessions():
                if s["name"] == parts[1]:
                    return s
            raise AdminError(409, f"session {parts[1]} is being changed by a sessions reload: ask again")
        if method == "POST" and parts == ["sessions", "reload"]:
            return self._reload_sessions(operator, _flag(_only(payload, "dry_run"), "dry_run"))
        if method == "POST" and len(parts) == 3 and parts[0] == "sessions":
            return self._session_action(parts[1], parts[2], payload)
        if method == "POST" and parts == ["orders", "cancel-all"]:
            filters = self._filters(_only(payload, "session", "account", "symbol"))
            return self._request(OperatorCancel(**filters, operator=operator))
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "cancel":
            _only(payload)
            return self._request(OperatorCancel(order_id=parts[1], operator=operator))
        if method == "POST" and parts == ["orders", "reconcile"]:
            return self._reconcile(None, _only(payload, "wait_s"), operator)
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "reconcile":
            return self._reconcile(parts[1], _only(payload, "wait_s"), operator)
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "close":
            reason = _only(payload, "reason").get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise AdminError(400, "closing an order needs a reason (a non-empty string)")
            return self._request(OperatorClose(order_id=parts[1], reason=reason.strip()[:500], operator=operator))
        if method == "GET" and parts == ["orders"]:
            return self._orders(query)
        if method == "GET" and len(parts) == 2 and parts[0] == "orders":
            return self._order(unquote(parts[1]), query)
        if method == "GET" and parts == ["quotes"]:
            return {"quotes": gw.engine.call(lambda core: [
                {k: (_px(v) if k in ("bid", "ask", "bid_size", "ask_size") else v) for k, v in row.items()}
                for row in core.quote_table()]), "max_quote_age_s": str(gw.cfg.routing.max_quote_age_s)}
        if method == "GET" and parts == ["risk"]:
            return gw.engine.call(lambda core: core.risk_summary()) | {"rules_file": str(gw.cfg.risk.rules_file)}
        if method == "POST" and len(parts) == 3 and parts[0] == "dropcopy" and parts[2] == "replay":
            return self._dropcopy_replay(parts[1], payload)
        if method == "POST" and parts == ["risk", "reload"]:
            _only(payload)
            return self._reload()
        if method == "POST" and parts in (["risk", "kill"], ["risk", "unkill"]):
            return self._request(self._kill_switch(parts[1] == "kill", payload, operator))
        raise AdminError(404, f"no admin call {method} {path}")

    KILL_SCOPES = ("global", "session", "account", "symbol")

    def _kill_switch(self, engage: bool, payload: dict, operator: str) -> KillSwitch:
        """`fixgw risk kill|unkill SCOPE [KEY]`: the scope is required, the key must name something that exists.

        Releasing also takes the key of a switch engaged now, whatever it names.
        """
        _only(payload, "scope", "key", *(("reduce_only", "cancel_open") if engage else ()))
        scope, key = _opt_str(payload, "scope"), _opt_str(payload, "key") or ""
        if scope == "session":
            key = self._known.session_name(key)
        if scope not in self.KILL_SCOPES:
            given = "none given" if scope is None else f"got {scope!r}"
            raise AdminError(400, f"scope must be one of {', '.join(self.KILL_SCOPES)} ({given})")
        if scope == "global" and key:
            raise AdminError(400, f"a global kill switch takes no key (got {key!r}); "
                                  "for one session, account or symbol give that scope")
        if scope != "global":
            if not key:
                raise AdminError(400, f"a {scope} kill switch needs the {scope} it applies to")
            self._known.check(scope, key, also=() if engage else self._known.engaged(scope))
        return KillSwitch(scope=scope, key=key, engage=engage, reduce_only=_flag(payload, "reduce_only"),
                          cancel_open=_flag(payload, "cancel_open"), operator=operator)

    def _filters(self, given: dict, also: dict[str, set] | None = None) -> dict:
        """session / account / symbol filters (orders list, cancel-all): strings naming what exists, or None.
        A session may be given by its full SessionID; ``also``: more known names per kind."""
        filters = {key: _opt_str(given, key) for key in ("session", "account", "symbol")}
        if filters["session"] is not None:
            filters["session"] = self._known.session_name(filters["session"])
        for kind, name in filters.items():
            if name is not None:
                self._known.check(kind, name, also=(also or {}).get(kind, ()))
        return filters

    def _session_action(self, name: str, action: str, payload: dict) -> dict:
        gw = self._gw
        self._known.check_session(name)
        _only(payload, *(("sender", "target") if action == "set-seqnum" else ()))
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
                    core.risk_state.enable_session(name)
                gw.engine.call(enable)
            session.logon()  # lets an initiator reconnect / an acceptor session accept again
            return {"ok": True, "session": name}
        raise AdminError(404, f"unknown session action {action} "
                              "(logout, logon, disable, enable, set-seqnum, reset)")

    def _dropcopy_replay(self, name: str, payload: dict) -> dict:
        """`fixgw journal replay --to-session NAME`: journaled ExecutionReports to a drop-copy session, 97=Y."""
        from gateway.dropcopy.replay import NotLoggedOn
        from gateway.journal.replay import Filters

        service = self._gw.dropcopy
        self._known.check_dropcopy(name)
        # "session" filters journal rows by quickfix SessionID: history may hold sessions that no longer run
        _only(payload, "session", "direction", "since_us", "until_us", "msg_types", "cl_ord_id", "order_id")
        msg_types = payload.get("msg_types") or []
        if not isinstance(msg_types, list) or not all(isinstance(t, str) for t in msg_types):
            raise AdminError(400, f"msg_types must be a list of MsgType strings, got {msg_types!r:.60}")
        if any(t != "8" for t in msg_types):
            raise AdminError(400, "a drop-copy session only takes ExecutionReports (--msg-type 8)")
        filters = Filters(
            session_id=self._known.journal_session_id(payload["session"]) if _opt_str(payload, "session") else None,
            direction=_opt_str(payload, "direction"),
            since_us=_opt_int(payload, "since_us"), until_us=_opt_int(payload, "until_us"), msg_types=("8",),
            cl_ord_id=_opt_str(payload, "cl_ord_id"), order_id=_opt_str(payload, "order_id"))
        if filters.direction not in (None, "I", "O"):
            raise AdminError(400, "direction must be I or O")
        try:
            counts = service.replay(name, filters)
        except NotLoggedOn:
            raise AdminError(409, f"drop-copy session {name} is not logged on: nothing sent "
                                  "(copies replayed to a logged-out session would only wait in its store)") from None
        return {"session": name, **counts}

    def _sessions(self) -> list[dict]:
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

    ORDER_FILTERS = ("session", "account", "symbol", "state", "since", "until", "open", "in_doubt")

    def _orders(self, query: dict) -> dict:
        """`fixgw orders list`: the book and the orders refused at intake, filtered, oldest first."""
        unknown = sorted(set(query) - set(self.ORDER_FILTERS))
        if unknown:
            raise AdminError(400, f"unknown query parameter(s) {', '.join(unknown)} "
                                  f"(it takes {', '.join(self.ORDER_FILTERS)})")
        states = _states(query.get("state", []))
        since, until = _time_filter(query, "since"), _time_filter(query, "until")
        given = {k: query[k][-1] for k in ("session", "account", "symbol") if k in query}
        seen = None
        if given:  # names that only refused orders carry (an unknown symbol, say) are names too
            seen = self._gw.engine.call(lambda core: {k: {getattr(r, k) for r in core.rejected.values()} - {None}
                                                      for k in given})
        names = {k: v for k, v in self._filters(given, also=seen).items() if v is not None}
        open_only = query.get("open", ["0"])[-1] in ("1", "true", "yes")
        in_doubt = query.get("in_doubt", ["0"])[-1] in ("1", "true", "yes")
        versions = {name: c.fix_version for name, c in self._gw.cfg.clients.items()}

        def wanted(o, at: datetime | None) -> bool:
            if states is not None and o.status not in states:
                return False
            if any(getattr(o, k) != v for k, v in names.items()):
                return False
            if since is not None or until is not None:
                if at is None:
                    return False
                t = _us(at)
                return (since is None or t >= since) and (until is None or t < until)
            return True

        def rows(core):
            book = core.in_doubt_orders() if in_doubt else core.orders.values()
            found = [_order_row(o) for o in book if (not open_only or o.is_open) and wanted(o, o.accepted_at)]
            if not (open_only or in_doubt):  # refused orders are never open nor in doubt
                found += [_rejected_row(r, versions.get(r.session)) for r in core.rejected.values()
                          if wanted(r, r.received_at)]
            found.sort(key=lambda row: row["time"] or "")
            return {"orders": found, "rejected_kept": core.rejected_kept, "rejected_dropped": core.rejected_dropped}
        return self._gw.engine.call(rows)

    def _order(self, ident: str, query: dict) -> dict:
        """`fixgw orders show ID`: a book order or an order refused at intake by OrderID; with ``session``
        also by ClOrdID (the latest order with it; the others are listed under ``also``)."""
        unknown = sorted(set(query) - {"session"})
        if unknown:
            raise AdminError(400, f"unknown query parameter(s) {', '.join(unknown)} (it takes session)")
        session = query["session"][-1] if "session" in query else None
        versions = {name: c.fix_version for name, c in self._gw.cfg.clients.items()}

        def find(core):
            found = []
            o, r = core.orders.get(ident), core.rejected.get(ident)
            if o is not None and session in (None, o.session):
                found.append((o.accepted_at, _order_detail(o)))
            elif r is not None and session in (None, r.session):
                found.append((r.received_at, _rejected_row(r, versions.get(r.session)) | {"children": [],
                                                                                             "routes": []}))
            elif session is not None:
                o = core.order_for_client(session, ident)
                if o is not None:
                    found.append((o.accepted_at, _order_detail(o)))
                found += [(r.received_at, _rejected_row(r, versions.get(r.session)) | {"children": [], "routes": []})
                          for r in core.rejected.values() if r.session == session and r.cl_ord_id == ident]
            return [d for _, d in sorted(found, key=lambda f: f[0] or _EPOCH, reverse=True)]
        found = self._gw.engine.call(find)
        if not found:
            raise AdminError(404, f"unknown order {ident}" if session is None else
                             f"no order with OrderID or ClOrdID {ident} in session {session}")
        latest = found[0]
        if len(found) > 1:
            latest["also"] = [{k: d[k] for k in ("order_id", "status", "time", "reason") if k in d} for d in found[1:]]
        return latest

    def _reconcile(self, order_id: str | None, payload: dict, operator: str) -> dict:
        """Ask the venues for the state of one order's children (or every open order's), wait for the answers
        (``wait_s``, default 5, at most 60), and show what changed."""
        wait_s = payload.get("wait_s", 5)
        if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)) or not 0 <= wait_s <= 60:
            raise AdminError(400, f"wait_s must be a number of seconds from 0 to 60, got {wait_s!r}")
        engine = self._gw.engine

        def snapshot(core, ids):
            return {i: _order_detail(core.orders[i]) for i in ids if i in core.orders}

        ids = [order_id] if order_id is not None else engine.call(
            lambda core: [o.order_id for o in core.orders.values() if o.is_open or o.in_doubt])
        before = engine.call(lambda core: snapshot(core, ids))
        result = self._request(OperatorReconcile(order_id=order_id, operator=operator))
        asked = {(a["order_id"], a["child"]) for a in result["asked"]}

        def unanswered(core):
            left = []
            for oid, child_id in asked:
                order = core.orders.get(oid)
                child = next((c for c in order.children if c.child_id == child_id), None) if order else None
                if child is not None and child.status_asks and not child.in_doubt:
                    left.append({"order_id": oid, "child": child_id, "venue": child.venue})
            return left

        deadline = time.monotonic() + float(wait_s)
        left = engine.call(unanswered)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = engine.call(unanswered)
        after = engine.call(lambda core: snapshot(core, ids))
        changed = []
        for oid, now in after.items():
            was = before.get(oid)
            if was != now:
                changed.append({"order_id": oid, "before": _brief(was), "after": _brief(now)})
        return {"ok": True, "asked": result["asked"], "skipped": result["skipped"], "unanswered": left,
                "changed": changed,
                "in_doubt": [{"order_id": oid, "in_doubt": d["in_doubt"]} for oid, d in after.items() if d["in_doubt"]]}

    def _status(self) -> dict:
        from gateway.admin.http import health

        healthy, details = health(self._gw)
        sessions = self._sessions()
        return {
            "comp_id": self._gw.cfg.comp_id, "healthy": healthy, "problems": details["problems"],
            "uptime_seconds": details["uptime_seconds"], "pid": os.getpid(),
            "sessions_up": sum(s["logged_on"] for s in sessions), "sessions_total": len(sessions),
            "sessions": {s["name"]: s["logged_on"] for s in sessions},
            "schedules": {s["name"]: {k: s[k] for k in ("schedule", "in_session_window", "end_of_day")}
                          for s in sessions},
            "journal": details["journal"], "core_queue_depth": self._gw.engine.queue_depth(),
            "send_queue_depth": self._gw.engine.send_queue_depth(),
            "risk": self._gw.engine.call(lambda core: core.risk_summary()),
            "scheduled": [{"job": name, "next_run": when} for name, when in self._gw.scheduled_jobs()],
        }

    def _reload_sessions(self, operator: str, dry_run: bool) -> dict:
        try:
            return self._gw.reload_sessions(operator, dry_run)
        except ConfigError as exc:
            raise AdminError(400, f"{exc}\nthe configuration was refused: nothing was changed") from None
        except ReloadBusy as exc:
            raise AdminError(409, str(exc)) from None

    def _reload(self) -> dict:
        path = self._gw.cfg.risk.rules_file
        if path is None:
            raise AdminError(400, "risk checks are off: no [risk] rules_file is configured")
        try:
            rules = load_rules(Path(path).read_text(), str(path))
        except OSError as exc:
            raise AdminError(400, f"cannot read {path}: {exc.strerror}; the current rules stay in force") from None
        except RulesError as exc:
            raise AdminError(400, f"{exc}\nthe current rules stay in force") from None
        return self._request(ReloadRisk(rules, str(path)))

    def _request(self, command) -> dict:
        outcome = self._gw.engine.request(command)
        if outcome is None:
            raise AdminError(500, "the gateway failed on this request; see its log")
        result = outcome.result or {}
        if not result.get("ok", True):
            raise AdminError(400, result.get("error", "refused"))
        return result
