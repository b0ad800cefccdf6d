"""journal: index (session_id, ts_us), so one session's day replays fast as the table grows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

`fixgw journal replay --session S --since T1 --until T2`, recovery's "received
after the watermark" query and retention all select one session's rows in a
time range. With (session_id, id) alone the database walks every row the session
ever had; with (session_id, ts_us) it reads just the range.

Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index(op.f("ix_journal_messages_session_id_ts_us"), "journal_messages", ["session_id", "ts_us"])


def downgrade() -> None:
    op.drop_index(op.f("ix_journal_messages_session_id_ts_us"), table_name="journal_messages")
