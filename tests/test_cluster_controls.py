"""A sharded cluster's control plane (gateway/cluster/controls.py) on a real PostgreSQL database: every shard applies
every control once, in order; a successor continues from its shard's mark; a shard new to the cluster takes the
kill switches as they stand and nothing else; a stale term records nothing."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.cluster.controls import Control, ControlBoard, ControlFollower, fold_state
from gateway.cluster.fence import StaleLeadership, check_fence
from gateway.cluster.lease import Lease
from gateway.journal.db import make_engine, upgrade

pytestmark = pytest.mark.postgres


def _c(id_: int, kind: str, **body) -> Control:
    return Control(id_, datetime.now(timezone.utc), "A", "ops", kind, body)


def test_a_new_shard_takes_the_kill_switches_engaged_now_and_no_earlier_cancel_or_reload():
    history = [_c(1, "kill", scope="global", key=""), _c(2, "kill", scope="account", key="ACC1"),
               _c(3, "cancel", account="ACC1"), _c(4, "unkill", scope="global", key=""),
               _c(5, "kill", scope="symbol", key="IBM", reduce_only=True), _c(6, "reload_risk"),
               _c(7, "unkill", scope="account", key="ACC1"), _c(8, "kill", scope="account", key="ACC1")]
    assert [(c.id, c.body["key"]) for c in fold_state(history)] == [(5, "IBM"), (8, "ACC1")]
    assert fold_state([]) == [] and fold_state([_c(1, "cancel")]) == []


@pytest.fixture
def board(postgres_url):
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    yield ControlBoard(engine, "main")
    engine.dispose()


def _term(board: ControlBoard, lease: str, instance: str):
    """Take ``lease`` for ``instance``; (its token, the fence for its writes)."""
    taken = Lease(board.engine, lease).take(instance, 30)
    assert taken is not None
    return taken.token, (lambda conn: check_fence(conn, lease, taken.token))


class Recorder:
    def __init__(self):
        self.applied: list[tuple[int, str]] = []

    def __call__(self, control: Control):
        self.applied.append((control.id, control.kind))
        if control.kind == "reload_risk":
            return False, {"error": "no rules file here"}
        return True, {"canceled": 0} if control.kind == "cancel" else {}


def test_every_shard_applies_every_control_once_in_order_and_says_what_it_answered(board):
    east, west = Recorder(), Recorder()
    _, fence_e = _term(board, "main/east", "A")
    _, fence_w = _term(board, "main/west", "B")
    f_east = ControlFollower(board, "main/east", "A", east, fence_e)
    f_west = ControlFollower(board, "main/west", "B", west, fence_w)
    f_east._catch_up_new_shard(), f_west._catch_up_new_shard()  # (start() without the thread: polled by hand)

    ids = [board.issue("kill", {"scope": "global", "key": ""}, operator="ops", instance="A"),
           board.issue("cancel", {"account": "ACC1", "symbol": None}, operator="ops", instance="B"),
           board.issue("reload_risk", {}, operator="risk", instance="A")]
    assert f_east.poll() == 3 and f_west.poll() == 3
    assert f_east.poll() == 0 and f_west.poll() == 0  # each once
    assert east.applied == west.applied == [(ids[0], "kill"), (ids[1], "cancel"), (ids[2], "reload_risk")]
    assert board.mark("main/east") == board.mark("main/west") == ids[2]

    applied = board.applied(ids[2])
    assert set(applied) == {"main/east", "main/west"}
    assert applied["main/east"]["instance"] == "A" and applied["main/east"]["ok"] is False
    assert applied["main/east"]["result"] == {"error": "no rules file here"} and applied["main/east"]["after_s"] >= 0
    done, pending = board.wait_applied(ids[1], ["main/east", "main/west", "main/north"], timeout=0.2)
    assert set(done) == {"main/east", "main/west"} and pending == ["main/north"]


def test_a_successor_continues_from_its_shards_mark_and_never_applies_a_control_twice(board):
    first = Recorder()
    _, fence = _term(board, "main/east", "A")
    f = ControlFollower(board, "main/east", "A", first, fence)
    f._catch_up_new_shard()
    k = board.issue("kill", {"scope": "account", "key": "ACC1"}, operator="ops", instance="A")
    assert f.poll() == 1
    # A dies; while the shard has no active, a cancel is issued from another shard
    c = board.issue("cancel", {"account": "ACC1", "symbol": None}, operator="ops", instance="B")
    lease = Lease(board.engine, "main/east")
    lease.release("A", lease.read().token)
    second = Recorder()
    _, fence2 = _term(board, "main/east", "A2")
    successor = ControlFollower(board, "main/east", "A2", second, fence2)
    successor._catch_up_new_shard()
    assert successor.applied_upto == k  # where A stopped: not a new shard
    assert successor.poll() == 1 and second.applied == [(c, "cancel")]
    assert first.applied == [(k, "kill")]


def test_a_shard_new_to_the_cluster_engages_the_switches_in_force_and_starts_after_the_rest(board):
    board.issue("kill", {"scope": "global", "key": ""}, operator="ops", instance="A")
    board.issue("cancel", {"account": None, "symbol": None}, operator="ops", instance="A")
    board.issue("unkill", {"scope": "global", "key": ""}, operator="ops", instance="A")
    held = board.issue("kill", {"scope": "symbol", "key": "IBM"}, operator="ops", instance="A")
    new = Recorder()
    _, fence = _term(board, "main/north", "N")
    f = ControlFollower(board, "main/north", "N", new, fence)
    f._catch_up_new_shard()
    assert new.applied == [(held, "kill")]
    assert f.applied_upto == board.last_id() and f.poll() == 0
    assert board.applied(board.last_id())["main/north"]["result"] == {"caught_up": True, "kill_switches": 1}


def test_an_instance_that_lost_its_shards_lease_records_nothing(board):
    applied = Recorder()
    _, fence = _term(board, "main/east", "A")
    f = ControlFollower(board, "main/east", "A", applied, fence)
    f._catch_up_new_shard()
    mark = board.mark("main/east")
    lease = Lease(board.engine, "main/east")
    lease.release("A", lease.read().token)  # (a successor took it, or it expired: the token is not current)
    board.issue("kill", {"scope": "global", "key": ""}, operator="ops", instance="B")
    with pytest.raises(StaleLeadership):
        f.poll()
    assert board.mark("main/east") == mark


def test_the_follower_thread_applies_a_control_soon_after_it_is_issued(board):
    seen = Recorder()
    _, fence = _term(board, "main/east", "A")
    f = ControlFollower(board, "main/east", "A", seen, fence, poll_s=0.05).start()
    try:
        k = board.issue("kill", {"scope": "global", "key": ""}, operator="ops", instance="B")
        done, pending = board.wait_applied(k, ["main/east"], timeout=5)
        assert not pending and seen.applied == [(k, "kill")]
        assert done["main/east"]["after_s"] < 5
    finally:
        f.stop()


def test_an_unknown_kind_is_refused_when_issued(board):
    with pytest.raises(ValueError, match="unknown cluster control 'halt'"):
        board.issue("halt", {}, operator="ops", instance="A")


def test_an_operator_reads_who_applied_a_control_and_who_has_not_yet():
    from gateway.cli.common import shards_said

    said = shards_said({"released": True, "control": 7, "pending": ["main/north"], "shards": {
        "main/east": {"instance": "A", "ok": True, "result": {}, "after_s": 0.012},
        "main/west": {"instance": "B", "ok": False, "result": {"error": "no rules file"}, "after_s": 0.2}}})
    assert said.splitlines()[1:] == [
        "cluster control 7, applied by:",
        "  main/east            A            after 0.012 s  ok",
        "  main/west            B            after 0.200 s  REFUSED: no rules file",
        "  main/north           NOT YET: its active instance applies it when it can (or at its takeover)"]
    assert shards_said({"released": True}) == "" and shards_said([1]) == ""
