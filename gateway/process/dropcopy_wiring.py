"""The drop-copy side of the gateway, built from the configuration: the receivers' SessionIDs, the service that
feeds them from the journal, and the quickfix application of their acceptor (none of it without receivers)."""
from __future__ import annotations

import logging
from typing import Callable

from desk.core import Core
from dropcopy.filters import Scope
from gateway.config import GatewayConfig
from gateway.dropcopy.service import DropCopyService
from gateway.dropcopy.sources import ClusterDirectory, CoreDirectory
from gateway.journal.db import make_engine
from gateway.journal.writer import JournalWriter
from gateway.observability import metrics
from sessions.dropcopy import DropCopyApplication, DropCopyLink
from sessions.fixsettings import SessionID, session_id

log = logging.getLogger("fixgw.dropcopy")


def dropcopy_wiring(cfg: GatewayConfig, client_sids: dict[str, SessionID], venue_sids: dict[str, SessionID],
                    core: Core, journal: JournalWriter, logon_refusal: Callable
                    ) -> tuple[dict[str, SessionID], DropCopyService | None, DropCopyApplication | None]:
    """(receiver name -> SessionID, the drop-copy service, its acceptor's application); the service is woken by
    every journal commit."""
    dc = cfg.dropcopy.sessions
    sids = {name: session_id(d.fix_version, cfg.comp_id, name) for name, d in dc.items()}
    if not dc:
        return sids, None, None
    clients = {sid.toString(): name for name, sid in client_sids.items()}
    venues = {sid.toString(): name for name, sid in venue_sids.items()}
    directory = CoreDirectory(core)
    cluster = cfg.cluster
    if cluster is not None and cluster.shard is not None:  # every shard's reports, from the one journal
        clients |= {session_id(version, cfg.comp_id, name).toString(): name
                    for name, version in cluster.peer_clients.items()}
        venues |= {session_id(v.fix_version, comp_id, name).toString(): name
                   for comp_id in cluster.peer_venue_comp_ids for name, v in cfg.venues.items()}
        directory = ClusterDirectory(core, make_engine(cfg.journal.database_url), clients)
    service = DropCopyService(
        cfg.journal.database_url,
        {name: (d.fix_version, Scope(d.reports, frozenset(d.clients), frozenset(d.accounts), frozenset(d.venues)))
         for name, d in dc.items()},
        DropCopyLink(sids, cfg.data_dir / "store" / "dropcopy"),
        clients,
        venues,
        directory,
        hold_offline=frozenset(name for name, d in dc.items() if d.resets))
    journal.add_commit_listener(service.wake)
    app = DropCopyApplication({sid.toString(): name for name, sid in sids.items()}, service.notify,
                              metrics.count_callback_error, logon_refusal)
    return sids, service, app


def start_dropcopy(gw) -> None:
    """The receivers' acceptor and the service feeding them, once the engine runs (``gw``: the Gateway)."""
    if gw.dropcopy is None:
        return
    gw.fix_engines.start_dropcopy(gw.dropcopy_app, gw.dropcopy_sids)
    gw.dropcopy.start()
    if not gw.dropcopy.wait_loaded(10):
        log.error("drop-copy state not loaded within 10 s (%s); copies start when it is", gw.dropcopy.last_error)
