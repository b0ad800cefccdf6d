"""The journal's hash chain: its definition, and `fixgw journal verify`.

Every ``journal_messages`` row written since schema revision 0002 carries
``chain_hash``, computed by the journal writer thread in id order:

    chain_hash = SHA-256(prev || encode_row(row))           (unkeyed, chain_mode "sha256")
    chain_hash = HMAC-SHA256(key, prev || encode_row(row))  (keyed, chain_mode "hmac-sha256")

``prev`` is the previous row's chain_hash (32 bytes), or 32 zero bytes for the
first chained row. ``encode_row`` is a concatenation of six netstring-like
fields, in this order: session_id, direction, seq_num, msg_type, ts_us, raw.
A present value is ``<byte length in ASCII decimal>:<UTF-8 bytes>``; a NULL is the
single byte ``-``. seq_num and ts_us are written in ASCII decimal. Every field
starts with a digit or ``-`` and says where it ends, so no two different rows
have the same encoding. Example: ``23:FIX.4.4:FIXGW->CLIENT441:I1:21:D16:1795328662123456<len>:8=FIX.4.4<SOH>...``.

The key comes from FIXGW_JOURNAL_HMAC_KEY (its UTF-8 bytes). ``journal_meta``
records which mode the journal uses (``chain_mode``) and, when keyed,
``chain_key_check`` = hex HMAC-SHA256(key, "fixgw-journal-key-check"), so verify
can tell "no key" and "wrong key" from tampering. ``chain_start_id`` (set by the
migration) is the highest id written before the chain existed: those legacy rows
have no hash and are reported as not covered.

What the chain proves: no chained row was altered, removed from the middle, or
inserted, since the chain was computed. Ids only order rows: a gap in ids (PostgreSQL
identity skips numbers after a rolled-back COPY) is fine as long as the chain
connects. What it cannot prove: that the newest rows were not cut off at the end
(verify prints the last id and hash so an operator can anchor them elsewhere), and,
unkeyed, that someone with write access did not recompute the whole chain. Keyed,
rewriting the chain needs the key.

``verify_rows`` is pure over an iterator of rows (constant memory, one row of
look-ahead); ``verify_database`` reads a database and applies it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac

HMAC_KEY_ENV = "FIXGW_JOURNAL_HMAC_KEY"
GENESIS = bytes(32)
# where the chain continues from after retention pruned its start (written by gateway/journal/retention.py)
CHECKPOINT_ID = "retention_checkpoint_id"
CHECKPOINT_HASH = "retention_checkpoint_hash"
MODE_PLAIN = "sha256"
MODE_KEYED = "hmac-sha256"
_KEY_CHECK_MSG = b"fixgw-journal-key-check"


def key_from_env(env: dict[str, str] | None = None) -> bytes | None:
    """The HMAC key from FIXGW_JOURNAL_HMAC_KEY (UTF-8 bytes; the environment, else the secrets file), or None
    when unset or empty."""
    from gateway.security import secretstore
    value = secretstore.get(HMAC_KEY_ENV, env)
    return value.encode("utf-8") if value else None


def chain_mode(key: bytes | None) -> str:
    return MODE_PLAIN if key is None else MODE_KEYED


def key_check(key: bytes) -> str:
    """What journal_meta.chain_key_check holds for ``key``."""
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(_KEY_CHECK_MSG)
    return h.finalize().hex()


def hasher_factory(key: bytes | None):
    """A zero-argument callable returning a fresh SHA-256 (or keyed HMAC-SHA256) context.

    Copies a prepared context, which is cheaper than constructing (and keying) one per row.
    """
    template = hashes.Hash(hashes.SHA256()) if key is None else hmac.HMAC(key, hashes.SHA256())
    return template.copy


def encode_row(session_id: str, direction: str, seq_num: int | None, msg_type: str | None, ts_us: int,
               raw: str) -> bytes:
    """The canonical encoding of a row's content (see the module docstring)."""
    s = session_id.encode("utf-8", "surrogatepass")
    d = direction.encode("utf-8", "surrogatepass")
    r = raw.encode("utf-8", "surrogatepass")
    t = b"%d" % ts_us
    if seq_num is None:
        q = b"-"
    else:
        q = b"%d" % seq_num
        q = b"%d:%b" % (len(q), q)
    if msg_type is None:
        m = b"-"
    else:
        m = msg_type.encode("utf-8", "surrogatepass")
        m = b"%d:%b" % (len(m), m)
    return b"%d:%b%d:%b%b%b%d:%b%d:%b" % (len(s), s, len(d), d, q, m, len(t), t, len(r), r)


def chain_hash(new_hasher, prev: bytes, row) -> bytes:
    """The chain hash of ``row`` (attributes as in journal_messages) after ``prev``."""
    h = new_hasher()
    h.update(prev)
    h.update(encode_row(row.session_id, row.direction, row.seq_num, row.msg_type, row.ts_us, row.raw))
    return h.finalize()


# ---------------------------------------------------------------- verification


class ChainKeyError(Exception):
    """The journal is keyed and no key, or the wrong key, was given."""


@dataclass(frozen=True)
class Problem:
    """The first bad record."""

    id: int
    session_id: str
    seq_num: int | None
    kind: str  # "altered", "removed", "inserted", "unhashed"
    what: str


@dataclass(frozen=True)
class VerifyResult:
    checked: int  # chained rows verified before the first problem (all of them when ok)
    legacy: int  # rows written before the chain existed (not covered)
    last_id: int | None  # id of the last intact chained row
    last_hash: bytes | None
    problem: Problem | None
    mode: str = MODE_PLAIN
    pruned_upto: int | None = None  # retention pruned every row up to this id; the chain was checked from there

    @property
    def ok(self) -> bool:
        return self.problem is None


def _hash_of(row) -> bytes | None:
    h = row.chain_hash
    return None if h is None else bytes(h)


def verify_rows(rows: Iterable, key: bytes | None = None, chain_start_id: int = 0,
                checkpoint: tuple[int, bytes] | None = None) -> VerifyResult:
    """Recompute the chain over ``rows`` (in id order) and stop at the first bad record.

    Rows need the attributes id, session_id, direction, seq_num, msg_type, ts_us, raw
    and chain_hash. Rows with ``id <= chain_start_id`` are legacy (counted, not checked).
    ``checkpoint`` (id, hash): retention pruned every row up to that id, and the chain
    continues from that hash (gateway/journal/retention.py).
    """
    new_hasher = hasher_factory(key)
    prev = GENESIS
    prev_id: int | None = None
    if checkpoint is not None:
        prev_id, prev = checkpoint
    pruned = checkpoint[0] if checkpoint is not None else None
    checked = legacy = 0
    last_id: int | None = None
    last_hash: bytes | None = None
    it = iter(rows)
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        if pruned is not None and cur.id <= pruned:
            problem = Problem(cur.id, cur.session_id, cur.seq_num, "inserted",
                              f"inserted: retention pruned every row up to id {pruned}, yet this one is there")
            return VerifyResult(checked, legacy, last_id, last_hash, problem, chain_mode(key), pruned)
        if cur.id <= chain_start_id:
            legacy += 1
            prev_id = cur.id
            cur = nxt
            continue
        stored = _hash_of(cur)
        if stored is None:
            problem = Problem(cur.id, cur.session_id, cur.seq_num, "unhashed",
                              "has no chain hash: written outside the journal writer, or its hash was removed")
            return VerifyResult(checked, legacy, last_id, last_hash, problem, chain_mode(key), pruned)
        if chain_hash(new_hasher, prev, cur) != stored:
            problem = _classify(new_hasher, prev, prev_id, chain_start_id, cur, stored, nxt)
            return VerifyResult(checked, legacy, last_id, last_hash, problem, chain_mode(key), pruned)
        prev = last_hash = stored
        prev_id = last_id = cur.id
        checked += 1
        cur = nxt
    return VerifyResult(checked, legacy, last_id, last_hash, None, chain_mode(key), pruned)


def _classify(new_hasher, prev: bytes, prev_id: int | None, start: int, cur, stored: bytes, nxt) -> Problem:
    nxt_hash = _hash_of(nxt) if nxt is not None and nxt.id > start else None

    def problem(kind: str, what: str) -> Problem:
        return Problem(cur.id, cur.session_id, cur.seq_num, kind, what)

    if nxt_hash is not None and chain_hash(new_hasher, prev, nxt) == nxt_hash:
        return problem("inserted", "inserted: hash mismatch, and the chain continues from the row before it "
                                   "as if this row were not there")
    expected_id = (prev_id if prev_id is not None else start) + 1
    if cur.id > expected_id:
        gap = f"id {expected_id}" if cur.id == expected_id + 1 else f"ids {expected_id}..{cur.id - 1}"
        return problem("removed", f"removed: the chain is broken just before this row ({gap} absent): "
                                  f"a row before it was deleted")
    if nxt_hash is not None and chain_hash(new_hasher, stored, nxt) == nxt_hash:
        return problem("altered", "altered: its content does not match its chain hash "
                                  "(the next row still chains from the stored hash)")
    return problem("altered", "altered: hash mismatch (its content or its chain hash was changed)")


# ---------------------------------------------------------------- database


def read_meta(conn) -> dict[str, str]:
    """journal_meta as a dict (a SQLAlchemy Connection)."""
    from sqlalchemy import select

    from gateway.journal.db import journal_meta

    return {name: value for name, value in conn.execute(select(journal_meta.c.name, journal_meta.c.value))}


def resolve_key(meta: dict[str, str], key: bytes | None) -> bytes | None:
    """The key to verify with, given the journal's recorded mode; ChainKeyError if it cannot be."""
    mode = meta.get("chain_mode")
    if mode == MODE_KEYED:
        if key is None:
            raise ChainKeyError(f"this journal is keyed (HMAC-SHA256): set {HMAC_KEY_ENV} to the key "
                                f"the gateway wrote it with")
        if meta.get("chain_key_check") != key_check(key):
            raise ChainKeyError(f"{HMAC_KEY_ENV} is not the key this journal was written with")
        return key
    if mode not in (None, MODE_PLAIN):
        raise ChainKeyError(f"this journal's chain mode {mode!r} is unknown to this fixgw")
    return None


def checkpoint(meta: dict[str, str]) -> tuple[int, bytes] | None:
    """(id, chain hash) the journal's chain continues from after pruning, or None."""
    if CHECKPOINT_ID not in meta:
        return None
    raw = meta.get(CHECKPOINT_HASH) or ""
    return int(meta[CHECKPOINT_ID]), bytes.fromhex(raw) if raw else GENESIS


def verify_database(engine, key: bytes | None = None, batch: int = 5000, progress=None) -> VerifyResult:
    """Verify the whole journal of ``engine`` (streamed with a server-side cursor).

    ``progress(done, total)``, if given, is called as rows are checked, in journal ids (no COUNT needed).
    """
    from sqlalchemy import func, select

    from gateway.journal.progress import with_progress

    from gateway.journal.db import journal_messages as t

    with engine.connect() as conn:
        meta = read_meta(conn)
        key = resolve_key(meta, key)
        start = int(meta.get("chain_start_id", "0"))
        stmt = select(t.c.id, t.c.session_id, t.c.direction, t.c.seq_num, t.c.msg_type, t.c.ts_us, t.c.raw,
                      t.c.chain_hash).order_by(t.c.id)
        lo, hi = conn.execute(select(func.min(t.c.id), func.max(t.c.id))).one() if progress else (None, None)
        result = conn.execution_options(yield_per=batch).execute(stmt)
        rows = result if lo is None else with_progress(result, lo, hi, progress)
        try:
            return verify_rows(rows, key, start, checkpoint(meta))
        finally:
            result.close()
