"""Check sources: where the registry rows come from (CSV locally, a Google Sheet in the cloud), and where a
run's statuses are written back beside them (the sheet; a CSV file takes none)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from anomaly_monitor.models import RunReport
from anomaly_monitor.settings import Settings


class CheckSource(Protocol):
    def read_rows(self) -> list[dict[str, str]]:
        """All registry rows as header -> cell text, in sheet order; raises RegistryError if unreadable."""
        ...

    def read_exclusions(self) -> list[dict[str, str]]:
        """The exclusion windows' rows (header -> cell text); [] when there are none. Never fails the run."""
        ...


class StatusPublisher(Protocol):
    def publish(self, report: RunReport) -> None:
        """Writes back what users read beside the registry (statuses, exported rows); never fails the run."""
        ...

    def publish_problem(self, problem: str, at: dt.datetime) -> None:
        """The registry could not be read: say so where its readers look (the status tab); never raises."""
        ...


def open_source(location: str, settings: Settings) -> CheckSource:
    if location.startswith("sheets://"):
        from anomaly_monitor.sources.sheets import SheetsSource

        return SheetsSource.from_url(location, settings)
    from anomaly_monitor.sources.csv_source import CsvSource

    return CsvSource(location)


def status_publisher(source: CheckSource) -> StatusPublisher | None:
    """A sheet takes the statuses of the checks it lists; a CSV file is not written back (the terminal shows
    them)."""
    from anomaly_monitor.sources.sheets import SheetsSource

    return source if isinstance(source, SheetsSource) else None
