"""A client session's options as the core sees them (from its [session] section in the configuration)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from routing.router import StrategySpec


@dataclass(frozen=True, slots=True)
class ClientOptions:
    pending_new: bool = True
    cancel_on_disconnect: bool = False
    accounts: frozenset[str] | None = None  # the Accounts (1) the session may use; None: any
    strategy: StrategySpec | None = None  # the session's routing strategy (None: the account's or the default)
    day_start: time | None = None  # UTC: where the session's per-day risk usage rolls (its schedule's start)


# The options of a session without any configured: one shared instance (it is frozen), not a new one per
# lookup, which was made twice per new order on the core thread.
DEFAULT_OPTIONS = ClientOptions()
