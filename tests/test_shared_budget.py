"""An account's daily notional limit shared by the shards of a cluster: the check against a shard's grant
(risk/shared_budget.py, pure) and the grants in PostgreSQL (gateway/cluster/budgets.py): shards hammering one
account at once never hold more than the limit between them, idle grants go back, a restart reads them back, a
deposed instance takes nothing."""
from __future__ import annotations

import threading
from datetime import date, datetime, timezone
from decimal import Decimal as D

import pytest

from orders.commands import NewOrder
from orders.model import OrdType, Side
from risk.engine import RiskEngine
from risk.rules import load_rules
from risk.state import RiskState

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=timezone.utc)
DAY = date(2026, 12, 7)
RULES = 'chain = ["kill_switch", "daily_notional"]\n[limits]\nmax_daily_notional = 100000\n'


def order(cl: str, qty="100", price="100", account="ACC1") -> NewOrder:
    return NewOrder("S1", cl, "AAPL", Side.BUY, D(qty), OrdType.LIMIT, D(price), account=account)


class FakeBudget:
    """Grants handed out from a pool the test sets: what another shard holds is what the pool lacks."""

    def __init__(self, available: D):
        self.available = available
        self.grants: dict[tuple[date, str], D] = {}
        self.asked: list[D] = []

    def granted(self, day, account):
        return self.grants.get((day, account), D(0))

    def top_up(self, day, account, need, limit):
        self.asked.append(need)
        mine = self.granted(day, account)
        take = min(self.available, need + limit / 10 - mine)
        self.available -= max(take, D(0))
        self.grants[(day, account)] = mine + max(take, D(0))
        return self.grants[(day, account)]


def _engine_and_state(budget):
    e, s = RiskEngine(load_rules(RULES)), RiskState()
    s.start_day(DAY)
    e.budget = budget
    return e, s


def test_an_order_within_the_shards_grant_asks_nothing_and_one_beyond_it_asks_once_per_chunk():
    budget = FakeBudget(D(100000))
    e, s = _engine_and_state(budget)
    for i in range(5):  # 10,000 each: the first asks for 10,000 + a chunk of 10,000, the second fits
        d = e.check(order(str(i)), s, NOW)
        assert d.accepted, d.reject
        e.on_accepted(order(str(i)), s, NOW)
    assert budget.asked == [D(10000), D(30000), D(50000)]  # once per chunk, not per order


def test_an_order_is_refused_when_the_other_shards_hold_the_rest_and_says_so():
    budget = FakeBudget(D(25000))  # the other shards hold 75,000 of the 100,000
    e, s = _engine_and_state(budget)
    for i in range(2):
        assert e.check(order(str(i)), s, NOW).accepted
        e.on_accepted(order(str(i)), s, NOW)
    d = e.check(order("2"), s, NOW)  # 30,000 would pass the whole limit, not this shard's 25,000
    assert not d.accepted and d.reject.rule == "daily_notional"
    assert "this shard's part of the cluster's limit 100000: 25000; the other shards hold the rest" in d.reject.text
    assert d.evaluated["daily_notional"].passed is False
    assert d.reject.values["granted"] == D(25000) and d.reject.values["after"] == D(30000)


def test_the_whole_limit_is_still_checked_first_and_a_shadow_limit_is_not_shared():
    budget = FakeBudget(D(10**9))
    e, s = _engine_and_state(budget)
    d = e.check(order("big", qty="2000"), s, NOW)  # 200,000: over the limit itself
    assert not d.accepted and budget.asked == [] and "exceeds 100000" in d.reject.text
    shadow = RiskEngine(load_rules(RULES.replace("100000", "{ value = 100000, shadow = true }")))
    shadow.budget = budget
    assert shadow.check(order("s"), s, NOW).accepted and budget.asked == []


def test_an_order_is_refused_when_the_budget_cannot_be_asked_never_let_through_unchecked():
    from risk.shared_budget import BudgetUnavailable

    class Down(FakeBudget):
        def top_up(self, day, account, need, limit):
            raise BudgetUnavailable("OperationalError: connection refused")
    e, s = _engine_and_state(Down(D(0)))
    d = e.check(order("1"), s, NOW)
    assert not d.accepted and d.reject.rule == "daily_notional"
    assert "more could not be asked for (OperationalError: connection refused)" in d.reject.text
    assert "refused, as the limit cannot be checked" in d.reject.text


def test_a_gateway_alone_has_no_budget_and_checks_the_whole_limit():
    e, s = _engine_and_state(None)
    assert e.check(order("1", qty="1000"), s, NOW).accepted  # exactly 100,000 passes


# ---------------------------------------------------------------------------- the grants in PostgreSQL
@pytest.fixture
def pools(postgres_url):
    from gateway.cluster.budgets import BudgetPool
    from gateway.cluster.fence import check_fence
    from gateway.cluster.lease import Lease
    from gateway.journal.db import make_engine, upgrade

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    made = {}

    def pool(shard: str, instance: str | None = None):
        lease = f"main/{shard}"
        taken = Lease(engine, lease).take(instance or shard.upper(), 30)
        made[shard] = BudgetPool(engine, "main", lease, lambda conn: check_fence(conn, lease, taken.token),
                                 chunk_pct=D(10))
        return made[shard]
    yield pool
    engine.dispose()


@pytest.mark.postgres
def test_shards_taking_one_accounts_limit_at_once_never_hold_more_than_it_between_them(pools):
    limit, order_notional = D(100000), D(1500)
    shards = [pools(name) for name in ("east", "west", "north")]
    used = {id(p): D(0) for p in shards}
    start = threading.Barrier(len(shards))

    def trade(pool):  # what a shard's core thread does: each order checked against its grant, topped up
        start.wait()
        for _ in range(40):
            need = used[id(pool)] + order_notional
            if need <= pool.granted(DAY, "ACC1") or need <= pool.top_up(DAY, "ACC1", need, limit):
                used[id(pool)] = need
    threads = [threading.Thread(target=trade, args=(p,)) for p in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    total = sum(used.values())
    held = sum(p.granted(DAY, "ACC1") for p in shards)
    assert total <= limit and held <= limit, (total, held)
    assert total >= limit - len(shards) * order_notional, total  # the limit is used, not fragmented away
    assert sum(p.top_ups for p in shards) < 3 * 40  # once per chunk, not per order


@pytest.mark.postgres
def test_an_idle_shard_gives_back_what_it_does_not_use_and_a_busy_one_takes_it(pools):
    limit = D(100000)
    east, west = pools("east"), pools("west")
    assert east.top_up(DAY, "ACC1", D(85000), limit) == D(95000)  # 85,000 + a chunk of 10,000
    assert west.top_up(DAY, "ACC1", D(20000), limit) == D(5000)  # the rest: refused
    # east's orders closed: it uses 0 now; it keeps a chunk and gives back the rest
    lowered = east.lower({"ACC1": D(0)}, DAY)
    assert lowered == [(DAY, "ACC1", D(95000), D(10000))] and east.granted(DAY, "ACC1") == D(10000)
    assert east.give_back(lowered) == 1
    assert west.top_up(DAY, "ACC1", D(20000), limit) == D(30000)
    # a restart reads its grant back
    from gateway.cluster.budgets import BudgetPool

    again = BudgetPool(east.engine, "main", "main/east", east._fence)
    assert again.load() == 1 and again.granted(DAY, "ACC1") == D(10000)


@pytest.mark.postgres
def test_a_give_back_overtaken_by_a_top_up_leaves_the_row_alone(pools):
    limit = D(100000)
    east = pools("east")
    east.top_up(DAY, "ACC1", D(50000), limit)  # 60,000
    lowered = east.lower({"ACC1": D(0)}, DAY)  # the core thread lowered it to 10,000 ...
    assert east.top_up(DAY, "ACC1", D(70000), limit) == D(80000)  # ... then an order needed more
    assert east.give_back(lowered) == 0  # the row holds 80,000, not the 60,000 seen: left alone
    fresh = pools("west")
    assert fresh.top_up(DAY, "ACC1", D(30000), limit) == D(20000)  # what the row leaves


@pytest.mark.postgres
def test_a_deposed_instance_takes_nothing(pools):
    from gateway.cluster.fence import StaleLeadership
    from gateway.cluster.lease import Lease
    from risk.shared_budget import BudgetUnavailable

    east = pools("east")
    lease = Lease(east.engine, "main/east")
    lease.release("EAST", lease.read().token)
    with pytest.raises(BudgetUnavailable, match="StaleLeadership") as info:
        east.top_up(DAY, "ACC1", D(1000), D(100000))
    assert isinstance(info.value.__cause__, StaleLeadership)
    assert east.granted(DAY, "ACC1") == D(0)
