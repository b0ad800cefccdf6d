"""After a trading session, the journal holds every message of every session, byte for byte,
checked against both peers' own views of the wire, on SQLite and on PostgreSQL."""
from __future__ import annotations

from pathlib import Path

from gateway.journal.queries import count_messages, iter_messages
from tests.fix_fixtures import CLIENTS, start_stack


def stored_seqnums(store_dir: Path, target: str) -> tuple[int, int]:
    """quickfix FileStore's next sender and next target sequence numbers for a session."""
    (path,) = store_dir.glob(f"*-FIXGW-{target}.seqnums")
    sender, target_seq = (int(x) for x in path.read_text().split(":"))
    return sender, target_seq


def journaled_max_seq(url: str, session_id: str, direction: str) -> int:
    return max(r.seq_num for r in iter_messages(url, session_id, direction) if not r.poss_dup)


def test_journal_holds_every_message_of_every_session_and_sequence_numbers_match(database_url, tmp_path):
    stack = start_stack(database_url, tmp_path)
    try:
        for name in CLIENTS:
            c = stack.client(name)
            c.wait_exec(c.new_order("AAPL", "1", 300, "190.05"), "2")
            resting = c.new_order("MSFT", "1", 100, "400")
            c.wait_exec(resting, "0")
            c.wait_exec(c.cancel(resting, "MSFT", "1", 100), "4")
            c.wait_exec(c.new_order("ZZZZ", "1", 1, "1"), "8")
            c.cancel("GHOST", "AAPL", "1", 1)
            c.wait_for(lambda m: m.get(35) == "9" and m.get(41) == "GHOST", what="cancel reject")
    finally:
        stack.stop()  # clients log out, then the gateway stops and drains its journal, then the venues

    gw = stack.gateway
    for name, client in stack.clients.items():
        session_id = gw.client_sids[name].toString()
        # what the gateway journaled as received is exactly what the client wrote, in order, and vice versa
        assert [r.raw for r in iter_messages(database_url, session_id, "I")] == \
            [raw for d, raw in client.wire.lines if d == "O"]
        assert [r.raw for r in iter_messages(database_url, session_id, "O")] == \
            [raw for d, raw in client.wire.lines if d == "I"]
        assert count_messages(database_url, session_id, app_only=True) >= 14  # 4 orders + 2 cancels and replies
        next_sender, next_target = stored_seqnums(gw.cfg.data_dir / "store" / "clients", name)
        assert journaled_max_seq(database_url, session_id, "O") == next_sender - 1
        assert journaled_max_seq(database_url, session_id, "I") == next_target - 1

    for name, venue in stack.venues.items():
        session_id = gw.venue_sids[name].toString()
        assert count_messages(database_url, session_id, "I") == venue.wire.outgoing > 0
        assert count_messages(database_url, session_id, "O") == venue.wire.incoming > 0
        next_sender, next_target = stored_seqnums(gw.cfg.data_dir / "store" / "venues", name)
        assert journaled_max_seq(database_url, session_id, "O") == next_sender - 1
        assert journaled_max_seq(database_url, session_id, "I") == next_target - 1

    assert gw.journal.healthy and gw.journal.queue_depth() == 0
