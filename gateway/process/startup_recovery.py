"""Recovery at start-up: the state log the configuration names, the order state from it, and what a crash left undone
(messages quickfix received that the core never processed, messages the core decided that never reached quickfix)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gateway.config import ConfigError, GatewayConfig
from gateway.journal.db import make_engine
from gateway.journal.queries import inbound_after, session_rejected
from gateway.journal.writer import JournalWriter
from gateway.state import recovery
from gateway.state.log import StateLog
from gateway.state.pglog import PgStateLog
from gateway.state.records import State, StateLogError
from gateway.state.warm import WarmState
from desk.core import Core
from orders.commands import TakeoverUndecided
from sessions import filestore
from sessions.codec.decode import IntakeLimits
from sessions.fixsettings import SessionID
from sessions.gateway_app import replay_command

log = logging.getLogger("fixgw.gateway")


def state_log_for(cfg: GatewayConfig, on_fatal: Callable[[str], object]) -> StateLog | PgStateLog:
    """The order-state log ``[recovery] state_log`` names: the file in <data_dir>/state, or the journal's PostgreSQL
    database under ``state_log_stream`` (default: "cluster:NAME" in a cluster, else the comp_id), which calls ``on_fatal(reason)`` once if it stops
    for good."""
    rec = cfg.recovery
    if rec.state_log == "file":
        return StateLog(cfg.data_dir / "state", fsync=rec.fsync, rejected_kept=cfg.limits.rejected_orders_kept)
    engine = make_engine(cfg.journal.database_url)
    try:
        stream = rec.state_log_stream or (f"cluster:{cfg.cluster.lease_name}" if cfg.cluster is not None
                                          else cfg.comp_id)
        return PgStateLog(engine, stream, grace_s=rec.state_log_grace_s,
                          on_fatal=on_fatal, rejected_kept=cfg.limits.rejected_orders_kept)
    except StateLogError as exc:  # (the configuration refuses a journal that is not PostgreSQL already)
        engine.dispose()
        raise ConfigError(str(exc)) from None


@dataclass
class UndoneWork:
    """What an unclean stop left undone (nothing after a clean stop)."""

    received: list[tuple[str, object]] = field(default_factory=list)  # (role, command), never processed, in order
    unsent: list = field(default_factory=list)  # messages the core decided that quickfix never stored, in order
    awaiting_venue: frozenset[str] = frozenset()  # child ClOrdIDs a venue may ask us to re-send
    # after a takeover: venue orders, cancels and replaces the rebuilt stores lack, for the desk to ask about first
    undecided: TakeoverUndecided | None = None

    def received_from(self, role: str) -> list:
        return [command for r, command in self.received if r == role]


class StartupRecovery:
    """Reads the state log, the sessions' FileStores and the journal, before any session runs; then tells the
    engine's recorder each session's store epoch (its FileStore's creation time) for as long as the gateway runs."""

    def __init__(self, statelog: StateLog | PgStateLog, core: Core, journal: JournalWriter, store_dir: Path,
                 origins: Callable[[], dict[str, SessionID]], limits: IntakeLimits):
        self.statelog = statelog
        self.core = core
        self.journal = journal
        self._store = store_dir
        self._origins = origins  # "client:NAME" / "venue:NAME" -> SessionID, the sessions served now
        self._limits = limits  # what a client's order may carry at all, as its session thread checks it
        self.warm: WarmState | None = None  # a cluster's standby: the order state it folded while standing by


    def load_state(self) -> State:
        """The order state from the state log, given to the core. Before any engine runs."""
        try:
            state = self.statelog.recover() if self.warm is None else self.warm.take()
        except StateLogError as exc:
            raise ConfigError(str(exc)) from None
        pruned = state.prune(recovery.start_of_day_utc())
        recovery.restore_core(self.core, state)
        n_open = sum(1 for o in state.orders.values() if o.is_open)
        log.info("order state from the %s state log: %d open order(s), %d finished today; %d older finished "
                 "order(s) forgotten; %d order(s) refused today kept", self.statelog.kind, n_open,
                 len(state.orders) - n_open, pruned, len(state.rejected))
        if not state.clean:
            log.warning("the last stop was not clean (%d state record(s) after the snapshot%s): recovering",
                        state.records, ", the last one torn" if state.torn else "")
        return state

    def undone(self, state: State, rebuilt: frozenset[str] = frozenset()) -> UndoneWork:
        """What the last run left undone, if it did not stop cleanly (the journal must have imported its spool).
        ``rebuilt``: the sessions ("client:NAME", "venue:NAME") whose stores a takeover rebuilt from the journal
        (gateway/cluster/takeover.py): their unsent messages may have been sent by the old active
        (``recovery.after_takeover``)."""
        if state.clean:
            return UndoneWork()
        unsent = recovery.unsent(recovery.decided_in_epoch(state.pending, self.store_epoch), self._stored_tail)
        undecided = None
        if rebuilt:
            unsent, messages = recovery.after_takeover(unsent, rebuilt)
            if messages:
                undecided = TakeoverUndecided(tuple(messages))
                log.warning("takeover: %d order message(s) to venues decided by the previous active are not in the "
                            "journal; their venues are asked about their orders before anything is sent again",
                            len(messages))
        return UndoneWork(received=self._unprocessed_commands(state), unsent=unsent,
                          awaiting_venue=frozenset(recovery.awaiting_venue(state)), undecided=undecided)

    def open_state_log(self, state: State, leadership=None) -> recovery.Recorder:
        """The state log opened for this run, from the recovered state; the engine's recorder of every change.
        ``leadership``: a cluster instance's (gateway/cluster/leadership.py), once it leads: every write of the
        database state log then carries its fencing token and is refused once another instance took the lease."""
        try:
            if leadership is not None:
                self.statelog.fence = leadership.fence
                self.statelog.open(state, token=leadership.token)
            else:
                self.statelog.open(state)
        except StateLogError as exc:  # (the database log's snapshot could not be written)
            raise ConfigError(str(exc)) from None
        return recovery.Recorder(self.statelog, self.core, state, self.store_epoch)

    def _store_dir(self, origin: str) -> Path:
        return self._store / ("clients" if origin.startswith("client:") else "venues")

    def store_epoch(self, origin: str) -> float | None:
        sid = self._origins().get(origin)
        info = filestore.read_info(self._store_dir(origin), sid) if sid is not None else None
        return info.created if info is not None else None

    def _unprocessed_commands(self, state: State) -> list[tuple[str, object]]:
        """Inbound messages quickfix accepted and the core never acted on (after an unclean stop), decoded."""
        url = self.journal.database_url
        found = []
        for origin, sid in self._origins().items():
            info = filestore.read_info(self._store_dir(origin), sid)
            if info is None:
                continue
            epoch = info.created
            wm = state.watermarks.get(origin)
            after = wm[0] if wm is not None and wm[1] >= epoch else 0
            since_us = int(epoch * 1_000_000)
            text = sid.toString()
            rows = recovery.unprocessed(inbound_after(url, text, since_us, after),
                                        session_rejected(url, text, since_us))
            role, name = origin.split(":", 1)
            for row_id, seq, raw in rows:
                command = replay_command(role, name, raw, self._limits)
                if command is not None:
                    found.append((row_id, role, command))
            if rows:
                text = (f"recovery: {len(rows)} message(s) received before the crash (MsgSeqNum {rows[0][1]}-"
                        f"{rows[-1][1]}) had not been processed; processing them now")
                self.journal.event(sid.toString(), text)
                log.warning("%s: %s", origin, text)
        found.sort(key=lambda item: item[0])
        return [(role, command) for _, role, command in found]

    def _stored_tail(self, name: str, n: int) -> list[str]:
        origins = self._origins()
        origin = f"client:{name}" if f"client:{name}" in origins else f"venue:{name}"
        sid = origins.get(origin)
        if sid is None:
            return []
        return [raw for _, raw in filestore.sent_messages(self._store_dir(origin), sid, tail=n)]
