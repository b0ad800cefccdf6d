"""Drop-copy sessions over real FIX sessions on loopback: receivers get exactly the reports in their scope,
in their own FIX version, marked as copies; they cannot trade; nothing is lost across disconnects and
sequence resets; an operator can replay journaled reports to them from the CLI.

One gateway stack for the module, with one drop-copy session per behaviour under test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gateway.journal.queries import iter_messages
from tests.dropcopy_fixtures import assert_valid_on_the_wire, by_exec_id, copies, receiver, settle
from tests.fix_fixtures import CLIENTS, free_port, start_stack

FIXGW = shutil.which("fixgw", path=str(Path(sys.executable).parent)) or "fixgw"

DROPCOPY = {
    # name: (version, extra TOML lines)
    "DC44": ("FIX.4.4", ""),  # every client-side report, as in the demo config
    "DC42": ("FIX.4.2", 'reports = "both"\nclients = ["CLIENT42"]'),
    "DC50": ("FIX.5.0", 'reports = "venue"\nvenues = ["VENUE2"]'),
    "DCACC": ("FIX.4.4", 'accounts = ["ACC7"]'),
    "DCGAP": ("FIX.4.4", 'clients = ["CLIENT44"]'),
    "DCRESET": ("FIX.4.2", 'clients = ["CLIENT44"]'),
    "DCOPS": ("FIX.4.4", 'clients = ["CLIENT44"]'),
    "DCOPR": ("FIX.4.4", 'clients = ["CLIENT44"]'),
    "DCIDLE": ("FIX.4.4", ""),  # never connects
}


class Env:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.dc_port = free_port()
        tables = f"[dropcopy]\nport = {self.dc_port}\n" + "".join(
            f'[dropcopy.sessions.{name}]\nfix_version = "{version}"\nallowed_addresses = ["127.0.0.1"]\n{extra}\n'
            for name, (version, extra) in DROPCOPY.items())
        self.stack = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp, extra_toml=tables)
        self.gw = self.stack.gateway
        self.url = self.stack.cfg.journal.database_url
        self.receivers = {}
        self.cli_cfg = tmp / "cli.cfg"  # what an operator's config gives the CLI: where the gateway is
        self.cli_cfg.write_text(f'data_dir = "{self.stack.cfg.data_dir}"\n[http]\nport = {self.stack.cfg.http.port}\n')

    def receiver(self, name: str, store: str | None = None, extra: dict | None = None):
        rx = self.receivers.get(name)
        if rx is None or rx.stopped:
            rx = self.receivers[name] = receiver(self.dc_port, name, DROPCOPY[name][0],
                                                 self.tmp / "receivers" / (store or name), extra)
        return rx

    def stop(self):
        for rx in self.receivers.values():
            rx.stop()
        self.stack.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = Env(tmp_path_factory.mktemp("dropcopy"))
    yield e
    e.stop()


def trade(client, symbol="AAPL", qty=100, price="190.05", **kw) -> str:
    cl = client.new_order(symbol, "1", qty, price, **kw)
    client.wait_exec(cl, "2")
    return cl


def rest_and_cancel(client) -> list[str]:
    cl = client.new_order("MSFT", "1", 100, "400")
    client.wait_exec(cl, "0")
    x = client.cancel(cl, "MSFT", "1", 100)
    client.wait_exec(x, "4")
    return [cl, x]


def reports_of(client, cl_ord_ids) -> dict[str, dict[int, str]]:
    """The ExecutionReports the client received for these ClOrdIDs, by ExecID."""
    return by_exec_id([m for m in client.app_messages("8") if m.get(11) in cl_ord_ids])


def venue_reports(env, venue: str, order_ids) -> dict[str, dict[int, str]]:
    """The ExecutionReports the gateway received from a venue for these (gateway) OrderIDs, by ExecID."""
    from sessions.client import parse

    sid = env.gw.venue_sids[venue].toString()
    rows = [parse(r.raw) for r in iter_messages(env.url, sid, "I") if r.msg_type == "8"]
    return by_exec_id([f for f in rows if f.get(11, "").split(".")[0] in order_ids])


# ------------------------------------------------------------------ copies


def test_receiver_gets_every_client_report_once_in_its_version_with_the_original_identifiers(env):
    rx = env.receiver("DC44")
    ours = {}
    for name in CLIENTS:
        c = env.stack.client(name)
        cls = [trade(c, qty=300, account="ACC1")]
        cls += rest_and_cancel(c)
        resting = c.new_order("MSFT", "1", 100, "400")
        c.wait_exec(resting, "0")
        replaced = c.replace(resting, "MSFT", "1", 150, "401")
        c.wait_for(lambda m: m.get(35) == "8" and m.get(11) == replaced and m.get(150) == "5", what="Replaced")
        x = c.cancel(replaced, "MSFT", "1", 150)
        c.wait_exec(x, "4")
        rejected = c.new_order("ZZZZ", "1", 1, "1")
        c.wait_exec(rejected, "8")
        cls += [resting, replaced, x, rejected]
        ours[name] = reports_of(c, set(cls))
    settle(env.gw, ("DC44",))

    everything = {e: r for reports in ours.values() for e, r in reports.items()}
    got = by_exec_id(copies(rx, lambda m: m[17] in everything))
    assert set(got) == set(everything)  # every report, each exactly once
    for exec_id, rep in everything.items():
        cp = got[exec_id]
        for tag in (11, 37, 41, 39, 54, 55, 38, 14, 151, 6, 32, 31, 30, 1, 58, 103):
            assert cp.get(tag) == rep.get(tag), (tag, cp, rep)
        assert cp[797] == "Y" and 97 not in cp and 43 not in cp
        want_exec_type = "F" if rep[150] in ("1", "2") else ("I" if rep.get(20) == "3" else rep[150])
        assert cp[150] == want_exec_type
    assert_valid_on_the_wire(rx)
    for client in env.stack.clients.values():
        assert not any(m.get(35) == "3" for m in client.messages)  # clients unaffected


def test_filters_give_each_receiver_only_its_clients_accounts_venues_and_sides(env):
    dc42, dcacc, dc50, dc44 = (env.receiver(n) for n in ("DC42", "DCACC", "DC50", "DC44"))
    c42, c44 = env.stack.client("CLIENT42"), env.stack.client("CLIENT44")
    a = trade(c42, account="ACC7")  # CLIENT42, ACC7, routed to VENUE1 (first venue for AAPL)
    b = trade(c44, account="ACC7")  # CLIENT44, ACC7, VENUE1
    c = trade(c44, account="ACC8", extra={100: "VENUE2"})  # CLIENT44, ACC8, VENUE2
    settle(env.gw, ("DC42", "DCACC", "DC50", "DC44"))
    ra, rb, rc = reports_of(c42, {a}), reports_of(c44, {b}), reports_of(c44, {c})
    oid = {x: next(iter(r.values()))[37] for x, r in (("a", ra), ("b", rb), ("c", rc))}
    va, vc = venue_reports(env, "VENUE1", {oid["a"]}), venue_reports(env, "VENUE2", {oid["c"]})
    assert va and vc
    mine = set(ra) | set(rb) | set(rc) | set(va) | set(vc)

    def seen(rx):
        return set(by_exec_id(copies(rx, lambda m: m[17] in mine)))

    # DC42: FIX 4.2, both sides, CLIENT42 only: a's client-side and venue-side reports, nothing of b or c
    assert seen(dc42) == set(ra) | set(va)
    venue_copy = by_exec_id(copies(dc42, lambda m: m[17] in va))
    for exec_id, original in va.items():
        assert (venue_copy[exec_id][11], venue_copy[exec_id][37]) == (original[11], original[37])
        assert venue_copy[exec_id][20] == "0" and venue_copy[exec_id][150] in ("0", "1", "2")
    # DCACC: client side, account ACC7: a and b, whoever the client
    assert seen(dcacc) == set(ra) | set(rb)
    # DC50: FIX 5.0, venue side, VENUE2 only: c's venue reports only
    assert seen(dc50) == set(vc)
    assert all(m[797] == "Y" for m in copies(dc50, lambda m: m[17] in vc))
    # DC44 (all client-side): a, b and c's client reports, no venue report
    assert seen(dc44) == set(ra) | set(rb) | set(rc)
    for rx in (dc42, dcacc, dc50):
        assert_valid_on_the_wire(rx)


def test_an_order_sent_on_a_drop_copy_session_is_refused_journaled_and_not_acted_on(env):
    from gateway.observability.metrics import DROPCOPY_REFUSED

    rx = env.receiver("DC44")
    before = {name: v.orders_received for name, v in env.stack.venues.items()}
    refused_before = DROPCOPY_REFUSED.labels("DC44", "D")._value.get()
    cl = rx.new_order("AAPL", "1", 100, "190.05")
    rej = rx.wait_for(lambda m: m.get(35) == "j" and m.get(379) == cl, what="BusinessMessageReject")
    assert rej[380] == "3" and rej[372] == "D"
    assert "read-only" in rej[58] and "NewOrderSingle" in rej[58] and "nothing was done" in rej[58]
    x = rx.cancel(cl, "AAPL", "1", 100)
    assert rx.wait_for(lambda m: m.get(35) == "j" and m.get(379) == x, what="reject of the cancel")[372] == "F"
    assert rx.session.isLoggedOn()  # refused, not disconnected

    assert env.gw.journal.flush(5)
    sid = env.gw.dropcopy_sids["DC44"].toString()
    inbound = [r for r in iter_messages(env.url, sid, "I") if r.cl_ord_id in (cl, x)]
    assert [r.msg_type for r in inbound] == ["D", "F"]
    rejects = [r for r in iter_messages(env.url, sid, "O") if r.msg_type == "j" and f"\x01379={cl}\x01" in r.raw]
    assert len(rejects) == 1
    assert env.gw.engine.call(lambda core: [o for o in core.orders.values() if o.cl_ord_id in (cl, x)]) == []
    assert {name: v.orders_received for name, v in env.stack.venues.items()} == before
    assert DROPCOPY_REFUSED.labels("DC44", "D")._value.get() == refused_before + 1


# ------------------------------------------------------------------ disconnects and resets


def test_a_receiver_that_was_down_gets_what_it_missed_as_possdup_resends_and_nothing_twice(env):
    c = env.stack.client("CLIENT44")
    rx = env.receiver("DCGAP")
    before = [trade(c)]
    settle(env.gw, ("DCGAP",))
    rx.stop()

    missed = [trade(c, qty=200)] + rest_and_cancel(c)  # trading goes on while the receiver is away
    settle(env.gw)
    rx2 = env.receiver("DCGAP")  # same store: the session resumes its sequence numbers
    settle(env.gw, ("DCGAP",))

    got_before = reports_of(c, set(before))
    got_missed = reports_of(c, set(missed))
    first = by_exec_id(copies(rx, lambda m: m[17] in got_before or m[17] in got_missed))
    second = by_exec_id(copies(rx2, lambda m: m[17] in got_before or m[17] in got_missed))
    assert set(first) == set(got_before)
    assert set(second) == set(got_missed)  # exactly what it missed: no gap, nothing it had again
    assert all(m[43] == "Y" for m in second.values())  # quickfix's resends, PossDupFlag
    assert all(second[e][11] == r[11] and second[e][37] == r[37] for e, r in got_missed.items())
    assert_valid_on_the_wire(rx2)


def test_after_the_receivers_sequence_reset_it_gets_what_it_missed_from_the_journal_with_poss_resend(env):
    c = env.stack.client("CLIENT44")
    rx = env.receiver("DCRESET")
    before = [trade(c)]
    settle(env.gw, ("DCRESET",))
    rx.stop()

    missed = [trade(c, qty=250)] + rest_and_cancel(c)
    settle(env.gw)
    # the receiver lost its state: it logs on from a fresh store with ResetSeqNumFlag (141=Y), so the
    # gateway's store for the session is reset too and quickfix can no longer re-send the copies
    rx2 = env.receiver("DCRESET", store="DCRESET-fresh", extra={"ResetOnLogon": "Y"})
    settle(env.gw, ("DCRESET",))
    after = [trade(c, qty=50)]
    settle(env.gw, ("DCRESET",))

    got_before, got_missed, got_after = (reports_of(c, set(x)) for x in (before, missed, after))
    mine = {**got_before, **got_missed, **got_after}
    second = by_exec_id(copies(rx2, lambda m: m[17] in mine))
    assert set(second) == set(got_missed) | set(got_after)  # nothing it had already acknowledged
    for exec_id in got_missed:
        assert second[exec_id][97] == "Y" and 43 not in second[exec_id]  # from the journal, PossResend
        assert second[exec_id][11] == got_missed[exec_id][11]
    for exec_id in got_after:
        assert 97 not in second[exec_id] and 43 not in second[exec_id]  # live again
    assert second[next(iter(got_after))][20] == "0"  # FIX 4.2
    assert_valid_on_the_wire(rx2)


def test_an_operator_reset_of_a_drop_copy_session_resends_what_was_not_acknowledged_from_the_journal(env):
    c = env.stack.client("CLIENT44")
    rx = env.receiver("DCOPR")
    before = [trade(c)]
    settle(env.gw, ("DCOPR",))
    rx.stop()
    missed = [trade(c, qty=120)]
    settle(env.gw)
    out = fixgw(env.cli_cfg, "sessions", "reset", "DCOPR")  # agreed with the receiver, which starts over too
    assert out.returncode == 0 and "next sender seqnum 1" in out.stdout, out.stdout + out.stderr
    settle(env.gw)
    rx2 = env.receiver("DCOPR", store="DCOPR-fresh")
    settle(env.gw, ("DCOPR",))
    got_before, got_missed = reports_of(c, set(before)), reports_of(c, set(missed))
    second = by_exec_id(copies(rx2, lambda m: m[17] in got_before or m[17] in got_missed))
    assert set(second) == set(got_missed)
    # re-sent from the journal into the new store (97=Y), then re-sent by quickfix on the receiver's
    # ResendRequest, since it logged on expecting 1 (43=Y)
    assert all(m[97] == "Y" and m[43] == "Y" for m in second.values())
    assert_valid_on_the_wire(rx2)


# ------------------------------------------------------------------ operations


def fixgw(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FIXGW, *args, "-c", str(cfg)], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "FIXGW_ADMIN_TOKEN"})


def test_journal_replay_to_session_resends_the_selected_reports_with_poss_resend(env):
    rx = env.receiver("DCOPS")
    c = env.stack.client("CLIENT44")
    cl = trade(c)
    other = trade(c)
    settle(env.gw, ("DCOPS",))
    originals = reports_of(c, {cl})
    live = len(copies(rx))

    out = fixgw(env.cli_cfg, "journal", "replay", "--to-session", "DCOPS", "--cl-ord-id", cl)
    assert out.returncode == 0, out.stderr
    assert f"sent {len(originals)} ExecutionReport(s) to drop-copy session DCOPS with PossResend (97=Y)" \
        in out.stdout, out.stdout
    assert "earlier drop copies" in out.stdout  # the copies on the drop-copy sessions are not sources

    for exec_id in originals:
        rx.wait_for(lambda m, e=exec_id: m.get(35) == "8" and m.get(17) == e and m.get(97) == "Y",
                    what=f"replayed copy of {exec_id}")
    settle(env.gw, ("DCOPS",))
    again = by_exec_id(copies(rx)[live:])
    assert set(again) == set(originals)  # only the selected order, not `other`
    assert all(m[97] == "Y" and m[797] == "Y" and m[11] == cl for m in again.values())

    # out of scope: CLIENT42's reports never reach DCOPS (CLIENT44 only), even on request
    c42 = env.stack.client("CLIENT42")
    cl42 = trade(c42)
    out = fixgw(env.cli_cfg, "journal", "replay", "--to-session", "DCOPS", "--cl-ord-id", cl42,
                "--direction", "O", "--session", env.gw.client_sids["CLIENT42"].toString())
    assert out.returncode == 0 and "sent 0 ExecutionReport(s)" in out.stdout, out.stdout + out.stderr
    assert "not sent: outside the session's scope" in out.stdout
    assert other


def test_journal_replay_to_session_errors_are_clear(env):
    out = fixgw(env.cli_cfg, "journal", "replay", "--to-session", "NOPE")
    assert out.returncode == 2 and "unknown drop-copy session NOPE" in out.stderr and "DC44" in out.stderr
    out = fixgw(env.cli_cfg, "journal", "replay", "--to-session", "DCIDLE")
    assert out.returncode == 2 and "drop-copy session DCIDLE is not logged on" in out.stderr
    out = fixgw(env.cli_cfg, "journal", "replay", "--to-session", "DC44", "--msg-type", "D")
    assert out.returncode == 2 and "ExecutionReports only" in out.stderr
    out = fixgw(env.cli_cfg, "journal", "replay", "--to-session", "DC44", "--format", "json")
    assert out.returncode == 2 and "give one or the other" in out.stderr
    down = env.tmp / "down.cfg"
    down.write_text(f'data_dir = "{env.stack.cfg.data_dir}"\n[http]\nport = {free_port()}\n')
    out = fixgw(down, "journal", "replay", "--to-session", "DC44")
    assert out.returncode == 2 and "cannot reach the gateway" in out.stderr and "running" in out.stderr
    assert "Traceback" not in out.stderr


def test_drop_copy_sessions_show_in_sessions_metrics_and_health_but_a_down_receiver_is_not_unhealthy(env):
    listed = fixgw(env.cli_cfg, "sessions", "list", "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)["sessions"]}
    assert rows["DCIDLE"]["role"] == "dropcopy" and rows["DCIDLE"]["logged_on"] is False
    host, port = env.gw.http.address
    with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as r:
        assert r.status == 200
        health = json.loads(r.read())
    assert health["healthy"] and health["dropcopy"]["DCIDLE"]["logged_on"] is False
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'fixgw_session_up{role="dropcopy",session="DCIDLE"} 0.0' in text
    assert 'fixgw_dropcopy_copies_sent_total{session="DC44"}' in text
    assert 'fixgw_dropcopy_pending_copies{session="DC44"}' in text
    assert 'fixgw_dropcopy_watermark_journal_id{kind="acked",session="DC44"}' in text
    assert "fixgw_dropcopy_healthy 1.0" in text
