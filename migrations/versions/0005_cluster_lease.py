"""cluster: cluster_lease, the leadership lease of each active/standby cluster

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

One row per cluster name (see gateway/cluster/lease.py): the instance holding
the lease, the fencing token (one more on every acquire; every write of the
active carries it, see gateway/cluster/fence.py) and when the lease was taken,
last renewed and expires. The times are the database's clock (now()), the one
clock every instance shares, so they are TIMESTAMPTZ and not the journal's ts_us
written from a gateway's clock. Rows are never deleted: the row carries the
token forward, and a token must never be handed out twice.

Only PostgreSQL uses the table (failover needs it); it is created on SQLite too
so both have the same schema at each revision.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "cluster_lease",
        sa.Column("name", sa.Text(), nullable=False, comment="cluster name"),
        sa.Column("holder", sa.Text(), nullable=True,
                  comment="instance holding the lease; NULL once released"),
        sa.Column("token", sa.BigInteger(), nullable=False,
                  comment="fencing token: one more on every acquire, never reused; writes carry it"),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the holder acquired the lease (database clock)"),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the holder last renewed it (database clock)"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False,
                  comment="after this (database clock) another instance may take the lease"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cluster_lease")),
        comment="The leadership lease of each active/standby cluster, with its fencing token",
    )


def downgrade() -> None:
    op.drop_table("cluster_lease")
