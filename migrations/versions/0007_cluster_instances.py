"""cluster: cluster_instances, each instance's role and heartbeat, for `fixgw cluster status`

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-15

One row per (cluster, instance), written by the instance itself (see
gateway/cluster/membership.py): its role (standby, active, stopped), where it
runs (host, pid), when it started, its last heartbeat (the database's clock, as
the lease's times), the last fencing token it held, and, once a standby measures
it, how far it is behind the active. `fixgw cluster status` reads it with the
lease (revision 0005), so it works with every gateway down.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "cluster_instances",
        sa.Column("cluster", sa.Text(), nullable=False, comment="cluster name (cluster_lease.name)"),
        sa.Column("instance", sa.Text(), nullable=False, comment="instance name ([instance.NAME])"),
        sa.Column("role", sa.Text(), nullable=False, comment="standby, active or stopped, as the instance last said"),
        sa.Column("host", sa.Text(), nullable=False, comment="the machine it runs on (its host name)"),
        sa.Column("pid", sa.Integer(), nullable=False, comment="its process id there"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the process started (database clock)"),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False,
                  comment="its last heartbeat (database clock)"),
        sa.Column("token", sa.BigInteger(), nullable=True,
                  comment="the last fencing token it held; NULL if it never led"),
        sa.Column("lag_records", sa.BigInteger(), nullable=True,
                  comment="a standby: order-state records the active wrote that it has not read; NULL: not measured"),
        sa.Column("lag_s", sa.Float(), nullable=True,
                  comment="a standby: age of the oldest of those records, seconds; NULL: not measured"),
        sa.PrimaryKeyConstraint("cluster", "instance", name=op.f("pk_cluster_instances")),
        comment="Each instance of each active/standby cluster: its role and heartbeat, for cluster status",
    )


def downgrade() -> None:
    op.drop_table("cluster_instances")
