"""The pure parts of session security: masking, the throttle, configuration validation, the credentials file."""
from __future__ import annotations

import json

import pytest

from gateway.security.auth import FailureThrottle, _allowed
from gateway.config import ConfigError, parse_config
from gateway.security.credentials import CredentialsError, CredentialStore
from fixspecs.redact import redact
from gateway.security.tls import LoopbackAliases


@pytest.mark.parametrize("text, expected", [
    ("8=FIX.4.4\x0135=A\x01553=U\x01554=p|a ss\x01925=n\x0110=1\x01",
     "8=FIX.4.4\x0135=A\x01553=U\x01554=****\x01925=****\x0110=1\x01"),
    ("logon 35=A|553=U|554=secret|10=1", "logon 35=A|553=U|554=****|10=1"),
    ("1554=kept 2925=kept", "1554=kept 2925=kept"),
    ("554=x", "554=****"),
    ("8=FIX.4.4\x011402=abc\x011404=def\x01", "8=FIX.4.4\x011402=****\x011404=****\x01"),
    ("35=D|11=A1|1=ACC", "35=D|11=A1|1=ACC"),
])
def test_secret_tags_are_masked_wherever_a_field_appears(text, expected):
    assert redact(text) == expected


def test_the_throttle_backs_off_after_three_failures_doubling_to_a_cap():
    now = [0.0]
    t = FailureThrottle(free_failures=3, base_s=1, max_s=4, clock=lambda: now[0])
    key = ("source", "10.0.0.1")
    for _ in range(2):
        t.failure(key)
    assert t.blocked_for(key) == 0
    t.failure(key)
    assert t.blocked_for(key) == 1
    t.failure(key)
    assert t.blocked_for(key) == 2
    for _ in range(5):
        t.failure(key)
    assert t.blocked_for(key) == 4  # capped
    now[0] += 5
    assert t.blocked_for(key) == 0
    t.success(key)
    t.failure(key)
    assert t.blocked_for(key) == 0  # a success starts the count again


def test_the_throttle_keeps_a_bounded_number_of_keys():
    t = FailureThrottle(max_keys=100)
    for i in range(1000):
        t.failure(("source", str(i)))
    assert len(t._keys) <= 100


def test_address_ranges():
    import ipaddress

    nets = (ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("192.0.2.7/32"))
    assert _allowed("10.1.200.3", nets) and _allowed("192.0.2.7", nets) and _allowed("::ffff:10.1.0.1", nets)
    assert not _allowed("10.2.0.1", nets) and not _allowed(None, nets) and not _allowed("UNKNOWN", nets)


BASE = '[clients.C1]\nfix_version = "FIX.4.4"\n'


@pytest.mark.parametrize("extra, message", [
    ('allowed_addresses = ["10.1.2.0/33"]', "not an IP address or CIDR range"),
    ('allowed_addresses = ["10.1.2.3/24"]', "has host bits set"),
    ('username = "u"', "username is only used with password_required = true"),
    ('password_required = true\ntls = { cert = "c", key = "k", verify_client = true }', "needs client_ca"),
])
def test_security_settings_are_validated(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(BASE + extra, tmp_path, env={})


def test_sessions_sharing_a_port_must_agree_on_tls(tmp_path):
    text = (BASE + 'tls = { cert = "c", key = "k" }\n[clients.C2]\nfix_version = "FIX.4.2"\n')
    with pytest.raises(ConfigError, match="must all have the same tls settings"):
        parse_config(text, tmp_path, env={})


def test_tls_paths_are_relative_to_the_config_file(tmp_path):
    cfg = parse_config(BASE + 'port = 9000\ntls = { cert = "tls/c.crt", key = "tls/c.key" }\n', tmp_path, env={})
    assert cfg.clients["C1"].tls.cert == (tmp_path / "tls" / "c.crt").resolve()


def test_the_database_password_comes_from_the_secrets_not_the_file(tmp_path):
    cfg = parse_config('[journal]\ndatabase_url = "postgresql+psycopg://fixgw@db:5432/j"\n', tmp_path,
                       env={"FIXGW_DATABASE_PASSWORD": "pw-from-env"})
    assert cfg.journal.database_url == "postgresql+psycopg://fixgw:pw-from-env@db:5432/j"


def test_a_tampered_credentials_file_is_refused(tmp_path):
    store = CredentialStore(tmp_path)
    store.set("S", "a-long-enough-password")
    data = json.loads(store.path.read_text())
    data["sessions"]["S"]["n"] = 2 ** 24  # 16 GiB to verify
    store.path.write_text(json.dumps(data))
    with pytest.raises(CredentialsError, match="unacceptable scrypt parameters"):
        CredentialStore(tmp_path).verify("S", "a-long-enough-password")


def test_a_password_round_trips_and_each_hash_has_its_own_salt(tmp_path):
    store = CredentialStore(tmp_path)
    store.set("A", "same-password-for-both")
    store.set("B", "same-password-for-both")
    entries = json.loads(store.path.read_text())["sessions"]
    assert entries["A"]["salt"] != entries["B"]["salt"] and entries["A"]["hash"] != entries["B"]["hash"]
    assert store.verify("A", "same-password-for-both") is True
    assert store.verify("A", "same-password-for-bot") is False
    assert store.verify("C", "whatever-password") is None
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"


def test_loopback_aliases_are_distinct_and_never_network_or_broadcast_addresses():
    aliases = LoopbackAliases()
    seen = [aliases.take() for _ in range(600)]
    assert len(set(seen)) == 600
    assert all(a.startswith("127.") and not a.endswith((".0", ".255")) for a in seen)
    assert seen[0] == "127.1.0.1"
