"""cluster: a sharded cluster's control plane (commands every shard applies) and its shared risk budgets

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

Two tables (see gateway/cluster/controls.py):

- ``cluster_controls``: an operator's command for the whole cluster (a kill switch engaged or released, open
  orders canceled, the risk rules reloaded), appended by the instance that received it. Never updated.
- ``cluster_control_applied``: each shard's active instance applying one of them, with what it answered; the
  shard's highest ``control_id`` is how far it has applied. Written fenced by the shard's lease.
- ``risk_budgets``: what each shard holds of each account's daily notional limit on a trading day
  (gateway/cluster/budgets.py); the shards' grants of one account and day never sum past the limit.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# BIGINT identity on PostgreSQL; INTEGER PRIMARY KEY AUTOINCREMENT (the rowid) on SQLite.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cluster_controls",
        sa.Column("id", _Id, sa.Identity(), nullable=False, comment="the order every shard applies them in"),
        sa.Column("cluster", sa.Text(), nullable=False, comment="cluster name ([cluster] name)"),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(),
                  comment="when it was issued (database clock)"),
        sa.Column("issued_by", sa.Text(), nullable=False, comment="the instance whose admin API received it"),
        sa.Column("operator", sa.Text(), nullable=False, comment="who asked, as the admin API knew them"),
        sa.Column("kind", sa.Text(), nullable=False, comment="kill, unkill, cancel or reload_risk"),
        sa.Column("body", sa.Text(), nullable=False, comment="its arguments, JSON"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_controls")),
        sqlite_autoincrement=True,
        comment="Operator commands for a whole sharded cluster, in the order every shard applies them",
    )
    op.create_index(op.f("ix_cluster_controls_cluster_id"), "cluster_controls", ["cluster", "id"])
    op.create_table(
        "cluster_control_applied",
        sa.Column("control_id", sa.BigInteger(), nullable=False, comment="cluster_controls.id"),
        sa.Column("lease", sa.Text(), nullable=False, comment="the shard, by its lease (CLUSTER/SHARD)"),
        sa.Column("instance", sa.Text(), nullable=False, comment="the shard's active instance that applied it"),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(),
                  comment="when (database clock)"),
        sa.Column("ok", sa.Boolean(), nullable=False, comment="false: the instance refused or failed it"),
        sa.Column("result", sa.Text(), nullable=False, comment="what the instance answered, JSON"),
        sa.PrimaryKeyConstraint("control_id", "lease", name=op.f("pk_cluster_control_applied")),
        comment="Each shard applying each cluster control: how far it has applied, and what it answered",
    )
    op.create_index(op.f("ix_cluster_control_applied_lease_control_id"), "cluster_control_applied",
                    ["lease", "control_id"])
    op.create_table(
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


def downgrade() -> None:
    op.drop_table("risk_budgets")
    op.drop_index(op.f("ix_cluster_control_applied_lease_control_id"), table_name="cluster_control_applied")
    op.drop_table("cluster_control_applied")
    op.drop_index(op.f("ix_cluster_controls_cluster_id"), table_name="cluster_controls")
    op.drop_table("cluster_controls")
