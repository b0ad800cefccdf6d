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
400 naming the problem (gateway/admin/request.py).

This module is the front door (the token, the journal line, which call a path
is); the calls are served by gateway/admin/session_calls.py, order_calls.py and
risk_calls.py. Reads of order state and every change run on the engine's core
thread.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from gateway.admin.names import Names, UnknownName
from gateway.admin.order_calls import OrderCalls
from gateway.admin.order_rows import px
from gateway.admin.request import AdminError, json_body
from gateway.admin.risk_calls import RiskCalls
from gateway.admin.session_calls import SessionCalls
from gateway.security import secretstore

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


def _operator(headers) -> str:
    """Who the caller says they are (X-Fixgw-Operator; the CLI sends the OS user): printable, at most 64 chars."""
    given = "".join(c for c in str(headers.get("X-Fixgw-Operator") or "") if c.isprintable())
    return given[:64] or "unknown"


class Admin:
    """The front door: checks the token, journals every call, and hands each to the calls that serve it
    (sessions, orders, risk; status and quotes here)."""

    def __init__(self, gateway, token: str):
        self._gw = gateway
        self._token = token.encode()
        self._known = Names(gateway)
        self.sessions = SessionCalls(gateway, self._known)
        self.orders = OrderCalls(gateway, self._known)
        self.risk = RiskCalls(gateway, self._known)

    def handle(self, method: str, raw_path: str, body: bytes, headers, peer: str) -> tuple[int, dict]:
        operator = _operator(headers)
        url = urlsplit(raw_path)
        try:
            self._authorize(headers)
            payload = json_body(body) if method == "POST" else {}
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
            return {"sessions": self.sessions.rows()}
        if method == "GET" and len(parts) == 2 and parts[0] == "sessions":
            return self.sessions.show(parts[1])
        if method == "POST" and parts == ["sessions", "reload"]:
            return self.sessions.reload(payload, operator)
        if method == "POST" and len(parts) == 3 and parts[0] == "sessions":
            return self.sessions.action(parts[1], parts[2], payload)
        if method == "POST" and parts == ["orders", "cancel-all"]:
            return self.orders.cancel_all(payload, operator)
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "cancel":
            return self.orders.cancel(parts[1], payload, operator)
        if method == "POST" and parts == ["orders", "reconcile"]:
            return self.orders.reconcile(None, payload, operator)
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "reconcile":
            return self.orders.reconcile(parts[1], payload, operator)
        if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] == "close":
            return self.orders.close(parts[1], payload, operator)
        if method == "GET" and parts == ["orders"]:
            return self.orders.list_orders(query)
        if method == "GET" and len(parts) == 2 and parts[0] == "orders":
            return self.orders.show(unquote(parts[1]), query)
        if method == "GET" and parts == ["quotes"]:
            return {"quotes": gw.engine.call(lambda core: [
                {k: (px(v) if k in ("bid", "ask", "bid_size", "ask_size") else v) for k, v in row.items()}
                for row in core.quote_table()]), "max_quote_age_s": str(gw.cfg.routing.max_quote_age_s)}
        if method == "GET" and parts == ["risk"]:
            return self.risk.show()
        if method == "POST" and len(parts) == 3 and parts[0] == "dropcopy" and parts[2] == "replay":
            return self.sessions.dropcopy_replay(parts[1], payload)
        if method == "POST" and parts == ["risk", "reload"]:
            return self.risk.reload(payload, operator)
        if method == "POST" and parts in (["risk", "kill"], ["risk", "unkill"]):
            return self.risk.kill_switch(parts[1] == "kill", payload, operator)
        raise AdminError(404, f"no admin call {method} {path}")

    def _status(self) -> dict:
        from gateway.admin.http import health

        healthy, details = health(self._gw)
        sessions = self.sessions.rows()
        return {
            "comp_id": self._gw.cfg.comp_id, "healthy": healthy, "problems": details["problems"],
            "uptime_seconds": details["uptime_seconds"], "pid": os.getpid(),
            "sessions_up": sum(s["logged_on"] for s in sessions), "sessions_total": len(sessions),
            "sessions": {s["name"]: s["logged_on"] for s in sessions},
            "schedules": {s["name"]: {k: s[k] for k in ("schedule", "in_session_window", "end_of_day")}
                          for s in sessions},
            "journal": details["journal"], "state_log": details["state_log"], "core_queue_depth": self._gw.engine.queue_depth(),
            "send_queue_depth": self._gw.engine.send_queue_depth(),
            "risk": self._gw.engine.call(lambda core: core.risk_summary()),
            "scheduled": [{"job": name, "next_run": when} for name, when in self._gw.scheduled_jobs()],
        }
