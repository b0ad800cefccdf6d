"""The wrong answers a misbehaving simulated venue gives (``[venues.X.simulator.misbehave]``).

Pure text, no quickfix: the bodies of the session-level Reject (35=3) and the
BusinessMessageReject (35=j) a venue sends instead of executing a child order.
``sessions.simulator.orders`` turns them into quickfix messages and sends them in order
with its other reports. Real venues answer like this when they do not take an
order type (QuickFIX's example executor refuses market orders with exactly this
Reject) or a message type (a cancel on a venue that does not support cancels), so
the gateway has to match such an answer to the child order by RefSeqNum (45).
"""
from __future__ import annotations

from venuesim.config import BUSINESS_REJECT_REASONS

SOH = "\x01"
# MsgType -> the MisbehaviourConfig key that says how it is answered
MESSAGE_KIND = {"D": "new_order", "F": "cancel", "G": "replace", "H": "status", "AF": "status"}
# QuickFIX's text for SessionRejectReason 5 (Value is incorrect (out of range) for this tag)
VALUE_INCORRECT = "Value is incorrect (out of range) for this tag"
ORD_TYPE = 40  # the tag QuickFIX's executor names when it refuses an order type


def _clean(value: str) -> str:
    return value.replace(SOH, " ")


def session_reject(ref_seq_num: str, ref_msg_type: str, ref_tag: int = ORD_TYPE) -> str:
    """``35=3|45=<seq>|58=Value is incorrect (out of range) for this tag|371=40|372=<type>|373=5``."""
    return (f"35=3{SOH}45={_clean(ref_seq_num)}{SOH}58={VALUE_INCORRECT}{SOH}371={ref_tag}{SOH}"
            f"372={_clean(ref_msg_type)}{SOH}373=5{SOH}")


def business_reject(ref_seq_num: str, ref_msg_type: str, reason: int, ref_id: str | None = None,
                    appl_ver_id: str | None = None) -> str:
    """``35=j|45=<seq>|58=<reason's name>|372=<type>|379=<ClOrdID>|380=<reason>``, and ``1137=<appl_ver_id>``
    in the body when given (what quickfix 1.16 does on FIXT sessions, and a validating peer refuses)."""
    text = f"{BUSINESS_REJECT_REASONS[reason]} (venue simulator misbehaviour)"
    out = f"35=j{SOH}45={_clean(ref_seq_num)}{SOH}58={text}{SOH}372={_clean(ref_msg_type)}{SOH}"
    if ref_id:
        out += f"379={_clean(ref_id)}{SOH}"
    out += f"380={reason}{SOH}"
    if appl_ver_id:
        out += f"1137={appl_ver_id}{SOH}"
    return out
