"""State stores keep the append-only `check_results` history: SQLite locally, BigQuery in the cloud."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.models import HistoryRecord, IncidentEvent
from anomaly_monitor.settings import Settings


class StateStore(Protocol):
    def append(self, records: Sequence[HistoryRecord]) -> None:
        """Appends rows to check_results; raises StateError when they could not be written."""
        ...

    def history(self, check_names: Collection[str], *, limit: int) -> dict[str, list[HistoryRecord]]:
        """The newest `limit` rows of each named check, oldest first (checks without rows are absent)."""
        ...

    def append_events(self, events: Sequence[IncidentEvent]) -> None:
        """Appends rows to incident_events (what people did from Slack); raises StateError when not written."""
        ...

    def events(self, check_names: Collection[str]) -> dict[str, list[IncidentEvent]]:
        """The incident_events rows of each named check, oldest first (checks without events are absent)."""
        ...

    def run_lock(self, run_id: str) -> AbstractContextManager[None]:
        """Held while a run decides and sends notifications, so overlapping runs cannot post one incident twice."""
        ...


def by_check(records: Iterable[HistoryRecord]) -> dict[str, list[HistoryRecord]]:
    """History records grouped per check, keeping their order."""
    out: dict[str, list[HistoryRecord]] = {}
    for record in records:
        out.setdefault(record.check_name, []).append(record)
    return out


def open_state(url: str, settings: Settings) -> StateStore:
    if url.startswith("sqlite:///"):
        from anomaly_monitor.state.sqlite import SqliteStateStore

        return SqliteStateStore.from_url(url)
    if url.startswith("bigquery://"):
        from anomaly_monitor.state.bigquery import BigQueryStateStore

        return BigQueryStateStore.from_url(url, settings)
    raise ConfigError(f"state URL {url!r} is not sqlite:///PATH or bigquery://PROJECT/DATASET")
