"""A drop-copy watch with `fixgw client`: the copies of a drop-copy session counted as they arrive, until
``--count`` of them, ``--for`` seconds, the session's end or Ctrl-C."""
from __future__ import annotations

import calendar
import time

from gateway.cli import client_script as cs
from gateway.cli.client_session import ClientSession, Message


class DropCopyWatch:
    """Counts the ExecutionReports of events since the watch started (not the history the journal re-sends
    after the reset logon) and waits for enough of them."""

    def __init__(self, session: ClientSession):
        self.session = session
        self.started = time.time()
        self.exec_reports = 0
        session.listen(self._count)

    def _count(self, m: Message) -> None:
        if m.get(35) == "8" and _sent_at(m) >= self.started:
            self.exec_reports += 1  # not the history the journal re-sends after the reset logon

    def run(self, count: int | None, seconds: float | None) -> int:
        """Until ``count`` ExecutionReports arrived, ``seconds`` passed, the session ended or Ctrl-C."""
        session = self.session
        deadline = None if seconds is None else time.monotonic() + seconds
        with session.cond:
            while session.lost is None and (count is None or self.exec_reports < count):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                session.cond.wait(1.0 if left is None else min(left, 1.0))
            if count is not None and self.exec_reports < count:
                session.note(f"{self.exec_reports} of {count} ExecutionReport(s) received", error=True)
                return cs.EXIT_TIMEOUT if session.lost is None else cs.EXIT_OK
        return cs.EXIT_OK


def _sent_at(m: Message) -> float:
    """When the event it reports happened: TransactTime (60), else OrigSendingTime (122) of a re-send, else
    SendingTime (52); epoch seconds, 0 when none parses."""
    stamp = m.get(60) or m.get(122) or m.get(52) or ""
    try:
        whole = calendar.timegm(time.strptime(stamp[:17], "%Y%m%d-%H:%M:%S"))
        return whole + (float("0" + stamp[17:]) if stamp[17:18] == "." else 0.0)
    except ValueError:
        return 0.0
