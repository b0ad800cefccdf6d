"""A raw-socket FIX session for the fuzz harness (bench/fuzz.py). Not quickfix: it must be able to send anything.

``frame(begin, body)`` computes BodyLength (9) and CheckSum (10) for a body the
caller made (possibly damaged on purpose). ``RawSession`` is the least FIX engine
that keeps a session alive against quickfix while the harness sends damaged
messages on it:

- Logon (and logon again after the gateway closed the connection; "MsgSeqNum too
  low, expecting N" in a Logout sets our next MsgSeqNum to N);
- a reader thread that answers TestRequest (1) with a Heartbeat, answers a
  ResendRequest (2) by resending the application messages it kept (each at most
  once: asked for one again, it gap-fills it, so quickfix is never fed twice a
  message it cannot take) and gap-filling the rest, and asks for a resend (2)
  when the gateway's MsgSeqNum jumps, so answers sent while we were
  disconnected still reach us;
- a record of every frame in both directions (bytes, time, MsgSeqNum), which
  the harness matches against the answers it expects and against the journal.

Sequence numbers: a frame ``send_built`` says does not use up its MsgSeqNum (garbage, a broken frame)
leaves ours as it was: the next message is sent under the same number. If
quickfix dropped it, nothing is lost; if it took it after all, quickfix says so
("MsgSeqNum too low") and the session is re-established.
"""
from __future__ import annotations

import queue
import re
import socket
import threading
import time
from dataclasses import dataclass, field

SOH = b"\x01"
APPL_VER_ID = {"FIX.5.0": b"7"}
BEGIN = {"FIX.4.2": b"FIX.4.2", "FIX.4.4": b"FIX.4.4", "FIX.5.0": b"FIXT.1.1"}
ADMIN = {b"0", b"1", b"2", b"3", b"4", b"5", b"A"}
_TOO_LOW = re.compile(rb"expecting (\d+)")


def checksum(data: bytes) -> bytes:
    return b"%03d" % (sum(data) % 256)


def frame(begin: bytes, body: bytes) -> bytes:
    """``8=begin|9=len(body)|body10=sum|``; ``body`` starts with 35= and ends with SOH."""
    head = b"8=" + begin + SOH + b"9=" + str(len(body)).encode() + SOH
    return head + body + b"10=" + checksum(head + body) + SOH


_HEAD = re.compile(rb"8=[^\x01]*\x019=\d{1,12}\x01")


def well_framed(raw: bytes) -> bool:
    """Does the frame start as FIX must (8=..., then 9=<digits>)? Neither quickfix's parser nor the gateway's
    front door can take a message whose BodyLength is not the second field: quickfix drops it (and what it
    buffered after it), the front door closes the connection."""
    return _HEAD.match(raw) is not None


def join(pairs) -> bytes:
    """``tag=value|`` for each (tag, value) pair; tags and values as bytes, str or int."""
    out = bytearray()
    for tag, value in pairs:
        out += _b(tag) + b"=" + _b(value) + SOH
    return bytes(out)


def _b(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for part in raw.split(SOH):
        if part:
            tag, _, value = part.partition(b"=")
            out.append((tag, value))
    return out


def field_map(raw: bytes) -> dict[bytes, bytes]:
    """tag -> value (the first occurrence of each tag)."""
    out: dict[bytes, bytes] = {}
    for tag, value in fields(raw):
        out.setdefault(tag, value)
    return out


def utc_now(offset_s: float = 0.0) -> bytes:
    t = time.time() + offset_s
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(t)).encode() + b".%03d" % int((t % 1) * 1000)


def split_frames(buf: bytearray) -> list[bytes]:
    """Take every complete frame off the front of ``buf`` (the gateway's output is well formed)."""
    out = []
    while True:
        start = buf.find(b"8=")
        if start < 0:
            buf.clear()
            return out
        if start:
            del buf[:start]
        first = buf.find(SOH)
        second = buf.find(SOH, first + 1) if first >= 0 else -1
        if second < 0:
            return out
        length_field = bytes(buf[first + 1:second])
        if not length_field.startswith(b"9=") or not length_field[2:].isdigit():
            del buf[:2]  # not a frame start after all
            continue
        end_body = second + 1 + int(length_field[2:])
        end = buf.find(SOH, end_body + 1)
        if end < 0:
            return out
        out.append(bytes(buf[:end + 1]))
        del buf[:end + 1]


@dataclass
class Wire:
    """One frame on the wire: direction "O" (we sent) or "I" (we received)."""

    t: float
    direction: str
    raw: bytes
    seq: int | None  # our MsgSeqNum (O) or the gateway's (I); None: not a frame with one (garbage)
    connection: int
    framed: bool = True  # O only: false for bytes sent broken on purpose (no valid frame)
    after_damage: bool = False  # O only: sent while broken bytes were still in the gateway's parser (maybe swallowed)
    msg: dict[bytes, bytes] = field(default_factory=dict)


class RawSession:
    """One client session of the gateway, spoken over a plain socket; see the module docstring."""

    def __init__(self, version: str, sender: str, target: str, port: int, host: str = "127.0.0.1",
                 heartbeat_s: int = 30):
        self.version = version
        self.begin = BEGIN[version]
        self.sender = sender.encode()
        self.target = target.encode()
        self.host, self.port = host, port
        self.heartbeat_s = heartbeat_s
        self.next_out = 1
        self.wire: list[Wire] = []
        self.store: dict[int, tuple[bytes, bytes]] = {}  # seq -> (MsgType, body after the header) for resends
        self.gap_filled: set[int] = set()  # our seqs we gap-filled when asked for a resend
        self.resent: set[int] = set()
        self.in_seen: set[int] = set()
        self.in_high = 0
        self.answers_45: set[int] = set()  # RefSeqNum of the Rejects (3) and BusinessMessageRejects (j) received
        self.answers_11: dict[bytes, list[float]] = {}  # ClOrdID -> times of the ExecutionReports/CancelRejects
        self.heartbeats: set[bytes] = set()  # TestReqIDs answered
        self.logouts: list[bytes] = []  # Text of each Logout received
        self.closed_at: dict[int, float] = {}  # connection -> when the gateway closed it
        self.ended_at: dict[int, float] = {}  # connection -> when it ended (closed by either side)
        self.last_resend_request: tuple[int, int] | None = None
        self.last_in = 0.0  # when the last frame arrived
        self.resyncs: list[tuple[float, int]] = []  # (when, our next MsgSeqNum) of each SequenceReset-Reset
        self.connections = 0
        self.closed_by_peer = 0
        self.lock = threading.RLock()  # one sender at a time; seq assignment and the socket write together
        self.cond = threading.Condition()
        self.sock: socket.socket | None = None
        self.logged_on = False
        self._reader: threading.Thread | None = None
        self._last_sent = 0.0
        self._closing = False
        self.damaged = False  # broken bytes sent, and no answer to a later message yet (see Wire.after_damage)
        self.resend_count: dict[int, int] = {}
        self.mute = False  # true: answer nothing, send no heartbeats (a peer that went silent)
        # The reader never sends (it would wait for the send lock while the sender waits for a full socket that
        # only the reader drains): its answers (Heartbeat, ResendRequest, resends) go through this thread.
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._reply_loop, daemon=True, name=f"fuzz-reply-{sender}").start()

    # ------------------------------------------------------------------ connection
    @property
    def key(self) -> str:
        """The gateway's name for this session (its journal's session_id)."""
        return f"{self.begin.decode()}:{self.target.decode()}->{self.sender.decode()}"

    def connected(self) -> bool:
        return self.sock is not None and self.logged_on

    def connect(self, timeout: float = 5.0, attempts: int = 4, heartbeat_s: int | None = None) -> bool:
        """Log on (again); True once the gateway's Logon arrived."""
        for _ in range(attempts):
            self.close()
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except OSError:
                time.sleep(0.2)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(0.2)
            with self.cond:
                self.sock = sock
                self.logged_on = False
                self.connections += 1
                logouts_before = len(self.logouts)
            self._closing = False
            self.mute = False
            self._reader = threading.Thread(target=self._read, args=(sock, self.connections), daemon=True,
                                            name=f"fuzz-read-{self.sender.decode()}")
            self._reader.start()
            body = [(98, 0), (108, heartbeat_s or self.heartbeat_s)]
            if self.version == "FIX.5.0":
                body.append((1137, APPL_VER_ID["FIX.5.0"]))
            try:
                self.send(b"A", join(body), store=False)
            except ConnectionError:
                continue
            deadline = time.monotonic() + timeout
            with self.cond:
                self.cond.wait_for(lambda: self.logged_on or self.sock is not sock or
                                   len(self.logouts) > logouts_before, max(0.0, deadline - time.monotonic()))
                if self.logged_on and self.sock is sock:
                    # a ResendRequest may follow the Logon: let its answer go out before the caller's next message
                    self.cond.wait(0.05)
                    return True
                text = self.logouts[-1] if len(self.logouts) > logouts_before else b""
            m = _TOO_LOW.search(text)
            if m:
                with self.lock:
                    self.next_out = int(m.group(1))
            time.sleep(0.2)
        return False

    def close(self, logout: bool = False) -> None:
        sock = self.sock
        if sock is None:
            return
        if logout and self.logged_on:
            try:
                self.send(b"5", b"", store=False)
                with self.cond:
                    self.cond.wait_for(lambda: self.sock is not sock, 2.0)
            except OSError:
                pass
        self._closing = True
        with self.cond:
            if self.sock is sock:
                self.sock = None
                self.logged_on = False
                self.ended_at.setdefault(self.connections, time.monotonic())
            self.cond.notify_all()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(2.0)

    # ------------------------------------------------------------------ sending
    def header(self, msg_type: bytes, seq: int, sending_time: bytes | None = None) -> bytes:
        return join([(35, msg_type), (49, self.sender), (56, self.target), (34, seq),
                     (52, sending_time or utc_now())])

    def send(self, msg_type: bytes, body: bytes, *, store: bool = True, chunk: int = 0, pause_s: float = 0.0) -> int:
        """A well-formed message; returns its MsgSeqNum. ``store``: resend it if asked (unmutated app messages);
        ``chunk``: written ``chunk`` bytes at a time, ``pause_s`` apart (a slow sender)."""
        with self.lock:
            seq = self.next_out
            raw = frame(self.begin, self.header(msg_type, seq) + body)
            self._write(raw, seq, framed=True, chunk=chunk, pause_s=pause_s)
            if store:
                self.store[seq] = (msg_type, body)
            self.next_out += 1
            return seq

    def send_built(self, build, store: tuple[bytes, bytes] | None = None) -> int | None:
        """``build(next_seq) -> (frame, seq, next_after)`` makes the whole frame (damaged as the caller likes),
        says which MsgSeqNum it carries (None: not a frame quickfix can take) and what our next MsgSeqNum is
        after it (``next_seq``: not used up). ``store``: (MsgType, body) to resend under that seq if asked.
        Returns the seq."""
        with self.lock:
            raw, seq, after = build(self.next_out)
            self._write(raw, seq, framed=seq is not None and well_framed(raw))
            self.next_out = after
            if store is not None and seq is not None and after > seq:  # it used up its MsgSeqNum
                self.store[seq] = store
            return seq

    def _write(self, raw: bytes, seq: int | None, *, framed: bool, chunk: int = 0, pause_s: float = 0.0) -> None:
        sock = self.sock
        if sock is None:
            raise ConnectionError("not connected")
        if not framed:
            self.damaged = True
        self.wire.append(Wire(time.monotonic(), "O", raw, seq, self.connections, framed, self.damaged and framed))
        try:
            if chunk:
                for i in range(0, len(raw), chunk):
                    sock.sendall(raw[i:i + chunk])
                    time.sleep(pause_s)
            else:
                sock.sendall(raw)
        except OSError as exc:
            raise ConnectionError(str(exc)) from None
        self._last_sent = time.monotonic()

    def answer_resend_again(self) -> None:
        """Answer the last ResendRequest once more (our answer may have gone into a broken frame, and quickfix
        does not ask twice for the same range). What was resent once is gap-filled now; a gap fill below what
        quickfix expects is ignored by it, so this is harmless when the first answer did arrive."""
        if self.last_resend_request is not None:
            try:
                self._resend(*self.last_resend_request)
            except ConnectionError:
                pass

    def gap_fill_from(self, seq: int) -> None:
        """A SequenceReset-GapFill from ``seq`` to our next MsgSeqNum: what a broken frame swallowed from ``seq``
        on is skipped (quickfix asked for it once already and will not ask again). Ignored by quickfix if it
        expects more than ``seq`` by now."""
        with self.lock:
            if seq >= self.next_out:
                return
            raw = frame(self.begin, join([(35, b"4"), (49, self.sender), (56, self.target), (34, seq), (43, b"Y"),
                                          (52, utc_now()), (122, utc_now()), (123, b"Y"), (36, self.next_out)]))
            try:
                self._write(raw, seq, framed=True)
            except ConnectionError:
                return
            self.gap_filled.update(range(seq, self.next_out))

    def reset_to_next(self) -> None:
        """A SequenceReset-Reset to our next MsgSeqNum: quickfix takes it whatever it expects (it ignores the
        MsgSeqNum of a Reset) and expects our next message. The last resort when the two sides' sequence numbers
        cannot be brought together otherwise (e.g. quickfix keeps a resend range from before a reconnect and
        will not ask again). What quickfix held queued below that number is dropped: ``resyncs`` records when."""
        with self.lock:
            raw = frame(self.begin, join([(35, b"4"), (49, self.sender), (56, self.target), (34, self.next_out),
                                          (52, utc_now()), (123, b"N"), (36, self.next_out)]))
            try:
                self._write(raw, self.next_out, framed=True)
            except ConnectionError:
                return
            self.resyncs.append((time.monotonic(), self.next_out))

    def test_request(self, req_id: bytes) -> int:
        return self.send(b"1", join([(112, req_id)]), store=False)

    def wait_heartbeat(self, req_ids: list[bytes], timeout: float) -> bool:
        """Whether a Heartbeat answering one of ``req_ids`` arrives within ``timeout`` (False at once if closed)."""
        with self.cond:
            return self.cond.wait_for(lambda: any(r in self.heartbeats for r in req_ids) or self.sock is None,
                                      timeout) and any(r in self.heartbeats for r in req_ids)

    # ------------------------------------------------------------------ receiving
    def _read(self, sock: socket.socket, connection: int) -> None:
        buf = bytearray()
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                self._maybe_heartbeat(sock)
                continue
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    if self.sock is sock:
                        self.sock = None
                        self.logged_on = False
                        if not self._closing:
                            self.closed_by_peer += 1
                            self.closed_at[connection] = time.monotonic()
                        self.ended_at.setdefault(connection, time.monotonic())
                    self.cond.notify_all()
                return
            buf += data
            for raw in split_frames(buf):
                try:
                    self._handle(raw, sock, connection)
                except ValueError:
                    pass

    def _maybe_heartbeat(self, sock: socket.socket) -> None:
        idle = time.monotonic() - self._last_sent
        if not self.mute and self.logged_on and self.sock is sock and idle > self.heartbeat_s * 0.8:
            self._last_sent = time.monotonic()
            self._replies.put((self.send, (b"0", b""), {"store": False}))

    def _reply_loop(self) -> None:
        while True:
            fn, args, kwargs = self._replies.get()
            try:
                fn(*args, **kwargs)
            except ConnectionError:
                pass

    def _handle(self, raw: bytes, sock: socket.socket, connection: int) -> None:
        msg = field_map(raw)
        seq = int(msg[b"34"]) if msg.get(b"34", b"").isdigit() else None
        msg_type = msg.get(b"35", b"")
        with self.cond:
            self.last_in = time.monotonic()
            self.wire.append(Wire(self.last_in, "I", raw, seq, connection, True, msg))
            if msg_type in (b"3", b"j") and msg.get(b"45", b"").isdigit():
                self.answers_45.add(int(msg[b"45"]))
            elif msg_type in (b"8", b"9", b"r") and b"11" in msg:
                self.answers_11.setdefault(msg[b"11"], []).append(time.monotonic())
            elif msg_type == b"0" and b"112" in msg:
                self.heartbeats.add(msg[b"112"])
                self.damaged = False
            elif msg_type == b"A":
                self.logged_on = True
            elif msg_type == b"5":
                self.logouts.append(msg.get(b"58", b""))
            self.cond.notify_all()
        if msg_type == b"4":
            new_seq = int(msg.get(b"36", b"0") or 0)
            if seq is not None and new_seq > seq:
                self.in_seen.update(range(seq, new_seq))
                self.in_high = max(self.in_high, new_seq - 1)
            return
        if self.mute:
            return
        if seq is not None:
            if seq > self.in_high + 1 and msg.get(b"43") != b"Y" and msg_type != b"5":
                self._replies.put((self.send, (b"2", join([(7, self.in_high + 1), (16, 0)])), {"store": False}))
            self.in_seen.add(seq)
            self.in_high = max(self.in_high, seq)
        if msg_type == b"1":
            self._replies.put((self.send, (b"0", join([(112, msg.get(b"112", b""))])), {"store": False}))
        elif msg_type == b"2":
            self.last_resend_request = (int(msg.get(b"7", b"1")), int(msg.get(b"16", b"0") or 0))
            self._replies.put((self._resend, self.last_resend_request, {}))

    def _resend(self, begin: int, end: int) -> None:
        """Resend the application messages kept in [begin, end] (0: up to the last) that were not resent before;
        gap-fill the rest."""
        with self.lock:
            last = self.next_out - 1 if end == 0 else min(end, self.next_out - 1)
            seq = begin
            while seq <= last:
                kept = self.store.get(seq)
                if kept is not None and not self.resend_count.get(seq):
                    self.resend_count[seq] = 1
                    msg_type, body = kept
                    raw = frame(self.begin, join([(35, msg_type), (49, self.sender), (56, self.target), (34, seq),
                                                  (43, b"Y"), (52, utc_now()), (122, utc_now())]) + body)
                    self._write(raw, seq, framed=True)
                    self.resent.add(seq)
                    seq += 1
                    continue
                stop = seq
                while stop <= last and (stop not in self.store or self.resend_count.get(stop)):
                    stop += 1
                raw = frame(self.begin, join([(35, b"4"), (49, self.sender), (56, self.target), (34, seq),
                                              (43, b"Y"), (52, utc_now()), (122, utc_now()), (123, b"Y"),
                                              (36, stop)]))
                self._write(raw, seq, framed=True)
                self.gap_filled.update(range(seq, stop))
                seq = stop
