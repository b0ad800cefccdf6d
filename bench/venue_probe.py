"""`fixgw venue-sim -c CFG --venue NAME` with a receive stamp per order: the venue of modes B and C.

The same simulator ``fixgw venue-sim`` runs (``gateway.cli.venue_sim.simulator_for_venue``:
same class, settings, store directory and book), plus one hook: each application
message's ``time.perf_counter_ns()`` at quickfix's callback (the stamp the
simulator takes anyway) is kept with its ClOrdID (one ``getField(11)``, about a
microsecond). On SIGTERM/SIGINT it stops like venue-sim and writes ``--stamps``:
{"stamps": {ClOrdID of each NewOrderSingle: receive ns}, "received": {MsgType: n},
"sent": n, "wire": {"in": n, "out": n}}.

perf_counter_ns is CLOCK_MONOTONIC, shared by every process on the machine, so
stamp minus the load generator's intended send time is the order-to-venue time.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.cli.venue_sim import simulator_for_venue  # noqa: E402
from gateway.config import load_config  # noqa: E402
from gateway.process.lifecycle import wait_for_stop  # noqa: E402
from gateway.observability.logs import setup_logging  # noqa: E402
from sessions.simulator.venue import VenueSimulator  # noqa: E402


class StampingSimulator(VenueSimulator):
    """VenueSimulator that remembers when each order arrived."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stamps: dict[str, int] = {}
        self.received: dict[str, int] = {}

    def _dispatch(self, msg, sid, recv_ns: int) -> None:
        mt = msg.getHeader().getField(35)
        self.received[mt] = self.received.get(mt, 0) + 1
        if mt == "D":
            self.stamps[msg.getField(11)] = recv_ns
        super()._dispatch(msg, sid, recv_ns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--venue", required=True)
    ap.add_argument("--stamps", type=Path, required=True)
    args = ap.parse_args()
    cfg = load_config(args.config)
    setup_logging(cfg.log_level, cfg.log_format)
    plain = simulator_for_venue(cfg, args.venue)
    sim = StampingSimulator(comp_id=plain.comp_id, port=plain.port, sim=plain.sim, store_dir=plain.store_dir,
                            counterparties=plain.counterparties, versions=plain.versions)
    del plain
    sim.start()
    print(f"venue-probe {sim.comp_id} listening on port {sim.port}", flush=True)
    try:
        wait_for_stop(None)
    finally:
        sim.stop()
        args.stamps.write_text(json.dumps({
            "stamps": sim.stamps, "received": sim.received, "sent": sim.outbox.sent,
            "wire": {"in": sim.wire.incoming, "out": sim.wire.outgoing}, "store_dir": str(sim.store_dir)}))
        logging.shutdown()


if __name__ == "__main__":
    main()
