"""The pre-trade risk chain, pure: rules from a file (rules.py), the checks (checks.py) and the engine that runs them
(engine.py), and the usage they are checked against (state.py: open orders, notional, throttles, kill switches,
trading days in days.py)."""
