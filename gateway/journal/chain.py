"""The journal's hash chains as a writer extends one: where it stands, checked against the database on the
first write, and each new row's chain_hash (the definition and its verification are in verify.py).

A journal has one chain per shard of a sharded cluster (``journal_messages.chain``: the shard's lease name), and
one chain, ``''``, otherwise. docs/scale-out.md, "A chain per shard, one stream", says why."""
from __future__ import annotations

import hashlib

from gateway.journal.verify import (
    GENESIS,
    HMAC_KEY_ENV,
    MODE_KEYED,
    chain_mode,
    encode_row,
    hasher_factory,
    head_key,
    key_check,
)

#: The advisory lock chain ``''``'s writers take in turn (an arbitrary 64-bit key: "fixgwchn" in ASCII).
CHAIN_LOCK = int.from_bytes(b"fixgwchn", "big") - (1 << 63)

#: Taken shared by every write transaction of a cluster's writers, and for a moment exclusively by retention when
#: it decides how far it may prune ("fixgwids"): with a chain per shard, a lower id can still be in flight while a
#: higher one has committed, and retention must never put its checkpoint past an id that commits later
#: (gateway/journal/retention.py). Writers never wait for one another on it.
SETTLED_IDS_LOCK = int.from_bytes(b"fixgwids", "big") - (1 << 63)


def chain_lock(chain: str) -> int:
    """The advisory lock of ``chain``'s writers: CHAIN_LOCK for ``''``, else a 64-bit key made from its name (two
    chains sharing a key by chance would only take turns, never mix)."""
    if not chain:
        return CHAIN_LOCK
    return int.from_bytes(hashlib.sha256(b"fixgw-chain:" + chain.encode()).digest()[:8], "big") - (1 << 63)


class HashChain:
    """The chain's last committed hash and the hasher for the next rows; used on the writer thread only.

    Keyed with ``key`` (FIXGW_JOURNAL_HMAC_KEY) when it is not None. The last hash is read from the
    database (and the journal's chain mode checked) in the first transaction that writes messages, and
    again after any failed one: the database, not memory, says where the chain is.

    ``chain``: the chain's name (``journal_messages.chain``). ``shared``: other writers may extend the same chain
    (a cluster: the active's writer process, and an instance importing what its last term spooled). Every write
    transaction then takes the chain's lock (a PostgreSQL advisory lock held to the commit, ``chain_lock``)
    before its first write, and reads the last hash under it, so the writers take turns, each continues from
    the other's last row, and the transactions' ids follow the chain's order (gateway/journal/stream.py).
    """

    def __init__(self, key: bytes | None, shared: bool = False, chain: str = ""):
        self._key = key
        self._shared = shared
        self.name = chain
        self._lock = chain_lock(chain)
        self._head_key = head_key(chain)
        self._new_hasher = hasher_factory(key)
        self._prev = GENESIS  # the last committed row's chain_hash
        self._loaded = False
        self._heads: dict[tuple[str, str], str] = {}

    def start(self, cur, param: str) -> bytes:
        """The chain hash to continue from; on the first write, read it and check the chain mode.

        Runs inside the write transaction (after BEGIN IMMEDIATE on SQLite, which already admits one
        writer at a time). Raises if the journal's recorded mode or key does not match ours: the batch
        is then retried like any failed commit, and last_error says what to fix.
        """
        if self._shared:
            if param == "%s":
                cur.execute("SELECT pg_advisory_xact_lock(%s), pg_advisory_xact_lock_shared(%s)",
                            (self._lock, SETTLED_IDS_LOCK))
            if self._loaded:
                return self._last(cur, param)
        if self._loaded:
            return self._prev
        key = self._key
        cur.execute("SELECT name, value FROM journal_meta")
        meta = dict(cur.fetchall())
        if meta.get("chain_mode") is None:
            # the journal's first write: the shards of a cluster may race to it, each on its own chain's lock; the
            # first to commit sets the mode (a second waits for it, inserts nothing and checks against it)
            insert = f"INSERT INTO journal_meta (name, value) VALUES ({param}, {param}) ON CONFLICT (name) DO NOTHING"
            cur.execute(insert, ("chain_mode", chain_mode(key)))
            if key is not None:
                cur.execute(insert, ("chain_key_check", key_check(key)))
            cur.execute("SELECT name, value FROM journal_meta")
            meta = dict(cur.fetchall())
        mode = meta.get("chain_mode")
        if mode != chain_mode(key):
            raise RuntimeError(f"the journal's hash chain is {mode} but {HMAC_KEY_ENV} is "
                               f"{'set' if key is not None else 'not set'}; "
                               f"{'set it to the journal key' if mode == MODE_KEYED else 'unset it'}")
        elif key is not None and meta.get("chain_key_check") != key_check(key):
            raise RuntimeError(f"{HMAC_KEY_ENV} is not the key this journal's hash chain was written with")
        return self._from_head(meta.get(self._head_key))  # (the rows just read hold it)

    def _last(self, cur, param: str) -> bytes:
        """The chain's head as recorded in journal_meta now (``head_key``)."""
        cur.execute(f"SELECT value FROM journal_meta WHERE name = {param}", (self._head_key,))
        last = cur.fetchone()
        return self._from_head(last[0] if last is not None else None)

    def _from_head(self, value: str | None) -> bytes:
        """Continue from a recorded head (hex; absent or empty: the chain has no chained row yet)."""
        self._prev = bytes.fromhex(value) if value else GENESIS
        return self._prev

    def extended(self, cur, param: str, last: bytes) -> None:
        """Record the chain's new head (the last row this transaction adds), in the same transaction. One row per
        chain read by key: a chain's head costs nothing per row (an index on (chain, id) cost the writer about a
        tenth of its rate), and `fixgw journal verify` can tell a chain whose newest rows were cut off."""
        cur.execute(f"INSERT INTO journal_meta (name, value) VALUES ({param}, {param}) "
                    f"ON CONFLICT (name) DO UPDATE SET value = excluded.value", (self._head_key, last.hex()))

    def link(self, msgs: list, prev: bytes) -> list:
        """``msgs`` with each row's chain_hash and chain name appended, in order (encoding: verify.encode_row)."""
        new = self._new_hasher
        name = self.name
        heads = self._heads  # (session_id, direction) -> their encoded fields, for ASCII ids
        out = []
        add = out.append
        for row in msgs:
            sid, direction, seq, msg_type, _, _, _, ts_us, raw = row[:9]  # (not ``recovered``: not on the wire)
            head = heads.get((sid, direction)) if raw.isascii() else None
            if head is None and (not sid.isascii() or not raw.isascii()):
                data = encode_row(sid, direction, seq, msg_type, ts_us, raw)
            else:  # all ASCII: byte length == str length; the same bytes as encode_row, faster
                if head is None:
                    if len(heads) > 10_000:  # session ids are few; never let odd callers grow this
                        heads.clear()
                    head = heads[(sid, direction)] = f"{len(sid)}:{sid}1:{direction}"
                t = str(ts_us)
                if seq is not None and msg_type is not None:
                    q = str(seq)
                    data = f"{head}{len(q)}:{q}{len(msg_type)}:{msg_type}{len(t)}:{t}{len(raw)}:{raw}".encode()
                else:
                    data = (f"{head}{'-' if seq is None else f'{len(q := str(seq))}:{q}'}"
                            f"{'-' if msg_type is None else f'{len(msg_type)}:{msg_type}'}"
                            f"{len(t)}:{t}{len(raw)}:{raw}").encode()
            h = new()
            h.update(prev + data)
            prev = h.finalize()
            add(row + (prev, name))
        return out

    def committed(self, last: bytes) -> None:
        """The transaction that ended the chain at ``last`` committed."""
        self._prev = last
        self._loaded = True

    def forget(self) -> None:
        """A write failed: read the last hash from the database again on the next one."""
        self._loaded = False
