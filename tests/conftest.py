"""Shared fixtures. Database fixtures live in tests/db_fixtures.py, FIX fixtures in tests/fix_fixtures.py."""
pytest_plugins = ["tests.db_fixtures", "tests.fix_fixtures"]
