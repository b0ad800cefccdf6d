"""A FIX session over a raw socket, for tests that must put bytes on the wire no quickfix client would send.

quickfix's Python binding takes only str, which it writes as UTF-8: it cannot send a field holding the bytes
0xFF 0xFE. ``RawSession`` builds each message as bytes (BodyLength and CheckSum computed over them), logs on
with ResetSeqNumFlag (141=Y) so every test starts at MsgSeqNum 1, and reads the peer's messages back. It
answers no TestRequest and keeps no store: it lives for one test, well inside the heartbeat interval.
"""
from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

from sessions.closing import settle

SOH = b"\x01"
BEGIN_STRING = {"FIX.4.2": b"FIX.4.2", "FIX.4.4": b"FIX.4.4", "FIX.5.0": b"FIXT.1.1"}


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("ascii")


def frame(version: str, sender: str, target: str, seq: int, msg_type: str, body: list[tuple[int, object]]) -> bytes:
    """One complete message: header, ``body`` (tag, str | bytes) in order, BodyLength and CheckSum."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]
    fields = [(35, msg_type), (49, sender), (56, target), (34, seq), (52, stamp)] + list(body)
    payload = b"".join(b"%d=%s\x01" % (tag, _bytes(value)) for tag, value in fields)
    head = b"8=" + BEGIN_STRING[version] + SOH + b"9=%d\x01" % len(payload)
    msg = head + payload
    return msg + b"10=%03d\x01" % (sum(msg) % 256)


def parse(raw: bytes) -> dict[int, str]:
    """tag -> value (latin-1, so any byte survives) of one message."""
    out = {}
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition(b"=")
            out[int(tag)] = value.decode("latin-1")
    return out


class RawSession:
    def __init__(self, port: int, version: str, sender: str, target: str = "FIXGW"):
        self.version, self.sender, self.target = version, sender, target
        settle()  # a socket opened in a process where quickfix may still read a number it closed (sessions/closing.py)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.seq = 0
        self.received: list[dict[int, str]] = []
        self._buffer = b""

    def send(self, msg_type: str, body: list[tuple[int, object]]) -> int:
        """Send one message; returns its MsgSeqNum."""
        self.seq += 1
        self.sock.sendall(frame(self.version, self.sender, self.target, self.seq, msg_type, body))
        return self.seq

    def logon(self, timeout: float = 15.0) -> dict[int, str]:
        """Log on and wait for the gateway's Logon: up to 15 s, as a gateway under a full test run's load may
        take longer than the 5 s other answers get (CI once saw none within 5 s)."""
        body = [(98, 0), (108, 30), (141, "Y")]
        if self.version == "FIX.5.0":
            body.append((1137, "7"))
        self.send("A", body)
        return self.wait_for(lambda m: m.get(35) == "A", "Logon", timeout)

    def _read(self, deadline: float) -> None:
        """Read what has arrived (until ``deadline`` at most) into ``received``."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\x0110=")
            if end < 0 or self._buffer.find(SOH, end + 1) < 0:
                return
            stop = self._buffer.find(SOH, end + 1) + 1
            self.received.append(parse(self._buffer[:stop]))
            self._buffer = self._buffer[stop:]

    def wait_for(self, predicate, what: str, timeout: float = 5.0) -> dict[int, str]:
        """The first message received that matches ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for m in self.received[seen:]:
                if predicate(m):
                    return m
            seen = len(self.received)
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {what} within {timeout} s; received: {self.received}")
            self._read(deadline)

    def app_messages(self) -> list[dict[int, str]]:
        return [m for m in self.received if m.get(35) not in ("0", "1", "2", "4", "5", "A")]

    def close(self) -> None:
        try:
            self.send("5", [])
            self.wait_for(lambda m: m.get(35) == "5", "Logout", timeout=2)
        except (OSError, AssertionError):
            pass
        finally:
            self.sock.close()


def start_raw_stack(tmp, sessions: dict[str, str]):
    """A test stack (tests/fix_fixtures.py) that also serves raw sessions: name -> FIX version."""
    from tests.fix_fixtures import start_stack
    extra = "".join(f'[clients.{name}]\nfix_version = "{version}"\n' for name, version in sessions.items())
    return start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=extra)
