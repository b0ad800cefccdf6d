"""Secret FIX fields kept out of the journal, the spool, logs and CLI output.

``redact(text)`` replaces the value of every secret tag with ``****`` wherever a
FIX field appears in ``text``: a raw message (SOH between fields), a message as
logged or replayed (``|``), or a field quoted in free text. The tags:
Password (554), NewPassword (925), EncryptedPassword (1402) and
EncryptedNewPassword (1404).

Cost: text that contains none of the tags (every application message) is
checked with four substring searches and returned as it is; only logons and
user requests pay for the regular expression. A redacted raw message no longer
matches its BodyLength (9) and CheckSum (10): it is a record, not something to
re-send.
"""
from __future__ import annotations

import re

SECRET_TAGS = ("554", "925", "1402", "1404")
MASK = "****"
_NEEDLES = tuple(f"{tag}=" for tag in SECRET_TAGS)
_TAGS = "|".join(SECRET_TAGS)
# a secret tag at the start or after a field separator, its value up to the next field separator: in text with
# SOH only SOH ends a value (a password may contain "|"); in text shown with "|" for SOH, "|" ends it
_RAW_FIELD = re.compile(r"(^|[\x01])(" + _TAGS + r")=[^\x01]*")
_SHOWN_FIELD = re.compile(r"(^|[|^ ])(" + _TAGS + r")=[^|\x01]*")


def _mask(m: re.Match) -> str:
    return f"{m.group(1)}{m.group(2)}={MASK}"


def redact(text: str) -> str:
    """``text`` with the value of every secret FIX field masked."""
    if _NEEDLES[0] not in text and _NEEDLES[1] not in text and _NEEDLES[2] not in text and _NEEDLES[3] not in text:
        return text
    if "\x01" in text:
        text = _RAW_FIELD.sub(_mask, text)
    return _SHOWN_FIELD.sub(_mask, text)
