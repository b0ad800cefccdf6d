"""The state log's cost per order, against the core's own work on the same orders.

Each order is three commands (NewOrderSingle, venue ack, venue fill), the common
case; each command's record (with the text of the messages it sends, encoded as
the engine does before the record and not timed here) is written to a real file
in a temporary directory.
Prints microseconds per order for ``Core.handle`` and for ``Recorder.record``, and
the bytes written per order; then the time ``StateLog.recover()`` takes to read it
all back (what a restart after a crash does), against the same baseline. Absolute figures are machine-dependent; the ratio is
what to compare between runs.

Run: .venv/bin/python bench/state_log.py [orders]
"""
from __future__ import annotations

import sys
import tempfile
import time
from decimal import Decimal as D

from gateway.state import recovery
from gateway.state.log import StateLog
from gateway.state.records import State
from desk.core import Core
from desk.options import ClientOptions
from orders.commands import NewOrder, SessionStatus, VenueExecution
from orders.model import ExecKind, OrdStatus, OrdType, Side
from routing.router import Venue
from sessions.fixsettings import session_id
from sessions.outbound import Outbound


def venue_report(order, kind, n, last_qty=D(0), last_px=D(0)) -> VenueExecution:
    return VenueExecution(venue=order.venue, cl_ord_id=order.venue_cl_ord_id, orig_cl_ord_id=None,
                          venue_order_id="VO-" + order.order_id, exec_id=f"X{n}", kind=kind,
                          ord_status=OrdStatus.NEW, symbol=order.symbol, side=order.side, last_qty=last_qty,
                          last_px=last_px, cum_qty=last_qty, leaves_qty=D(0), seq=n)


# Encodes each message as the engine does before the record (gateway/process/engine.py); no session is started.
OUTBOUND = Outbound({"C1": session_id("FIX.4.4", "T", "C1")}, {"V1": session_id("FIX.4.4", "T", "V1")})


def main(n: int = 3000) -> None:
    core = Core([Venue("V1", frozenset({"AAPL"}))], {"C1": ClientOptions()}, "T")
    core.handle(SessionStatus("V1", "venue", True))
    with tempfile.TemporaryDirectory() as d:
        log = StateLog(d)
        log.open(State())
        rec = recovery.Recorder(log, core, State())
        t_handle = t_rec = 0.0
        for i in range(n):
            cmds = [NewOrder(session="C1", cl_ord_id=f"A{i}", symbol="AAPL", side=Side.BUY, qty=D(100),
                             ord_type=OrdType.LIMIT, price=D(190), seq=i + 2)]
            for j, cmd in enumerate(cmds * 3):
                if j == 1:
                    o = core.order_for_client("C1", f"A{i}")
                    cmd = venue_report(o, ExecKind.NEW, 2 * i + 2)
                elif j == 2:
                    cmd = venue_report(o, ExecKind.TRADE, 2 * i + 3, D(100), D(190))
                t0 = time.perf_counter()
                out = core.handle(cmd)
                sends = [OUTBOUND.encode(a) for a in out.actions]  # the engine encodes each message before the record
                t1 = time.perf_counter()
                rec.record(cmd, out, sends)
                t2 = time.perf_counter()
                t_handle += t1 - t0
                t_rec += t2 - t1
        t0 = time.perf_counter()
        recovered = StateLog(d).recover()  # what a restart after a crash reads: every record since start-up
        t_recover = time.perf_counter() - t0
        assert len(recovered.orders) == n
        log.close(rec.capture())
    print(f"per order (3 commands): core.handle {t_handle / n * 1e6:.1f} us, state log {t_rec / n * 1e6:.1f} us "
          f"({t_rec / t_handle:.1f}x the core's own work), {log.bytes_written / n:.0f} bytes")
    print(f"recovering the {n} orders from the log after a crash: {t_recover:.2f} s "
          f"({t_recover / t_handle:.1f}x the core's own work on them), {log.bytes_written / 1e6:.0f} MB read")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
