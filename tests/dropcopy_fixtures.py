"""Helpers for drop-copy tests over real sessions: receivers, waiting until copies are delivered, checks."""
from __future__ import annotations

import time
from pathlib import Path

import quickfix as fix

from sessions.client import FixClient
from tests.test_codec import dictionaries

SOH = "\x01"
VERSION_OF_BEGIN = {"FIX.4.2": "FIX.4.2", "FIX.4.4": "FIX.4.4", "FIXT.1.1": "FIX.5.0"}


def receiver(port: int, name: str, version: str, store: Path, extra: dict[str, str] | None = None) -> FixClient:
    """A drop-copy receiver: a FIX initiator logged on as ``name`` (it validates what it gets)."""
    return FixClient(version=version, sender=name, target="FIXGW", port=port, store_dir=store, extra=extra).start()


def settle(gateway, logged_on: tuple[str, ...] = (), timeout: float = 10.0) -> None:
    """Everything journaled so far has gone through the drop-copy thread, and each receiver named in
    ``logged_on`` has acknowledged every copy (answered a TestRequest sent after them)."""
    assert gateway.journal.flush(timeout)
    service = gateway.dropcopy
    deadline = time.monotonic() + timeout
    start = service.cycles
    while service.cycles < start + 2:
        service.wake()
        assert time.monotonic() < deadline, f"drop-copy thread made no progress: {service.last_error}"
        time.sleep(0.01)
    while True:
        state = {d["name"]: d for d in service.status()}
        behind = {n: state[n] for n in logged_on
                  if not state[n]["logged_on"] or state[n]["acked"] != state[n]["sent"]}
        if not behind:
            return
        assert time.monotonic() < deadline, f"copies not acknowledged within {timeout} s: {behind}"
        time.sleep(0.02)


def copies(rx: FixClient, pred=lambda m: True) -> list[dict[int, str]]:
    return [m for m in rx.app_messages("8") if pred(m)]


def by_exec_id(messages: list[dict[int, str]]) -> dict[str, dict[int, str]]:
    out = {}
    for m in messages:
        assert m[17] not in out, f"ExecID {m[17]} received twice: {m} and {out[m[17]]}"
        out[m[17]] = m
    return out


def assert_valid_on_the_wire(rx: FixClient) -> None:
    """Every ExecutionReport the receiver read validates against its version's dictionary, and the
    receiver never had to reject anything."""
    dds = dictionaries(rx.version)
    checked = 0
    for direction, raw in list(rx.wire.lines):
        if direction == "O":
            assert f"{SOH}35=3{SOH}" not in raw, f"the receiver rejected a message: {raw!r}"
        elif f"{SOH}35=8{SOH}" in raw:
            msg = fix.Message(raw, dds[0], dds[1], True) if len(dds) == 2 else fix.Message(raw, dds[0], True)
            fix.DataDictionary.validate(msg, dds[0], dds[-1])
            checked += 1
    assert checked, "no ExecutionReport on the receiver's wire"
