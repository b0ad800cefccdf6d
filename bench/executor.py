"""Mode A of the benchmark: a bare quickfix executor that acks and fills every order itself.

The floor the gateway is compared against: one FIX hop, no routing, no journal.
Run: python bench/executor.py --port 9990 --version FIX.4.4 --target BENCH
"""
from __future__ import annotations

import argparse
import itertools
import signal
import sys
import tempfile
import threading
from pathlib import Path

import quickfix as fix

from sessions.fixsettings import build_settings, graceful_stop, session_id


class Executor(fix.Application):
    def __init__(self, version: str):
        super().__init__()
        self.version = version
        self.ids = itertools.count(1)

    def onCreate(self, sid): pass
    def onLogon(self, sid): pass
    def onLogout(self, sid): pass
    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromApp(self, msg, sid):
        try:
            if msg.getHeader().getField(35) != "D":
                raise fix.UnsupportedMessageType()
            cl, sym, side, qty = msg.getField(11), msg.getField(55), msg.getField(54), msg.getField(38)
            px = msg.getField(44) if msg.isSetField(44) else "1"
            n = next(self.ids)
            for status, last, cum, leaves in (("0", None, "0", qty), ("2", qty, qty, "0")):
                er = fix.Message()
                er.getHeader().setField(35, "8")
                er.setField(37, f"X{n}")
                er.setField(11, cl)
                er.setField(17, f"X{n}.{status}")
                if self.version == "FIX.4.2":
                    er.setField(20, "0")
                    er.setField(150, status)
                else:
                    er.setField(150, "0" if status == "0" else "F")
                er.setField(39, status)
                er.setField(55, sym)
                er.setField(54, side)
                er.setField(38, qty)
                if last:
                    er.setField(32, last)
                    er.setField(31, px)
                er.setField(14, cum)
                er.setField(151, leaves)
                er.setField(6, px if last else "0")
                fix.Session.sendToTarget(er, sid)
        except fix.UnsupportedMessageType:
            raise
        except Exception as exc:  # noqa: BLE001 - never reach quickfix
            print(f"executor error: {exc!r}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--version", default="FIX.4.4")
    ap.add_argument("--comp-id", default="FIXGW")
    ap.add_argument("--target", default="BENCH")
    args = ap.parse_args()
    sid = session_id(args.version, args.comp_id, args.target)
    store = Path(tempfile.mkdtemp(prefix="fixgw-exec-"))
    settings = build_settings("acceptor", store, [(sid, args.version, {})], {"SocketAcceptPort": str(args.port)})
    app = Executor(args.version)
    # FileStore as the gateway's sessions use; no log (quickfix's ScreenLog with everything off).
    acceptor = fix.ThreadedSocketAcceptor(app, fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
    acceptor.start()
    print(f"executor listening on {args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    graceful_stop(acceptor, [sid], 1.0)


if __name__ == "__main__":
    main()
