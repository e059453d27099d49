"""Whether a check is due: a cron tick of its schedule has passed since its last recorded run."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from croniter import croniter

from anomaly_monitor.models import Check


def last_tick(check: Check, now: dt.datetime) -> dt.datetime:
    """The newest tick at or before `now`, in the check's time zone (DST handled by croniter)."""
    local = now.astimezone(ZoneInfo(check.timezone)) + dt.timedelta(microseconds=1)  # a tick at `now` counts
    return croniter(check.schedule, local).get_prev(dt.datetime)


def is_due(check: Check, last_run: dt.datetime | None, now: dt.datetime) -> bool:
    """Due when it never ran or a tick passed since its last run.

    Judged from the history rather than the invocation time, so a late or retried invocation
    neither skips a tick nor runs a check twice for the same tick."""
    if check.schedule is None or last_run is None:
        return True
    return last_tick(check, now) > last_run


def next_tick(check: Check, now: dt.datetime) -> dt.datetime:
    local = now.astimezone(ZoneInfo(check.timezone))
    return croniter(check.schedule, local).get_next(dt.datetime)
