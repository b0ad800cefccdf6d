"""journal: which rows were journaled late, imported from the spool of a run that died before committing them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``journal_messages.recovered``: the row was not committed by the run that captured it (it was killed, or its
database was cut off, or, in a cluster, it was deposed and its writes fenced) but imported from that run's spool
when the instance started again, so it lands in the journal after rows captured later. Drop copies of such a row
are flagged PossResend (97=Y): a successor may already have re-sent the same report (by its ExecID), and a
receiver drops a flagged copy it has. Not covered by the hash chain (which covers what was on the wire).

A constant default: on PostgreSQL 11 and later the column is added without rewriting the table.
Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("journal_messages", sa.Column(
        "recovered", sa.Boolean(create_constraint=False), nullable=False, server_default=sa.false(),
        comment="journaled late: imported at start-up from the spool of a run that died before committing it"))


def downgrade() -> None:
    op.drop_column("journal_messages", "recovered")
