"""Where gateway.cfg says the gateway keeps what it must not lose: the journal's database, batching and
retention, and the order-state log's kind and durability; and the rule that the database password stays out of the
file."""
from __future__ import annotations

from datetime import time as dt_time
from pathlib import Path
from typing import Literal

from pydantic import Field

from gateway.config.strict import StrictModel

DATABASE_URL_ENV = "FIXGW_DATABASE_URL"
DATABASE_PASSWORD_ENV = "FIXGW_DATABASE_PASSWORD"


class JournalConfig(StrictModel):
    database_url: str = "sqlite:///var/journal.db"
    batch_max: int = Field(2000, ge=1, description="most rows in one commit")
    flush_interval_ms: int = Field(5, ge=1, description="longest a row waits before its batch commits")
    writer: Literal["process", "thread"] = Field(
        "process", description="process: the rows are committed by a child process that reads the spool "
        "(gateway/journal/process.py), off the gateway's GIL; thread: by a thread of the gateway process")
    retention_days: float | None = Field(None, gt=0, description="every day, prune journal rows older than this "
                                         "(unset: keep everything); `fixgw journal verify` keeps working")
    retention_time: dt_time = Field(dt_time(2, 0), description="when the daily retention job runs (UTC)")
    archive_dir: Path | None = Field(None, description="retention writes the rows it prunes here first "
                                     "(gzip'd JSON lines); unset: pruned rows are gone")


class RecoveryConfig(StrictModel):
    state_log: Literal["file", "database"] = Field(
        "file", description="where the order-state log is kept: file, <data_dir>/state (one instance); database, "
        "the journal's PostgreSQL database (gateway/state/pglog.py), where a standby on another machine can read it "
        "(issue 20), at the cost of a group commit before each command's messages are sent")
    state_log_stream: str | None = Field(
        None, min_length=1, max_length=200, description="with state_log = \"database\": the stream the records are "
        "kept under, one per gateway or cluster sharing the database (default: \"cluster:NAME\" in a cluster, "
        "else the comp_id)")
    state_log_grace_s: float = Field(
        5.0, gt=0, le=300, description="with state_log = \"database\": how long commits may fail before the "
        "gateway stops (it sends nothing whose record is not committed)")
    fsync: bool = Field(False, description="flush the order-state log to disk after every command: survives a "
                                           "power cut, not only a process crash, at the cost of a disk flush each "
                                           "(the file state log; the database's commits are durable anyway)")
    venue_wait_s: float = Field(10, ge=0, le=300, description="after a crash, how long start-up waits for the "
                                "venues before processing client messages received before the crash")


def state_log_problem(recovery: RecoveryConfig, journal_url: str) -> str | None:
    """Why ``recovery``'s state log cannot be kept with this journal (the URL as resolved, the environment's
    included), or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if recovery.state_log != "database":
        return None
    try:
        u = make_url(journal_url)
    except (ArgumentError, ValueError):
        return None  # (the journal says what is wrong with its URL when it opens it)
    if u.get_backend_name() == "postgresql":
        return None
    return (f"[recovery] state_log = \"database\" keeps the order state in the journal's database for failover, "
            f"which needs PostgreSQL; the journal is {u.render_as_string(hide_password=True)} "
            f"({u.get_backend_name()}): set [journal] database_url (or {DATABASE_URL_ENV}) to a "
            "postgresql+psycopg:// URL, or keep state_log = \"file\" for a single instance")


def make_url_password(url: str) -> str | None:
    """The password in a SQLAlchemy URL, or None (also for a URL that does not parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None
