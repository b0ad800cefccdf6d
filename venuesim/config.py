"""The venue simulator's settings ([venues.NAME.simulator] in gateway.cfg): its book and how it misbehaves.

Pydantic models, read by gateway.config as part of a venue's table; no I/O.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- venue simulator misbehaviour (issue 17): a venue that answers badly or not at all, for testing the gateway
NewOrderMode = Literal["normal", "session_reject", "business_reject", "silent"]
CancelMode = Literal["normal", "business_reject", "silent"]
StatusMode = Literal["normal", "business_reject", "silent"]
BUSINESS_REJECT_REASONS = {
    0: "Other", 1: "Unknown ID", 2: "Unknown Security", 3: "Unsupported Message Type",
    4: "Application not available", 5: "Conditionally required field missing", 6: "Not authorized",
    7: "DeliverTo firm not available at this time",
}


class SymbolMisbehaviour(_Strict):
    """One symbol's misbehaviour; an unset key falls back to the venue-wide setting."""

    new_order: NewOrderMode | None = None
    cancel: CancelMode | None = None
    replace: NewOrderMode | None = None
    status: StatusMode | None = None


class MisbehaviourConfig(_Strict):
    """How a simulated venue answers (or fails to answer) the gateway's child orders.

    normal: as a venue should. session_reject: a session-level Reject (35=3) with exactly the
    fields QuickFIX's example executor sends for an order type it does not take (45, 58=Value is
    incorrect (out of range) for this tag, 371=40, 372, 373=5). business_reject: a
    BusinessMessageReject (35=j, 45, 372, 379=ClOrdID, 380=business_reject_reason). silent: the
    message is accepted at the session level (its sequence number is used up) and then ignored:
    no answer, no order, nothing in the book.
    """

    new_order: NewOrderMode = Field("normal", description="answer to a NewOrderSingle (D)")
    cancel: CancelMode = Field("normal", description="answer to an OrderCancelRequest (F)")
    replace: NewOrderMode = Field("normal", description="answer to an OrderCancelReplaceRequest (G)")
    status: StatusMode = Field("normal", description="answer to an OrderStatusRequest (H) and an "
                                                     "OrderMassStatusRequest (AF)")
    symbols: dict[str, SymbolMisbehaviour] = Field(
        default_factory=dict, description="per-symbol overrides of the keys above, e.g. "
                                          "symbols = { IBM = { new_order = \"silent\" } }")
    business_reject_reason: int = Field(3, ge=0, le=7, description="BusinessRejectReason (380) of the deliberate "
                                                                   "BusinessMessageRejects; 3: unsupported message "
                                                                   "type")
    appl_ver_id_in_reject: bool = Field(
        False, description="FIX 5.0 sessions: BusinessMessageRejects carry DefaultApplVerID (1137) in their body, "
                           "as quickfix 1.16 puts it there by itself (normally the simulator strips it)")
    forget_orders_on_logon: bool = Field(
        False, description="when a session logs on, the venue forgets every order that session sent before (as a "
                           "venue restarted without its book): a status request for one is answered 'unknown order'")

    def mode(self, message: Literal["new_order", "cancel", "replace", "status"], symbol: str | None) -> str:
        """The answer mode for one message of kind ``message`` for ``symbol`` (None: the message names none)."""
        override = self.symbols.get(symbol) if symbol is not None else None
        value = getattr(override, message) if override is not None else None
        return value if value is not None else getattr(self, message)

    @property
    def active(self) -> bool:
        """Whether anything differs from a well-behaved venue."""
        return self != MisbehaviourConfig()


class SimulatorConfig(_Strict):
    """A synthetic book per symbol, used by `fixgw venue-sim` and `fixgw demo`."""

    prices: dict[str, Decimal] = Field(description="reference (mid) price per symbol")
    tick: Decimal = Decimal("0.01")
    half_spread_ticks: int = Field(1, ge=1, description="best bid/ask sit this many ticks from the reference")
    depth: int = Field(5, ge=1, le=50, description="price levels per side")
    level_size: Decimal = Field(Decimal(500), gt=0, description="size of the best level; level n holds n * level_size")
    reject_symbols: tuple[str, ...] = Field((), description="symbols this venue rejects (for UAT of reject paths)")
    md_refresh_s: Decimal = Field(Decimal(1), ge=0, le=3600,
                                  description="seconds between full snapshots to market data subscribers "
                                              "(on top of every change); 0: only on changes")
    md_changes: bool = Field(True, description="publish every change of the book; false: only the periodic "
                                               "snapshots (a conflated feed, whose quotes lag the book)")
    cancel_on_disconnect: bool = Field(False, description="cancel a session's resting orders when it logs out "
                                                          "or drops (it hears of them when it logs on again)")
    keep_orders: bool = Field(True, description="keep working orders across a stop in good order (saved to "
                                                "book.json in the simulator's store) as a venue keeps its book; "
                                                "false: a restarted simulator has forgotten them")
    misbehave: MisbehaviourConfig = Field(MisbehaviourConfig(), description="answer child orders badly or not at "
                                                                            "all, to test the gateway (default: never)")

    @field_validator("prices")
    @classmethod
    def _positive(cls, prices: dict[str, Decimal]) -> dict[str, Decimal]:
        bad = [s for s, p in prices.items() if p <= 0]
        if bad:
            raise ValueError(f"reference prices must be positive: {', '.join(bad)}")
        return prices

    @model_validator(mode="after")
    def _misbehaving_symbols_are_known(self) -> "SimulatorConfig":
        unknown = [s for s in self.misbehave.symbols if s not in self.prices]
        if unknown:
            raise ValueError(f"misbehave.symbols names {', '.join(unknown)}, which has no reference price (prices)")
        return self
