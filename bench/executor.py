"""Mode A of the benchmark: a bare quickfix executor that answers every order itself.

The floor the gateway is compared against: one FIX hop, no routing, no journal,
answers sent from the session's own callback. It answers the bench's order mix
(bench/workload.py) as the venue simulators do: a marketable buy gets New and
one fill per ask level it takes, a non-marketable limit rests (New), a replace
gets Replaced, a cancel Canceled, a symbol in a venue's reject list Rejected.
Messages are read with one ``toString()`` and built as one string, as the
gateway's codec does.

``--stamps FILE``: on exit, write {ClOrdID: receive time} of every
NewOrderSingle (``time.perf_counter_ns()`` at the callback's entry) and the
message counts, for the order-to-venue figure.

Run: python bench/executor.py --port 9990 --target BENCH [--stamps FILE]
"""
from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import quickfix as fix

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workload import VENUES, asks  # noqa: E402

from sessions.codec.tagvalue import fmt, utc_timestamp  # noqa: E402
from sessions.fixsettings import build_settings, graceful_stop, session_id  # noqa: E402

SOH = "\x01"
pc = time.perf_counter_ns


def parse(raw: str) -> dict[int, str]:
    out = {}
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out[int(tag)] = value
    return out


class Executor(fix.Application):
    def __init__(self, version: str):
        super().__init__()
        self.version = version
        self.ids = itertools.count(1)
        self.asks = {s: levels for v in VENUES for s, levels in asks(v).items()}
        self.rejects = {s for *_, rej in VENUES.values() for s in rej}
        self.orders: dict[str, list] = {}  # ClOrdID -> [order id, symbol, qty, price]
        self.stamps: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.errors = 0

    def onCreate(self, sid): pass
    def onLogon(self, sid): pass
    def onLogout(self, sid): pass
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromApp(self, msg, sid):
        now = pc()
        try:
            f = parse(msg.toString())
            mt = f[35]
            self.counts[mt] = self.counts.get(mt, 0) + 1
            if mt == "D":
                self.stamps[f[11]] = now
                self._new(f, sid)
            elif mt == "G":
                self._replace(f, sid)
            elif mt == "F":
                self._cancel(f, sid)
            else:
                raise fix.UnsupportedMessageType()
        except fix.UnsupportedMessageType:
            raise
        except Exception as exc:  # noqa: BLE001 - never reach quickfix
            self.errors += 1
            print(f"executor error: {exc!r}", file=sys.stderr)

    def _report(self, sid, oid: str, cl: str, exec_type: str, status: str, sym: str, qty, cum, leaves, avg,
                last=None, orig: str | None = None, text: str | None = None) -> None:
        n = next(self.ids)
        parts = [f"35=8{SOH}37={oid}{SOH}11={cl}{SOH}"]
        if orig:
            parts.append(f"41={orig}{SOH}")
        parts.append(f"17=X{n}{SOH}150={exec_type}{SOH}39={status}{SOH}55={sym}{SOH}54=1{SOH}38={qty}{SOH}")
        if last is not None:
            parts.append(f"32={last[0]}{SOH}31={last[1]}{SOH}")
        parts.append(f"14={cum}{SOH}151={leaves}{SOH}6={avg}{SOH}60={utc_timestamp()}{SOH}")
        if text:
            parts.append(f"58={text}{SOH}")
        fix.Session.sendToTarget(fix.Message("".join(parts), False), sid)

    def _new(self, f: dict, sid) -> None:
        cl, sym, qty, px = f[11], f[55], Decimal(f[38]), Decimal(f.get(44, "0"))
        oid = f"X{next(self.ids)}"
        if sym in self.rejects or sym not in self.asks:
            self._report(sid, oid, cl, "8", "8", sym, qty, 0, 0, 0, text=f"symbol {sym} is rejected by this venue")
            return
        self._report(sid, oid, cl, "0", "0", sym, qty, 0, qty, 0)
        cum, notional = Decimal(0), Decimal(0)
        for level_px, size in self.asks[sym]:
            if cum >= qty or level_px > px:
                break
            take = min(size, qty - cum)
            cum += take
            notional += take * level_px
            done = cum == qty
            self._report(sid, oid, cl, "F", "2" if done else "1", sym, qty, cum, qty - cum,
                         fmt(notional / cum), last=(take, level_px))
        if cum < qty:
            self.orders[cl] = [oid, sym, qty, px]

    def _replace(self, f: dict, sid) -> None:
        o = self.orders.pop(f[41])
        o[2] = Decimal(f[38])
        self.orders[f[11]] = o
        self._report(sid, o[0], f[11], "5", "0", o[1], o[2], 0, o[2], 0, orig=f[41])

    def _cancel(self, f: dict, sid) -> None:
        o = self.orders.pop(f[41])
        self._report(sid, o[0], f[11], "4", "4", o[1], o[2], 0, 0, 0, orig=f[41])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--version", default="FIX.4.4")
    ap.add_argument("--comp-id", default="FIXGW")
    ap.add_argument("--target", default="BENCH")
    ap.add_argument("--stamps", type=Path, default=None)
    ap.add_argument("--store", type=Path, default=None, help="quickfix FileStore directory [a new temporary one]")
    args = ap.parse_args()
    sid = session_id(args.version, args.comp_id, args.target)
    store = args.store or Path(tempfile.mkdtemp(prefix="fixgw-exec-"))
    settings = build_settings("acceptor", store, [(sid, args.version, {})], {"SocketAcceptPort": str(args.port)})
    app = Executor(args.version)
    # FileStore as the gateway's sessions use; no log (quickfix's ScreenLog with everything off).
    acceptor = fix.ThreadedSocketAcceptor(app, fix.FileStoreFactory(settings), settings,
                                          fix.ScreenLogFactory(False, False, False))
    acceptor.start()
    print(f"executor listening on {args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    graceful_stop(acceptor, [sid], 1.0)
    acceptor = None
    if args.stamps:
        args.stamps.write_text(json.dumps({"stamps": app.stamps, "received": app.counts, "errors": app.errors}))


if __name__ == "__main__":
    main()
