"""The fence every write of an active instance carries: its term (cluster and fencing token) and the one
statement that admits a transaction only while that term is current.

It sits here, under the rooms that write (the journal's writer process, drop copy's ledgers, the state log,
the cluster's own fenced writes in gateway/cluster/fence.py), so each can fence its transactions without
importing the cluster's room. Why the statement is safe at READ COMMITTED is explained in
gateway/cluster/fence.py.
"""
from __future__ import annotations

from dataclasses import dataclass

#: How long a fenced transaction may sit idle (its client paused) before the server ends it (seconds).
#: Generous for a writer between two statements of one transaction, short beside a lease's ttl.
DEFAULT_IDLE_TIMEOUT = 1.0

#: The lease row locked FOR KEY SHARE if, and only if, it still has a holder and this token; with the idle
#: timeout set for this transaction only (set_config(..., true) is SET LOCAL). Placeholders for the caller's
#: parameter style: ``idle_ms``, ``name``, ``token``.
FENCE_SQL = ("SELECT set_config('idle_in_transaction_session_timeout', {idle_ms}, true) FROM cluster_lease "
             "WHERE name = {name} AND holder IS NOT NULL AND token = {token} FOR KEY SHARE")

_PSYCOPG_FENCE = FENCE_SQL.format(idle_ms="%(idle_ms)s", name="%(name)s", token="%(token)s")


class StaleLeadership(Exception):
    """The fencing token is no longer current (another instance took the lease, or it was released): the
    write was refused. The instance must stop acting as the active."""

    def __init__(self, cluster: str, token: int):
        super().__init__(f"cluster {cluster!r}: fencing token {token} is no longer current; another instance "
                         f"took the lease or it was released, so this write is refused")
        self.cluster = cluster
        self.token = token


@dataclass(frozen=True)
class Term:
    """An active instance's term: the cluster's name and the fencing token its lease was acquired with."""

    cluster: str
    token: int

    def check(self, cur, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        """On a psycopg cursor inside a transaction: hold the lease row for the rest of it, or raise
        StaleLeadership (the caller rolls back)."""
        cur.execute(_PSYCOPG_FENCE, {"idle_ms": str(max(1, round(idle_timeout * 1000))), "name": self.cluster,
                                     "token": self.token})
        if cur.fetchone() is None:
            raise StaleLeadership(self.cluster, self.token)

    def text(self) -> str:
        """One line for a pipe (``parse``'s inverse)."""
        return f"{self.token} {self.cluster}"

    @classmethod
    def parse(cls, text: str) -> "Term":
        token, _, cluster = text.strip().partition(" ")
        return cls(cluster, int(token))
