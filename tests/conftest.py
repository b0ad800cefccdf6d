"""Shared fixtures. Database fixtures live in tests/db_fixtures.py, FIX fixtures in tests/fix_fixtures.py, the
cluster lease's in tests/cluster_fixtures.py; tests/timeout_guard.py makes every pytest-timeout timeout a failure."""
pytest_plugins = ["tests.db_fixtures", "tests.fix_fixtures", "tests.timeout_guard", "tests.cluster_fixtures"]
