"""cluster: the shards' grants of every shared risk limit, not only the accounts' daily notional

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``risk_grants`` replaces ``risk_budgets`` (revision 0010): what each shard of a sharded cluster holds of each
shared limit (gateway/cluster/budgets.py, risk/shared_budget.py) for each scope, where a scope is a JSON list:
``["2026-12-07", "ACC1"]`` (an account's trading day), ``["ACC1"]`` (an account) or ``["ACC1", "AAPL"]`` (an
account and symbol). The grants of one limit and scope never sum past the limit. The daily notional grants of
``risk_budgets`` are carried over as ``max_daily_notional`` rows.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

import json
from datetime import date
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_DAILY = "max_daily_notional"


def upgrade() -> None:
    grants = op.create_table(
        "risk_grants",
        sa.Column("cluster", sa.Text(), nullable=False, comment="cluster name ([cluster] name)"),
        sa.Column("limit_name", sa.Text(), nullable=False,
                  comment="the shared limit (max_daily_notional, max_gross_exposure, max_position, ...)"),
        sa.Column("scope", sa.Text(), nullable=False,
                  comment='JSON list: ["DAY", "ACCOUNT"], ["ACCOUNT"] or ["ACCOUNT", "SYMBOL"]'),
        sa.Column("lease", sa.Text(), nullable=False, comment="the shard, by its lease (CLUSTER/SHARD)"),
        sa.Column("granted", sa.Numeric(), nullable=False,
                  comment="what this shard may use of the limit in the scope (notional or quantity)"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(),
                  comment="last grant or give-back (database clock)"),
        sa.PrimaryKeyConstraint("cluster", "limit_name", "scope", "lease", name=op.f("pk_risk_grants")),
        comment="Each shard's part of each shared risk limit in each scope; the parts never sum past the limit",
    )
    conn = op.get_bind()
    old = sa.table("risk_budgets", sa.column("cluster"), sa.column("day", sa.Date()), sa.column("account"),
                   sa.column("lease"), sa.column("granted", sa.Numeric()), sa.column("updated_at"))
    rows = [{"cluster": r.cluster, "limit_name": _DAILY, "scope": json.dumps([r.day.isoformat(), r.account]),
             "lease": r.lease, "granted": r.granted, "updated_at": r.updated_at}
            for r in conn.execute(sa.select(old)).all()]
    if rows:
        op.bulk_insert(grants, rows)
    op.drop_table("risk_budgets")


def downgrade() -> None:
    budgets = op.create_table(
        "risk_budgets",
        sa.Column("cluster", sa.Text(), nullable=False, comment="cluster name ([cluster] name)"),
        sa.Column("day", sa.Date(), nullable=False, comment="the accounts' trading day (risk/days.py)"),
        sa.Column("account", sa.Text(), nullable=False, comment="the account ('' for orders without one)"),
        sa.Column("lease", sa.Text(), nullable=False, comment="the shard, by its lease (CLUSTER/SHARD)"),
        sa.Column("granted", sa.Numeric(), nullable=False,
                  comment="the notional this shard may use of the account's daily limit"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(),
                  comment="last grant or give-back (database clock)"),
        sa.PrimaryKeyConstraint("cluster", "day", "account", "lease", name=op.f("pk_risk_budgets")),
        comment="Each shard's part of each account's daily notional limit; the parts never sum past the limit",
    )
    # only the daily notional grants fit the old table; the others are dropped with risk_grants
    conn = op.get_bind()
    grants = sa.table("risk_grants", sa.column("cluster"), sa.column("limit_name"), sa.column("scope"),
                      sa.column("lease"), sa.column("granted", sa.Numeric()), sa.column("updated_at"))
    rows = []
    for r in conn.execute(sa.select(grants).where(grants.c.limit_name == _DAILY)).all():
        day, account = json.loads(r.scope)
        rows.append({"cluster": r.cluster, "day": date.fromisoformat(day), "account": account, "lease": r.lease,
                     "granted": r.granted, "updated_at": r.updated_at})
    if rows:
        op.bulk_insert(budgets, rows)
    op.drop_table("risk_grants")
