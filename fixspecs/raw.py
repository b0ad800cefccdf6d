"""Reading a field straight out of a raw FIX message's text, without parsing it: for the places that need one or
two values of every message (the journal's writer, the venue sessions' sent index) or of a rare one (a refused
logon). Pure, no quickfix: every layer may use it."""
from __future__ import annotations


def field_after(raw: str, needle: str) -> str | None:
    """The value after the first ``needle`` ("<SOH>tag=", e.g. "\\x0135="), or None."""
    i = raw.find(needle)
    if i < 0:
        return None
    i += len(needle)
    j = raw.find("\x01", i)
    return raw[i:j] if j >= 0 else raw[i:]
