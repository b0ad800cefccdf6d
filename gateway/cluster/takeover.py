"""Taking over the FIX sessions: before quickfix opens any store, each client, venue and drop-copy session's
FileStore is rebuilt from the journal (gateway/journal/session_tail.py, sessions/filestore.py) unless this
instance can trust its own, so every sequence number continues with no reset.

- This instance's own store is trusted when no other instance held the lease since its last term and the store
  is not behind the journal's view (the journal has imported what this instance spooled: it sees all it sent).
- Otherwise the store is written anew (overwriting what is there): the journal's next target MsgSeqNum, and its
  next sender MsgSeqNum plus ``[cluster] seq_gap``, with the epoch's sent application messages for resends.
  The old active may have sent messages the journal never committed (they were in its spool on a machine that
  is gone): the gap numbers past them, so none is ever numbered twice. The counterparty sees a MsgSeqNum higher
  than it expected, asks for the missing ones, and quickfix answers from the rebuilt store: the messages the
  journal has again (PossDupFlag), a SequenceReset-GapFill for the rest. Inbound, a counterparty that sent
  more than the journal has is asked to resend by quickfix (docs/failover.md says what this guarantees).
"""
from __future__ import annotations

import logging
from calendar import timegm
from dataclasses import dataclass
from pathlib import Path
from time import strptime

from sqlalchemy import Engine, select

from gateway.config import GatewayConfig
from gateway.journal.db import dropcopy_state
from gateway.journal.session_tail import read_session_tail
from gateway.observability.logs import fields
from sessions import filestore
from sessions.fixsettings import SessionID, session_id

log = logging.getLogger("fixgw.cluster")


@dataclass(frozen=True)
class SessionStore:
    """Where one session's FileStore is."""

    kind: str  # client, venue or dropcopy
    name: str
    sid: SessionID
    store_dir: Path


@dataclass(frozen=True)
class StoreTakeover:
    """What was done with one session's store."""

    kind: str
    name: str
    action: str  # rebuilt; kept (this instance's own); untouched (the journal has no message of the session)
    next_sender: int | None = None
    next_target: int | None = None
    messages: int = 0


def session_stores(cfg: GatewayConfig) -> list[SessionStore]:
    """Every session's store, where the gateway's engines keep them (gateway/process/session_engines.py)."""
    store = cfg.data_dir / "store"
    out = [SessionStore("client", n, session_id(c.fix_version, cfg.comp_id, n), store / "clients")
           for n, c in cfg.clients.items()]
    out += [SessionStore("venue", n, session_id(v.fix_version, cfg.venue_sender, n), store / "venues")
            for n, v in cfg.venues.items()]
    out += [SessionStore("dropcopy", n, session_id(d.fix_version, cfg.comp_id, n), store / "dropcopy")
            for n, d in cfg.dropcopy.sessions.items()]
    return out


def _dropcopy_streams(engine: Engine) -> dict[str, float]:
    """Each drop-copy session's store creation time as its ledger recorded it (whole seconds)."""
    out = {}
    with engine.connect() as conn:
        for session, stream in conn.execute(select(dropcopy_state.c.session, dropcopy_state.c.stream)):
            try:
                out[session] = float(timegm(strptime(stream or "", "%Y%m%d-%H:%M:%S")))
            except ValueError:
                continue
    return out


def take_over_stores(cfg: GatewayConfig, engine: Engine, *, trust_own: bool, exact: bool = False) -> list[StoreTakeover]:
    """Rebuild each session's store from the journal unless ``trust_own`` (no other instance led since this
    one's last term) and its own store is not behind the journal. Before any quickfix engine is created.
    ``exact``: the last term ended with a clean stop, so the journal holds everything it sent: outgoing numbers
    continue from the journal's, with no ``seq_gap``."""
    gap = cfg.cluster.seq_gap if cfg.cluster is not None and not exact else 0
    streams = _dropcopy_streams(engine) if cfg.dropcopy.sessions else {}
    done = []
    for s in session_stores(cfg):
        done.append(_take_over(engine, s, trust_own, gap, streams.get(s.name) if s.kind == "dropcopy" else None))
    rebuilt = [d for d in done if d.action == "rebuilt"]
    log.warning("takeover: %d session store(s) rebuilt from the journal (outgoing numbers %d past it), %d kept",
                len(rebuilt), 0 if trust_own else gap, sum(1 for d in done if d.action == "kept"),
                extra=fields(sessions=",".join(f"{d.name}:{d.action}" for d in done)))
    return done


def _take_over(engine: Engine, s: SessionStore, trust_own: bool, gap: int, stream: float | None) -> StoreTakeover:
    tail = read_session_tail(engine, s.sid.toString())
    own = filestore.read_info(s.store_dir, s.sid)
    if tail is None:
        return StoreTakeover(s.kind, s.name, "untouched")  # nothing to continue (quickfix starts a new one at 1/1)
    if trust_own and own is not None and own.next_sender >= tail.next_sender and own.next_target >= tail.next_target:
        return StoreTakeover(s.kind, s.name, "kept", own.next_sender, own.next_target)
    next_sender = tail.next_sender + (0 if trust_own else gap)
    epoch = tail.epoch_us / 1e6
    # The drop-copy ledger knows a store by its creation time (gateway/dropcopy/watermarks.py): keep the one it
    # recorded when it can be this epoch's, so the rebuilt store is not taken for a reset.
    created = stream if stream is not None and stream <= epoch else epoch
    filestore.write_store(s.store_dir, s.sid, next_sender, tail.next_target, tail.messages, created, overwrite=True)
    if tail.unresendable:
        log.warning("takeover: %s %s: sent message(s) %s are altered in the journal (a masked secret); a resend "
                    "gap-fills them", s.kind, s.name, ", ".join(map(str, tail.unresendable)),
                    extra=fields(session=s.name))
    log.info("takeover: %s %s store rebuilt from the journal: next sender %d (journal's %d), next target %d, "
             "%d message(s) for resends", s.kind, s.name, next_sender, tail.next_sender, tail.next_target,
             len(tail.messages), extra=fields(session=s.name))
    return StoreTakeover(s.kind, s.name, "rebuilt", next_sender, tail.next_target, len(tail.messages))
