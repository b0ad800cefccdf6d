"""FIX framing as quickfix 1.16 reads it, with a size limit: where each message ends, and when a stream is not FIX.

Pure (no I/O). The front door (gateway/security/frontdoor.py) feeds every byte a client
sends through a ``FrameChecker`` before relaying it to quickfix, so it knows
where the Logon ends, and closes a connection the moment a message would be
larger than ``max_bytes`` or the bytes are not FIX at all. Without it quickfix's
``Parser`` keeps whatever arrives in a growing ``std::string`` until it holds a
whole message: a BodyLength of 99999999 (or bytes without a ``8=``) is buffered
for ever.

The message boundaries are quickfix's own (src/C++/Parser.cpp,
``readFixMessage``): a message starts with ``8=``; its BodyLength is the value
of the first ``<SOH>9=`` field; the CheckSum field is the first ``<SOH>10=`` at
or after the last byte of the body (quickfix searches for it there rather than
expecting it exactly after the body), and the message ends at the next SOH. So a
message quickfix would accept is never refused here, except for its size. We are
stricter where quickfix would only buffer or skip: bytes before a ``8=``, a
BodyLength that is not the second field, or not a number, close the connection.

Cost: per message a few ``find`` calls on the chunk as it arrives; the body is
skipped by its length, never copied or scanned.
"""
from __future__ import annotations

from datetime import datetime, timezone

SOH = "\x01"
HEADER_MAX = 64  # "8=FIXT.1.1<SOH>9=<digits><SOH>" is < 32 bytes; more without a BodyLength is not FIX

# close reasons (the ``reason`` label of fixgw_connections_closed_total)
GARBAGE = "garbage"
TOO_LARGE = "too_large"

_HEAD, _SEEK, _END = 0, 1, 2


class FrameError(Exception):
    """The stream is not FIX or a message is over the limit; ``reason`` is GARBAGE or TOO_LARGE. ``good``: how
    many bytes of the chunk fed came before the message at fault (whole messages, or the rest of one begun in an
    earlier chunk), which may still be passed on."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.good = 0


class FrameChecker:
    """Follows the framing of one direction of one connection, chunk by chunk.

    ``feed(data)`` raises ``FrameError`` at the first problem; ``messages`` counts
    the complete messages seen, ``first_end`` is the offset (in the whole stream)
    just after the first one.
    """

    __slots__ = ("max_bytes", "messages", "first_end", "_state", "_head", "_skip", "_size", "_carry", "_offset",
                 "_begun")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.messages = 0
        self.first_end: int | None = None
        self._state = _HEAD
        self._head = bytearray()  # the start of a message until its BodyLength field is complete
        self._skip = 0  # body bytes still to pass without looking
        self._size = 0  # bytes of the current message so far
        self._carry = b""  # the last bytes of the previous chunk while looking for <SOH>10=
        self._offset = 0  # bytes fed before this chunk
        self._begun = 0  # where in the current chunk the current message began (0: in an earlier chunk)

    def feed(self, data: bytes) -> None:
        try:
            self._feed(data)
        except FrameError as exc:
            exc.good = self._begun
            raise

    def _feed(self, data: bytes) -> None:
        n = len(data)
        i = 0
        self._begun = 0
        while i < n:
            if self._skip:
                k = n - i if n - i < self._skip else self._skip
                self._skip -= k
                i += k
                continue
            state = self._state
            if state == _HEAD:
                i = self._read_head(data, i)
            elif state == _SEEK:
                i = self._seek_checksum(data, i)
            else:
                m = data.find(b"\x01", i)
                end = n if m < 0 else m + 1
                self._grow(end - i)
                i = end
                if m >= 0:
                    self._complete(i)
        self._offset += n

    def _grow(self, k: int) -> None:
        self._size += k
        if self._size > self.max_bytes:
            raise FrameError(TOO_LARGE, f"a message longer than {self.max_bytes} bytes (max_message_bytes) "
                                        "without its CheckSum field")

    def _complete(self, i: int) -> None:
        self.messages += 1
        if self.first_end is None:
            self.first_end = self._offset + i
        self._state = _HEAD
        self._size = 0
        self._begun = i

    def _read_head(self, data: bytes, i: int) -> int:
        head = self._head
        before = len(head)
        head += data[i:i + HEADER_MAX - before]
        if head[:2] != b"8="[:len(head)]:
            raise FrameError(GARBAGE, f"not FIX: a message must start with 8=, got {bytes(head[:16])!r}")
        first_soh = head.find(b"\x01")
        if first_soh >= 0 and head[first_soh + 1:first_soh + 3] != b"9="[:len(head) - first_soh - 1]:
            raise FrameError(GARBAGE, "not FIX: BodyLength (9) is not the second field")
        end = head.find(b"\x01", first_soh + 3) if first_soh >= 0 else -1
        if end < 0:
            if len(head) >= HEADER_MAX:
                raise FrameError(GARBAGE, f"not FIX: no BodyLength within the first {HEADER_MAX} bytes")
            return i + len(head) - before
        digits = bytes(head[first_soh + 3:end])
        if not digits.isdigit() or len(digits) > 12:
            raise FrameError(GARBAGE, f"not FIX: BodyLength {digits[:16]!r} is not a number")
        length = int(digits)
        header = end + 1
        if header + length + 7 > self.max_bytes:  # 7: "10=nnn<SOH>"
            raise FrameError(TOO_LARGE, f"BodyLength {length} is over the limit of {self.max_bytes} bytes per "
                                        "message (max_message_bytes)")
        used = header - before
        head.clear()
        # quickfix looks for "<SOH>10=" from the body's last byte on (from the header's last SOH if it is empty)
        if length:
            self._skip = length - 1
            self._carry = b""
        else:
            self._carry = b"\x01"
        self._size = header + self._skip
        self._state = _SEEK
        return i + used

    def _seek_checksum(self, data: bytes, i: int) -> int:
        carry = self._carry
        if carry:
            probe = carry + data[i:i + 3]
            k = probe.find(b"\x0110=")
            self._carry = b""
            if k >= 0:
                used = k + 4 - len(carry)
                self._grow(used)
                self._state = _END
                return i + used
        k = data.find(b"\x0110=", i)
        if k < 0:
            n = len(data)
            self._grow(n - i)
            tail = bytes(data[max(i, n - 3):n])
            self._carry = (carry + tail)[-3:] if n - i < 3 else tail  # a byte-at-a-time sender
            return n
        self._grow(k + 4 - i)
        self._state = _END
        return k + 4


def logon_fields(raw: bytes) -> dict[int, str] | None:
    """The fields of a first message that is a Logon (35=A as the third field), or None.

    Only the tags the front door needs: 8, 35, 49, 56 (first occurrence each).
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    parts = text.split("\x01")
    if len(parts) < 3 or parts[2] != "35=A":
        return None
    out: dict[int, str] = {}
    for part in parts:
        tag, eq, value = part.partition("=")
        if eq and tag in ("8", "35", "49", "56") and int(tag) not in out:
            out[int(tag)] = value
    return out


def logout_message(begin: str, sender: str, target: str, text: str, now: datetime | None = None) -> bytes:
    """A Logout (35=5, MsgSeqNum 1) from ``sender`` to ``target`` with ``text``: the front door's answer to a
    Logon for no session it serves (it has no session, so no sequence numbers or store). Values are the
    peer's own bytes (latin-1), minus any SOH."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H:%M:%S.%f")[:-3]
    body = "".join(f"{tag}={str(value).replace(SOH, ' ')}{SOH}"
                   for tag, value in ((35, "5"), (34, 1), (49, sender), (52, stamp), (56, target), (58, text)))
    head = f"8={begin.replace(SOH, ' ')}{SOH}9={len(body.encode('latin-1', 'replace'))}{SOH}{body}"
    raw = head.encode("latin-1", "replace")
    return raw + f"10={sum(raw) % 256:03d}{SOH}".encode("ascii")
