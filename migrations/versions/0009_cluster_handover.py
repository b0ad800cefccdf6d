"""cluster: a planned handover (`fixgw cluster handover`) asked through the lease row, and how the last term ended

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Two columns of ``cluster_lease`` (see gateway/cluster/lease.py):

- ``handover_to``: an operator asked the active instance to hand over: the instance to hand the lease to, or
  ``*`` for whichever standby takes it first; NULL when nothing is asked. The active reads it at its next
  renewal, stops cleanly and hands over; every acquire clears it.
- ``released_clean``: the last holder released or handed over the lease after a clean stop (everything it sent
  journaled, its order state closed), so its successor continues every sequence number exactly (no seq_gap).
  Every acquire reads it and sets it back to false.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("cluster_lease", sa.Column(
        "handover_to", sa.Text(), nullable=True,
        comment="a planned handover asked: the instance to hand the lease to, or * for any standby; NULL: none"))
    op.add_column("cluster_lease", sa.Column(
        "released_clean", sa.Boolean(), nullable=False, server_default=sa.false(),
        comment="the last holder released or handed over the lease after a clean stop; cleared by each acquire"))


def downgrade() -> None:
    op.drop_column("cluster_lease", "released_clean")
    op.drop_column("cluster_lease", "handover_to")
