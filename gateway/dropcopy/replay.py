"""An operator's replay (`fixgw journal replay --to-session`): the journaled ExecutionReports a filter
selects, sent to one drop-copy session again, marked PossResend (97=Y), on the caller's thread."""
from __future__ import annotations

import logging
from dataclasses import replace

from dropcopy.translate import Untranslatable, translate
from gateway.dropcopy.receiver import Receiver
from gateway.dropcopy.sources import Sources
from gateway.journal.queries import stream_rows
from gateway.journal.replay import Filters, select_messages
from gateway.observability import metrics
from sessions.dropcopy import DropCopyLink

log = logging.getLogger("fixgw.dropcopy")


class NotLoggedOn(Exception):
    pass


def replay(receiver: Receiver, link: DropCopyLink, sources: Sources, engine, filters: Filters) -> dict:
    """Send the ExecutionReports ``filters`` select (and the receiver's scope covers) to ``receiver`` again;
    counts of what was selected, sent and left out, and why. Raises NotLoggedOn if it is not logged on."""
    name = receiver.name
    if not link.view(name).logged_on:
        raise NotLoggedOn(name)
    counts = {"selected": 0, "sent": 0, "out_of_scope": 0, "not_a_source": 0, "untranslatable": 0}
    rows = stream_rows(engine, select_messages(replace(filters, msg_types=("8",))))
    try:
        for row in rows:
            counts["selected"] += 1
            described = sources.describe(row)
            if described is None:
                counts["not_a_source"] += 1
                continue
            pairs, origin = described
            if not receiver.scope.covers(origin):
                counts["out_of_scope"] += 1
                continue
            try:
                text = translate(pairs, receiver.version, poss_resend=True)
            except Untranslatable as exc:
                counts["untranslatable"] += 1
                log.error("replay to %s: journal row %d not copied: %s", name, row.id, exc)
                continue
            if not link.send(name, text):
                raise NotLoggedOn(name)
            counts["sent"] += 1
            metrics.DROPCOPY_SENT.labels(name).inc()
            metrics.DROPCOPY_REPLAYED.labels(name, "operator").inc()
    finally:
        rows.close()
    return counts
