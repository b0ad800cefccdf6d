"""Scheduled jobs (apscheduler): each client session's end of day.

Jobs only submit a command to the engine's queue; the core thread does the work,
so a job never touches order state and never blocks a FIX session.
"""
from __future__ import annotations

import logging
from typing import Callable

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from gateway.config import GatewayConfig
from routing.model import EndOfDay

log = logging.getLogger("fixgw.schedule")


def build_scheduler(cfg: GatewayConfig, submit: Callable[[object], None]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    for name, client in cfg.clients.items():
        if client.end_of_day is None:
            continue
        t = client.end_of_day
        scheduler.add_job(
            submit, CronTrigger(hour=t.hour, minute=t.minute, second=t.second, timezone=client.timezone),
            args=[EndOfDay(name)], id=f"end-of-day:{name}", name=f"end of day for {name}",
            misfire_grace_time=60, coalesce=True,
        )
        log.info("end of day for %s scheduled at %s %s", name, t.isoformat(), client.timezone,
                 extra={"session": name})
    return scheduler


def describe(scheduler: BackgroundScheduler) -> list[tuple[str, str]]:
    """(job name, next run time) for status displays."""
    return [(job.name, job.next_run_time.isoformat() if job.next_run_time else "paused")
            for job in scheduler.get_jobs()]
