"""Which FIX stores a takeover rebuilds from the journal, and with what numbers (gateway/cluster/takeover.py), on
journal rows written here; the same with real gateway processes and counterparties: tests/test_cluster_takeover.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert

from gateway.cluster.takeover import session_stores, take_over_stores
from gateway.config import parse_config
from gateway.journal.db import dropcopy_state, upgrade
from sessions import filestore
from tests.test_session_tail import Journal, app, logon

GAP = 500


@pytest.fixture
def setup(postgres_url, tmp_path):
    upgrade(postgres_url)
    text = f"""
comp_id = "SBA"
data_dir = "{tmp_path / 'data'}"
[journal]
database_url = "{postgres_url}"
[clients.SBB]
fix_version = "FIX.4.4"
[clients.QUIET]
fix_version = "FIX.4.4"
[dropcopy.sessions.DC]
fix_version = "FIX.4.4"
[cluster]
name = "c"
seq_gap = {GAP}
[instance.A]
"""
    cfg = parse_config(text, tmp_path, env={}, instance="A")
    journal = Journal(postgres_url)
    # SBB: we sent 1..3 (2 an application message), it sent 1..4
    logon(journal, "I", 1)
    logon(journal, "O", 1)
    app(journal, "O", 2, "two")
    journal.add("O", "0", 3)
    for seq in (2, 3, 4):
        app(journal, "I", seq)
    # DC: a drop-copy receiver we sent 1..2 to
    dc = "FIX.4.4:SBA->DC"
    journal.add("I", "A", 1, "98=0", "108=30", session=dc, raw=None)
    journal.add("O", "A", 1, "98=0", "108=30", session=dc)
    epoch_dc = journal.add("O", "0", 2, session=dc)
    stores = {s.name: s for s in session_stores(cfg)}
    yield {"cfg": cfg, "journal": journal, "stores": stores, "epoch_dc": epoch_dc}
    journal.engine.dispose()


def _info(store):
    return filestore.read_info(store.store_dir, store.sid)


def test_a_successor_rebuilds_every_store_seq_gap_past_the_journal(setup):
    cfg, stores = setup["cfg"], setup["stores"]
    assert {s.name: (s.kind, s.store_dir.name) for s in stores.values()} == {
        "SBB": ("client", "clients"), "QUIET": ("client", "clients"), "DC": ("dropcopy", "dropcopy")}
    done = {d.name: d for d in take_over_stores(cfg, setup["journal"].engine, trust_own=False)}
    assert done["SBB"].action == "rebuilt" and (done["SBB"].next_sender, done["SBB"].next_target) == (4 + GAP, 5)
    info = _info(stores["SBB"])
    assert (info.next_sender, info.next_target) == (4 + GAP, 5)
    assert [seq for seq, _ in filestore.sent_messages(stores["SBB"].store_dir, stores["SBB"].sid)] == [2]
    assert done["QUIET"].action == "untouched" and _info(stores["QUIET"]) is None  # quickfix starts it at 1/1
    assert (done["DC"].next_sender, done["DC"].next_target) == (3 + GAP, 2)


def test_its_own_store_is_kept_when_no_other_instance_led_since_and_it_is_not_behind(setup):
    cfg, stores, engine = setup["cfg"], setup["stores"], setup["journal"].engine
    sbb = stores["SBB"]
    filestore.write_store(sbb.store_dir, sbb.sid, 6, 5, [], 1_767_268_800.0)  # ahead of the journal: its own
    done = {d.name: d for d in take_over_stores(cfg, engine, trust_own=True)}
    assert done["SBB"].action == "kept" and (_info(sbb).next_sender, _info(sbb).next_target) == (6, 5)
    # behind the journal (or missing): rebuilt, with no gap (the journal has all this instance sent)
    assert done["DC"].action == "rebuilt" and done["DC"].next_sender == 3
    filestore.write_store(sbb.store_dir, sbb.sid, 2, 5, [], 1_767_268_800.0, overwrite=True)
    done = {d.name: d for d in take_over_stores(cfg, engine, trust_own=True)}
    assert done["SBB"].action == "rebuilt" and (_info(sbb).next_sender, _info(sbb).next_target) == (4, 5)
    # after another instance's term its own store is not trusted, however far ahead
    filestore.write_store(sbb.store_dir, sbb.sid, 90, 90, [], 1_767_268_800.0, overwrite=True)
    take_over_stores(cfg, engine, trust_own=False)
    assert (_info(sbb).next_sender, _info(sbb).next_target) == (4 + GAP, 5)


def test_a_drop_copy_store_keeps_the_creation_time_its_ledger_recorded(setup):
    cfg, stores, engine = setup["cfg"], setup["stores"], setup["journal"].engine
    epoch = setup["journal"].ts / 1e6  # the journal's rows are later than the store they went into
    with engine.begin() as conn:
        conn.execute(insert(dropcopy_state).values(session="DC", sent_id=0, claimed_id=0, acked_id=0, resend_upto=0,
                                                   stream="20260101-11:00:00", updated_us=0))
    take_over_stores(cfg, engine, trust_own=False)
    dc = stores["DC"]
    assert _info(dc).created == 1_767_265_200.0  # 2026-01-01 11:00:00 UTC, as the ledger knows the store
    assert Path(dc.store_dir, "FIX.4.4-SBA-DC.session").read_text() == "20260101-11:00:00"
    assert _info(dc).created < epoch
