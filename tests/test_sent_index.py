"""sessions/sent_index.py: what we sent each venue, by MsgSeqNum, so a Reject naming only RefSeqNum finds its child."""
from __future__ import annotations

from sessions.sent_index import SentIndex


def raw(seq: int, msg_type: str, cl: str | None = None) -> str:
    body = f"35={msg_type}\x0134={seq}\x0149=FIXGW\x0156=V1\x01" + (f"11={cl}\x01" if cl else "") + "55=AAPL\x01"
    return f"8=FIX.4.4\x019={len(body)}\x01{body}10=000\x01"


def test_order_messages_are_found_by_their_sequence_number_and_others_are_not_kept():
    index = SentIndex()
    index.track("FIX.4.4:FIXGW->V1")
    note = index.hook("FIX.4.4:FIXGW->V1")
    for seq, t, cl in ((2, "D", "T-1"), (3, "0", None), (4, "F", "T-1.c1"), (5, "V", "MD1"), (6, "H", "T-1")):
        note(raw(seq, t, cl))
    assert index.lookup("FIX.4.4:FIXGW->V1", 2) == ("D", "T-1")
    assert index.lookup("FIX.4.4:FIXGW->V1", 4) == ("F", "T-1.c1")
    assert index.lookup("FIX.4.4:FIXGW->V1", 6) == ("H", "T-1")
    assert index.lookup("FIX.4.4:FIXGW->V1", 3) is None and index.lookup("FIX.4.4:FIXGW->V1", 5) is None
    assert index.lookup("FIX.4.4:FIXGW->OTHER", 2) is None and index.hook("FIX.4.4:FIXGW->OTHER") is None


def test_the_index_is_bounded_and_a_reused_sequence_number_names_the_newer_message():
    index = SentIndex()
    index.KEEP = 10
    index.track("S")
    note = index.hook("S")
    for seq in range(1, 31):
        note(raw(seq, "D", f"C{seq}"))
    assert index.lookup("S", 20) is None and index.lookup("S", 21) == ("D", "C21")
    note(raw(25, "G", "R25"))  # after a sequence reset
    assert index.lookup("S", 25) == ("G", "R25")
