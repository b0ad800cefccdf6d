"""journal: journal_messages and session_events

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Names are wrapped in op.f(): they are final, not to be run through the naming
convention again. Self-contained on purpose (no import of gateway.journal.db): a migration describes the
schema as it was at this revision, whatever the code says later.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# BIGINT identity on PostgreSQL; INTEGER PRIMARY KEY AUTOINCREMENT (the rowid) on SQLite.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "journal_messages",
        sa.Column("id", _Id, sa.Identity(), nullable=False,
                  comment="orders all rows of all sessions: the commit order of the journal writer"),
        sa.Column("session_id", sa.Text(), nullable=False,
                  comment='quickfix SessionID, e.g. "FIX.4.4:FIXGW->CLIENT44"'),
        sa.Column("direction", sa.String(1), nullable=False, comment="I = received, O = sent"),
        sa.Column("seq_num", sa.BigInteger(), nullable=True,
                  comment="MsgSeqNum (34); NULL if missing or not a number"),
        sa.Column("msg_type", sa.Text(), nullable=True, comment="MsgType (35)"),
        sa.Column("cl_ord_id", sa.Text(), nullable=True, comment="ClOrdID (11), first occurrence"),
        sa.Column("order_id", sa.Text(), nullable=True, comment="OrderID (37), first occurrence"),
        sa.Column("poss_dup", sa.Boolean(create_constraint=False), nullable=False,
                  server_default=sa.false(), comment="PossDupFlag (43) = Y"),
        sa.Column("ts_us", sa.BigInteger(), nullable=False,
                  comment="when the engine handed the message to the journal: "
                  "microseconds since the Unix epoch, UTC"),
        sa.Column("raw", sa.Text(), nullable=False,
                  comment="the message as on the wire, fields separated by SOH (\\x01)"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_messages")),
        sa.CheckConstraint("direction IN ('I', 'O')", name=op.f("ck_journal_messages_direction")),
        sqlite_autoincrement=True,
        comment="Every FIX message in and out of every session (admin and application), "
        "in commit order. ts_us is BIGINT microseconds since the Unix epoch, UTC.",
    )
    op.create_index(op.f("ix_journal_messages_session_id_id"), "journal_messages", ["session_id", "id"])
    op.create_index(op.f("ix_journal_messages_ts_us"), "journal_messages", ["ts_us"])
    op.create_index(op.f("ix_journal_messages_cl_ord_id"), "journal_messages", ["cl_ord_id"],
                    postgresql_where=sa.text("cl_ord_id IS NOT NULL"),
                    sqlite_where=sa.text("cl_ord_id IS NOT NULL"))
    op.create_index(op.f("ix_journal_messages_order_id"), "journal_messages", ["order_id"],
                    postgresql_where=sa.text("order_id IS NOT NULL"),
                    sqlite_where=sa.text("order_id IS NOT NULL"))

    op.create_table(
        "session_events",
        sa.Column("id", _Id, sa.Identity(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False,
                  comment='quickfix SessionID, or "*" for the engine-wide log'),
        sa.Column("ts_us", sa.BigInteger(), nullable=False, comment="microseconds since the Unix epoch, UTC"),
        sa.Column("text", sa.Text(), nullable=False,
                  comment="quickfix's event line, e.g. \"Received logon request\""),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_events")),
        sqlite_autoincrement=True,
        comment="quickfix session events (logon, logout, resend, disconnect ...). "
        "ts_us is BIGINT microseconds since the Unix epoch, UTC.",
    )
    op.create_index(op.f("ix_session_events_session_id_id"), "session_events", ["session_id", "id"])
    op.create_index(op.f("ix_session_events_ts_us"), "session_events", ["ts_us"])


def downgrade() -> None:
    op.drop_index(op.f("ix_session_events_ts_us"), table_name=op.f("session_events"))
    op.drop_index(op.f("ix_session_events_session_id_id"), table_name=op.f("session_events"))
    op.drop_table("session_events")
    op.drop_index(op.f("ix_journal_messages_order_id"), table_name=op.f("journal_messages"))
    op.drop_index(op.f("ix_journal_messages_cl_ord_id"), table_name=op.f("journal_messages"))
    op.drop_index(op.f("ix_journal_messages_ts_us"), table_name=op.f("journal_messages"))
    op.drop_index(op.f("ix_journal_messages_session_id_id"), table_name=op.f("journal_messages"))
    op.drop_table("journal_messages")
