"""The [shard.NAME] sections (docs/scale-out.md): several active instances, each serving its shard's clients with
an identity of its own at the venues, and what is refused."""
from __future__ import annotations

import pytest

from gateway.config import ConfigError, parse_config
from gateway.config.cluster import shard_lease_name
from tests.test_cluster_config import PG, parse

SHARDED = f"""
comp_id = "FIXGW"
data_dir = "var"
[acceptor]
port = 9876
[http]
port = 9878
[journal]
database_url = "{PG}"
[clients.EAST1]
fix_version = "FIX.4.4"
[clients.EAST2]
fix_version = "FIX.4.2"
port = 9900
[clients.WEST1]
fix_version = "FIX.4.4"
[venues.VENUE1]
fix_version = "FIX.4.4"
port = 9001
symbols = ["AAPL"]
[dropcopy]
port = 9877
[dropcopy.sessions.DCEAST]
fix_version = "FIX.4.4"
clients = ["EAST1"]
[dropcopy.sessions.DCWEST]
fix_version = "FIX.4.4"
[cluster]
name = "main"
[shard.east]
clients = ["EAST1", "EAST2"]
dropcopy = ["DCEAST"]
venue_comp_id = "FIXGW-E"
[shard.west]
clients = ["WEST1"]
dropcopy = ["DCWEST"]
venue_comp_id = "FIXGW-W"
[instance.A]
shard = "east"
data_dir = "var/a"
[instance.A2]
shard = "east"
data_dir = "var/a2"
http_port = 9888
[instance.B]
shard = "west"
data_dir = "var/b"
acceptor_port = 9886
dropcopy_port = 9887
http_port = 9898
"""


def test_an_instance_runs_its_shards_clients_with_the_shards_own_identity_at_the_venues():
    whole = parse(SHARDED)
    assert sorted(whole.clients) == ["EAST1", "EAST2", "WEST1"] and whole.venue_sender == "FIXGW"
    assert whole.cluster.shard is None and whole.cluster.lease_name == "main"

    a = parse(SHARDED, "A")
    assert sorted(a.clients) == ["EAST1", "EAST2"] and sorted(a.dropcopy.sessions) == ["DCEAST"]
    assert a.comp_id == "FIXGW" and a.venue_sender == "FIXGW-E"  # clients still see FIXGW
    assert a.cluster.shard == "east" and a.cluster.lease_name == "main/east" == shard_lease_name("main", "east")
    assert parse(SHARDED, "A2").cluster.lease_name == "main/east"  # A's standby: the same lease

    b = parse(SHARDED, "B")
    assert sorted(b.clients) == ["WEST1"] and sorted(b.dropcopy.sessions) == ["DCWEST"]
    assert list(b.shard) == ["west"] and list(b.instance) == ["B"]  # the other shards are not its business
    assert b.venue_sender == "FIXGW-W" and b.cluster.lease_name == "main/west"
    assert b.acceptor.port == 9886 and b.venues.keys() == a.venues.keys()  # every shard reaches every venue


def test_a_shards_drop_copies_may_cover_the_other_shards_clients_whose_sessions_it_knows_as_peers():
    text = SHARDED.replace('clients = ["EAST1"]\n[dropcopy.sessions.DCWEST]', 'clients = ["EAST1", "WEST1"]\n'
                           '[dropcopy.sessions.DCWEST]')
    a = parse(text, "A")
    assert a.dropcopy.sessions["DCEAST"].clients == ("EAST1", "WEST1") and sorted(a.clients) == ["EAST1", "EAST2"]
    assert a.cluster.peer_clients == {"WEST1": "FIX.4.4"} and a.cluster.peer_venue_comp_ids == ("FIXGW-W",)
    b = parse(text, "B")
    assert b.cluster.peer_clients == {"EAST1": "FIX.4.4", "EAST2": "FIX.4.2"}
    assert b.cluster.peer_venue_comp_ids == ("FIXGW-E",)


def test_a_single_gateway_may_log_on_to_venues_with_a_compid_of_its_own():
    single = SHARDED[:SHARDED.index("[dropcopy]")].replace('comp_id = "FIXGW"', 'comp_id = "FIXGW"\n'
                                                           'venue_comp_id = "STREET"')
    cfg = parse(single)
    assert cfg.comp_id == "FIXGW" and cfg.venue_sender == "STREET"


def test_the_venue_simulator_of_a_sharded_file_accepts_every_shards_compid():
    from gateway.cli.venue_sim import venue_counterparties

    assert venue_counterparties(parse(SHARDED)) == ("FIXGW-E", "FIXGW-W")
    assert venue_counterparties(parse(SHARDED, "B")) == ("FIXGW-W",)  # an instance's view has its own shard only
    single = parse(SHARDED[:SHARDED.index("[dropcopy]")])
    assert venue_counterparties(single) == ("FIXGW",)


BAD = [
    (SHARDED.replace('clients = ["WEST1"]', 'clients = ["WEST1", "EAST2"]'), None,
     "client EAST2 is in two shards, east and west"),
    (SHARDED.replace('clients = ["EAST1", "EAST2"]', 'clients = ["EAST1"]'), None,
     "client(s) EAST2 in no shard"),
    (SHARDED.replace('clients = ["WEST1"]', 'clients = ["WEST1", "NOPE"]'), None,
     "shard.west.clients names NOPE, not a configured client"),
    (SHARDED.replace('venue_comp_id = "FIXGW-W"', 'venue_comp_id = "FIXGW-E"'), None,
     "shards east and west have the same venue_comp_id FIXGW-E"),
    (SHARDED.replace('venue_comp_id = "FIXGW-W"', 'venue_comp_id = "VENUE1"'), None,
     "shard.west.venue_comp_id VENUE1 is also a session name"),
    (SHARDED.replace('[instance.B]\nshard = "west"\n', '[instance.B]\n'), None,
     "instance.B needs a shard"),
    (SHARDED.replace('[instance.B]\nshard = "west"\n', '[instance.B]\nshard = "north"\n'), None,
     "instance.B.shard names north, not a [shard.NAME] of this file (its shards: east, west)"),
    (SHARDED.replace('[instance.B]\nshard = "west"\n', '[instance.B]\nshard = "east"\n'), None,
     "shard west has no instance"),
    (SHARDED.replace('dropcopy = ["DCWEST"]\n', ''), None,
     "drop-copy session(s) DCWEST in no shard"),
    (SHARDED.replace('clients = ["EAST1"]\n[dropcopy.sessions.DCWEST]', 'clients = ["NOPE"]\n'
                     '[dropcopy.sessions.DCWEST]'), "A",
     "dropcopy.sessions.DCEAST.clients: unknown client session(s) NOPE"),
    (SHARDED.replace('name = "main"\n', 'name = "main"\nshard = "east"\n'), None,
     "cluster.shard is not a key of the file"),
    (SHARDED.replace('[instance.B]\nshard = "west"\n',
                     '[instance.B]\nshard = "west"\nclient_ports = { EAST1 = 9950 }\n'),
     None, "instance.B.client_ports names EAST1, not a client of its shard west"),
    (SHARDED[SHARDED.index("[clients.EAST1]"):SHARDED.index("[cluster]")] + SHARDED[SHARDED.index("[shard.east]"):
                                                                              SHARDED.index("[instance.A]")],
     None, "shard sections (east, west) need a [cluster] section"),
]


@pytest.mark.parametrize("text, instance, message", BAD, ids=[
    "two-shards", "no-shard", "unknown-client", "same-compid", "compid-is-session", "instance-without-shard",
    "unknown-shard", "shard-without-instance", "dropcopy-in-no-shard", "dropcopy-unknown-client", "shard-key",
    "foreign-client-port", "no-cluster"])
def test_bad_shard_sections_are_refused_naming_the_problem(text, instance, message):
    with pytest.raises(ConfigError) as info:
        parse(text, instance)
    assert message in str(info.value)


def test_the_shipped_configuration_parses_with_its_commented_shards_enabled():
    """gateway.cfg's commented example of shards is valid once uncommented (with a PostgreSQL journal)."""
    from tests.cluster_instances import ROOT

    text = (ROOT / "gateway.cfg").read_text()
    start = text.index("\n# [cluster]\n", text.index("# Shards (docs/scale-out.md)")) + 1
    block = text[start:].split("\n\n")[0]
    enabled = "\n".join(line[2:] for line in block.splitlines())
    assert "[shard.east]" in enabled and "[instance.W1]" in enabled, enabled
    east, west = (parse_config(text + "\n" + enabled + "\n", ROOT, env={"FIXGW_DATABASE_URL": PG}, instance=name)
                  for name in ("E1", "W1"))
    assert (east.cluster.lease_name, west.cluster.lease_name) == ("main/east", "main/west")
    assert sorted(east.clients) == ["CLIENT44", "CLIENT50", "SECURE44"] and sorted(west.clients) == ["CLIENT42"]
    assert (east.venue_sender, west.venue_sender) == ("FIXGW-E", "FIXGW-W")
    assert east.data_dir != west.data_dir and east.acceptor.port != west.acceptor.port
