"""The drop-copy thread against a real journal database and a stand-in for quickfix: crash recovery
marking, retries, acknowledgements, store resets, what is and is not a source."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from dropcopy.filters import NoDirectory, Scope
from gateway.journal.db import dropcopy_state, journal_messages, make_engine, upgrade
from gateway.dropcopy.service import DropCopyService
from gateway.journal.queries import iter_messages
from gateway.journal.writer import JournalWriter
from sessions.dropcopy import AckReceived, SessionView
from sessions.codec import encode, tagvalue
from tests.test_codec import report
from tests.test_dropcopy_translate import wire

CLIENT = "FIX.4.4:FIXGW->CLIENT44"
VENUE = "FIX.4.4:FIXGW->VENUE1"
DC = "FIX.4.4:FIXGW->DC44"


class FakeLink:
    """What DropCopyLink does with quickfix, recorded."""

    def __init__(self):
        self.sent: list[str] = []
        self.probes: list[str] = []
        self.logged_on = True
        self.stream = "20261124-06:00:00"
        self.seq = 2
        self.refuse = 0  # refuse this many sends

    def send(self, name, text):
        if self.refuse:
            self.refuse -= 1
            return False
        self.sent.append(text)
        self.seq += 1
        return True

    def probe(self, name, test_req_id):
        if not self.logged_on:
            return False
        self.probes.append(test_req_id)
        self.seq += 1
        return True

    def view(self, name):
        return SessionView(True, self.logged_on, self.seq, self.stream)


def er(exec_id: str, cl: str = "A1") -> str:
    return wire("FIX.4.4", encode.encode_exec_report("FIX.4.4", report(exec_id=exec_id, cl_ord_id=cl)))


def journal(url, rows) -> list[int]:
    w = JournalWriter(url)
    w.start()
    try:
        for sid, direction, raw in rows:
            w.record(sid, direction, raw)
        assert w.flush(10)
    finally:
        w.stop()
    return [r.id for r in iter_messages(url)]


def service(url, link, reports="client") -> DropCopyService:
    svc = DropCopyService(url, {"DC44": ("FIX.4.4", Scope(reports))}, link, {CLIENT: "CLIENT44"},
                          {VENUE: "VENUE1"}, NoDirectory())
    svc.start()
    assert svc.wait_loaded(10), svc.last_error
    return svc


def wait(cond, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.01)


def exec_ids(texts):
    return [tagvalue.parse_fields(t)[17] for t in texts]


def state(url):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            r = conn.execute(select(dropcopy_state)).one()
            return ((r.sent_xid, r.sent_id), (r.claimed_xid, r.claimed_id), (r.acked_xid, r.acked_id),
                    (r.resend_xid, r.resend_upto), r.stream)
    finally:
        engine.dispose()


def positions(url) -> list[tuple[int, int]]:
    """Every journal row's position in the merged stream (xid, id), in the stream's order."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(journal_messages.c.xid, journal_messages.c.id)
                                                   .order_by(journal_messages.c.xid, journal_messages.c.id))]
    finally:
        engine.dispose()


@pytest.fixture
def url(sqlite_url):
    upgrade(sqlite_url)
    return sqlite_url


def test_a_new_session_copies_only_what_is_journaled_after_it_first_started(url):
    journal(url, [(CLIENT, "O", er("OLD"))])
    link = FakeLink()
    svc = service(url, link)
    try:
        journal(url, [(CLIENT, "O", er("NEW"))])
        svc.wake()
        wait(lambda: link.sent, what="copy")
        time.sleep(0.1)
        assert exec_ids(link.sent) == ["NEW"]
    finally:
        svc.stop()


def test_after_a_crash_copies_that_may_have_gone_out_are_sent_again_with_poss_resend(database_url):
    journal(database_url, [(CLIENT, "O", er(f"E{i}")) for i in range(1, 5)])
    at = positions(database_url)
    if database_url.startswith("postgresql"):  # each row carries its writing transaction's id; on SQLite 0
        assert all(xid > 0 for xid, _ in at)
    # what a crash leaves: E2 and E3 claimed (maybe handed to quickfix), only E1 known sent
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(dropcopy_state.insert().values(
            session="DC44", sent_xid=at[0][0], sent_id=at[0][1], claimed_xid=at[2][0], claimed_id=at[2][1],
            acked_xid=at[0][0], acked_id=at[0][1], resend_upto=0, stream=FakeLink().stream, updated_us=0))
    engine.dispose()
    link = FakeLink()
    svc = service(database_url, link)
    try:
        wait(lambda: len(link.sent) == 3, what="three copies")
        copies = [tagvalue.parse_fields(t) for t in link.sent]
        assert [(c[17], c.get(97)) for c in copies] == [("E2", "Y"), ("E3", "Y"), ("E4", None)]
    finally:
        svc.stop()
    assert state(database_url)[:2] == (at[3], at[3])


def test_only_reports_sent_to_clients_or_received_from_venues_are_sources(url):
    link = FakeLink()
    svc = service(url, link, reports="both")
    try:
        journal(url, [(CLIENT, "O", er("C1")), (CLIENT, "I", er("FROM-CLIENT")), (VENUE, "I", er("V1")),
                      (VENUE, "O", er("TO-VENUE")), (DC, "O", er("A-COPY")), (CLIENT, "O", er("X", cl="B"))])
        svc.wake()
        wait(lambda: len(link.sent) == 3, what="copies")
        time.sleep(0.1)
        assert exec_ids(link.sent) == ["C1", "V1", "X"]
    finally:
        svc.stop()


def test_a_refused_copy_is_retried_in_order_and_nothing_is_skipped(url):
    link = FakeLink()
    svc = service(url, link)
    try:
        link.refuse = 1
        journal(url, [(CLIENT, "O", er(f"R{i}")) for i in range(3)])
        svc.wake()
        wait(lambda: len(link.sent) == 3, timeout=5, what="copies after the retry")
        assert exec_ids(link.sent) == ["R0", "R1", "R2"]
    finally:
        svc.stop()


def test_the_receivers_answer_to_a_test_request_moves_the_acknowledged_watermark(url):
    link = FakeLink()
    svc = service(url, link)
    try:
        ids = journal(url, [(CLIENT, "O", er("K1")), (CLIENT, "O", er("K2"))])
        svc.wake()
        wait(lambda: link.probes, what="acknowledgement TestRequest")
        (status,) = svc.status()
        assert status["acked_id"] < status["sent_id"] == ids[-1] and status["copies_pending"] == 2
        svc.notify(AckReceived("DC44", "DCACK-wrong"))  # not ours: ignored
        svc.notify(AckReceived("DC44", link.probes[-1]))
        wait(lambda: svc.status()[0]["acked_id"] == ids[-1], what="acknowledged watermark")
        assert svc.status()[0]["copies_pending"] == 0
    finally:
        svc.stop()
    assert state(url)[2] == (0, ids[-1])  # SQLite: every xid is 0, the stream is in id order


def test_a_reset_store_rewinds_to_the_acknowledged_copy_and_resends_from_the_journal(url):
    link = FakeLink()
    svc = service(url, link)
    try:
        journal(url, [(CLIENT, "O", er("S1"))])
        svc.wake()
        wait(lambda: link.probes, what="probe")
        svc.notify(AckReceived("DC44", link.probes[-1]))
        wait(lambda: svc.status()[0]["acked_id"] == svc.status()[0]["sent_id"], what="ack")
        journal(url, [(CLIENT, "O", er("S2")), (CLIENT, "O", er("S3"))])
        svc.wake()
        wait(lambda: len(link.sent) == 3, what="copies")
        link.stream, link.seq = "20261124-07:00:00", 2  # the receiver reset: a new store
        svc.wake()
        wait(lambda: len(link.sent) == 5, what="re-sent copies")
        resent = [tagvalue.parse_fields(t) for t in link.sent[3:]]
        assert [(c[17], c.get(97)) for c in resent] == [("S2", "Y"), ("S3", "Y")]
        journal(url, [(CLIENT, "O", er("S4"))])
        svc.wake()
        wait(lambda: len(link.sent) == 6, what="live copy")
        assert 97 not in tagvalue.parse_fields(link.sent[-1])
    finally:
        svc.stop()
    assert state(url)[4] == "20261124-07:00:00"


def test_a_clean_stop_leaves_no_claim_in_doubt_so_a_restart_marks_nothing(url):
    link = FakeLink()
    svc = service(url, link)
    try:
        ids = journal(url, [(CLIENT, "O", er("Q1"))])
        svc.wake()
        wait(lambda: link.sent, what="copy")
        assert state(url)[1] > (0, ids[-1])  # claimed ahead while running
    finally:
        svc.stop()
    sent, claimed, *_ = state(url)
    assert sent == claimed == (0, ids[-1])
    link2 = FakeLink()
    svc = service(url, link2)
    try:
        journal(url, [(CLIENT, "O", er("Q2"))])
        svc.wake()
        wait(lambda: link2.sent, what="copy after the restart")
        assert [(c[17], c.get(97)) for c in map(tagvalue.parse_fields, link2.sent)] == [("Q2", None)]
    finally:
        svc.stop()


def test_a_report_journaled_late_from_an_old_spool_is_copied_as_a_possible_resend(database_url, tmp_path):
    """A successor may have re-sent the report (97=Y) before the old run's spool was imported: the imported row's
    copy is flagged too, so a receiver drops whichever of the two it gets second, by ExecID."""
    from sqlalchemy import select as sel

    from gateway.journal.db import journal_messages

    spool = tmp_path / "spool"
    old = JournalWriter(database_url, spool_dir=spool, flush_interval_ms=60_000)
    old._start_spool()  # (no writer thread: it spools and never commits, as a run that died)
    old.record(CLIENT, "O", er("LATE"))
    old._spool.close(remove=False)
    link = FakeLink()
    svc = service(database_url, link)
    try:
        journal(database_url, [(CLIENT, "O", er("LIVE"))])
        again = JournalWriter(database_url, spool_dir=spool)
        again.start()  # the old run's instance starts again: imports its spool
        assert again.spool_recovered == 1 and again.flush(10)
        again.stop()
        svc.wake()
        wait(lambda: len(link.sent) == 2, what="two copies")
        copies = [tagvalue.parse_fields(t) for t in link.sent]
        assert [(c[17], c.get(97)) for c in copies] == [("LIVE", None), ("LATE", "Y")]
    finally:
        svc.stop()
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sel(journal_messages.c.raw, journal_messages.c.recovered)
                                .order_by(journal_messages.c.id)).all()
    finally:
        engine.dispose()
    assert [("LATE" in raw, recovered) for raw, recovered in rows] == [(False, False), (True, True)]
