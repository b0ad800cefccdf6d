"""Mode B of the benchmark: a pass-through forwarder, two FIX hops and nothing else.

Clients connect to a ``ThreadedSocketAcceptor`` as they would to the gateway;
each venue of the configuration gets a ``SocketInitiator`` (one thread per
venue), as in the gateway. A client's order, replace or cancel goes to the venue
that trades its symbol (the first in the configuration), unchanged but for the
header; the venue's reports go back to the client that sent the order. The only
state is an id map (ClOrdID -> client session). No risk chain, no journal, no
order state, no state log.

Threads as in the gateway: quickfix callbacks only read the message (one
``toString()``) and put it on a queue; one forwarding thread rebuilds each
message as one string (``fix.Message(text, False)``) and sends it, holding no
session lock (a callback holds its own session's lock, so sending to another
session from there could deadlock against that session's callback). The FIX
version is translated where 4.2 and 4.4 differ for these messages: a 4.2 venue's
ExecTransType (20) is dropped and its fill ExecTypes 1/2 become F for a 4.4
client.

``--counts FILE``: on exit, the messages forwarded each way, for the run's
completeness check.

Run: python bench/forwarder.py -c bench-gateway.cfg [--counts FILE]
"""
from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import quickfix as fix

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import load_config  # noqa: E402
from sessions.fixsettings import build_settings, graceful_stop_all, session_id, session_key  # noqa: E402
from sessions.threadnames import name_os_threads, named  # noqa: E402

SOH = "\x01"
pc = time.perf_counter_ns
# header and trailer fields quickfix writes itself
SKIP = frozenset(("8", "9", "10", "34", "35", "49", "56", "52", "43", "97", "122", "1128", "1137"))
_STOP = object()


class Forwarder:
    def __init__(self, cfg, store: Path):
        self.client_sids: dict[str, fix.SessionID] = {}
        self.venue_sids: dict[str, fix.SessionID] = {}
        self.venue_version: dict[str, str] = {}
        self.client_version: dict[str, str] = {}
        self.route: dict[str, str] = {}  # symbol -> venue (the first venue that trades it)
        self.owner: dict[str, str] = {}  # ClOrdID -> client session key: the id map
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.counts = {"client_in": 0, "venue_out": 0, "venue_in": 0, "client_out": 0, "dropped": 0}
        self.errors: list[str] = []
        for name, c in cfg.clients.items():
            sid = session_id(c.fix_version, cfg.comp_id, name)
            self.client_sids[session_key(sid)] = sid
            self.client_version[session_key(sid)] = c.fix_version
        for name, v in cfg.venues.items():
            sid = session_id(v.fix_version, cfg.comp_id, name)
            self.venue_sids[name] = sid
            self.venue_version[name] = v.fix_version
            for s in v.symbols:
                self.route.setdefault(s, name)
        self.logged_on: set[str] = set()
        self.app = _App(self)
        settings = build_settings("acceptor", store / "clients", [
            (sid, self.client_version[k], {}) for k, sid in self.client_sids.items()],
            {"SocketAcceptPort": str(cfg.acceptor.port)})
        self.acceptor = fix.ThreadedSocketAcceptor(self.app, fix.FileStoreFactory(settings), settings,
                                                   fix.ScreenLogFactory(False, False, False))
        self.initiators = []
        for name, v in cfg.venues.items():
            settings = build_settings("initiator", store / name, [(self.venue_sids[name], v.fix_version, {
                "SocketConnectHost": v.host, "SocketConnectPort": str(v.port), "ReconnectInterval": "1"})])
            self.initiators.append((fix.SocketInitiator(self.app, fix.FileStoreFactory(settings), settings,
                                                        fix.ScreenLogFactory(False, False, False)),
                                    [self.venue_sids[name]]))
        self.thread = threading.Thread(target=self._run, name="forwarder", daemon=True)

    def _error(self, text: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(text)

    def _run(self) -> None:
        get = self.q.get
        while True:
            item = get()
            if item is _STOP:
                return
            try:
                self._forward(*item)
            except Exception as exc:  # noqa: BLE001 - keep forwarding
                self.counts["dropped"] += 1
                self._error(f"forward: {exc!r}")

    def _forward(self, from_venue: str | None, from_key: str, raw: str) -> None:
        pairs = [p.partition("=") for p in raw.split(SOH) if p]
        mt = next(v for t, _, v in pairs if t == "35")
        get = {t: v for t, _, v in pairs}.get
        if from_venue is None:  # client -> venue
            venue = self.route.get(get("55", ""))
            if venue is None:
                raise ValueError(f"no venue trades {get('55')}")
            self.owner[get("11", "")] = from_key
            body = [(t, v) for t, _, v in pairs if t not in SKIP]
            if self.venue_version[venue] == "FIX.4.2" and mt == "D" and get("21") is None:
                body.append(("21", "1"))
            target, count = self.venue_sids[venue], "venue_out"
        else:  # venue -> the client that owns the order
            key = self.owner.get(get("11", "")) or self.owner.get(get("41", ""))
            if key is None:
                raise ValueError(f"report for unknown ClOrdID {get('11')}")
            body = [(t, v) for t, _, v in pairs if t not in SKIP]
            if self.venue_version[from_venue] == "FIX.4.2" and self.client_version[key] != "FIX.4.2":
                body = [(t, "F" if t == "150" and v in ("1", "2") else v) for t, v in body if t != "20"]
            target, count = self.client_sids[key], "client_out"
        text = f"35={mt}{SOH}" + "".join(f"{t}={v}{SOH}" for t, v in body)
        if fix.Session.sendToTarget(fix.Message(text, False), target):
            self.counts[count] += 1
        else:
            self.counts["dropped"] += 1

    def start(self) -> None:
        """(Threads named at the OS level as the gateway's are, for the harness's per-thread CPU.)"""
        name_os_threads()
        self.thread.start()
        with named("fixgw-qf-client"):
            self.acceptor.start()
        with named("fixgw-qf-venue"):
            for engine, _ in self.initiators:
                engine.start()

    def stop(self) -> None:
        graceful_stop_all([(self.acceptor, list(self.client_sids.values())), *self.initiators], 2.0)
        self.q.put(_STOP)
        self.thread.join(5)
        self.acceptor = None
        self.initiators = []


class _App(fix.Application):
    def __init__(self, fw: Forwarder):
        super().__init__()
        self.fw = fw
        self.venue_names = {session_key(sid): name for name, sid in fw.venue_sids.items()}

    def onCreate(self, sid): pass

    def onLogon(self, sid):
        self.fw.logged_on.add(session_key(sid))

    def onLogout(self, sid):
        self.fw.logged_on.discard(session_key(sid))

    def toAdmin(self, msg, sid): pass
    def fromAdmin(self, msg, sid): pass
    def toApp(self, msg, sid): pass

    def fromApp(self, msg, sid):
        try:
            key = session_key(sid)
            venue = self.venue_names.get(key)
            self.fw.counts["venue_in" if venue else "client_in"] += 1
            self.fw.q.put((venue, key, msg.toString()))
        except BaseException as exc:  # noqa: BLE001 - nothing may reach quickfix
            self.fw._error(f"fromApp: {exc!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("--counts", type=Path, default=None)
    ap.add_argument("--store", type=Path, default=None, help="quickfix FileStore directory [a new temporary one]")
    args = ap.parse_args()
    cfg = load_config(args.config)
    store = args.store or Path(tempfile.mkdtemp(prefix="fixgw-fwd-"))
    fw = Forwarder(cfg, store)
    fw.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(session_key(s) in fw.logged_on for s in fw.venue_sids.values()):
        time.sleep(0.05)
    print("forwarder ready: venues logged on" if all(session_key(s) in fw.logged_on for s in fw.venue_sids.values())
          else "forwarder: not every venue logged on", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    fw.stop()
    if args.counts:
        args.counts.write_text(json.dumps({"counts": fw.counts, "errors": fw.errors}))


if __name__ == "__main__":
    main()
