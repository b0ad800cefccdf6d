"""Scheduled jobs (apscheduler): each client session's end of day; the risk trading-day rolls.

Jobs only submit a command to the engine's queue; the core thread does the work,
so a job never touches order state and never blocks a FIX session. The jobs of
a session are added and removed by `fixgw sessions reload` as its configuration
comes and goes.
"""
from __future__ import annotations

import logging
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from gateway.config import ClientConfig, GatewayConfig
from orders.commands import EndOfDay, RiskDayRoll

log = logging.getLogger("fixgw.schedule")


def job_id(name: str) -> str:
    return f"end-of-day:{name}"


def set_end_of_day(scheduler: BackgroundScheduler, name: str, client: ClientConfig | None,
                   submit: Callable[[object], None]) -> None:
    """(Re)schedule the session's end-of-day job from its configuration; None or no end_of_day removes it."""
    if scheduler.get_job(job_id(name)) is not None:
        scheduler.remove_job(job_id(name))
    if client is None or client.end_of_day is None:
        return
    t = client.end_of_day
    scheduler.add_job(
        submit, CronTrigger(hour=t.hour, minute=t.minute, second=t.second, timezone=client.timezone),
        args=[EndOfDay(name)], id=job_id(name), name=f"end of day for {name}",
        misfire_grace_time=60, coalesce=True,
    )
    log.info("end of day for %s scheduled at %s %s", name, t.isoformat(), client.timezone, extra={"session": name})


RISK_DAY_ROLL = "risk-day-roll:"


def set_risk_day_rolls(scheduler: BackgroundScheduler, cfg: GatewayConfig, submit: Callable[[object], None]) -> None:
    """(Re)schedule a risk day roll at each trading-day boundary: [risk] trading_day_start and every client
    session's schedule start (UTC). The core rolls per-day usage before any message after a boundary anyway;
    the job makes the roll happen, and be journaled, when no message flows."""
    for job in scheduler.get_jobs():
        if job.id.startswith(RISK_DAY_ROLL):
            scheduler.remove_job(job.id)
    if cfg.risk.rules_file is None:
        return
    starts = {cfg.risk.trading_day_start} | {c.schedule.start for c in cfg.clients.values() if c.schedule is not None}
    for t in sorted(starts):
        scheduler.add_job(submit, CronTrigger(hour=t.hour, minute=t.minute, second=t.second, timezone="UTC"),
                          args=[RiskDayRoll()], id=f"{RISK_DAY_ROLL}{t:%H:%M:%S}",
                          name=f"risk trading-day roll at {t:%H:%M:%S} UTC", misfire_grace_time=3600, coalesce=True)


def build_scheduler(cfg: GatewayConfig, submit: Callable[[object], None]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    for name, client in cfg.clients.items():
        set_end_of_day(scheduler, name, client, submit)
    set_risk_day_rolls(scheduler, cfg, submit)
    j = cfg.journal
    if j.retention_days:
        scheduler.add_job(_retention_job, CronTrigger(hour=j.retention_time.hour, minute=j.retention_time.minute,
                                                      second=j.retention_time.second, timezone="UTC"),
                          args=(j.database_url, j.retention_days, j.archive_dir), id="journal-retention",
                          name=f"journal retention (older than {j.retention_days:g} days)",
                          max_instances=1, coalesce=True, misfire_grace_time=3600)
    return scheduler


def _retention_job(database_url: str, days: float, archive_dir) -> None:
    """Runs on the scheduler's worker thread: database work, never on a session or the core thread."""
    from datetime import timedelta

    from gateway.journal.retention import prune

    try:
        prune(database_url, timedelta(days=days), archive_dir=archive_dir)
    except Exception:  # noqa: BLE001 - tomorrow's run tries again; say so loudly
        log.exception("journal retention failed; the journal keeps growing until it succeeds")


def describe(scheduler: BackgroundScheduler) -> list[tuple[str, str]]:
    """(job name, next run time) for status displays."""
    return [(job.name, job.next_run_time.isoformat() if job.next_run_time else "paused")
            for job in scheduler.get_jobs()]
