"""The admin API over HTTPS (`[http.tls]`): it refuses to listen beyond loopback without it, serves the operator
commands over it with the certificate checked, and a command that does not trust the certificate says so."""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from pydantic import ValidationError

from gateway.config.root import HttpConfig, is_loopback
from tests.fix_fixtures import start_stack
from tests.test_admin_cli import fixgw
from tests.tls_certs import make_pki


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gw1.example.com"])
def test_the_admin_api_refuses_to_listen_beyond_loopback_without_tls(host, tmp_path):
    with pytest.raises(ValidationError) as info:
        HttpConfig(host=host)
    assert "beyond loopback" in str(info.value) and "[http.tls]" in str(info.value)
    pki = make_pki(tmp_path)
    assert HttpConfig(host=host, tls={"cert": pki.server.cert, "key": pki.server.key}).tls is not None
    assert HttpConfig(host=host, enabled=False).enabled is False  # nothing listens


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_tls(host):
    assert is_loopback(host) and HttpConfig(host=host).tls is None


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin-tls")
    pki = make_pki(tmp / "pki")
    stack = start_stack(f"sqlite:///{tmp / 'journal.db'}", tmp,
                        http_options=f'[http.tls]\ncert = "{pki.server.cert}"\nkey = "{pki.server.key}"\n')
    yield stack, pki, tmp
    stack.stop()


def cli_config(tmp, stack, tls: str) -> str:
    """What an operator's config gives the commands: where the gateway is, its data dir, and what to trust."""
    path = tmp / f"cli-{abs(hash(tls))}.cfg"
    path.write_text(f'data_dir = "{stack.cfg.data_dir}"\n[http]\nport = {stack.cfg.http.port}\n{tls}')
    return path


def test_the_commands_reach_the_admin_api_over_https_trusting_its_ca_or_its_certificate(tls_stack):
    stack, pki, tmp = tls_stack
    assert stack.cfg.http.tls is not None
    for trust in (f'tls_ca = "{pki.ca}"\n[http.tls]\ncert = "{pki.server.cert}"\nkey = "{pki.server.key}"\n',
                  f'[http.tls]\ncert = "{pki.server.cert}"\nkey = "{pki.server.key}"\n'):
        out = fixgw(cli_config(tmp, stack, trust), "status", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["journal"]["healthy"] is True


def test_a_command_that_does_not_trust_the_certificate_says_so(tls_stack, tmp_path):
    stack, pki, tmp = tls_stack
    rogue = make_pki(tmp_path / "rogue")  # a CA of its own: the gateway's certificate does not chain to it
    out = fixgw(cli_config(tmp, stack, f'tls_ca = "{rogue.ca}"\n[http.tls]\ncert = "{pki.server.cert}"\n'
                                       f'key = "{pki.server.key}"\n'), "status")
    assert out.returncode != 0
    assert "certificate verification failed" in out.stderr and "tls_ca" in out.stderr, out.stderr


def test_plain_http_gets_no_answer_and_metrics_are_served_over_https(tls_stack):
    from gateway.admin.http_guard import CLOSED

    stack, pki, _ = tls_stack
    port = stack.cfg.http.port
    refused = CLOSED.labels("tls_handshake")
    before = refused._value.get()
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
    deadline = time.monotonic() + 5  # counted on the connection's thread as it closes
    while refused._value.get() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert refused._value.get() == before + 1  # said as what it is, not as a client gone
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", timeout=5, context=ctx) as r:
        assert b"fixgw_" in r.read()
