"""drop copy: dropcopy_state, one row of delivery watermarks per drop-copy session

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Each drop-copy session's watermarks are journal ids (journal_messages.id) of
the source ExecutionReports it has been sent, so they live in the same database
as the rows they point to (see dropcopy/ledger.py for what each one means).
Written by the gateway's drop-copy thread only. Not part of the hash chain: it
is delivery state, not a record of what happened on the wire (the copies
themselves are journaled like every other message).

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "dropcopy_state",
        sa.Column("session", sa.Text(), nullable=False, comment="drop-copy session name (the receiver's CompID)"),
        sa.Column("sent_id", sa.BigInteger(), nullable=False,
                  comment="every source row up to this journal id was copied to the session's store or skipped"),
        sa.Column("claimed_id", sa.BigInteger(), nullable=False,
                  comment="copies of source rows up to this journal id may have been handed to quickfix"),
        sa.Column("acked_id", sa.BigInteger(), nullable=False,
                  comment="the receiver acknowledged (TestRequest/Heartbeat) every copy up to this journal id"),
        sa.Column("resend_upto", sa.BigInteger(), nullable=False, server_default="0",
                  comment="copies of source rows up to this journal id are sent with PossResend (97=Y)"),
        sa.Column("stream", sa.Text(), nullable=True,
                  comment="creation time of the quickfix message store the copies went into"),
        sa.Column("updated_us", sa.BigInteger(), nullable=False,
                  comment="microseconds since the Unix epoch, UTC"),
        sa.PrimaryKeyConstraint("session", name=op.f("pk_dropcopy_state")),
        comment="Delivery watermarks of each drop-copy session, as journal ids",
    )


def downgrade() -> None:
    op.drop_table("dropcopy_state")
