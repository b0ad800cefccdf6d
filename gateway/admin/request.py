"""What every admin call shares: its refusal (AdminError, with the HTTP status), the checks of its JSON body
and fields, and handing a command to the engine with a refusal turned into an AdminError."""
from __future__ import annotations

import json


class AdminError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def json_body(body: bytes) -> dict:
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
        raise AdminError(400, f"request body must be a JSON object ({{...}}), got {json_kind(value)}")
    return value


def only(payload: dict, *allowed: str) -> dict:
    """Refuse fields the call does not take: a misspelt one would otherwise be ignored, silently."""
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        takes = f"it takes {', '.join(allowed)}" if allowed else "it takes none"
        raise AdminError(400, f"unknown field(s) {', '.join(unknown)} in the request body ({takes})")
    return payload


def opt_str(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise AdminError(400, f"{key} must be a string, got {json_kind(value)}")
    return value


def opt_int(payload: dict, key: str) -> int | None:
    value = payload.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise AdminError(400, f"{key} must be a whole number, got {json_kind(value)}")
    return value


def flag(payload: dict, key: str) -> bool:
    value = payload.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise AdminError(400, f"{key} must be true or false, got {json_kind(value)}")
    return value


def cluster_request(controls, kind: str, body: dict, operator: str) -> dict:
    """Issue a control for every shard of a sharded cluster (gateway/process/cluster_controls.py); this shard's
    refusal is a 400, not applying it in time a 503."""
    try:
        result = controls.issue(kind, body, operator)
    except TimeoutError as exc:
        raise AdminError(503, str(exc)) from None
    if not result.get("ok", True):
        raise AdminError(400, result.get("error", "refused"))
    return result


def engine_request(gateway, command) -> dict:
    """Run an operator command on the engine's core thread; its refusal is a 400, its failure a 500."""
    outcome = gateway.engine.request(command)
    if outcome is None:
        raise AdminError(500, "the gateway failed on this request; see its log")
    result = outcome.result or {}
    if not result.get("ok", True):
        raise AdminError(400, result.get("error", "refused"))
    return result
