"""Slack actions on incidents: what a click means, how it is recorded, and what the clicks change for a run.

A click names its check (the buttons carry it), and the message it was made on (Slack's channel and
`container.message_ts`); neither is trusted until the history confirms that this message is the check's open
incident. It becomes one `incident_events` row, identified by what Slack says about the click itself, so a click
delivered twice is recorded once. Runs read the rows back as `incidents.Marks`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from dataclasses import dataclass
from enum import StrEnum

from anomaly_monitor import incidents
from anomaly_monitor.models import Action, HistoryRecord, IncidentEvent, Status
from anomaly_monitor.notices import MessageRef
from anomaly_monitor.state import StateStore

# The snooze choices (a menu on the message) and how long each lasts; None: until 09:00 tomorrow, check's time zone.
SNOOZES: dict[str, dt.timedelta | None] = {
    "1h": dt.timedelta(hours=1),
    "4h": dt.timedelta(hours=4),
    "24h": dt.timedelta(hours=24),
    "tomorrow": None,
}
MORNING = dt.time(9, 0)


def snooze_until(choice: str, timezone: str, at: dt.datetime) -> dt.datetime:
    """When a snooze chosen at `at` ends, in UTC. "tomorrow" is 09:00 on the next calendar day where the check
    lives, whatever the clocks did overnight (a DST change moves it in UTC, not on the wall)."""
    length = SNOOZES[choice]
    if length is not None:
        return (at + length).astimezone(dt.UTC)
    zone = zoneinfo.ZoneInfo(timezone)
    tomorrow = at.astimezone(zone).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, MORNING, tzinfo=zone).astimezone(dt.UTC)


@dataclass(frozen=True)
class Click:
    """One click on an incident message, as Slack described it (its signature already verified)."""

    check_name: str
    channel: str  # the clicked message: container.channel_id and container.message_ts
    message_ts: str
    action: Action
    user_id: str
    action_ts: str  # Slack's own stamp of the click: a second delivery of it carries the same one
    user_name: str | None = None
    choice: str | None = None  # a snooze: a key of SNOOZES
    timezone: str = "UTC"  # the check's, for "until 09:00 tomorrow"
    team_id: str | None = None

    @property
    def event_id(self) -> str:
        """The same for every delivery of this click, different for any other click."""
        parts = (self.team_id, self.channel, self.message_ts, self.check_name, self.action, self.choice)
        text = "\x1f".join(str(p or "") for p in (*parts, self.user_id, self.action_ts))
        return hashlib.sha256(text.encode()).hexdigest()[:32]


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # the same click, delivered again: recorded before, nothing changes
    NOT_OPEN = "not_open"  # not a message of an open incident of that check: nothing changes


@dataclass(frozen=True)
class Taken:
    """What became of a click."""

    outcome: Outcome
    events: tuple[IncidentEvent, ...]  # on the clicked message, oldest first (with this click when recorded)
    reason: str = ""  # NOT_OPEN: why, in words for the person who clicked
    event: IncidentEvent | None = None  # RECORDED: the row appended


def not_open(click: Click, row: HistoryRecord | None) -> str:
    """Why a click changes nothing, or "" when the message is the check's open incident."""
    state = incidents.from_record(row)
    name = click.check_name
    if not state.open:
        return f"check {name} has no open incident, so nothing was recorded (it may have resolved since)."
    if state.ref != MessageRef(click.channel, click.message_ts):
        return (
            f"this message is not the open incident of check {name} (it continues in another message), "
            "so nothing was recorded: use the buttons on the incident's current message."
        )
    if state.announced is Status.OK:
        return f"the incident of check {name} is already resolved (marked expected), so nothing was recorded."
    return ""


def take(click: Click, state: StateStore, now: dt.datetime) -> Taken:
    """Checks the click against the history, and records it unless it changes nothing (one read, one append)."""
    row, events = state.clicked_incident(click.check_name, click.channel, click.message_ts, now)
    reason = not_open(click, row)
    if reason:
        return Taken(Outcome.NOT_OPEN, tuple(events), reason)
    if any(e.event_id == click.event_id for e in events):
        return Taken(Outcome.DUPLICATE, tuple(events))
    event = IncidentEvent(
        event_id=click.event_id,
        check_name=click.check_name,
        slack_channel=click.channel,
        slack_ts=click.message_ts,
        action=click.action,
        until=snooze_until(click.choice or "", click.timezone, now) if click.action is Action.SNOOZE else None,
        user_id=click.user_id,
        user_name=click.user_name,
        at=now,
        detail=detail(click, row),
    )
    state.append_events([event])
    return Taken(Outcome.RECORDED, (*events, event), event=event)


def detail(click: Click, row: HistoryRecord | None) -> str | None:
    """What else the row keeps: the snooze chosen, or the judged value marked expected and the run that judged it."""
    if click.action is Action.SNOOZE:
        return json.dumps({"choice": click.choice, "timezone": click.timezone})
    if click.action is Action.EXPECTED and row is not None:
        judged = {"value": row.value, "run_id": row.run_id, "checked_at": row.checked_at.isoformat()}
        return json.dumps(judged)
    return None


def marked_run(event: IncidentEvent) -> dt.datetime:
    """When the run ran whose judged value an Expected click marked (its detail keeps it): a series check judged
    the newest complete period as of that run, which a later click must not mistake for a newer one. A row that
    does not say falls back to the click's own time."""
    try:
        moment = dt.datetime.fromisoformat(json.loads(event.detail or "")["checked_at"])
    except (ValueError, TypeError, KeyError):
        return event.at
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
