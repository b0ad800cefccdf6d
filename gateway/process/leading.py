"""Failover's seam in the gateway's start-up (docs/failover.md): a cluster's instance stands by, warm, until it
holds the lease, then takes over. What ``Gateway._lead`` does, in order."""
from __future__ import annotations

from gateway.journal.fencing import Term
from gateway.state.warm import WarmState


def stand_by_then_lead(gw) -> None:
    """Import what this instance's last term spooled (at once, not after its next takeover: the journal's order is
    the wire's); stand by with a warm copy of the order state until the lease is this instance's; then fence every
    journal and drop-copy ledger write with the term's token, listen on the client ports at once, and take the FIX
    sessions' stores over. ``gw``: the Gateway (gateway/process/server.py), built and not started."""
    cluster = gw.cluster
    gw.journal.start()
    # a warm standby: the order state is folded while standing by, so the takeover reads only the tail
    warm = gw.recovery.warm = WarmState(gw.statelog).start() if gw.statelog.kind == "database" else None
    cluster.on_handover = lambda to: handover_asked(gw, to)
    cluster.wait_until_leading(warm.lag if warm is not None else None)
    # from here on the journal and the drop-copy ledgers commit only under this term's token
    gw.journal.set_term(Term(cluster.cluster, cluster.token))
    if gw.dropcopy is not None:
        gw.dropcopy.fence(cluster.fence)
    if gw.cfg.clients:  # clients connecting while the successor starts wait at the front door, not refused
        gw.fix_engines.listen_early(gw.cfg.clients)
    cluster.take_over(gw.cfg)  # (the stores: the longer the sessions' day, the longer it takes)


def handover_asked(gw, to: str) -> None:
    """`fixgw cluster handover` (on the lease keeper's thread): stop cleanly; ``Gateway.stop`` then hands the lease
    over (to instance ``to``, or "*": to any standby)."""
    gw.handover = to
    gw.stop_requested.set()
