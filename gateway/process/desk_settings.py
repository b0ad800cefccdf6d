"""The order desk's view of gateway.cfg: its venues, client options, routing policy, risk rules and intake limits."""
from __future__ import annotations

import string
import time
from datetime import timedelta

from gateway.config import ClientConfig, ConfigError, GatewayConfig, VenueConfig
from desk.options import ClientOptions
from risk.engine import RiskEngine
from risk.rules import RulesError, load_rules
from routing.router import RoutingPolicy, StrategySpec, Venue
from sessions.codec.decode import IntakeLimits

_B36 = string.digits + string.ascii_uppercase


def order_id_prefix(now: float | None = None, instance: str | None = None) -> str:
    """A prefix unique per start (base-36 seconds since the epoch), so OrderIDs never repeat across restarts; in a
    cluster also per instance (``_`` and its name), so instances started in the same second never share OrderIDs,
    nor the child ClOrdIDs and ExecIDs made from them (docs/failover.md)."""
    n = int(time.time() if now is None else now)
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = _B36[r] + out
    return (out or "0") + (f"_{instance}" if instance else "")


def load_risk(cfg: GatewayConfig) -> RiskEngine | None:
    """The risk engine for cfg's rules file, or None; a bad file raises ConfigError naming every problem."""
    path = cfg.risk.rules_file
    if path is None:
        return None
    try:
        return RiskEngine(load_rules(path.read_text(), str(path)), account_day_start=cfg.risk.trading_day_start)
    except OSError as exc:
        raise ConfigError(f"cannot read risk rules {path}: {exc.strerror}") from None
    except RulesError as exc:
        raise ConfigError(str(exc)) from None


def intake_limits(cfg: GatewayConfig) -> IntakeLimits:
    """gateway.cfg [limits] as the codec's IntakeLimits."""
    return IntakeLimits(cfg.limits.max_qty, cfg.limits.max_price, cfg.limits.max_decimals)


def venue_model(name: str, v: VenueConfig) -> Venue:
    """The router's view of a configured venue (it is down until its session logs on)."""
    return Venue(name=name, symbols=frozenset(v.symbols), md_enabled=v.market_data.enabled,
                 md_depth=v.market_data.depth, md_incremental=v.market_data.updates == "incremental",
                 priority=v.priority, take_fee=v.fees.take, make_fee=v.fees.make, on_disconnect=v.on_disconnect,
                 ack_timeout_s=v.ack_timeout_s, status_timeout_s=v.status_timeout_s, status_retry_s=v.status_retry_s,
                 reconcile_on_logon=v.reconcile_on_logon, mass_status=v.mass_status)


def routing_policy(cfg: GatewayConfig) -> RoutingPolicy:
    r = cfg.routing
    return RoutingPolicy(max_quote_age=timedelta(seconds=float(r.max_quote_age_s)),
                         default=StrategySpec(r.strategy, r.preferred_venues),
                         accounts={a: StrategySpec(x.strategy, x.preferred_venues) for a, x in r.accounts.items()},
                         max_reroutes=r.max_reroutes)


def client_options(c: ClientConfig) -> ClientOptions:
    return ClientOptions(pending_new=c.pending_new, cancel_on_disconnect=c.cancel_on_disconnect,
                         accounts=frozenset(c.accounts) if c.accounts is not None else None,
                         strategy=StrategySpec(c.strategy, c.preferred_venues) if c.strategy else None,
                         day_start=c.schedule.start if c.schedule is not None else None)
