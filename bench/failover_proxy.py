"""Loopback TCP proxies to PostgreSQL, one per cluster instance, so bench/failover.py can cut one instance's
database connections while the others keep theirs (a child process of the harness, asyncio, no GIL shared).

Each instance's configuration file names its own proxy port in ``[journal] database_url``; every connection it
makes (journal writer, state log, lease keeper, heartbeat, drop-copy reader) goes through it. Commands on stdin,
one a line:

    cut NAME SECONDS   close every connection of NAME's proxy now, and for SECONDS close each new one at once
                       (the client sees "server closed the connection unexpectedly"); answers "cut NAME N" with
                       N the connections closed
    quit               close everything and exit

Prints "ready" once every listener is bound. EOF on stdin (the harness died) ends it too.

    python bench/failover_proxy.py --target 127.0.0.1:5432 A=40001 B=40002
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time


class Proxy:
    """One listener and the connection pairs it forwards; ``cut`` closes them and refuses new ones a while."""

    def __init__(self, name: str, target: tuple[str, int]):
        self.name = name
        self.target = target
        self.refuse_until = 0.0
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self.refuse_until:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.pairs.discard(pair)
            for w in pair:
                w.close()

    def cut(self, seconds: float) -> int:
        self.refuse_until = time.monotonic() + seconds
        n = len(self.pairs)
        for pair in list(self.pairs):
            for w in pair:
                w.transport.abort()  # a reset, as when the network path dies; nothing more is delivered
        self.pairs.clear()
        return n


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        dst.close()


async def main(target: tuple[str, int], ports: dict[str, int]) -> None:
    proxies = {name: Proxy(name, target) for name in ports}
    servers = [await asyncio.start_server(proxies[name].handle, "127.0.0.1", port, reuse_address=True)
               for name, port in ports.items()]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        words = line.split()
        if words[0] == "quit":
            break
        if words[0] == "cut" and len(words) == 3 and words[1] in proxies:
            print(f"cut {words[1]} {proxies[words[1]].cut(float(words[2]))}", flush=True)
        else:
            print(f"error: unknown command {line!r}", flush=True)
    for server in servers:
        server.close()
    for proxy in proxies.values():
        proxy.cut(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="127.0.0.1:5432", help="PostgreSQL's host:port")
    ap.add_argument("listeners", nargs="+", help="NAME=PORT, one per instance")
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    asyncio.run(main((host, int(port)), {n: int(p) for n, _, p in (x.partition("=") for x in args.listeners)}))
