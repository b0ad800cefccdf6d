"""The journal's hash chains: their definition, and `fixgw journal verify`.

Every ``journal_messages`` row written since schema revision 0002 carries
``chain_hash``, computed by the journal writer in id order:

    chain_hash = SHA-256(prev || encode_row(row))           (unkeyed, chain_mode "sha256")
    chain_hash = HMAC-SHA256(key, prev || encode_row(row))  (keyed, chain_mode "hmac-sha256")

A journal holds one chain per ``journal_messages.chain`` value (since revision 0012): each shard of a sharded
cluster extends a chain of its own (its lease name, like ``main/east``), a gateway alone (and every row written
before 0012) chain ``''`` (gateway/journal/chain.py). Rows of different chains interleave in id order; within a
chain, id order is the chain's order. ``prev`` is the chain_hash of the previous row *of the same chain*, or 32
zero bytes for a chain's first row. ``encode_row`` is a concatenation of six netstring-like
fields, in this order: session_id, direction, seq_num, msg_type, ts_us, raw.
A present value is ``<byte length in ASCII decimal>:<UTF-8 bytes>``; a NULL is the
single byte ``-``. seq_num and ts_us are written in ASCII decimal. Every field
starts with a digit or ``-`` and says where it ends, so no two different rows
have the same encoding. Example: ``23:FIX.4.4:FIXGW->CLIENT441:I1:21:D16:1795328662123456<len>:8=FIX.4.4<SOH>...``.
(Neither the row's id nor its chain's name is hashed: both only say where the row sits.)

The key comes from FIXGW_JOURNAL_HMAC_KEY (its UTF-8 bytes). ``journal_meta``
records which mode the journal uses (``chain_mode``, one for all its chains) and, when keyed,
``chain_key_check`` = hex HMAC-SHA256(key, "fixgw-journal-key-check"), so verify
can tell "no key" and "wrong key" from tampering. ``chain_start_id`` (set by the
migration) is the highest id written before the chain existed: those legacy rows
have no hash and are reported as not covered.

What the chains prove: no chained row was altered, removed from the middle, or
inserted, since the chains were computed. Ids only order rows: a gap in ids (PostgreSQL
identity skips numbers after a rolled-back COPY, and the other chains' rows sit between a chain's own) is fine
as long as each chain connects; a broken link is called a removal only when an id between the chain's two rows
is absent from the whole journal. Since revision 0012 the writer also records each chain's head (its newest
row's chain hash, ``chain_head:<chain>`` in ``journal_meta``) in the transaction that adds the row: a chain whose
newest rows were deleted no longer reaches its head, and verify reports it "truncated". What they cannot prove:
that rows were not cut off by someone who also rewrote the head (verify prints each chain's last id and hash so
an operator can anchor them elsewhere), and, unkeyed, that someone with write access did not recompute a whole
chain. Keyed, rewriting a chain needs the key.

After retention pruned the oldest rows (gateway/journal/retention.py), ``journal_meta`` holds the checkpoint:
``retention_checkpoint_id``, every row with an id at or below it was pruned, and per chain the hash its first
surviving row continues from: ``retention_checkpoint_hash`` for chain ``''``, ``retention_checkpoint_hash:<chain>``
for the others (empty: the genesis). A chain without its key had no row pruned and starts from the genesis.

``verify_rows`` is pure over an iterator of rows (one pass over every chain together, in id order, with
constant memory per chain); ``verify_database`` reads a database and applies it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, hmac

HMAC_KEY_ENV = "FIXGW_JOURNAL_HMAC_KEY"
GENESIS = bytes(32)
# where the chains continue from after retention pruned their start (written by gateway/journal/retention.py):
# every row with an id at or below CHECKPOINT_ID was pruned; chain "" continues from CHECKPOINT_HASH, another
# chain from checkpoint_key(chain) (module docstring)
CHECKPOINT_ID = "retention_checkpoint_id"
# each chain's head (its newest row's chain hash), kept by the writer with every commit (revision 0012)
HEAD_PREFIX = "chain_head:"
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
    kind: str  # "altered", "removed", "inserted", "unhashed", "truncated"
    what: str
    chain: str = ""  # the chain it is on


@dataclass(frozen=True)
class ChainResult:
    """One chain's part of a VerifyResult."""

    checked: int  # its chained rows verified before the first problem
    last_id: int | None  # id of its last intact row
    last_hash: bytes | None


@dataclass(frozen=True)
class VerifyResult:
    checked: int  # chained rows verified before the first problem (all of them when ok), every chain together
    legacy: int  # rows written before the chain existed (not covered)
    last_id: int | None  # id of the last intact chained row, of any chain
    last_hash: bytes | None
    problem: Problem | None
    mode: str = MODE_PLAIN
    pruned_upto: int | None = None  # retention pruned every row up to this id; the chains were checked from there
    chains: dict[str, ChainResult] = field(default_factory=dict)  # every chain with a chained row, by name

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Chain:
    """Where one chain stands during verify_rows."""

    __slots__ = ("prev", "prev_id", "mark", "checked", "last_id", "last_hash", "chained", "head")

    def __init__(self, prev: bytes, mark: int, head: bytes | None = None):
        self.prev = prev  # the hash the chain's next row must follow
        self.prev_id: int | None = None  # the id of its previous row (None: none since the checkpoint or legacy)
        self.mark = mark  # rows seen (of every chain) up to and including its previous row
        self.checked = 0
        self.last_id: int | None = None
        self.last_hash: bytes | None = None
        self.chained = False  # a chained row of it was seen
        self.head = head  # its recorded head while no row with that hash was seen yet; then None


def _hash_of(row) -> bytes | None:
    h = row.chain_hash
    return None if h is None else bytes(h)


def _chain_of(row) -> str:
    return getattr(row, "chain", "")


def verify_rows(rows: Iterable, key: bytes | None = None, chain_start_id: int = 0,
                checkpoint: tuple[int, bytes | Mapping[str, bytes]] | None = None,
                heads: Mapping[str, bytes] | None = None) -> VerifyResult:
    """Recompute every chain over ``rows`` (all chains' rows, in id order) and stop at the first bad record.

    Rows need the attributes id, session_id, direction, seq_num, msg_type, ts_us, raw
    and chain_hash, and may have ``chain`` (its name; ``''`` without it). Rows with ``id <= chain_start_id``
    are legacy (counted, not checked). ``checkpoint`` (id, hashes): retention pruned every row up to that id,
    and each chain continues from its hash in ``hashes`` (chain name -> hash; a chain not in it from the
    genesis; a bare hash is chain ``''``'s): see ``checkpoint()`` and gateway/journal/retention.py.
    ``heads`` (chain name -> hash, read before the rows): each chain's recorded head; a chain none of whose rows
    (nor its checkpoint) has that hash had its newest rows cut off, and is reported "truncated".
    """
    new_hasher = hasher_factory(key)
    mode = chain_mode(key)
    pruned: int | None = None
    anchors: Mapping[str, bytes] = {}
    if checkpoint is not None:
        pruned, hashes = checkpoint
        anchors = {"": bytes(hashes)} if isinstance(hashes, (bytes, bytearray, memoryview)) else hashes
    # a chain's first row comes after this id: the ids at or below it were pruned, or are legacy rows
    base = max(pruned if pruned is not None else 0, chain_start_id)
    chains: dict[str, _Chain] = {}
    seen = checked = legacy = 0  # seen: the rows so far, of every chain
    last_id: int | None = None
    last_hash: bytes | None = None

    def result(problem: Problem | None) -> VerifyResult:
        per_chain = {name: ChainResult(c.checked, c.last_id, c.last_hash) for name, c in chains.items() if c.chained}
        return VerifyResult(checked, legacy, last_id, last_hash, problem, mode, pruned, per_chain)

    heads = heads or {}
    it = iter(rows)
    for cur in it:
        name = _chain_of(cur)
        if pruned is not None and cur.id <= pruned:
            return result(Problem(cur.id, cur.session_id, cur.seq_num, "inserted",
                                  f"inserted: retention pruned every row up to id {pruned}, yet this one is there",
                                  name))
        state = chains.get(name)
        if state is None:  # the rows seen so far are legacy rows (ids up to base) or other chains' rows
            state = chains[name] = _Chain(anchors.get(name, GENESIS), legacy, heads.get(name))
        seen += 1
        if cur.id <= chain_start_id:
            legacy += 1
            state.prev_id = cur.id
            state.mark = seen
            continue
        state.chained = True
        stored = _hash_of(cur)
        if stored is None:
            return result(Problem(cur.id, cur.session_id, cur.seq_num, "unhashed",
                                  "has no chain hash: written outside the journal writer, or its hash was removed",
                                  name))
        if chain_hash(new_hasher, state.prev, cur) != stored:
            # the chain's next row tells the cases apart: read on to it (once, on the way out)
            nxt = next((r for r in it if _chain_of(r) == name), None)
            return result(_classify(new_hasher, state, base, seen - 1, cur, stored, nxt, chain_start_id))
        if stored == state.head:
            state.head = None  # found
        state.prev = state.last_hash = last_hash = stored
        state.prev_id = state.last_id = last_id = cur.id
        state.mark = seen
        state.checked += 1
        checked += 1
    return result(_truncated(heads, chains, anchors))


def _truncated(heads: Mapping[str, bytes], chains: dict, anchors: Mapping[str, bytes]) -> Problem | None:
    """The first chain whose recorded head is neither one of its rows' hashes nor where its pruned part ends."""
    for name, head in sorted(heads.items()):
        state = chains.get(name)
        if head == GENESIS or head == anchors.get(name) or (state is not None and state.head is None):
            continue
        where = f"chain {name}" if name else "the chain"
        last = state.last_id if state is not None and state.last_id is not None else 0
        after = f"its last row is id {last}" if last else "it has no row left"
        return Problem(last, "", None, "truncated",
                       f"truncated: {where}'s newest rows are gone: no row has its recorded head "
                       f"{head.hex()[:16]}..., and {after}", name)
    return None


def _classify(new_hasher, state: _Chain, base: int, seen: int, cur, stored: bytes, nxt, start: int) -> Problem:
    """What is wrong with ``cur``, the first row of its chain not to follow ``state.prev``. ``seen``: the rows
    (of every chain) before it; ``nxt``: the next row of its chain, or None."""
    name = _chain_of(cur)
    prev = state.prev
    nxt_hash = _hash_of(nxt) if nxt is not None and nxt.id > start else None
    where = f"chain {name}" if name else "the chain"

    def problem(kind: str, what: str) -> Problem:
        return Problem(cur.id, cur.session_id, cur.seq_num, kind, what, name)

    if nxt_hash is not None and chain_hash(new_hasher, prev, nxt) == nxt_hash:
        return problem("inserted", f"inserted: hash mismatch, and {where} continues from the row before it "
                                   "as if this row were not there")
    after = state.prev_id if state.prev_id is not None else base
    between = cur.id - after - 1  # ids between the chain's previous row and this one
    others = seen - state.mark  # the rows of other chains among them
    if between > others:  # an id in between is absent from the whole journal
        expected = after + 1
        if others == 0:
            gap = f"id {expected}" if cur.id == expected + 1 else f"ids {expected}..{cur.id - 1}"
        else:
            gap = f"{between - others} of the ids {expected}..{cur.id - 1}"
        return problem("removed", f"removed: {where} is broken just before this row ({gap} absent): "
                                  f"a row before it was deleted")
    if nxt_hash is not None and chain_hash(new_hasher, stored, nxt) == nxt_hash:
        return problem("altered", "altered: its content does not match its chain hash "
                                  f"(the next row of {where} still chains from the stored hash)")
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


def head_key(chain: str) -> str:
    """The journal_meta name of ``chain``'s head: the chain hash of its newest row, written by the writer in the
    transaction that adds the row (gateway/journal/chain.py); absent for a chain with no row yet."""
    return f"{HEAD_PREFIX}{chain}"


def chain_heads(meta: dict[str, str]) -> dict[str, bytes]:
    """Every chain's recorded head, by chain name."""
    return {name[len(HEAD_PREFIX):]: bytes.fromhex(value) if value else GENESIS
            for name, value in meta.items() if name.startswith(HEAD_PREFIX)}


def checkpoint_key(chain: str) -> str:
    """The journal_meta name of the hash ``chain`` continues from after pruning."""
    return f"{CHECKPOINT_HASH}:{chain}" if chain else CHECKPOINT_HASH


def checkpoint(meta: dict[str, str]) -> tuple[int, dict[str, bytes]] | None:
    """(id, {chain: hash}) the journal's chains continue from after pruning, or None. Chain ``''`` is always in
    it; a chain that is not continues from the genesis (none of its rows was pruned)."""
    if CHECKPOINT_ID not in meta:
        return None
    prefix = CHECKPOINT_HASH + ":"
    hashes = {"": GENESIS}
    for name, value in meta.items():
        if name == CHECKPOINT_HASH or name.startswith(prefix):
            chain = "" if name == CHECKPOINT_HASH else name[len(prefix):]
            hashes[chain] = bytes.fromhex(value) if value else GENESIS
    return int(meta[CHECKPOINT_ID]), hashes


def verify_database(engine, key: bytes | None = None, batch: int = 5000, progress=None) -> VerifyResult:
    """Verify the whole journal of ``engine``, every chain in one pass (streamed with a server-side cursor).

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
                      t.c.chain_hash, t.c.chain).order_by(t.c.id)
        lo, hi = conn.execute(select(func.min(t.c.id), func.max(t.c.id))).one() if progress else (None, None)
        result = conn.execution_options(yield_per=batch).execute(stmt)
        rows = result if lo is None else with_progress(result, lo, hi, progress)
        try:
            return verify_rows(rows, key, start, checkpoint(meta), chain_heads(meta))
        finally:
            result.close()
