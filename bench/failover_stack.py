"""What bench/failover.py runs and tears down: a database of its own, the cluster's instances as `fixgw run
--instance` process groups, the venue simulators, the FIX clients and the drop-copy receiver (in this process), and
the database proxies when a cut is asked for (bench/failover_proxy.py)."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ports import free_port
from workload import VENUES, venue_sections

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLUSTER = "failover"
CLIENTS = ("CLIENT1", "CLIENT2")  # FIX.4.4: a status answer is ExecType I
RECEIVER = "DC1"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def wait_until(predicate, timeout: float, every: float = 0.02):
    """The predicate's first true value, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(every)


def _admin(server_url: str):
    from sqlalchemy import create_engine

    return create_engine(server_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


def create_database(server_url: str) -> str:
    """A fresh database on ``server_url``'s server, upgraded to the head revision; its URL."""
    from gateway.journal.db import upgrade

    name = f"fixgw_failover_{secrets.token_hex(5)}"
    admin = _admin(server_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    admin = _admin(server_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def config_text(url: str, work: Path, ports: dict, ttl: float, seq_gap: int) -> str:
    """gateway.cfg of the cluster: two FIX.4.4 clients, one drop-copy receiver, the bench's two venues (heartbeat
    1 s, so a venue notices a paused active soon), the order state in the database, one section per instance."""
    clients = "".join(f'[clients.{c}]\nfix_version = "FIX.4.4"\n' for c in CLIENTS)
    venues = venue_sections(ports["venues"], extra="heartbeat_s = 1\n")
    instances = "".join(f"""[instance.{n}]
data_dir = "{work / n}"
acceptor_port = {p["acceptor"]}
dropcopy_port = {p["dropcopy"]}
http_port = {p["http"]}
""" for n, p in ports["instances"].items())
    first = next(iter(ports["instances"].values()))
    return f"""comp_id = "FIXGW"
data_dir = "{work / "base"}"
log_level = "INFO"
[acceptor]
port = {first["acceptor"]}
[http]
port = {first["http"]}
[journal]
database_url = "{url}"
[recovery]
state_log = "database"
{clients}[dropcopy]
port = {first["dropcopy"]}
[dropcopy.sessions.{RECEIVER}]
fix_version = "FIX.4.4"
{venues}[cluster]
name = "{CLUSTER}"
lease_ttl_s = {ttl}
seq_gap = {seq_gap}
{instances}"""


@dataclass
class Instance:
    """One `fixgw run --instance NAME` process group (the gateway and its journal writer), restarted as needed."""

    name: str
    cfg_path: Path
    ports: dict
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    runs: list[subprocess.Popen] = field(default_factory=list)
    stopped: bool = False  # SIGSTOP sent and no SIGCONT yet

    def start(self) -> "Instance":
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {len(self.runs) + 1} at {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "-c", str(self.cfg_path), "--instance", self.name],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
        self.runs.append(self.proc)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        """``sig`` to the whole group: a SIGKILL is the machine's loss, a SIGSTOP its freeze."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    def kill_all(self) -> None:
        for p in self.runs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGCONT)
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class DatabaseCutter:
    """The proxies' process: ``cut(name, seconds)`` cuts one instance's database connections."""

    def __init__(self, ports: dict[str, int], target: tuple[str, int]):
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "failover_proxy.py"), "--target",
                                      f"{target[0]}:{target[1]}", *[f"{n}={p}" for n, p in ports.items()]],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the database proxies did not start")

    def cut(self, name: str, seconds: float) -> int:
        self.proc.stdin.write(f"cut {name} {seconds}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[-1])

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Stack:
    """Everything the harness runs; ``close()`` (idempotent) ends every process it started and drops its database."""

    def __init__(self, server_url: str, work: Path, n_instances: int, ttl: float, seq_gap: int, proxies: bool,
                 keep: bool = False, stagger_s: float = 0.0):
        self.server_url, self.work, self.ttl, self.keep = server_url, work, ttl, keep
        self.url: str | None = None
        self.engine = None
        self.instances: dict[str, Instance] = {}
        self.venues: dict = {}
        self.clients: dict = {}
        self.receiver = None
        self.cutter: DatabaseCutter | None = None
        self.names = [chr(ord("A") + i) for i in range(n_instances)]
        self._seq_gap, self._proxies, self._stagger = seq_gap, proxies, stagger_s
        self._closed = False

    # ---------------------------------------------------------------- start
    def start(self) -> "Stack":
        from gateway.config import parse_config
        from gateway.journal.db import make_engine
        from sessions.simulator.venue import VenueSimulator

        self.work.mkdir(parents=True, exist_ok=True)
        self.url = create_database(self.server_url)
        self.engine = make_engine(self.url)
        taken: set[int] = set()
        ports = {"venues": {v: free_port(taken) for v in VENUES},
                 "instances": {n: {k: free_port(taken) for k in ("acceptor", "dropcopy", "http")}
                               for n in self.names}}
        db = make_url(self.url)
        proxy_ports = {n: free_port(taken) for n in self.names} if self._proxies else {}
        if proxy_ports:
            self.cutter = DatabaseCutter(proxy_ports, (db.host or "127.0.0.1", db.port or 5432))
        self.ports = ports
        base_text = None
        for n in self.names:  # one file per instance: they differ only in the proxy their database URL goes through
            url = (db.set(host="127.0.0.1", port=proxy_ports[n]).render_as_string(hide_password=False)
                   if proxy_ports else self.url)
            cfg_text = config_text(url, self.work, ports, self.ttl, self._seq_gap)
            base_text = base_text or cfg_text
            cfg_path = self.work / f"gateway-{n}.cfg"
            cfg_path.write_text(cfg_text)
            self.instances[n] = Instance(n, cfg_path, ports["instances"][n], self.work / n, self.work / f"{n}.log")
        cfg = parse_config(base_text, self.work, env={})
        for name, v in cfg.venues.items():
            sim = VenueSimulator(comp_id=name, port=v.port, sim=v.simulator, store_dir=self.work / "venues" / name,
                                 counterparties=(cfg.comp_id,))
            sim.wire.rows = []  # every message the venue read or wrote, for the sequence and silence checks
            self.venues[name] = sim.start()
        first = self.instances[self.names[0]].start()
        if not wait_until(lambda: self.leader() == first.name and self._serving(first), 90, 0.2):
            raise RuntimeError(f"instance {first.name} did not lead and serve within 90 s:\n{first.log_tail()}")
        if not wait_until(lambda: all(sim.logged_on for sim in self.venues.values()), 30, 0.1):
            raise RuntimeError("the venues did not see the first instance log on")
        for n in self.names[1:]:  # together, as a supervisor starts them, unless told to stagger them
            self.instances[n].start()
            time.sleep(self._stagger)
        for n in self.names[1:]:
            if not self.wait_standby(n, 90):
                raise RuntimeError(f"instance {n} did not stand by within 90 s:\n{self.instances[n].log_tail()}")
        for c in CLIENTS:
            self.clients[c] = self._peer(c, "acceptor")
        self.receiver = self._peer(RECEIVER, "dropcopy")
        return self

    def _peer(self, sender: str, port_key: str):
        """A FIX.4.4 initiator whose failover list has every instance's port (SocketConnectPort, ...1, ...2),
        heartbeat 1 s (a paused active is noticed in about 2.4 s) and a logon timeout of 2 s (a Logon into a paused
        active's listening socket is given up soon, and the next address tried)."""
        from sessions.client import FixClient

        ports = [self.ports["instances"][n][port_key] for n in self.names]
        extra = {"LogonTimeout": "2"}
        for i, port in enumerate(ports[1:], 1):
            extra |= {f"SocketConnectHost{i}": "127.0.0.1", f"SocketConnectPort{i}": str(port)}
        client = FixClient(version="FIX.4.4", sender=sender, target="FIXGW", port=ports[0], heartbeat_s=1,
                           store_dir=self.work / "peers" / sender, extra=extra)
        return client.start(timeout=30)

    def _serving(self, inst: Instance) -> bool:
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(f"http://127.0.0.1:{inst.ports['http']}/health", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    # ---------------------------------------------------------------- the cluster as the database has it
    def lease(self):
        from gateway.cluster.lease import Lease

        try:
            return Lease(self.engine, CLUSTER).read()
        except Exception:  # noqa: BLE001 - a read that fails is "do not know yet"
            return None

    def leader(self) -> str | None:
        lease = self.lease()
        return lease.holder if lease is not None and lease.holder and not lease.expired else None

    def members(self) -> dict:
        from gateway.cluster.membership import read_members

        try:
            return {m.instance: m for m in read_members(self.engine, CLUSTER)}
        except Exception:  # noqa: BLE001
            return {}

    def wait_standby(self, name: str, timeout: float) -> bool:
        """The instance's current process stands by (its row says so, with its pid)."""
        inst = self.instances[name]

        def standing() -> bool:
            m = self.members().get(name)
            return inst.alive and m is not None and m.role == "standby" and m.pid == inst.proc.pid
        return bool(wait_until(standing, timeout, 0.1))

    def restart(self, name: str) -> None:
        inst = self.instances[name]
        if inst.alive:
            inst.signal_group(signal.SIGKILL)
            inst.proc.wait(10)
        inst.start()

    def spool_ends(self, name: str) -> dict[str, int]:
        """Spool file -> the end of its last record, for one instance (what it has journaled or is about to)."""
        from gateway.journal.spool import spool_end, spool_files

        return {f.name: spool_end(f) for f in spool_files(self.instances[name].data_dir / "spool")}

    def spooled_since(self, name: str, since_ns: int) -> list[tuple[str, str, int, int]]:
        """(session, direction, MsgSeqNum, ts_us) of each message one instance spooled from ``since_ns`` on (wall
        clock, as the spool stamps them): what it may have sent or read and not yet committed to the journal."""
        from gateway.journal.spool import read_spool, spool_files

        out = []
        for f in spool_files(self.instances[name].data_dir / "spool"):
            for ts, session, direction, raw, _end in read_spool(f):
                if ts >= since_ns and direction in ("I", "O"):
                    i = raw.find("\x0134=")
                    seq = raw[i + 4:raw.find("\x01", i + 4)] if i >= 0 else ""
                    if seq.isdigit():
                        out.append((session, direction, int(seq), ts // 1000))
        return out

    # ---------------------------------------------------------------- stop
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for peer in [*self.clients.values(), self.receiver]:
            if peer is not None:
                with contextlib.suppress(Exception):
                    peer.stop()
        for inst in self.instances.values():
            inst.kill_all()
        if self.cutter is not None:
            self.cutter.close()
        for sim in self.venues.values():
            with contextlib.suppress(Exception):
                sim.stop()
        if self.engine is not None:
            self.engine.dispose()
        if self.url is not None:
            with contextlib.suppress(Exception):
                drop_database(self.server_url, self.url)
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
