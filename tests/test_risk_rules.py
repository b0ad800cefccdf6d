"""Risk rules file: loading, validation errors, scope precedence."""
from decimal import Decimal as D
from pathlib import Path

import pytest

from risk.checks import CHECKS
from risk.rules import CHECK_NAMES, RulesError, load_rules, resolve_limits, scopes_for

SCOPED = """
[limits]
max_order_qty = 1000
max_order_notional = 1
[sessions.S1]
max_order_qty = 900
max_order_notional = 2
[symbols.AAPL]
max_order_qty = 800
max_order_notional = 3
price_band_pct = 5
[accounts.ACC1]
max_order_qty = 700
[account_symbols.ACC1.AAPL]
max_order_qty = { value = 600, shadow = true }
"""


def test_demo_rules_load():
    rules = load_rules(Path(__file__).parents[1].joinpath("risk/demo_rules.toml").read_text(), "demo_rules.toml")
    assert rules.chain == CHECK_NAMES
    lims = resolve_limits(rules, "ANY", None, "AAPL")
    assert lims.value("max_order_qty") == D(100000)
    assert lims.value("max_order_notional") == D(5000000)
    assert lims.value("price_band_pct") == D(10)
    assert lims.value("restricted_symbols") == ("XXXX",)
    assert lims.value("throttle_msgs") == 100
    assert isinstance(lims.value("max_order_qty"), D)


def test_check_registry_matches_names():
    assert tuple(CHECKS) == CHECK_NAMES


def test_precedence_most_specific_wins():
    rules = load_rules(SCOPED)
    r = resolve_limits(rules, "S1", "ACC1", "AAPL").get("max_order_qty")
    assert (r.value, r.shadow, r.scope) == (D(600), True, "account+symbol ACC1/AAPL")
    assert resolve_limits(rules, "S1", "ACC1", "MSFT").get("max_order_qty").scope == "account ACC1"
    assert resolve_limits(rules, "S1", "ACC2", "AAPL").get("max_order_qty").scope == "session S1"
    assert resolve_limits(rules, "S1", None, "AAPL").get("max_order_qty").value == D(900)
    assert resolve_limits(rules, "S2", None, "AAPL").get("max_order_qty").scope == "symbol AAPL"
    assert resolve_limits(rules, "S2", "ACC9", "MSFT").get("max_order_qty").scope == "global"


def test_precedence_is_field_by_field():
    lims = resolve_limits(load_rules(SCOPED), "S1", "ACC1", "AAPL")
    assert lims.get("max_order_notional").scope == "session S1"  # account scopes do not set it
    assert lims.get("price_band_pct").scope == "symbol AAPL"
    assert lims.get("max_position") is None  # unset everywhere: off


def test_scopes_order():
    rules = load_rules(SCOPED)
    assert [s for s, _ in scopes_for(rules, "S1", "ACC1", "AAPL")] == [
        "account+symbol ACC1/AAPL", "account ACC1", "session S1", "symbol AAPL", "global"]


def _problems(text):
    with pytest.raises(RulesError) as exc:
        load_rules(text, "bad.toml")
    return exc.value.problems, str(exc.value)


def test_unknown_key_refused_with_path():
    problems, msg = _problems("[accounts.ACC1]\nmax_order_qtty = 5\n")
    assert [(p.file, p.path, p.message) for p in problems] == [("bad.toml", "accounts.ACC1.max_order_qtty", "unknown key")]
    assert "bad.toml: accounts.ACC1.max_order_qtty: unknown key" in msg


def test_wrong_type_refused():
    problems, msg = _problems('[limits]\nmax_order_qty = "lots"\n')
    assert problems[0].path == "limits.max_order_qty.value"
    assert "decimal" in problems[0].message


def test_non_positive_limit_refused():
    problems, _ = _problems('[limits]\nmax_order_qty = 0\n')
    assert problems[0].path == "limits.max_order_qty.value"


def test_unknown_check_name_refused():
    problems, msg = _problems('chain = ["kill_switch", "max_order_size"]\n')
    assert problems[0].path == "chain.1"
    assert "unknown check name 'max_order_size'" in problems[0].message


def test_repeated_check_refused():
    problems, _ = _problems('chain = ["kill_switch", "kill_switch"]\n')
    assert "listed twice" in problems[0].message


def test_every_problem_listed():
    problems, _ = _problems('chain = ["nope"]\nfoo = 1\n[limits]\nmax_order_qty = "x"\n'
                            '[symbols.A]\ntrading_hours = { start = 10:00:00, end = 16:00:00, timezone = "Mars/Base" }\n')
    paths = {p.path for p in problems}
    assert paths == {"chain.0", "foo", "limits.max_order_qty.value", "symbols.A.trading_hours.value.timezone"}


def test_invalid_toml_refused():
    problems, msg = _problems("[limits\n")
    assert "not valid TOML" in problems[0].message


def test_floats_are_decimals():
    rules = load_rules("[limits]\nprice_band_pct = 2.5\nmax_order_notional = 0.1\n")
    assert rules.limits.price_band_pct.value == D("2.5")
    assert rules.limits.max_order_notional.value == D("0.1")


def test_shadow_checks_and_inline_shadow():
    rules = load_rules('shadow_checks = ["price_band"]\n[limits]\nmax_order_qty = { value = 5, shadow = true }\n')
    lims = resolve_limits(rules, "S", None, "X")
    assert lims.get("max_order_qty").shadow is True
    assert "price_band" in lims.shadow_checks


def test_rules_are_frozen():
    rules = load_rules("[limits]\nmax_order_qty = 5\n")
    with pytest.raises(Exception):
        rules.limits = None


def test_firm_limits_need_the_firm_limits_check_in_the_chain_and_take_only_firm_keys():
    with pytest.raises(RulesError, match="does not run check firm_limits: add it to chain"):
        load_rules('chain = ["kill_switch"]\n[firm]\nmax_gross_exposure = 100\n')
    with pytest.raises(RulesError, match=r"firm\.max_position: unknown key"):
        load_rules('[firm]\nmax_position = 100\n')
    rules = load_rules('[firm]\nmax_daily_notional = { value = 100, shadow = true }\n')  # the default chain has it
    lim = resolve_limits(rules, "S1", "ACC1", "AAPL").values["firm_max_daily_notional"]
    assert (lim.value, lim.shadow, lim.scope) == (D(100), True, "firm")
