"""TLS for FIX sessions through the gateway's terminator (gateway/security/tls.py), over real sessions.

    FixClient --plaintext--> test-side terminator --TLS, client cert--> gateway TLS port (CLIENT44)
    gateway --> its terminator --TLS--> test-side terminator (VENUE1's TLS front) --> venue simulator
    VENUE2's TLS front presents a certificate from a CA the gateway does not trust.
"""
from __future__ import annotations

import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import quickfix as fix

from gateway.security.auth import PeerBook
from gateway.config import parse_config
from gateway.journal.db import upgrade
from gateway.journal.queries import iter_events
from gateway.process.server import Gateway
from gateway.security.tls import TlsTerminator, client_context, server_context
from sessions.client import FixClient
from sessions.fixsettings import build_settings, session_id
from sessions.simulator.venue import VenueSimulator
from tests.fix_fixtures import free_port, stack_config_text
from tests.tls_certs import Pki, make_pki


VENUE_PASSWORD = "venue-one-password-77"


def test_the_pypi_quickfix_build_has_no_tls_transport(tmp_path):
    """Why the gateway terminates TLS itself: the classes exist in the binding, but the library was built
    without HAVE_SSL, so constructing one fails (and the extension links no OpenSSL)."""
    sid = session_id("FIX.4.4", "A", "B")
    settings = build_settings("acceptor", tmp_path, [(sid, "FIX.4.4", {"SocketAcceptPort": str(free_port())})])

    class App(fix.Application):
        def onCreate(self, s): pass
        def onLogon(self, s): pass
        def onLogout(self, s): pass
        def toAdmin(self, m, s): pass
        def fromAdmin(self, m, s): pass
        def toApp(self, m, s): pass
        def fromApp(self, m, s): pass

    app = App()
    with pytest.raises(fix.ConfigError, match="HAVE_SSL not enabled"):
        fix.SSLSocketAcceptor(app, fix.FileStoreFactory(settings), settings, fix.ScreenLogFactory(False, False, False))
    import _quickfix

    assert b"libssl" not in Path(_quickfix.__file__).read_bytes()


@dataclass
class Env:
    pki: Pki
    gateway: Gateway
    tls_port: int
    venues: list = field(default_factory=list)
    fronts: dict = field(default_factory=dict)  # venue -> (terminator, audit list)
    client_side: TlsTerminator | None = None
    client_audit: list = field(default_factory=list)
    tmp: Path = Path(".")
    clients: list = field(default_factory=list)

    def events(self, prefix: str = "") -> list[str]:
        self.gateway.journal.flush()
        return [f"{e.session_id} {e.text}" for e in iter_events(self.gateway.cfg.journal.database_url)
                if e.session_id.startswith(prefix)]

    def tls_client(self, cert=None, key=None, name: str = "c44") -> FixClient:
        """CLIENT44 through a client-side terminator presenting ``cert`` (default: the good client cert)."""
        ctx = client_context(self.pki.ca, cert or self.pki.client.cert, key or self.pki.client.key)
        local = self.client_side.connect_out(f"{name}-{len(self.clients)}", "127.0.0.1", self.tls_port, ctx,
                                             "localhost")
        return self.client(local)

    def client(self, port: int) -> FixClient:
        c = FixClient(version="FIX.4.4", sender="CLIENT44", target="FIXGW", port=port, store_dir=self.tmp / "c44")
        self.clients.append(c)
        return c


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    pki = make_pki(tmp / "pki")
    url = f"sqlite:///{tmp / 'journal.db'}"
    upgrade(url)
    gw_port, tls_port = free_port(), free_port()
    fronts, sims, public = {}, [], {}
    for name, cert in (("VENUE1", pki.server), ("VENUE2", pki.untrusted_server)):
        public[name] = free_port()
    text = stack_config_text(url, tmp / "gw", gw_port, public["VENUE1"], public["VENUE2"], client_options={
        "CLIENT44": f'port = {tls_port}\nallowed_addresses = ["127.0.0.0/8"]\n'
                    f'tls = {{ cert = "{pki.server.cert}", key = "{pki.server.key}", '
                    f'client_ca = "{pki.ca}", verify_client = true }}'})
    for name in ("VENUE1", "VENUE2"):
        text = text.replace(f"[venues.{name}]\n", f'[venues.{name}]\ntls = {{ ca = "{pki.ca}" }}\n', 1)
    # VENUE1 also wants a username and password in our Logon; the password is a secret from the environment
    text = text.replace("[venues.VENUE1]\n", '[venues.VENUE1]\nusername = "fixgw-user"\n'
                                              'password_secret = "TEST_VENUE1_PASSWORD"\n', 1)
    os.environ["TEST_VENUE1_PASSWORD"] = VENUE_PASSWORD
    cfg = parse_config(text, tmp / "gw", env={})
    for name, cert in (("VENUE1", pki.server), ("VENUE2", pki.untrusted_server)):
        inner = free_port()
        sim = VenueSimulator(comp_id=name, port=inner, sim=cfg.venues[name].simulator, store_dir=tmp / "venues" / name,
                             counterparties=(cfg.comp_id,))
        sim.wire.rows = []
        sim.start()
        sims.append(sim)
        audit: list[str] = []
        front = TlsTerminator(PeerBook(), lambda where, t, failure, audit=audit: audit.append(t)).start()
        front.serve(name, public[name], server_context(cert.cert, cert.key), inner, host="127.0.0.1")
        fronts[name] = (front, audit)
    gateway = Gateway(cfg).start()
    e = Env(pki=pki, gateway=gateway, tls_port=tls_port, venues=sims, fronts=fronts, tmp=tmp)
    e.client_side = TlsTerminator(PeerBook(), lambda where, t, failure: e.client_audit.append(t)).start()
    try:
        assert _wait(lambda: gateway.is_logged_on("VENUE1"), 20), "VENUE1 did not log on over TLS"
        yield e
    finally:
        for c in e.clients:
            c.stop()
        gateway.stop()
        e.client_side.stop()
        for front, _ in fronts.values():
            front.stop()
        for sim in sims:
            sim.stop()
        os.environ.pop("TEST_VENUE1_PASSWORD", None)


def test_a_tls_session_end_to_end_client_to_gateway_to_venue(env):
    c = env.tls_client().start()
    try:
        cl = c.new_order("AAPL", "1", 100, "190.05")
        fill = c.wait_exec(cl, "2")
        assert fill[30] == "VENUE1"
    finally:
        c.stop()
    events = env.events()
    port = f"tls:port:{env.tls_port}"
    assert any(e.startswith(port) and "TLS connection from 127.0.0.1" in e and "CN=CLIENT44" in e for e in events), \
        [e for e in events if "CLIENT44" in e or e.startswith("tls")]
    assert any("logon accepted from 127.0.0.1 over TLSv1.3, certificate O=fixgw tests,CN=CLIENT44" in e
               for e in events)
    assert any(e.startswith("tls:venue:VENUE1") and "TLS connection to 127.0.0.1" in e and "CN=localhost" in e
               for e in events)
    assert any("TLS connection from 127.0.0.1" in t for t in env.fronts["VENUE1"][1])  # the venue saw TLS


def test_a_venue_whose_certificate_is_not_trusted_is_refused(env):
    assert _wait(lambda: any(e.startswith("tls:venue:VENUE2") and "certificate verification failed" in e
                             for e in env.events()), 10)
    assert not env.gateway.is_logged_on("VENUE2")


def test_a_plaintext_client_on_the_tls_port_is_refused_cleanly(env):
    plain = env.client(env.tls_port)
    plain._engine.start()
    assert not plain.wait_logged_on(3)
    plain.stop()
    assert _wait(lambda: any("not a TLS client (a plaintext FIX connection on a TLS port?)" in e
                             for e in env.events(f"tls:port:{env.tls_port}")), 5)
    again = env.tls_client().start()  # the port still serves TLS clients
    again.stop()


@pytest.mark.parametrize("which, reason", [
    ("expired", "certificate has expired"),
    ("untrusted", "unable to get local issuer certificate"),
    ("none", "no client certificate (this port requires one)"),
])
def test_an_expired_untrusted_or_missing_client_certificate_is_refused(env, which, reason):
    ctx = ssl.create_default_context(cafile=str(env.pki.ca))
    if which != "none":
        pair = getattr(env.pki, which)
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    refused = False
    with socket.create_connection(("127.0.0.1", env.tls_port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"8=FIX.4.4\x019=5\x0135=A\x0110=000\x01")
                refused = tls.recv(100) == b""  # TLS 1.3: the refusal arrives after the client's handshake
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            refused = True
    assert refused
    assert _wait(lambda: any(reason in e for e in env.events(f"tls:port:{env.tls_port}")), 5), env.events("tls")


def test_a_tls_session_refuses_a_logon_that_bypasses_the_terminator(env):
    internal = env.gateway._internal_ports[env.tls_port]
    direct = env.client(internal)
    direct._engine.start()
    assert not direct.wait_logged_on(3)
    direct.stop()
    logouts = [raw for d, raw in direct.wire.lines if d == "I" and "\x0135=5\x01" in raw]
    assert logouts and "accepts logons over TLS only" in logouts[-1]
    assert any("logon refused: this session accepts logons over TLS only" in e for e in env.events())


def test_our_logon_to_a_venue_carries_its_username_and_password_and_the_journal_masks_it(env):
    venue = env.venues[0]
    logons = [raw for _, d, raw in list(venue.wire.rows) if d == "I" and "\x0135=A\x01" in raw]
    assert logons and "\x01553=fixgw-user\x01" in logons[-1] and f"\x01554={VENUE_PASSWORD}\x01" in logons[-1]
    env.gateway.journal.flush()
    from gateway.journal.queries import iter_messages

    ours = [r.raw for r in iter_messages(env.gateway.cfg.journal.database_url, direction="O") if r.msg_type == "A"
            and "VENUE1" in r.session_id]
    assert ours and all("\x01554=****\x01" in raw for raw in ours)
    assert not any(VENUE_PASSWORD in r.raw for r in iter_messages(env.gateway.cfg.journal.database_url))
