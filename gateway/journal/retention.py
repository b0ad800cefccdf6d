"""Journal retention: archive and prune rows older than a configured age, and keep `verify` whole.

The journal's rows form hash chains (gateway/journal/verify.py): one, or one per shard of a sharded cluster,
their rows interleaved in id order. Pruning the oldest rows would break each chain at its start, so each pruning
step records a *checkpoint* in ``journal_meta`` in the same transaction as its delete: the id of the last pruned
row (``retention_checkpoint_id``), and for every chain that had rows in the step, the chain hash of its last
pruned row (``retention_checkpoint_hash`` for chain ``''``, ``retention_checkpoint_hash:<chain>`` for the
others). `fixgw journal verify` then starts each chain from its checkpoint instead of the genesis: any later row
altered, removed or inserted is still found, and a row removed right after the checkpoint is reported as removed.

Only a prefix of ids is pruned, up to the row before the first row that is not
old enough (a row of the spool imported late can be older than rows before it;
it then waits for the next run), and never past a copy a drop-copy receiver has not acknowledged yet: drop
copies follow the merged stream, ordered by position (xid, id) (gateway/journal/stream.py), and a session's
``dropcopy_state`` (acked_xid, acked_id) is the position it acknowledged up to. The ExecutionReports after the
smallest such position are still to be copied, so the prefix ends before the first of them: a receiver that is
away holds retention back, and the run says so. With a chain per shard, a lower id can still be in flight while
a higher one has committed: on PostgreSQL the bound is read while holding ``SETTLED_IDS_LOCK`` (every cluster
writer takes it shared in each transaction), so no write is in flight then and the checkpoint never passes an id
that commits later. Rows go in chunks, each its own short
transaction, so the journal writer is never blocked for long. With an archive
directory, each chunk's rows are first appended to a gzip'd JSON-lines file
(every column, the chain hash in hex), so what was pruned can still be read and
re-verified.

Several gateways may share one journal (the active instances of a sharded cluster, each running the daily job):
on PostgreSQL one run prunes at a time (``PRUNE_LOCK``, a session advisory lock); a run that finds another under
way prunes nothing and says so, and the next day's run continues from the checkpoint.
"""
from __future__ import annotations

import gzip
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, delete, func, select, text, tuple_, update
from sqlalchemy.engine import URL

from gateway.journal.chain import SETTLED_IDS_LOCK
from gateway.journal.db import _engine_for, dropcopy_state, journal_messages, journal_meta, session_events
from gateway.journal.stream import text as position_text
from gateway.journal.verify import CHECKPOINT_ID, GENESIS, checkpoint, checkpoint_key

log = logging.getLogger("fixgw.retention")

CHECKPOINT_AT = "retention_checkpoint_at"

#: The advisory lock one pruning run holds on PostgreSQL (an arbitrary 64-bit key: "fixgwret" in ASCII).
PRUNE_LOCK = int.from_bytes(b"fixgwret", "big") - (1 << 63)
BUSY = "another gateway is pruning this journal now (it continues from the same checkpoint)"


@dataclass(frozen=True)
class PruneResult:
    pruned: int  # journal_messages rows deleted
    events_pruned: int  # session_events rows deleted
    upto_id: int | None  # the checkpoint: every row with an id at or below it is gone
    archive: Path | None  # where the pruned rows were written first
    held_back_by: str | None  # why fewer rows than old enough were pruned
    cutoff: datetime

    def describe(self) -> str:
        if not self.pruned and not self.events_pruned:
            text = f"nothing older than {self.cutoff.isoformat(timespec='seconds')} to prune"
        else:
            text = (f"pruned {self.pruned} message row(s) up to id {self.upto_id} and {self.events_pruned} "
                    f"session event(s) older than {self.cutoff.isoformat(timespec='seconds')}")
            if self.archive is not None:
                text += f"; archived to {self.archive}"
        if self.held_back_by:
            text += f"; held back: {self.held_back_by}"
        return text


def _set_meta(conn, name: str, value: str) -> None:
    if conn.execute(update(journal_meta).where(journal_meta.c.name == name).values(value=value)).rowcount == 0:
        conn.execute(journal_meta.insert().values(name=name, value=value))


def prune(engine_or_url: Engine | str | URL, older_than: timedelta, *, archive_dir: Path | None = None,
          now: datetime | None = None, chunk: int = 20_000, dry_run: bool = False, progress=None) -> PruneResult:
    """Archive (optionally) and delete journal rows older than ``older_than``; see the module docstring.

    ``progress(done, total)``, if given, is called after each chunk with the message rows pruned so far."""
    engine, owned = _engine_for(engine_or_url)
    now = now or datetime.now(timezone.utc)
    cutoff = now - older_than
    lock = None
    try:
        if engine.dialect.name == "postgresql" and not dry_run:
            lock = engine.connect()
            if not lock.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": PRUNE_LOCK}).scalar():
                log.info("journal retention: %s", BUSY)
                return PruneResult(0, 0, None, None, BUSY, cutoff)
        return _prune(engine, now, cutoff, archive_dir, chunk, dry_run, progress)
    finally:
        if lock is not None:
            _unlock(lock)
        if owned:
            engine.dispose()


def _unlock(conn) -> None:
    """Let go of ``PRUNE_LOCK``: a session lock outlives the connection's return to the pool, so it is released
    by name, or with the connection itself (invalidated, so closed) if that fails."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PRUNE_LOCK})
        conn.commit()
    except Exception:  # noqa: BLE001 - the server ends the lock with the session
        conn.invalidate()
    finally:
        conn.close()


def _prune(engine: Engine, now: datetime, cutoff: datetime, archive_dir: Path | None, chunk: int, dry_run: bool,
           progress) -> PruneResult:
    cutoff_us = int(cutoff.timestamp() * 1_000_000)
    t = journal_messages.c
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # No write in flight while the bound is read: a shard's lower id may still be uncommitted while another
            # shard's higher one has committed, and a checkpoint past it would make that row look inserted.
            # Writers take this lock shared in every transaction (gateway/journal/chain.py), so once it is held
            # every id up to the highest committed one is settled; it is let go before anything slow.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SETTLED_IDS_LOCK})
        first_young = conn.execute(select(func.min(t.id)).where(t.ts_us >= cutoff_us)).scalar()
        last = conn.execute(select(func.max(t.id))).scalar() or 0
        conn.commit()
        meta = {n: v for n, v in conn.execute(select(journal_meta.c.name, journal_meta.c.value))}
        done = checkpoint(meta)
        start = done[0] if done else 0
        chain_start = int(meta.get("chain_start_id", "0"))
        upto = (first_young - 1) if first_young is not None else last
        held = None
        d = dropcopy_state.c
        acked = conn.execute(select(d.session, d.acked_xid, d.acked_id)
                             .order_by(d.acked_xid, d.acked_id, d.session).limit(1)).first()
        if acked is not None:
            # the first ExecutionReport after the position the slowest receiver acknowledged: copies still to send
            unacked = conn.execute(select(func.min(t.id)).where(
                t.msg_type == "8", tuple_(t.xid, t.id) > tuple_(acked.acked_xid, acked.acked_id))).scalar()
            if unacked is not None and unacked - 1 < upto:
                upto = unacked - 1
                held = (f"drop-copy session {acked.session} has acknowledged copies only up to journal id "
                        f"{position_text((acked.acked_xid, acked.acked_id))}")
        events = conn.execute(select(func.count()).select_from(session_events)
                              .where(session_events.c.ts_us < cutoff_us)).scalar_one()
        todo = conn.execute(select(func.count()).where(t.id > start, t.id <= upto)).scalar_one() \
            if upto > start else 0
    if dry_run:
        return PruneResult(todo, events, upto if todo else (done[0] if done else None), None, held, cutoff)

    archive = None
    if todo and archive_dir is not None:
        archive_dir.mkdir(parents=True, exist_ok=True)
        archive = archive_dir / f"journal-{start + 1:012d}-{upto:012d}-{int(time.time())}.jsonl.gz"
    pruned = 0
    position = start
    while position < upto:
        with engine.begin() as conn:
            rows = conn.execute(select(t.id, t.session_id, t.direction, t.seq_num, t.msg_type, t.cl_ord_id,
                                       t.order_id, t.poss_dup, t.ts_us, t.raw, t.chain_hash, t.chain, t.xid)
                                .where(t.id > position, t.id <= upto).order_by(t.id).limit(chunk)).all()
            if not rows:
                break
            if archive is not None:
                with gzip.open(archive, "at", encoding="utf-8") as out:
                    for r in rows:
                        out.write(json.dumps({
                            "id": r.id, "session_id": r.session_id, "direction": r.direction,
                            "seq_num": r.seq_num, "msg_type": r.msg_type, "cl_ord_id": r.cl_ord_id,
                            "order_id": r.order_id, "poss_dup": bool(r.poss_dup), "ts_us": r.ts_us,
                            "raw": r.raw, "chain_hash": bytes(r.chain_hash).hex() if r.chain_hash else None,
                            "chain": r.chain, "xid": r.xid,
                        }) + "\n")
            end = rows[-1]
            conn.execute(delete(journal_messages).where(t.id > position, t.id <= end.id))
            _set_meta(conn, CHECKPOINT_ID, str(end.id))
            lasts = {r.chain: r for r in rows}  # each chain's last pruned row
            for name, r in lasts.items():
                # rows at or below chain_start_id predate the chain: the first chained row starts from genesis
                anchor = bytes(r.chain_hash) if r.chain_hash is not None and r.id > chain_start else GENESIS
                _set_meta(conn, checkpoint_key(name), "" if anchor == GENESIS else anchor.hex())
            _set_meta(conn, CHECKPOINT_AT, now.isoformat(timespec="seconds"))
            pruned += len(rows)
            position = end.id
        if progress is not None:
            progress(pruned, todo)
    with engine.begin() as conn:
        events = conn.execute(delete(session_events).where(session_events.c.ts_us < cutoff_us)).rowcount
    result = PruneResult(pruned, events, position if pruned else (done[0] if done else None), archive, held,
                         cutoff)
    log.info("journal retention: %s", result.describe())
    return result
