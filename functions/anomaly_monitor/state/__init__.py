"""State stores keep the append-only history (`check_results`) and delivery journal (`notices`): SQLite, BigQuery."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.models import HistoryRecord, NoticeRecord
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
        """The newest `limit` judged values (ok or alert, with a value) of each check, oldest first."""
        ...

    def pending_notices(
        self, check_names: Collection[str], now: dt.datetime, committed: Mapping[str, str]
    ) -> list[NoticeRecord]:
        """The newest event of each notice of these checks that a run still has to act on: unconfirmed
        (`attempt`, `unknown`), a closing notice not yet delivered (`failed` resolved or missed), or decided
        by a run that never recorded its results (its `based_on` is the check's newest run, `committed`)."""
        ...

    def run_lock(self, run_id: str) -> AbstractContextManager[None]:
        """Held while a run decides and sends notifications, so overlapping runs cannot post one incident twice."""
        ...


def open_state(url: str, settings: Settings) -> StateStore:
    if url.startswith("sqlite:///"):
        from anomaly_monitor.state.sqlite import SqliteStateStore

        return SqliteStateStore.from_url(url)
    if url.startswith("bigquery://"):
        from anomaly_monitor.state.bigquery import BigQueryStateStore

        return BigQueryStateStore.from_url(url, settings)
    raise ConfigError(f"state URL {url!r} is not sqlite:///PATH or bigquery://PROJECT/DATASET")
