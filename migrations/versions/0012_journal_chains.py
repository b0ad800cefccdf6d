"""journal: a hash chain per shard, and the merged stream ordered by writing transaction

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08

``journal_messages.chain``: the hash chain a row extends (docs/scale-out.md, "Journal"): the shard's lease name
(``CLUSTER/SHARD``) in a sharded cluster, ``''`` otherwise. Every row written before this revision is on chain ``''``.
Each chain has a writer at a time, under an advisory lock of its own, and its head (the newest row's chain hash) in
``journal_meta`` (``chain_head:<chain>``), written with every commit; this revision records chain ``''``'s.

``journal_messages.xid``: on PostgreSQL, the id of the transaction that wrote the row (``pg_current_xact_id()``,
PostgreSQL 13 and later), 0 for rows written before this revision and on SQLite. Drop copies read the rows of every
chain in (xid, id) order, only below the oldest transaction still running, so a row that commits late can never
land behind a reader's position (gateway/journal/stream.py). ``ix_journal_messages_xid_id`` (ExecutionReports
only, the rows drop copies are made of) serves that read.

``dropcopy_state.*_xid``: each watermark becomes a position (xid, id); 0 keeps the meaning of an existing
watermark, since every older row has xid 0.

Both new columns are added with a constant default, so PostgreSQL 11 and later add them without rewriting the
table; the xid default for new rows is set afterwards (it applies to inserts only). Self-contained on purpose
(no import of gateway.journal.db).
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_POSITIONS = ("sent", "claimed", "acked", "resend")


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.add_column("journal_messages", sa.Column(
        "chain", sa.Text(), nullable=False, server_default="", comment="the hash chain this row extends (0012)"))
    op.add_column("journal_messages", sa.Column(
        "xid", sa.BigInteger(), nullable=False, server_default="0",
        comment="the id of the PostgreSQL transaction that wrote the row; 0 before revision 0012 and on SQLite"))
    if pg:
        op.alter_column("journal_messages", "xid", server_default=sa.text("(pg_current_xact_id()::text::bigint)"))
    # chain ''s head, the newest row's chain hash (a legacy row before revision 0002 has none: the genesis)
    last = op.get_bind().execute(sa.text("SELECT chain_hash FROM journal_messages ORDER BY id DESC LIMIT 1")).first()
    if last is not None:
        op.get_bind().execute(sa.text("INSERT INTO journal_meta (name, value) VALUES ('chain_head:', :v)"),
                              {"v": bytes(last[0]).hex() if last[0] is not None else ""})
    op.create_index("ix_journal_messages_xid_id", "journal_messages", ["xid", "id"],
                    postgresql_where=sa.text("msg_type = '8'"), sqlite_where=sa.text("msg_type = '8'"))
    for name in _POSITIONS:
        op.add_column("dropcopy_state", sa.Column(
            f"{name}_xid", sa.BigInteger(), nullable=False, server_default="0", comment="(xid, id): a stream position"))


def downgrade() -> None:
    for name in _POSITIONS:
        op.drop_column("dropcopy_state", f"{name}_xid")
    op.drop_index("ix_journal_messages_xid_id", "journal_messages")
    op.get_bind().execute(sa.text("DELETE FROM journal_meta WHERE name LIKE 'chain_head:%'"))
    op.drop_column("journal_messages", "xid")
    op.drop_column("journal_messages", "chain")
