"""The pre-trade risk rules file: format, validation and scope resolution.

Pure Python: no I/O beyond parsing the text it is given, no clock reads.

Format
------
TOML, read with ``tomllib.loads(text, parse_float=Decimal)`` so every price,
quantity and notional is a ``Decimal``. Validated by frozen pydantic models that
reject unknown keys (the error names the key path)::

    chain = ["kill_switch", "throttle", "max_order_qty", "price_band"]  # run in this order
    shadow_checks = ["price_band"]         # optional: whole checks that only report

    [limits]                               # global scope
    max_order_qty = 100000
    price_band_pct = { value = 10, shadow = true }   # one limit in shadow mode

    [sessions.CLIENT42]                    # per client session (SenderCompID)
    max_order_qty = 5000

    [accounts.ACC1]                        # per account (Account, tag 1)
    max_daily_notional = 2000000           # per trading day (risk/days.py)
    account_throttle_msgs = 300            # messages per window for this account, across sessions

    [symbols.AAPL]                         # per symbol
    trading_hours = { start = 09:30:00, end = 16:00:00, timezone = "America/New_York" }

    [account_symbols.ACC1.AAPL]            # per account + symbol
    max_position = 20000

    [firm]                                 # the whole firm: every account's orders together
    max_gross_exposure = 50000000          # check firm_limits; not a scope: nothing overrides these
    max_daily_notional = 200000000

Every limit is either a plain value or an inline table ``{ value = ..., shadow = true }``.
A shadow limit is evaluated and reported as "would have rejected" but never
blocks. A check named in ``shadow_checks`` is shadow whatever its limits say.

Precedence ("the most specific scope wins")
-------------------------------------------
Resolution is per limit (field by field): for each limit, the first of these
scopes that sets it supplies value, shadow flag and scope label::

    1. account_symbols.<account>.<symbol>
    2. accounts.<account>
    3. sessions.<session>
    4. symbols.<symbol>
    5. limits (global)

Rationale: who is trading (account, narrower than the client session that may
carry many accounts) overrides what is traded; an instrument-specific limit for
one account is the narrowest of all. A limit set in no scope is off. An order
without an Account only matches global, session and symbol scopes.
``resolve_limits`` implements this and is the only place it is decided.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Check names, in the default order. ``risk.checks.CHECKS`` implements exactly these.
CHECK_NAMES: tuple[str, ...] = (
    "kill_switch",
    "throttle",
    "restricted_symbols",
    "market_orders",
    "trading_hours",
    "max_order_qty",
    "max_order_notional",
    "price_band",
    "duplicate_order",
    "max_open_orders",
    "max_position",
    "max_gross_exposure",
    "max_net_exposure",
    "daily_notional",
    "firm_limits",
)
CheckName = Literal[CHECK_NAMES]  # type: ignore[valid-type]

ReferenceSource = Literal["last", "mid", "file"]
# The inbound application messages a client session sends the gateway (the ones it answers; quickfix itself
# refuses any other with a BusinessMessageReject): NewOrderSingle, OrderCancelRequest,
# OrderCancelReplaceRequest, OrderStatusRequest, OrderMassCancelRequest.
ClientMsgType = Literal["D", "F", "G", "H", "q"]
CLIENT_MSG_TYPES: tuple[str, ...] = ("D", "F", "G", "H", "q")

T = TypeVar("T")
PosDec = Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
PosInt = Annotated[int, Field(gt=0, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lim(_Strict, Generic[T]):
    """One limit's value and whether it only reports (shadow)."""

    value: T
    shadow: bool = False


class TradingHours(_Strict):
    """Local trading hours in ``timezone``; ``start > end`` means the session spans midnight."""

    start: time
    end: time
    timezone: str = "UTC"
    weekdays: tuple[Annotated[int, Field(ge=0, le=6)], ...] = (0, 1, 2, 3, 4)  # Monday = 0

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> "TradingHours":
        if self.start == self.end:
            raise ValueError("start and end are equal: the market would never be open")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class _LimitTable(_Strict):
    """A table of limits, each a plain value or ``{ value = ..., shadow = true }``."""

    @model_validator(mode="before")
    @classmethod
    def _wrap_plain_values(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {}
        for key, v in data.items():
            if isinstance(v, dict) and "value" in v:
                out[key] = v
            else:
                out[key] = {"value": v}
        return out


class Limits(_LimitTable):
    """The limits one scope may set. Every field is optional; unset means "inherit"."""

    max_order_qty: Lim[PosDec] | None = None
    max_order_notional: Lim[PosDec] | None = None
    # price band: percent of the reference, or a number of ticks of tick_size
    price_band_pct: Lim[PosDec] | None = None
    price_band_ticks: Lim[PosInt] | None = None
    tick_size: Lim[PosDec] | None = None
    reference_sources: Lim[tuple[ReferenceSource, ...]] | None = None  # preference order
    no_reference: Lim[Literal["reject", "allow"]] | None = None  # price band without a reference
    max_open_orders: Lim[PosInt] | None = None  # per client session
    max_position: Lim[PosDec] | None = None  # quantity, per account+symbol, worst case with open orders
    max_gross_exposure: Lim[PosDec] | None = None  # notional, per account
    max_net_exposure: Lim[PosDec] | None = None  # notional, per account
    max_symbol_gross_exposure: Lim[PosDec] | None = None  # notional, per account+symbol
    max_symbol_net_exposure: Lim[PosDec] | None = None  # notional, per account+symbol
    max_daily_notional: Lim[PosDec] | None = None  # per account: filled + open notional today
    restricted_symbols: Lim[tuple[str, ...]] | None = None
    allow_market_orders: Lim[bool] | None = None
    trading_hours: Lim[TradingHours] | None = None
    duplicate_window_ms: Lim[PosInt] | None = None
    throttle_msgs: Lim[PosInt] | None = None  # reject above this many messages per window, per client session
    throttle_logout_msgs: Lim[PosInt] | None = None  # log the session out above this many
    throttle_window_ms: Lim[PosInt] | None = None  # default 1000
    throttle_disable_after: Lim[PosInt] | None = None  # disable the session after N breaches in a trading day
    account_throttle_msgs: Lim[PosInt] | None = None  # reject above this many messages per window, per Account
    # the MsgTypes the throttle counts and limits; unset: every inbound application message (D F G H q)
    throttle_msg_types: Lim[tuple[ClientMsgType, ...]] | None = None
    # cancels (F) and mass cancels (q) over a throttle limit: counted but let through (false, the default: a
    # client must always be able to reduce its risk), or refused like any other message (true)
    throttle_refuse_cancels: Lim[bool] | None = None



LIMIT_NAMES: tuple[str, ...] = tuple(Limits.model_fields)


class FirmLimits(_LimitTable):
    """``[firm]``: limits over every account's orders together (check ``firm_limits``). Not a scope of the
    precedence above: no other section sets or overrides them."""

    max_gross_exposure: Lim[PosDec] | None = None  # notional: every account's positions and open orders
    max_daily_notional: Lim[PosDec] | None = None  # every account's filled + open notional today


#: The firm's limits as the checks see them in EffectiveLimits (scope "firm").
FIRM_LIMIT_NAMES: dict[str, str] = {"max_gross_exposure": "firm_max_gross_exposure",
                                    "max_daily_notional": "firm_max_daily_notional"}


class RulesFile(_Strict):
    version: Literal[1] = 1
    chain: tuple[CheckName, ...] = CHECK_NAMES
    shadow_checks: tuple[CheckName, ...] = ()
    limits: Limits = Limits()
    sessions: dict[str, Limits] = {}
    accounts: dict[str, Limits] = {}
    symbols: dict[str, Limits] = {}
    account_symbols: dict[str, dict[str, Limits]] = {}
    firm: FirmLimits = FirmLimits()

    @model_validator(mode="after")
    def _firm_limits_checked(self) -> "RulesFile":
        if self.firm.model_fields_set and "firm_limits" not in self.chain:
            raise ValueError(f"[firm] sets {', '.join(sorted(self.firm.model_fields_set))} but the chain does not "
                             "run check firm_limits: add it to chain")
        return self

    @field_validator("chain")
    @classmethod
    def _no_repeats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        seen = set()
        for name in v:
            if name in seen:
                raise ValueError(f"check {name!r} is listed twice")
            seen.add(name)
        return v


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


class RulesError(Exception):
    """The rules file is invalid; ``problems`` lists every problem found (file, key path, message)."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("invalid risk rules:\n" + "\n".join(f"  {p}" for p in problems))


def _path(loc: tuple) -> str:
    # drop pydantic's internal wrapper steps ("value" of a Lim is kept: it is the user's key too)
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith(("function-", "tagged-union")))]
    return ".".join(parts) or "(top level)"


def load_rules(text: str, source: str = "<rules>") -> RulesFile:
    """Parse and validate a rules file. Raises ``RulesError`` listing every problem.

    Meant for hot reload: on error the caller keeps its current rules.
    """
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError([Problem(source, "(file)", f"not valid TOML: {exc}")]) from None
    try:
        return RulesFile.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "literal_error" and err["loc"][:1] in (("chain",), ("shadow_checks",)):
                msg = f"unknown check name {err['input']!r} (known: {', '.join(CHECK_NAMES)})"
            problems.append(Problem(source, _path(err["loc"]), msg))
        raise RulesError(problems) from None


# --------------------------------------------------------------------------- resolution
@dataclass(frozen=True, slots=True)
class Resolved:
    value: Any
    shadow: bool
    scope: str  # "global", "session CLIENT42", "account ACC1", "symbol AAPL", "account+symbol ACC1/AAPL"


class EffectiveLimits:
    """The limits that apply to one (session, account, symbol): limit name → Resolved (absent = off)."""

    __slots__ = ("values", "shadow_checks", "get", "derived")

    def __init__(self, values: dict[str, Resolved], shadow_checks: frozenset[str] = frozenset()):
        self.values = values
        self.shadow_checks = shadow_checks
        # what a caller works out from these limits once and reuses for every order they apply to (the shared
        # limits' list: risk/shared_budget.py); these limits never change, a reload resolves new ones
        self.derived: dict[str, Any] = {}
        # get(name) -> Resolved | None: the dict's own method, so the checks' many lookups stay in C
        self.get = values.get

    def value(self, name: str, default: Any = None) -> Any:
        r = self.values.get(name)
        return default if r is None else r.value

    def __repr__(self) -> str:
        return f"EffectiveLimits({self.values!r})"


def scopes_for(rules: RulesFile, session: str, account: str | None, symbol: str) -> list[tuple[str, Limits]]:
    """The scopes that apply, most specific first (the precedence order of the module docstring)."""
    out: list[tuple[str, Limits]] = []
    if account is not None:
        per_acct = rules.account_symbols.get(account)
        if per_acct is not None and symbol in per_acct:
            out.append((f"account+symbol {account}/{symbol}", per_acct[symbol]))
        if account in rules.accounts:
            out.append((f"account {account}", rules.accounts[account]))
    if session in rules.sessions:
        out.append((f"session {session}", rules.sessions[session]))
    if symbol in rules.symbols:
        out.append((f"symbol {symbol}", rules.symbols[symbol]))
    out.append(("global", rules.limits))
    return out


def resolve_limits(rules: RulesFile, session: str, account: str | None, symbol: str) -> EffectiveLimits:
    """Field by field, the most specific scope that sets a limit wins."""
    values: dict[str, Resolved] = {}
    for scope, lims in reversed(scopes_for(rules, session, account, symbol)):
        for name in lims.model_fields_set:
            lim = getattr(lims, name)
            if lim is not None:
                values[name] = Resolved(lim.value, lim.shadow, scope)
    for name in rules.firm.model_fields_set:
        lim = getattr(rules.firm, name)
        if lim is not None:
            values[FIRM_LIMIT_NAMES[name]] = Resolved(lim.value, lim.shadow, "firm")
    return EffectiveLimits(values, frozenset(rules.shadow_checks))
