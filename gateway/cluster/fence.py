"""Fenced writes (the statement and the term are gateway/journal/fencing.py, for the rooms below this one): a transaction that carries the active's fencing token commits only while that token is current.

::

    with engine.connect() as conn, fenced(conn, "main", token):
        conn.execute(...)            # committed on leaving the block, or refused: StaleLeadership

The fence is one statement at the start of the transaction: it locks the cluster's lease row ``FOR KEY SHARE``
if, and only if, it still has a holder and ``token``. So, at READ COMMITTED (PostgreSQL's default):

- A standby's acquire locks the row ``FOR UPDATE``, which conflicts with ``FOR KEY SHARE``: it waits for every
  fenced transaction already past its fence. A write in flight at the takeover therefore commits before the
  new token exists (or rolls back); there is no moment when both tokens can commit.
- A fence that comes after the acquire (or waits for it) reads the row as the acquire left it: the token is
  not current, no row is locked and StaleLeadership is raised before the body runs. Same after a release.
- The holder's own renewals are non-key UPDATEs, which ``FOR KEY SHARE`` does not conflict with: writes and
  renewals never wait for each other.
- A holder paused (SIGSTOP, a long GC, a frozen VM) inside a fenced transaction would keep the standby's acquire
  waiting. The fence sets ``idle_in_transaction_session_timeout`` for its transaction: the server ends such a
  session after ``idle_timeout`` seconds, rolling the write back and freeing the row, and the paused holder's
  COMMIT fails when it resumes.

The check and the write are one transaction, so they are atomic: there is no window between "checked" and
"written" in which a takeover can slip. Isolation above READ COMMITTED is not supported: a REPEATABLE READ
transaction would fail its fence whenever the holder renewed after the transaction's snapshot.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, text

from gateway.cluster.lease import require_postgres
from gateway.journal.fencing import DEFAULT_IDLE_TIMEOUT, FENCE_SQL, StaleLeadership

__all__ = ["DEFAULT_IDLE_TIMEOUT", "StaleLeadership", "check_fence", "fenced"]

_FENCE = text(FENCE_SQL.format(idle_ms=":idle_ms", name=":name", token=":token"))


def check_fence(conn: Connection, cluster: str, token: int, *,
                idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
    """Hold ``cluster``'s lease row for the rest of ``conn``'s transaction if ``token`` is current, else raise
    StaleLeadership (the caller then rolls back). For a transaction the caller already runs."""
    require_postgres(conn)
    idle_ms = str(max(1, round(idle_timeout * 1000)))
    if conn.execute(_FENCE, {"name": cluster, "token": token, "idle_ms": idle_ms}).first() is None:
        raise StaleLeadership(cluster, token)


@contextmanager
def fenced(conn: Connection, cluster: str, token: int, *,
           idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> Iterator[Connection]:
    """Run the block's writes in a transaction that commits only under the current ``token`` of ``cluster``.

    If ``conn`` has no transaction yet, the block gets one, committed on a normal exit and rolled back on an
    exception (StaleLeadership included). If it has one, the fence joins it and the caller commits or, on
    StaleLeadership, rolls back."""
    own = not conn.in_transaction()
    with conn.begin() if own else nullcontext():
        check_fence(conn, cluster, token, idle_timeout=idle_timeout)
        yield conn
