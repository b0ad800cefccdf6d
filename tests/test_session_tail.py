"""A session's sequence state read back from the journal (gateway/journal/session_tail.py), on SQLite and
PostgreSQL, from journal rows written here the way the journal writer stores them. The same reader against
real quickfix sessions and their stores: tests/test_store_rebuild.py."""
from __future__ import annotations

import pytest
from sqlalchemy import insert

from gateway.journal.db import journal_messages, make_engine
from gateway.journal.session_tail import intact, read_session_tail

SID = "FIX.4.4:SBA->SBB"
SOH = "\x01"


def fix_text(msg_type: str, seq: int, *fields: str, poss_dup: bool = False, sender: str = "SBA",
             target: str = "SBB") -> str:
    """A whole FIX.4.4 message with its BodyLength and CheckSum, fields given as "tag=value"."""
    header = [f"35={msg_type}", f"34={seq}", f"49={sender}", "52=20260101-12:00:00.000", f"56={target}"]
    if poss_dup:
        header.insert(2, "43=Y")
    body = SOH.join(header + list(fields)) + SOH
    head = f"8=FIX.4.4{SOH}9={len(body.encode())}{SOH}"
    return f"{head}{body}10={sum((head + body).encode()) % 256:03d}{SOH}"


class Journal:
    """Rows of one session (and a neighbour's) as the writer stores them, with increasing ts_us."""

    def __init__(self, url: str):
        self.engine = make_engine(url)
        self.ts = 1_767_268_800_000_000  # 2026-01-01 12:00 UTC

    def add(self, direction: str, msg_type: str, seq: int | None, *fields: str, poss_dup: bool = False,
            session: str = SID, raw: str | None = None) -> int:
        """Journal one message; returns its ts_us."""
        self.ts += 1000
        sender, target = ("SBA", "SBB") if direction == "O" else ("SBB", "SBA")
        text = raw if raw is not None else fix_text(msg_type, seq or 0, *fields, poss_dup=poss_dup, sender=sender,
                                                     target=target)
        with self.engine.begin() as conn:
            conn.execute(insert(journal_messages).values(
                session_id=session, direction=direction, seq_num=seq, msg_type=msg_type, poss_dup=poss_dup,
                ts_us=self.ts, raw=text))
        return self.ts

    def tail(self):
        return read_session_tail(self.engine, SID)


@pytest.fixture
def journal(database_url):
    j = Journal(database_url)
    yield j
    j.engine.dispose()


def logon(j: Journal, direction: str, seq: int, reset: bool = False) -> int:
    return j.add(direction, "A", seq, "98=0", "108=30", *(["141=Y"] if reset else []))


def app(j: Journal, direction: str, seq: int, text: str = "x", **kw) -> int:
    return j.add(direction, "j", seq, "372=D", "380=0", f"58={text}", **kw)


def test_a_session_without_rows_has_no_tail(journal):
    app(journal, "O", 1, session="FIX.4.4:SBA->OTHER")
    assert journal.tail() is None


def test_one_epoch_gives_the_next_numbers_and_the_sent_application_messages(journal):
    first = logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "O", 2, "two")
    app(journal, "I", 2)
    app(journal, "O", 3, "three", session="FIX.4.4:SBA->OTHER")  # another session's row changes nothing
    app(journal, "O", 3, "three")
    app(journal, "I", 3)
    journal.add("O", "0", 4)  # a Heartbeat: numbered, not kept (quickfix gap-fills admin messages)
    app(journal, "I", 4)
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target, tail.epoch_known) == (5, 5, True)
    assert [(seq, "58=two" in raw or "58=three" in raw) for seq, raw in tail.messages] == [(2, True), (3, True)]
    assert all(intact(raw) for _, raw in tail.messages)
    assert tail.epoch_us == first  # the Logon that began the epoch
    assert tail.unresendable == ()


def test_a_logon_with_reset_seqnum_flag_begins_a_new_epoch(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    for seq in range(2, 6):
        app(journal, "O", seq, f"old{seq}")
        app(journal, "I", seq)
    began = logon(journal, "I", 1, reset=True)  # the peer resets: quickfix resets while taking this Logon
    logon(journal, "O", 1, reset=True)
    app(journal, "O", 2, "new2")
    app(journal, "I", 2)
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target, tail.epoch_us) == (3, 3, began)
    assert [(seq, "58=new2" in raw) for seq, raw in tail.messages] == [(2, True)]


def test_our_own_reset_logon_is_answered_not_reset_again(journal):
    logon(journal, "O", 1)
    logon(journal, "I", 1)
    app(journal, "O", 2)
    app(journal, "I", 2)
    began = logon(journal, "O", 1, reset=True)  # we reset (an initiator with ResetOn*, or 141=Y by hand)
    app(journal, "O", 2, "stored")  # sent while not logged on yet: stored, journaled by the sender
    logon(journal, "I", 1, reset=True)  # the answer: no second reset
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target, tail.epoch_us) == (3, 2, began)
    assert [seq for seq, _ in tail.messages] == [2]


def test_a_reset_logon_received_after_everything_we_sent_begins_an_epoch_we_sent_nothing_in(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "O", 2)
    app(journal, "I", 2)
    began = logon(journal, "I", 1, reset=True)  # taken (the store reset), not answered before the end
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target, tail.messages, tail.epoch_us) == (1, 2, (), began)


def test_a_reset_without_a_reset_flag_shows_as_our_next_message_numbered_1(journal):
    """ResetOnLogon, ResetOnLogout, ResetOnDisconnect, a new session window, an operator's reset: the store
    is back at 1/1 and the next message we send is 1. A Logon received in between is the epoch's first."""
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    for seq in range(2, 9):
        app(journal, "O", seq)
        app(journal, "I", seq)
    journal.add("I", "5", 9)  # the peer's Logout; then our store is reset
    journal.add("O", "5", 9)
    began = logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "I", 2)
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target, tail.messages, tail.epoch_us) == (2, 3, (), began)


def test_received_numbers_wait_for_a_gap_to_close(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "I", 2)
    app(journal, "I", 3)
    app(journal, "I", 5)  # 4 lost: quickfix waits for it (and asks for it)
    app(journal, "I", 6)
    assert journal.tail().next_target == 4  # a successor asks for 4 again: nothing claimed that never came
    app(journal, "I", 4, poss_dup=True)  # the resend closes the gap: 5 and 6 are taken
    app(journal, "I", 5, poss_dup=True)  # a copy of one taken already: ignored
    assert journal.tail().next_target == 7


def test_gap_fills_and_sequence_resets_move_the_expected_number(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "I", 5)  # too high: waits
    journal.add("I", "4", 2, "123=Y", "36=5", poss_dup=True)  # gap fill 2..4, then 5 is taken
    assert journal.tail().next_target == 6
    journal.add("I", "4", 6, "36=20")  # SequenceReset-Reset: 20 next, whatever its own number
    assert journal.tail().next_target == 20
    journal.add("I", "4", 20, "36=10")  # a reset to a lower number is refused by quickfix
    assert journal.tail().next_target == 20


def test_our_resends_and_gap_fills_neither_count_nor_replace_what_we_sent(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "O", 2, "orig2")
    app(journal, "O", 3, "orig3")
    journal.add("I", "2", 2, "7=1", "16=0")  # the peer asks for everything from 1
    journal.add("O", "4", 1, "123=Y", "36=2", poss_dup=True)  # our gap fill over our Logon: 34=1, 43=Y
    app(journal, "O", 2, "orig2", poss_dup=True)
    app(journal, "O", 3, "orig3", poss_dup=True)
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target) == (4, 3)
    assert [(seq, f"58=orig{seq}" in raw and "43=Y" not in raw) for seq, raw in tail.messages] == [(2, True), (3, True)]


def test_a_lowered_sender_number_replaces_the_stored_messages_it_numbers_again(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    for seq in range(2, 7):
        app(journal, "O", seq, f"first{seq}")
    app(journal, "O", 4, "again4")  # an operator's set-seqnum --sender 4
    app(journal, "O", 5, "again5")
    tail = journal.tail()
    assert tail.next_sender == 6
    assert [(seq, raw.split("58=")[1].split(SOH)[0]) for seq, raw in tail.messages] == [
        (2, "first2"), (3, "first3"), (6, "first6"), (4, "again4"), (5, "again5")]  # quickfix's order of storing


def test_a_message_the_journal_altered_is_left_out_and_reported(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "O", 2)
    masked = fix_text("j", 3, "372=D", "380=0", "58=secret 554=hunter2").replace("554=hunter2", "554=****")
    journal.add("O", "j", 3, raw=masked)  # redact() masked a secret field: BodyLength and CheckSum are off
    tail = journal.tail()
    assert [seq for seq, _ in tail.messages] == [2]
    assert (tail.unresendable, tail.next_sender) == ((3,), 4)


def test_a_message_never_numbered_is_not_counted(journal):
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    journal.add("O", "j", None, raw=fix_text("j", 0, "372=D", "380=0").replace(f"{SOH}34=0", ""))
    assert (journal.tail().next_sender, journal.tail().messages) == (2, ())


def test_a_journal_pruned_past_the_epochs_start_counts_from_its_oldest_row(journal):
    began = app(journal, "O", 100, "hundred")
    app(journal, "I", 57)
    app(journal, "I", 58)
    app(journal, "O", 101)
    tail = journal.tail()
    assert (tail.next_sender, tail.next_target, tail.epoch_known, tail.epoch_us) == (102, 59, False, began)
    assert [seq for seq, _ in tail.messages] == [100, 101]


def test_intact_checks_body_length_and_checksum():
    good = fix_text("j", 2, "372=D", "380=0", "58=ok")
    assert intact(good)
    assert not intact(good.replace("58=ok", "58=ol"))  # same length, another checksum
    assert not intact(good.replace("58=ok", "58=okk"))
    assert not intact(good[:-1])
    assert not intact("garbage")
