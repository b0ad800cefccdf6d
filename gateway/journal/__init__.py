"""The journal: every message and event captured, spooled, committed by its writer process to SQLite or PostgreSQL
with a hash chain, then verified, replayed and pruned (schema in db.py, migrations in migrations/)."""
