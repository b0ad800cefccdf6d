"""How gateway.cfg says orders are handled: the routing strategies (gateway-wide, per account, per client
session), pre-trade risk (the rules file, reference prices, the trading day), and what a client's order may carry at
all (intake limits)."""
from __future__ import annotations

from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.strict import StrictModel
from sessions.codec.tagvalue import DECIMALS_CEILING, LIMIT_CEILING

StrategyName = Literal["best-price", "preferred", "sweep"]


class StrategyChoice(StrictModel):
    strategy: StrategyName | None = Field(None, description="best-price, preferred or sweep")
    preferred_venues: tuple[str, ...] = Field((), description="preferred: the named venue, then its fallbacks")

    @model_validator(mode="after")
    def _venues_for_preferred(self):
        if self.preferred_venues and self.strategy != "preferred":
            raise ValueError("preferred_venues needs strategy = \"preferred\"")
        if len(set(self.preferred_venues)) != len(self.preferred_venues):
            raise ValueError("preferred_venues names a venue twice")
        return self


class AccountRouting(StrategyChoice):
    strategy: StrategyName


class RoutingConfig(StrategyChoice):
    """The smart order router's gateway-wide settings: the default strategy, per-account strategies."""

    strategy: StrategyName = Field("preferred", description="for orders whose account and session name none")
    max_quote_age_s: Decimal = Field(Decimal(5), gt=0, le=3600,
                                     description="a venue's quote older than this is not trusted for routing")
    accounts: dict[str, AccountRouting] = Field(default_factory=dict,
                                                description="strategy per Account (1), before the session's")
    max_reroutes: int = Field(0, ge=0, le=10, description="how often one order's rejected (or, with on_disconnect "
                                                         "= reroute, lost) quantity is routed again; 0: never")


class RiskConfig(StrictModel):
    rules_file: Path | None = Field(None, description="pre-trade risk rules (TOML); unset: no risk checks")
    reference_prices: dict[str, Decimal] = Field(
        default_factory=dict, description="reference price per symbol until the first trade is seen")
    # Per-day usage (risk/days.py): an account's daily notional rolls here; a client session's throttle breach
    # count rolls at its own [clients.NAME.schedule] start (00:00:00 UTC without a schedule).
    trading_day_start: dt_time = Field(
        dt_time(0), description="UTC time (HH:MM:SS) the trading day begins for per-account daily usage "
                                "(max_daily_notional): it starts again from the open orders then")

    @field_validator("trading_day_start")
    @classmethod
    def _whole_seconds_utc(cls, t: dt_time) -> dt_time:
        if t.tzinfo is not None or t.microsecond:
            raise ValueError("trading_day_start is whole seconds, HH:MM:SS, UTC, without a zone")
        return t


class LimitsConfig(StrictModel):
    """What a client's order may carry at all (sessions/codec.py, "Intake rule"): beyond these the message
    gets a session Reject naming the tag (373=5) and no order is created. Not risk limits ([risk] is for
    those): these are the sizes the gateway can carry through and write back exactly, so the ceilings keep
    every accepted value within what the codec formats without rounding (10**15, 10 decimal places)."""

    max_qty: Decimal = Field(Decimal(10) ** 12, gt=0, le=LIMIT_CEILING,
                             description="largest OrderQty (38) accepted, in units")
    max_price: Decimal = Field(Decimal(10) ** 12, gt=0, le=LIMIT_CEILING,
                               description="largest Price (44) or StopPx (99) accepted, in absolute value")
    max_decimals: int = Field(8, ge=0, le=DECIMALS_CEILING, description="most decimal places of a quantity or price "
                                                          "(trailing zeros not counted)")
    rejected_orders_kept: int = Field(10_000, ge=0, le=1_000_000,
                                      description="new orders refused at intake kept for `fixgw orders list "
                                                  "--state rejected` (the oldest dropped past it); 0: none")
