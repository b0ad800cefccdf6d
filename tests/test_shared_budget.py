"""The risk limits the shards of a cluster share (an account's daily notional, gross and net exposure, position):
the check against a shard's grant (risk/shared_budget.py, pure) and the grants in PostgreSQL
(gateway/cluster/budgets.py): shards hammering one account at once never hold more than the limit between them,
idle grants go back, a restart reads them back, a deposed instance takes nothing, revision 0010's grants carry
over."""
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
DAILY = ("2026-12-07", "ACC1")  # the scope of ACC1's daily notional on DAY
RULES = 'chain = ["kill_switch", "daily_notional"]\n[limits]\nmax_daily_notional = 100000\n'


def order(cl: str, qty="100", price="100", account="ACC1", side=Side.BUY) -> NewOrder:
    return NewOrder("S1", cl, "AAPL", side, D(qty), OrdType.LIMIT, D(price), account=account)


class FakeBudget:
    """Grants handed out from a pool the test sets: what another shard holds is what the pool lacks."""

    def __init__(self, available: D):
        self.available = available
        self.grants: dict[tuple[str, tuple], D] = {}
        self.asked: list[D] = []
        self.keys: list[tuple[str, tuple]] = []

    def granted(self, limit, scope):
        return self.grants.get((limit, scope), D(0))

    def top_up(self, limit, scope, need, value):
        self.asked.append(need)
        self.keys.append((limit, scope))
        mine = self.granted(limit, scope)
        take = min(self.available, need + value / 10 - mine)
        self.available -= max(take, D(0))
        self.grants[(limit, scope)] = mine + max(take, D(0))
        return self.grants[(limit, scope)]


def _engine_and_state(budget, rules=RULES):
    e, s = RiskEngine(load_rules(rules)), RiskState()
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
    assert ("daily notional of account ACC1 30000 exceeds this shard's part of the cluster's max_daily_notional "
            "100000: 25000; the other shards hold the rest") in d.reject.text
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
        def top_up(self, limit, scope, need, value):
            raise BudgetUnavailable("OperationalError: connection refused")
    e, s = _engine_and_state(Down(D(0)))
    d = e.check(order("1"), s, NOW)
    assert not d.accepted and d.reject.rule == "daily_notional"
    assert "more could not be asked for (OperationalError: connection refused)" in d.reject.text
    assert "refused, as the limit cannot be checked" in d.reject.text


def test_a_gateway_alone_has_no_budget_and_checks_the_whole_limit():
    e, s = _engine_and_state(None)
    assert e.check(order("1", qty="1000"), s, NOW).accepted  # exactly 100,000 passes


EXPOSURE = ('chain = ["kill_switch", "max_position", "max_gross_exposure", "max_net_exposure"]\n[limits]\n'
            'max_position = 1000\nmax_gross_exposure = 500000\nmax_net_exposure = 400000\n'
            'max_symbol_gross_exposure = 300000\n')


def test_exposure_and_position_limits_are_shared_each_in_its_own_scope():
    budget = FakeBudget(D(10**9))
    e, s = _engine_and_state(budget, EXPOSURE)
    d = e.check(order("1", qty="100", price="100"), s, NOW)
    assert d.accepted, d.reject
    assert budget.keys == [("max_gross_exposure", ("ACC1",)), ("max_symbol_gross_exposure", ("ACC1", "AAPL")),
                           ("max_net_exposure", ("ACC1",)), ("max_position", ("ACC1", "AAPL"))]
    assert budget.asked == [D(10000), D(10000), D(10000), D(100)]  # notional, notional, notional; a quantity


def test_a_position_limit_refuses_what_this_shards_grant_cannot_hold_in_shares_not_notional():
    budget = FakeBudget(D(10**9))
    e, s = _engine_and_state(budget, EXPOSURE)
    budget.grants[("max_position", ("ACC1", "AAPL"))] = D(150)
    budget.available = D(0)  # the other shards hold the rest of the 1,000 shares
    budget.grants.update({(lim, sc): D(10**6) for lim, sc in [("max_gross_exposure", ("ACC1",)),
                          ("max_symbol_gross_exposure", ("ACC1", "AAPL")), ("max_net_exposure", ("ACC1",))]})
    assert e.check(order("1", qty="150"), s, NOW).accepted
    e.on_accepted(order("1", qty="150"), s, NOW)
    d = e.check(order("2", qty="10"), s, NOW)
    assert not d.accepted and d.reject.rule == "max_position"
    assert "position ACC1/AAPL 160 exceeds this shard's part of the cluster's max_position 1000: 150" in d.reject.text
    # a sell the other way needs no more: the worst case stays at 150
    assert e.check(order("3", qty="100", side=Side.SELL), s, NOW).accepted


def test_the_firms_limits_are_shared_in_a_scope_of_their_own():
    budget = FakeBudget(D(10**9))
    e, s = _engine_and_state(budget, 'chain = ["firm_limits"]\n[firm]\nmax_gross_exposure = 100000\n'
                                     'max_daily_notional = 80000\n')
    e.on_accepted(order("a", account="ACC2"), s, NOW)  # another account's 10,000 counts for the firm
    assert e.check(order("1"), s, NOW).accepted
    assert budget.keys == [("firm_max_gross_exposure", ()), ("firm_max_daily_notional", ("2026-12-07",))]
    assert budget.asked == [D(20000), D(20000)]
    budget.grants[("firm_max_daily_notional", ("2026-12-07",))] = D(25000)
    budget.available = D(0)
    d = e.check(order("2", qty="200"), s, NOW)  # 10,000 + 20,000 = 30,000: over the shard's 25,000
    assert not d.accepted and d.reject.rule == "firm_limits"
    assert ("the firm's daily notional 30000 exceeds this shard's part of the cluster's firm_max_daily_notional "
            "80000: 25000") in d.reject.text


def test_a_shared_limit_whose_check_is_not_in_the_chain_asks_nothing():
    budget = FakeBudget(D(10**9))
    e, s = _engine_and_state(budget, EXPOSURE.replace('"max_position", ', ""))
    assert e.check(order("1"), s, NOW).accepted
    assert ("max_position", ("ACC1", "AAPL")) not in budget.keys and len(budget.keys) == 3


def test_risk_show_lists_what_the_shard_holds_of_each_shared_limit_and_uses():
    from risk.shared_budget import shared_limits_table

    budget = FakeBudget(D(10**9))
    budget.held = lambda: dict(budget.grants)
    e, s = _engine_and_state(budget, EXPOSURE)
    assert e.check(order("1"), s, NOW).accepted
    e.on_accepted(order("1"), s, NOW)
    rows = {(r["limit"], tuple(r["scope"])): (r["granted"], r["used"]) for r in shared_limits_table(budget, s)}
    assert rows[("max_position", ("ACC1", "AAPL"))] == ("200", "100")  # the order's 100 and a chunk of 100
    assert rows[("max_gross_exposure", ("ACC1",))] == ("60000", "10000")


def test_a_shard_gives_back_down_to_what_it_uses_in_each_scope():
    from risk.shared_budget import shard_usage

    e, s = _engine_and_state(FakeBudget(D(10**9)), EXPOSURE)
    e.on_accepted(order("1", qty="100", price="100"), s, NOW)
    assert shard_usage(s, "max_position", ("ACC1", "AAPL")) == D(100)
    assert shard_usage(s, "max_gross_exposure", ("ACC1",)) == D(10000)
    assert shard_usage(s, "max_net_exposure", ("ACC1",)) == D(10000)
    assert shard_usage(s, "max_daily_notional", DAILY) == D(10000)
    assert shard_usage(s, "max_position", ("ACC2", "AAPL")) == D(0)


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
@pytest.mark.parametrize("limit_name, scope, limit, order_notional", [
    ("max_daily_notional", DAILY, D(100000), D(1500)),
    ("max_position", ("ACC1", "AAPL"), D(5000), D(75)),
    ("max_gross_exposure", ("ACC1",), D(100000), D(1500)),
    ("firm_max_gross_exposure", (), D(100000), D(1500)),
])
def test_shards_taking_one_limit_at_once_never_hold_more_than_it_between_them(pools, limit_name, scope, limit,
                                                                              order_notional):
    shards = [pools(name) for name in ("east", "west", "north")]
    used = {id(p): D(0) for p in shards}
    start = threading.Barrier(len(shards))

    def trade(pool):  # what a shard's core thread does: each order checked against its grant, topped up
        start.wait()
        for _ in range(40):
            need = used[id(pool)] + order_notional
            if need <= pool.granted(limit_name, scope) or need <= pool.top_up(limit_name, scope, need, limit):
                used[id(pool)] = need
    threads = [threading.Thread(target=trade, args=(p,)) for p in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    total = sum(used.values())
    held = sum(p.granted(limit_name, scope) for p in shards)
    assert total <= limit and held <= limit, (total, held)
    assert total >= limit - len(shards) * order_notional, total  # the limit is used, not fragmented away
    assert sum(p.top_ups for p in shards) < 3 * 40  # once per chunk, not per order


@pytest.mark.postgres
def test_an_idle_shard_gives_back_what_it_does_not_use_and_a_busy_one_takes_it(pools):
    limit = D(100000)
    east, west = pools("east"), pools("west")
    assert east.top_up("max_daily_notional", DAILY, D(85000), limit) == D(95000)  # 85,000 + a chunk of 10,000
    assert west.top_up("max_daily_notional", DAILY, D(20000), limit) == D(5000)  # the rest: refused
    assert east.top_up("max_position", ("ACC1", "AAPL"), D(300), D(1000)) == D(400)  # another limit: its own
    # east's orders closed: it uses 0 now; it keeps a chunk and gives back the rest
    lowered = east.lower(lambda limit_name, scope: D(0), DAY.isoformat())
    assert lowered == [("max_daily_notional", DAILY, D(95000), D(10000)),
                       ("max_position", ("ACC1", "AAPL"), D(400), D(100))]
    assert east.granted("max_daily_notional", DAILY) == D(10000)
    assert east.give_back(lowered) == 2
    assert west.top_up("max_daily_notional", DAILY, D(20000), limit) == D(30000)
    # a restart reads its grants back
    from gateway.cluster.budgets import BudgetPool

    again = BudgetPool(east.engine, "main", "main/east", east._fence)
    assert again.load() == 2 and again.granted("max_daily_notional", DAILY) == D(10000)
    assert again.granted("max_position", ("ACC1", "AAPL")) == D(100)
    # the next trading day: the daily grant is dropped (its row stays), the position's is kept
    assert again.lower(lambda limit_name, scope: D(100), "2026-12-08") == []
    assert again.held() == {("max_position", ("ACC1", "AAPL")): D(100)}


@pytest.mark.postgres
def test_cluster_status_shows_each_shards_part_of_each_shared_limit_and_their_total(pools):
    from gateway.cluster.budgets import cluster_grants
    from gateway.cluster.status import describe_sharded, sharded_status

    east, west = pools("east"), pools("west")
    east.top_up("max_daily_notional", DAILY, D(85000), D(100000))  # 95,000 with its chunk
    west.top_up("max_daily_notional", DAILY, D(3000), D(100000))  # the 5,000 left
    west.top_up("firm_max_gross_exposure", (), D(1500), D(1000000))  # 1,500 + a chunk of 100,000
    grants = cluster_grants(east.engine, "main")
    assert grants == [
        {"limit": "firm_max_gross_exposure", "scope": [], "shards": {"main/west": D(101500)}, "total": D(101500)},
        {"limit": "max_daily_notional", "scope": list(DAILY),
         "shards": {"main/east": D(95000), "main/west": D(5000)}, "total": D(100000)}]
    assert cluster_grants(east.engine, "other") == []
    status = sharded_status(east.engine, "main", 30, {"east": ["EAST"], "west": ["WEST"]})
    assert status["shared_limits"][1] == {"limit": "max_daily_notional", "scope": list(DAILY), "total": "100000",
                                          "shards": {"east": "95000", "west": "5000"}}
    text = describe_sharded(status)
    assert "  max_daily_notional 2026-12-07/ACC1: east 95,000  west 5,000  (total 100,000)" in text
    assert "  firm_max_gross_exposure firm: west 101,500  (total 101,500)" in text


@pytest.mark.postgres
def test_a_give_back_overtaken_by_a_top_up_leaves_the_row_alone(pools):
    limit = D(100000)
    east = pools("east")
    east.top_up("max_daily_notional", DAILY, D(50000), limit)  # 60,000
    lowered = east.lower(lambda limit_name, scope: D(0), DAY.isoformat())  # the core thread lowered it to 10,000
    assert east.top_up("max_daily_notional", DAILY, D(70000), limit) == D(80000)  # ... then an order needed more
    assert east.give_back(lowered) == 0  # the row holds 80,000, not the 60,000 seen: left alone
    fresh = pools("west")
    assert fresh.top_up("max_daily_notional", DAILY, D(30000), limit) == D(20000)  # what the row leaves


@pytest.mark.postgres
def test_a_deposed_instance_takes_nothing(pools):
    from gateway.cluster.fence import StaleLeadership
    from gateway.cluster.lease import Lease
    from risk.shared_budget import BudgetUnavailable

    east = pools("east")
    lease = Lease(east.engine, "main/east")
    lease.release("EAST", lease.read().token)
    with pytest.raises(BudgetUnavailable, match="StaleLeadership") as info:
        east.top_up("max_daily_notional", DAILY, D(1000), D(100000))
    assert isinstance(info.value.__cause__, StaleLeadership)
    assert east.granted("max_daily_notional", DAILY) == D(0)


@pytest.mark.postgres
def test_revision_0010s_daily_notional_grants_carry_over_to_0011_and_back(postgres_url):
    import sqlalchemy as sa

    from gateway.journal.db import make_engine, risk_grants, upgrade

    upgrade(postgres_url, "0010")
    engine = make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO risk_budgets (cluster, day, account, lease, granted) "
                                 "VALUES ('main', '2026-12-07', 'ACC1', 'main/east', 12345.5)"))
        upgrade(postgres_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(risk_grants.c.limit_name, risk_grants.c.scope, risk_grants.c.lease,
                                          risk_grants.c.granted)).all()
            assert not sa.inspect(conn).has_table("risk_budgets")
        assert [tuple(r) for r in rows] == [("max_daily_notional", '["2026-12-07", "ACC1"]', "main/east",
                                             D("12345.5"))]
        from alembic import command

        from gateway.journal.db import alembic_config

        command.downgrade(alembic_config(url=postgres_url), "0010")  # and back: the grant returns to risk_budgets
        with engine.connect() as conn:
            back = conn.execute(sa.text("SELECT day, account, lease, granted FROM risk_budgets")).all()
        assert [tuple(r) for r in back] == [(DAY, "ACC1", "main/east", D("12345.5"))]
    finally:
        engine.dispose()
