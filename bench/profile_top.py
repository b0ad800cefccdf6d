"""Top frames of a py-spy ``--format raw`` profile (collapsed stacks: ``frame;frame;... count``).

Frames are grouped by function and file (line numbers dropped). ``leaf`` is the
share of samples whose innermost frame is that function (its own time);
``inclusive`` the share with that function anywhere on the stack; ``threads``
the share per gateway thread (told by the frames on the stack).

Run: python bench/profile_top.py PROFILE.txt [N]
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
# frames on every stack (thread start-up, unnamed libc frames): left out of the inclusive list
_BOILERPLATE = ("0x", "Thread._bootstrap", "Thread.run (", "clone", "start_thread", "thread_run", "pythread_wrapper")


def _frame(f: str) -> str:
    f = f.strip()
    f = _LINE.sub(")", f)  # "fromApp (sessions/gateway_app.py:120)" -> "fromApp (sessions/gateway_app.py)"
    for marker in ("site-packages/", "/work/"):
        i = f.find(marker)
        if i >= 0:
            j = f.rfind("(", 0, i)
            f = f[:j + 1] + f[i + len(marker):]
    return f


_ROLES = (
    ("Engine._run", "core thread (fixgw-core)"),
    ("JournalWriter._run", "journal writer thread"),
    ("ProcessJournalWriter._read_child", "journal writer process's reports (reader thread)"),
    ("ThreadedSocketAcceptor", "client session threads (acceptor)"),
    ("SocketInitiator", "venue session threads (initiators)"),
    ("http", "HTTP thread"),
)


def _role(stack: str) -> str:
    """The gateway thread a stack belongs to, from the frames on it (py-spy's raw format has no names)."""
    for needle, role in _ROLES:
        if needle in stack:
            return role
    return "other"


# What the core thread's time goes to (a --idle profile): the first category whose needles are all on the
# stack wins, in this order.
_CORE_CATEGORIES = (
    ("idle: waiting for a command (queue.get)", ("_queue_SimpleQueue_get",)),
    ("waiting for the GIL (after a binding call or a syscall)", ("pthread_cond_timedwait",)),
    ("waiting for a quickfix session lock", ("FIX::Mutex::lock", "pthread_mutex_lock")),
    ("quickfix FileStore: storing each sent message", ("FIX::FileStore",)),
    ("socket send()", ("FIX::Session::sendRaw", ";send (")),
    ("state log: pickle + write (Recorder.record)", ("Recorder.record",)),
    ("risk: deepcopy of the risk state for a replace", ("RiskState.without_order",)),
    ("journal spool write (on the core thread's sends)", ("Spool.append",)),
    ("rest of sendToTarget (quickfix: header, serialise, toApp callback)", ("Session.sendToTarget",)),
    ("encoding (codec: build the message, fix.Message(text))", ("Outbound.perform",)),
    ("Core.handle (rest: validation, risk for new orders, order state)", ("Core.handle",)),
    ("metrics, logging, rest of the engine", ("Engine._run",)),
)


def core_breakdown(path: Path) -> list[tuple[str, float]]:
    """Share of the core thread's samples per category (meaningful for a --idle profile)."""
    counts: Counter = Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if "Engine._run" not in stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        for name, needles in _CORE_CATEGORIES:
            if all(x in stack for x in needles):
                counts[name] += n
                break
    return [(name, counts[name] / total) for name, _ in _CORE_CATEGORIES if counts[name]] if total else []


def summarize(path: Path, top: int = 40) -> dict:
    leaf: Counter = Counter()
    incl: Counter = Counter()
    threads: Counter = Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = _role(stack)
        frames = [_frame(f) for f in frames if not f.startswith(("process", "thread"))]
        if not frames:
            continue
        total += n
        threads[thread] += n
        leaf[frames[-1]] += n
        for f in set(frames):
            if not f.startswith(_BOILERPLATE):
                incl[f] += n
    if not total:
        return {"samples": 0}
    return {"samples": total, "core_thread": core_breakdown(path),
            "leaf": [(k, v / total) for k, v in leaf.most_common(top)],
            "inclusive": [(k, v / total) for k, v in incl.most_common(top)],
            "threads": [(k, v / total) for k, v in threads.most_common(10)]}


if __name__ == "__main__":
    s = summarize(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 40)
    print(f"{s['samples']} samples")
    for section in ("threads", "core_thread", "leaf", "inclusive"):
        print(f"\n{section}:")
        for name, share in s.get(section, []):
            print(f"  {share:6.1%}  {name}")
