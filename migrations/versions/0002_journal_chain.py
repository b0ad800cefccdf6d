"""journal chain: journal_messages.chain_hash and journal_meta

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Adds the tamper-evident hash chain (see gateway/journal/verify.py):

- ``journal_messages.chain_hash``: 32 bytes, SHA-256 (or HMAC-SHA256) over the
  previous row's chain_hash and this row's canonical content. NULL only for rows
  written before this revision.
- ``journal_meta``: name/value pairs. This migration records ``chain_start_id``:
  the highest id present when the chain was introduced (0 for an empty journal).
  Rows with an id at or below it are *legacy*: they keep a NULL chain_hash and
  ``fixgw journal verify`` reports them as not covered instead of hashing them
  after the fact (which would vouch for rows nobody protected when they were
  written, and would make this migration O(rows)). The first row above it chains
  from 32 zero bytes. The journal writer adds ``chain_mode`` (and, when keyed,
  ``chain_key_check``) the first time it writes.

Run with the gateway stopped: max(id) is read after the ALTER TABLE, under its lock.
Self-contained on purpose (no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("journal_messages", sa.Column(
        "chain_hash", sa.LargeBinary(), nullable=True,
        comment="SHA-256 / HMAC-SHA256 over the previous row's chain_hash and this row's content; "
        "NULL for rows written before revision 0002"))
    meta = op.create_table(
        "journal_meta",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_journal_meta")),
        comment="Journal-wide settings: chain_start_id, chain_mode, chain_key_check",
    )
    start = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM journal_messages")).scalar_one()
    op.bulk_insert(meta, [{"name": "chain_start_id", "value": str(int(start))}])


def downgrade() -> None:
    op.drop_table("journal_meta")
    if op.get_bind().dialect.name == "sqlite":
        # Native DROP COLUMN (SQLite >= 3.35): batch mode would rebuild the table from
        # reflection and could lose the partial indexes' WHERE clauses.
        op.execute("ALTER TABLE journal_messages DROP COLUMN chain_hash")
    else:
        op.drop_column("journal_messages", "chain_hash")
