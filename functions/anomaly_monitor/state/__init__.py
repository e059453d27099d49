"""State stores keep the append-only history (`check_results`), the delivery journal (`notices`) and what people did
from Slack (`incident_events`): SQLite, BigQuery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.models import HistoryRecord, IncidentEvent, NoticeRecord
from anomaly_monitor.settings import Settings

RESERVED_PREFIX = "_"  # the monitor's own incidents (`_registry`, grouped causes); registry names cannot start so
NO_ROW = "-"  # `based_on` of a notice decided for a check that had no history row yet
POINTS_LIMIT = 1000  # judged values read back per single-value anomaly check
CLOSING_KINDS = ("resolved", "missed")  # notices owed until delivered, even after their incident is over
UNCONFIRMED = ("attempt", "unknown")  # notice events whose outcome the next run looks up in Slack


class StateStore(Protocol):
    def append(self, records: Sequence[HistoryRecord]) -> None:
        """Appends rows to check_results; raises StateError when they could not be written."""
        ...

    def append_notices(self, events: Sequence[NoticeRecord]) -> None:
        """Appends events to the notices journal; raises StateError when they could not be written."""
        ...

    def latest(self, check_names: Collection[str], now: dt.datetime) -> dict[str, HistoryRecord]:
        """Each named check's newest row at or before `now` that is not `invalid` (it carries the check's alert
        state), and the newest row of every reserved name (`_registry`, grouped incidents). Checks without rows
        are absent."""
        ...

    def points(
        self, check_names: Collection[str], now: dt.datetime, *, limit: int = POINTS_LIMIT
    ) -> dict[str, list[tuple[dt.datetime, float]]]:
        """The newest `limit` judged values (ok or alert, with a value) of each check at or before `now` (a run at
        an earlier --now judges against what came before it, not against rows recorded later), oldest first."""
        ...

    def pending_notices(
        self, check_names: Collection[str], now: dt.datetime, committed: Mapping[str, str]
    ) -> list[NoticeRecord]:
        """The newest event of each notice of these checks that a run still has to act on: unconfirmed
        (`attempt`, `unknown`), a closing notice not yet delivered (`failed` resolved or missed), or decided
        by a run that never recorded its results (its `based_on` is the check's newest run, `committed`)."""
        ...

    def append_events(self, events: Sequence[IncidentEvent]) -> None:
        """Appends clicks to incident_events; one whose event_id is stored already is not stored again. Raises
        StateError when they could not be written."""
        ...

    def incident_events(self, check_names: Collection[str], now: dt.datetime) -> list[IncidentEvent]:
        """The events of these checks recorded at or before `now`, oldest first, one per event_id."""
        ...

    def clicked_incident(
        self, check_name: str, channel: str, ts: str, now: dt.datetime
    ) -> tuple[HistoryRecord | None, list[IncidentEvent]]:
        """What a click on the message (`channel`, `ts`) needs, in one read: the check's newest row at or before
        `now` (None when it has none since the message was posted) and the events already recorded on that
        message, oldest first."""
        ...

    def run_lock(self, run_id: str) -> AbstractContextManager[None]:
        """Held while a run decides and sends notifications, so overlapping runs cannot post one incident twice."""
        ...


def open_state(url: str, settings: Settings, *, read_only: bool = False) -> StateStore:
    """The store a URL names. `read_only`: it is only read, and nothing is created in it (no file, no table; the
    tables it lacks read as empty); writing raises StateError."""
    if url.startswith("sqlite:///"):
        from anomaly_monitor.state.sqlite import SqliteStateStore

        return SqliteStateStore.from_url(url, read_only=read_only)
    if url.startswith("bigquery://"):
        from anomaly_monitor.state.bigquery import BigQueryStateStore

        return BigQueryStateStore.from_url(url, settings, read_only=read_only)
    raise ConfigError(f"state URL {url!r} is not sqlite:///PATH or bigquery://PROJECT/DATASET")
