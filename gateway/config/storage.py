"""Where gateway.cfg says the gateway keeps what it must not lose: the journal's database, batching and
retention, and the order-state log's durability; and the rule that the database password stays out of the file."""
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
    fsync: bool = Field(False, description="flush the order-state log to disk after every command: survives a "
                                           "power cut, not only a process crash, at the cost of a disk flush each")
    venue_wait_s: float = Field(10, ge=0, le=300, description="after a crash, how long start-up waits for the "
                                "venues before processing client messages received before the crash")


def make_url_password(url: str) -> str | None:
    """The password in a SQLAlchemy URL, or None (also for a URL that does not parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None
