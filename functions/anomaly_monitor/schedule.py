"""Whether a check is due: a tick of its cron schedule has passed since its last recorded run.

Ticks follow Debian cron's rule for daylight-saving changes (cronsim implements it): a job at a fixed
time (no `*` in its minute or hour field) whose time is skipped when clocks go forward runs once, right
after the change, and runs once, at the first occurrence, when clocks go back and the hour repeats; a job
with a `*` in its minute or hour field follows the clock: it has no tick in a skipped hour and ticks in
both passes of a repeated one, so an hourly check runs once per real hour on either day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from anomaly_monitor.models import Check

FIELDS = ["minute", "hour", "day-of-month", "month", "day-of-week"]
EXAMPLE = '"*/15 * * * *"'
REFERENCE = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # any start works: a schedule that fires does so within 40 years


class ScheduleError(ValueError):
    """A cron expression that is malformed or can never fire; the message says which part and why."""


def check_schedule(expression: str) -> None:
    """Raises ScheduleError unless `expression` is a 5-field cron expression that fires at some time."""
    if len(expression.split()) != 5:
        raise ScheduleError(f"is not a 5-field cron expression ({' '.join(FIELDS)}, e.g. {EXAMPLE})")
    try:
        ticks = CronSim(expression, REFERENCE)
    except CronSimError as exc:
        dom = expression.split()[2]
        if str(exc) == "Bad day-of-month" and _valid(f"0 0 {dom} * *"):
            raise ScheduleError(f"never fires: no month it names has day {dom}") from None
        raise ScheduleError(f"is not a 5-field cron expression ({str(exc).lower()} field; e.g. {EXAMPLE})") from None
    try:
        next(ticks)
    except StopIteration:
        raise ScheduleError("never fires: no date matches its day, month and weekday fields") from None


def _valid(expression: str) -> bool:
    try:
        CronSim(expression, REFERENCE)
    except CronSimError:
        return False
    return True


def tick_after(check: Check, moment: dt.datetime) -> dt.datetime:
    """The first tick of the check's schedule strictly after `moment`, in the check's time zone."""
    if check.schedule is None:
        raise ScheduleError(f"check {check.name} has no schedule: it runs at every invocation")
    local = moment.astimezone(ZoneInfo(check.timezone))
    try:
        return next(CronSim(check.schedule, local))
    except StopIteration:  # the registry refuses such schedules; this keeps the reason if one slips through
        raise ScheduleError(f"schedule {check.schedule!r} of check {check.name} never fires") from None


def is_due(check: Check, last_run: dt.datetime | None, now: dt.datetime) -> bool:
    """Due when it never ran or a tick came after its last run, at or before `now`.

    Judged from the history rather than the invocation time, so a late or retried invocation
    neither skips a tick nor runs a check twice for the same tick."""
    if check.schedule is None or last_run is None:
        return True
    if last_run >= now:  # a run recorded later than `now` (a backfill's --now): nothing is due before it
        return False
    return tick_after(check, last_run).astimezone(dt.UTC) <= now  # in UTC: a repeated hour's fold counts


def next_tick(check: Check, now: dt.datetime) -> dt.datetime:
    return tick_after(check, now)


def ticks(expression: str, timezone: str, start: dt.datetime, end: dt.datetime, limit: int) -> list[dt.datetime]:
    """The ticks of a cron expression from `start` to `end` (both included), in UTC, following the same rule as
    `is_due`; stops after `limit` + 1 ticks so that a caller can tell there are too many."""
    local = (start - dt.timedelta(seconds=1)).astimezone(ZoneInfo(timezone))  # cronsim yields ticks after it
    out: list[dt.datetime] = []
    for tick in CronSim(expression, local):
        moment = tick.astimezone(dt.UTC)
        if moment > end or len(out) > limit:
            break
        out.append(moment)
    return out
