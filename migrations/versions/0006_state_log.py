"""state log: state_log_records and state_log_snapshots, the order state in the database for failover

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

What the file state log (<data_dir>/state/) holds, in the database, so a standby
instance on another machine can take over with PostgreSQL as the only shared
thing (issue 20; gateway/state/pglog.py). Records since the snapshot, in id
order, per stream (a cluster's name: several may share a database); one
snapshot per stream, with the id of the last record it covers (those are
deleted in the same transaction). Bodies are the same pickles as the file's.

The tables are created on SQLite too, so the schema is the same everywhere, but
only PostgreSQL is written to: the database state log refuses SQLite.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# BIGINT identity on PostgreSQL; INTEGER PRIMARY KEY AUTOINCREMENT (the rowid) on SQLite.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "state_log_records",
        sa.Column("id", _Id, sa.Identity(), nullable=False,
                  comment="the order records are folded in, within a stream"),
        sa.Column("stream", sa.Text(), nullable=False,
                  comment="the cluster (or single gateway) the record belongs to"),
        sa.Column("ticket", sa.BigInteger(), nullable=False,
                  comment="the writer's ticket, increasing: a retried commit skips what the failed one had committed"),
        sa.Column("token", sa.BigInteger(), nullable=False,
                  comment="the fencing token its writer held (given at open)"),
        sa.Column("written_us", sa.BigInteger(), nullable=False, comment="microseconds since the Unix epoch, UTC"),
        sa.Column("body", sa.LargeBinary(), nullable=False, comment="the record, pickled (gateway/state/records.py)"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_log_records")),
        sqlite_autoincrement=True,
        comment="Order-state records since each stream's snapshot, written before the messages they explain are sent",
    )
    op.create_index(op.f("ix_state_log_records_stream_id"), "state_log_records", ["stream", "id"])
    op.create_table(
        "state_log_snapshots",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("covers_id", sa.BigInteger(), nullable=False,
                  comment="the snapshot holds every record of the stream up to this id (they are deleted)"),
        sa.Column("generation", sa.BigInteger(), nullable=False,
                  comment="1 for the stream's first snapshot, +1 for each next"),
        sa.Column("token", sa.BigInteger(), nullable=False, comment="the fencing token its writer held"),
        sa.Column("written_us", sa.BigInteger(), nullable=False, comment="microseconds since the Unix epoch, UTC"),
        sa.Column("body", sa.LargeBinary(), nullable=False, comment="the snapshot, pickled as the file state log's"),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_state_log_snapshots")),
        comment="One order-state snapshot per stream: written at start-up (compaction) and at a clean stop",
    )


def downgrade() -> None:
    op.drop_table("state_log_snapshots")
    op.drop_index(op.f("ix_state_log_records_stream_id"), table_name="state_log_records")
    op.drop_table("state_log_records")
