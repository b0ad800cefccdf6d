"""The [cluster] and [instance.NAME] sections: picking an instance, and what is refused (docs/failover.md)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/fixgw"

PAIR = f"""
comp_id = "FIXGW"
data_dir = "var"
[acceptor]
port = 9876
[http]
port = 9878
[journal]
database_url = "{PG}"
[clients.CLIENT44]
fix_version = "FIX.4.4"
[clients.OWNPORT]
fix_version = "FIX.4.2"
port = 9900
[dropcopy]
port = 9877
[dropcopy.sessions.DC44]
fix_version = "FIX.4.4"
[cluster]
name = "main"
lease_ttl_s = 2
[instance.A]
data_dir = "var/a"
[instance.B]
data_dir = "/srv/fixgw-b"
acceptor_port = 9886
client_ports = {{ OWNPORT = 9910 }}
dropcopy_port = 9887
http_host = "127.0.0.9"
http_port = 9888
"""


def parse(text: str, instance: str | None = None, env: dict | None = None):
    return parse_config(text, Path("/etc/fixgw"), env={} if env is None else env, instance=instance)


def test_an_instance_overrides_its_section_and_keeps_the_rest():
    base = parse(PAIR)
    assert base.cluster.name == "main" and base.cluster.lease_ttl_s == 2 and base.cluster.seq_gap == 1000
    assert base.cluster.instance_name is None and sorted(base.instance) == ["A", "B"]
    assert base.acceptor.port == 9876 and base.data_dir == Path("/etc/fixgw/var")

    a = parse(PAIR, "A")
    assert a.cluster.instance_name == "A"
    assert a.data_dir == Path("/etc/fixgw/var/a")  # relative to the file, as data_dir always is
    assert (a.acceptor.port, a.http.port, a.dropcopy.port, a.clients["OWNPORT"].port) == (9876, 9878, 9877, 9900)

    b = parse(PAIR, "B")
    assert b.cluster.instance_name == "B" and b.data_dir == Path("/srv/fixgw-b")
    assert (b.acceptor.port, b.http.host, b.http.port, b.dropcopy.port) == (9886, "127.0.0.9", 9888, 9887)
    assert b.clients["OWNPORT"].port == 9910 and b.client_port("CLIENT44") == 9886
    # everything else is the file's, shared by the instances
    assert b.clients.keys() == a.clients.keys() and b.journal == a.journal and b.risk == a.risk


def test_an_instance_whose_admin_api_listens_beyond_loopback_without_tls_is_refused():
    with pytest.raises(ConfigError, match=r"(?s)\(instance B\).*\[http\] host '10.1.0.12' is beyond loopback"):
        parse(PAIR.replace('http_host = "127.0.0.9"', 'http_host = "10.1.0.12"'), "B")


def test_an_unknown_instance_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError, match="no instance 'C' in the configuration; its instances: A, B"):
        parse(PAIR, "C")


def test_an_instance_without_a_cluster_is_refused():
    single = PAIR[:PAIR.index("[cluster]")]
    with pytest.raises(ConfigError, match=r"--instance A: the configuration has no \[cluster\] section"):
        parse(single, "A")
    orphan = single + '[instance.A]\ndata_dir = "var/a"\n'
    with pytest.raises(ConfigError, match=r"instance sections \(A\) need a \[cluster\] section"):
        parse(orphan)


def test_a_cluster_needs_the_journal_on_postgresql():
    sqlite = PAIR.replace(PG, "sqlite:///var/journal.db")
    for instance in (None, "A"):
        with pytest.raises(ConfigError, match=r"\[cluster\] main needs the journal on PostgreSQL"):
            parse(sqlite, instance)
    # the environment's URL is the one that counts, both ways
    with pytest.raises(ConfigError, match="needs the journal on PostgreSQL"):
        parse(PAIR, "A", env={"FIXGW_DATABASE_URL": "sqlite:////tmp/j.db"})
    assert parse(sqlite, "A", env={"FIXGW_DATABASE_URL": PG}).cluster.instance_name == "A"
    # a single gateway keeps SQLite
    assert parse(sqlite[:sqlite.index("[cluster]")]).cluster is None


def test_a_cluster_keeps_its_order_state_in_the_database_and_refuses_a_file():
    a = parse(PAIR, "A")
    assert a.recovery.state_log == "database"  # the default in a cluster
    assert parse(PAIR[:PAIR.index("[cluster]")]).recovery.state_log == "file"  # a single gateway's default
    with pytest.raises(ConfigError, match=r'\[cluster\] main needs the order state where a successor can read it'):
        parse(PAIR.replace("[dropcopy]\n", '[recovery]\nstate_log = "file"\n[dropcopy]\n', 1), "A")


BAD = [
    # a typo in an instance section
    (PAIR.replace("[instance.B]\n", "[instance.B]\nacceptor_prot = 1\n"), None, "instance.B.acceptor_prot"),
    (PAIR.replace('name = "main"\n', 'name = "main"\ninstance_name = "A"\n'), None,
     "cluster.instance_name is not a key of the file"),
    (PAIR.replace("lease_ttl_s = 2\n", "lease_ttl_s = 0\n"), None, "cluster.lease_ttl_s"),
    (PAIR.replace("OWNPORT = 9910", "NOPE = 9910"), None,
     "instance.B.client_ports names NOPE, not a configured client"),
    # an instance's ports are checked as the file's are, once applied
    (PAIR.replace("[instance.A]\n", "[instance.A]\nhttp_port = 9876\n"), "A",
     "port 9876 is both the [http] port and a client acceptor port"),
]


@pytest.mark.parametrize("text, instance, message", BAD, ids=["typo", "instance_name", "ttl", "client", "clash"])
def test_bad_cluster_sections_are_refused(text, instance, message):
    with pytest.raises(ConfigError) as info:
        parse(text, instance)
    assert message in str(info.value)


def test_a_bad_cluster_name_is_refused():
    with pytest.raises(ConfigError, match="cluster.name"):
        parse(PAIR.replace('name = "main"', 'name = "main cluster"'))
    with pytest.raises(ConfigError, match="instance names are 1 to 64"):
        parse(PAIR.replace("[instance.A]", '[instance."A B"]'))


def _fixgw(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(ROOT)})


def test_fixgw_run_picks_an_instance_or_says_which_exist(tmp_path):
    (tmp_path / "gateway.cfg").write_text(PAIR)
    unknown = _fixgw("run", "-c", "gateway.cfg", "--instance", "C", cwd=tmp_path)
    assert unknown.returncode == 2, unknown.stderr
    assert "no instance 'C' in the configuration; its instances: A, B" in unknown.stderr
    missing = _fixgw("run", "-c", "gateway.cfg", cwd=tmp_path)
    assert missing.returncode == 2
    assert "defines cluster main: run one of its instances with --instance NAME (A, B)" in missing.stderr
    demo = _fixgw("demo", "-c", "gateway.cfg", cwd=tmp_path)
    assert demo.returncode == 2 and "fixgw demo runs a single gateway" in demo.stderr
    (tmp_path / "single.cfg").write_text(PAIR[:PAIR.index("[cluster]")])
    no_cluster = _fixgw("run", "-c", "single.cfg", "--instance", "A", cwd=tmp_path)
    assert no_cluster.returncode == 2 and "has no [cluster] section" in no_cluster.stderr
    status = _fixgw("cluster", "status", "-c", "single.cfg", cwd=tmp_path)
    assert status.returncode == 2 and "has no [cluster] section" in status.stderr


def test_the_shipped_configuration_parses_with_its_commented_pair_enabled():
    """gateway.cfg's commented example of a pair is valid once uncommented (with a PostgreSQL journal)."""
    text = (ROOT / "gateway.cfg").read_text()
    block = text[text.index("\n# [cluster]\n") + 1:].split("\n\n")[0]
    enabled = "\n".join(line[2:] for line in block.splitlines())
    assert "[instance.A]" in enabled and "[instance.B]" in enabled, enabled
    a, b = (parse_config(text + "\n" + enabled + "\n", ROOT, env={"FIXGW_DATABASE_URL": PG}, instance=name)
            for name in ("A", "B"))
    assert (a.cluster.instance_name, b.cluster.instance_name) == ("A", "B")
    assert a.data_dir != b.data_dir and a.acceptor.port != b.acceptor.port and a.http.port != b.http.port


def test_instances_started_in_the_same_second_never_share_an_order_id_prefix():
    from gateway.process.desk_settings import order_id_prefix

    now = 1_796_000_000.4
    assert order_id_prefix(now) == order_id_prefix(now + 0.5)  # a single gateway: one prefix per second
    prefixes = {order_id_prefix(now, name) for name in ("A", "B", "C", "A-1", "A_1")}
    assert len(prefixes) == 5 and all(p.startswith(order_id_prefix(now) + "_") for p in prefixes)
    a = parse(PAIR, "A")
    assert a.cluster.instance_name == "A"  # what the gateway passes (gateway/process/server.py)
