"""Ports: the gateway's loopback ports behind the front door stay its own until quickfix binds them, and the ports
tests and benchmarks hand their stacks are outside the range the kernel takes outgoing connections' ports from."""
from __future__ import annotations

import socket

import pytest

from bench.ports import bindable, ephemeral_low, free_port
from gateway.process.session_engines import HeldPorts


def binds(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def test_a_held_loopback_port_cannot_be_bound_by_anyone_else_until_it_is_released():
    held = HeldPorts()
    port = held.take()
    try:
        assert held.held() == {port}
        assert not binds(port) and not binds(port, "0.0.0.0")
        assert not binds(port, "127.0.0.2")  # held on every address, as quickfix binds it: none can take it
    finally:
        held.release([port])
    assert held.held() == set()
    assert binds(port, "0.0.0.0")


def test_held_ports_never_hand_out_one_of_the_ports_to_avoid():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        avoid = probe.getsockname()[1]
    held = HeldPorts(frozenset({avoid}))
    taken = [held.take() for _ in range(50)]
    try:
        assert avoid not in taken and len(set(taken)) == 50
    finally:
        held.release(taken)


def test_releasing_a_port_twice_or_one_never_held_does_nothing():
    held = HeldPorts()
    port = held.take()
    held.release([port, port, 1])
    assert held.held() == set()


def test_a_stack_port_is_below_the_ephemeral_range_free_and_never_handed_out_twice():
    low = ephemeral_low()
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(200)]
    assert len(set(ports)) == 200 and taken == set(ports)
    assert all(p < low for p in ports) or low - 10_000 < 1_000
    assert all(bindable(p) for p in ports[:20])


def test_a_port_someone_listens_on_is_not_bindable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert not bindable(s.getsockname()[1])


@pytest.mark.parametrize("text, low", [("20000\t60999\n", 20000), ("", 32768), ("x y", 32768)])
def test_the_ephemeral_range_is_read_from_the_kernel_or_taken_as_linux_default(tmp_path, text, low):
    path = tmp_path / "ip_local_port_range"
    path.write_text(text)
    assert ephemeral_low(path) == low
    assert ephemeral_low(tmp_path / "missing") == 32768
