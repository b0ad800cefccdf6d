"""Instances of a cluster as `fixgw run -c CFG --instance NAME` subprocesses, for the failover tests: the
configuration's cluster sections, starting, waiting and killing an instance, and reading the cluster back from the
database (the lease, each instance's row, `fixgw cluster status`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cluster_toml(name: str, ttl: float, instances: dict[str, dict], seq_gap: int = 1000) -> str:
    """``[cluster]`` and one ``[instance.NAME]`` per entry of ``instances`` (its keys and values as given)."""
    out = [f'[cluster]\nname = "{name}"\nlease_ttl_s = {ttl}\nseq_gap = {seq_gap}\n']
    for inst, keys in instances.items():
        out.append(f"[instance.{inst}]\n" + "".join(
            f"{k} = {json.dumps(str(v)) if isinstance(v, (str, Path)) else v}\n" for k, v in keys.items()))
    return "\n".join(out)


def wait_until(predicate, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def serving(port: int) -> bool:
    """Whether a gateway answers on this HTTP port (503 too: it is up, its venues may still connect)."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@dataclass
class Instance:
    """One `fixgw run --instance NAME` process and what the test knows of it."""

    name: str
    cfg_path: Path
    http_port: int
    log_path: Path
    proc: subprocess.Popen | None = None
    runs: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> "Instance":
        log = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "-c", str(self.cfg_path),
                                      "--instance", self.name], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.runs.append(self.proc)
        return self

    def wait_serving(self, timeout: float = 60) -> None:
        wait_until(lambda: serving(self.http_port) or self._died(), timeout, f"instance {self.name} to serve")
        assert self.proc.poll() is None, f"instance {self.name} exited with {self.proc.returncode}:\n{self.log()}"

    def _died(self) -> bool:
        return self.proc.poll() is not None

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop_all(self) -> None:
        for p in self.runs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.kill()
                p.wait(10)


def lease_of(url: str, cluster: str):
    """The cluster's lease as the database has it now (LeaseStatus, or None)."""
    from gateway.cluster.lease import Lease
    from gateway.journal.db import make_engine

    engine = make_engine(url)
    try:
        return Lease(engine, cluster).read()
    finally:
        engine.dispose()


def roles_of(url: str, cluster: str) -> dict[str, str]:
    """instance -> the role its row says."""
    from gateway.cluster.membership import read_members
    from gateway.journal.db import make_engine

    engine = make_engine(url)
    try:
        return {m.instance: m.role for m in read_members(engine, cluster)}
    finally:
        engine.dispose()


def wait_leader(url: str, cluster: str, name: str, timeout: float) -> float:
    """Wait until ``name`` holds the cluster's unexpired lease; the seconds it took."""
    start = time.monotonic()

    def leads() -> bool:
        lease = lease_of(url, cluster)
        return lease is not None and lease.held and lease.holder == name
    wait_until(leads, timeout, f"{name} to hold the lease of {cluster}", every=0.05)
    return time.monotonic() - start


def cluster_status(cfg_path: Path) -> tuple[int, dict]:
    """`fixgw cluster status --json`: (exit code, the JSON)."""
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "cluster", "status", "-c", str(cfg_path), "--json"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)
