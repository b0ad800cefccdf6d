"""Kill switches: the operator's halts and reduce-only modes engaged per scope, and the strictest one an order meets.

A switch is engaged for a scope and a key: ``global`` (key ``""``), a client ``session``, an ``account`` or a
``symbol``; its mode is ``halt`` (nothing new gets through) or ``reduce_only`` (only orders that reduce a position;
the kill-switch check judges that against the exposure).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from orders.commands import NewOrder

KILL_SCOPES = ("global", "session", "account", "symbol")
KILL_MODES = ("halt", "reduce_only")


@dataclass(slots=True)
class KillSwitches:
    engaged: dict[tuple[str, str], str] = field(default_factory=dict)  # (scope, key) -> mode

    def matching(self, order: NewOrder) -> tuple[str, str, str] | None:
        """The strictest switch matching the order: (mode, scope, key), halt before reduce_only."""
        engaged = self.engaged
        if not engaged:
            return None
        found = None
        for scope, key in (("global", ""), ("session", order.session), ("account", order.account or ""),
                           ("symbol", order.symbol)):
            mode = engaged.get((scope, key))
            if mode == "halt":
                return mode, scope, key
            if mode is not None and found is None:
                found = (mode, scope, key)
        return found

    def engage(self, scope: str, key: str = "", mode: str = "halt") -> None:
        if scope not in KILL_SCOPES:
            raise ValueError(f"kill switch scope must be one of {KILL_SCOPES}, got {scope!r}")
        if mode not in KILL_MODES:
            raise ValueError(f"kill switch mode must be one of {KILL_MODES}, got {mode!r}")
        self.engaged[(scope, "" if scope == "global" else key)] = mode

    def release(self, scope: str, key: str = "") -> bool:
        """Release a switch; False if it was not engaged."""
        return self.engaged.pop((scope, "" if scope == "global" else key), None) is not None

    # ------------------------------------------------------------------ RiskState.snapshot's part
    def snapshot(self) -> dict:
        return {"kill": [[scope, key, mode] for (scope, key), mode in self.engaged.items()]}

    @classmethod
    def from_snapshot(cls, data: dict) -> "KillSwitches":
        return cls({(scope, key): mode for scope, key, mode in data.get("kill", [])})
