"""The cloud state store: `check_results` in BigQuery, appended by streaming inserts, created on first use."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from anomaly_monitor import gcp
from anomaly_monitor.errors import StateError
from anomaly_monitor.models import HistoryRecord, IncidentEvent, Status
from anomaly_monitor.settings import Settings
from anomaly_monitor.state import by_check
from anomaly_monitor.state.schema import CHECK_RESULTS_SCHEMA, COLUMNS, EVENT_COLUMNS, INCIDENT_EVENTS_SCHEMA
from anomaly_monitor.urls import bigquery_dataset

if TYPE_CHECKING:
    from google.cloud import bigquery

TABLE = "check_results"
EVENTS_TABLE = "incident_events"
HISTORY_DAYS = 90  # partition filter: alert state, schedules and anomaly history never look further back
QUERY_TIMEOUT_S = 60
REQUEST_DEADLINE_S = 60  # retries of one API call stop here (the client's default is 10 minutes)

# One run at a time per process. Across processes the platform serialises runs: the function is deployed with
# max_instance_count = 1 and max_instance_request_concurrency = 1, so Cloud Run hands one request at a time to
# one instance (retries and overlapping Scheduler jobs queue). A BigQuery-side lock was weighed and rejected:
# BigQuery has no row locks, multi-statement transactions only abort the loser of a conflicting DML race
# (a lock table would need DML on every run and cleanup of stale leases), and a run holds this lock from
# reading the history to recording its results, so a retried invocation sees what the first one notified.
_run_lock = threading.Lock()


def bigquery_schema() -> list[bigquery.SchemaField]:
    """CHECK_RESULTS_SCHEMA (shared with SQLite and Terraform) as BigQuery fields."""
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, kind, mode=mode) for name, kind, mode in CHECK_RESULTS_SCHEMA]


def to_row(record: HistoryRecord) -> dict[str, Any]:
    row = {column: getattr(record, column) for column in COLUMNS}
    row["checked_at"] = record.checked_at.astimezone(dt.UTC).isoformat()
    row["status"] = str(record.status)
    return row


def _json_value(value: Any) -> Any:
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else value


def from_row(row: Any) -> HistoryRecord:
    values = {column: row[column] for column in COLUMNS}
    values["status"] = Status(values["status"])
    values["notified"] = bool(values["notified"])
    values["message"] = values["message"] or ""
    values["duration_ms"] = values["duration_ms"] or 0
    return HistoryRecord(**values)


EVENTS_SQL = f"""
SELECT {", ".join(EVENT_COLUMNS)}
FROM `{{table}}`
WHERE check_name IN UNNEST(@names)
  AND at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {HISTORY_DAYS} DAY)
ORDER BY check_name, at
"""

HISTORY_SQL = f"""
SELECT {", ".join(COLUMNS)}
FROM `{{table}}`
WHERE check_name IN UNNEST(@names)
  AND checked_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {HISTORY_DAYS} DAY)
QUALIFY ROW_NUMBER() OVER (PARTITION BY check_name ORDER BY checked_at DESC) <= @limit
ORDER BY check_name, checked_at
"""


class BigQueryStateStore:
    def __init__(self, project: str, dataset: str, api_endpoint: str | None = None) -> None:
        self.project = project
        self.dataset = dataset
        self.api_endpoint = api_endpoint
        self.table_id = f"{project}.{dataset}.{TABLE}"
        self.events_table_id = f"{project}.{dataset}.{EVENTS_TABLE}"
        self._table_ready = False

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> BigQueryStateStore:
        project, dataset = bigquery_dataset(url)
        return cls(project, dataset, settings.bigquery_api_endpoint)

    def _client(self) -> bigquery.Client:
        client = gcp.bigquery_client(self.project, self.api_endpoint)
        if not self._table_ready:
            self._ensure_table(client)
            self._table_ready = True
        return client

    def _ensure_table(self, client: bigquery.Client) -> None:
        """Terraform creates the table; this covers local use and a deleted table (one GET per instance)."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        retry = bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S)
        try:
            client.get_table(self.table_id, retry=retry)
            return
        except NotFound:
            pass
        try:
            client.get_dataset(f"{self.project}.{self.dataset}", retry=retry)
        except NotFound:
            raise StateError(
                f"dataset {self.project}.{self.dataset} does not exist: create it (terraform apply) or fix STATE_URL"
            ) from None
        for table_id, schema, partition in (
            (self.table_id, CHECK_RESULTS_SCHEMA, "checked_at"),
            (self.events_table_id, INCIDENT_EVENTS_SCHEMA, "at"),
        ):
            table = bigquery.Table(table_id, schema=[bigquery.SchemaField(n, k, mode=m) for n, k, m in schema])
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=partition
            )
            table.clustering_fields = ["check_name"]
            client.create_table(table, exists_ok=True, retry=retry)

    def append(self, records: Sequence[HistoryRecord]) -> None:
        """Streaming inserts, chosen over the Storage Write API: rows are queryable at once (the next run's
        incident lifecycle reads them back), one REST call with no gRPC stream to manage, and at a few rows
        per run the cost is negligible. insertId (run id + check) lets BigQuery drop a retried duplicate."""
        if not records:
            return
        from google.cloud import bigquery

        try:
            errors = self._client().insert_rows_json(
                self.table_id,
                [to_row(r) for r in records],
                row_ids=[f"{r.run_id}:{r.check_name}" for r in records],
                retry=bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S),
            )
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"results could not be written to {self.table_id}: {exc}") from exc
        if errors:
            raise StateError(f"results could not be written to {self.table_id}: {errors[:3]}")

    def history(self, check_names: Collection[str], *, limit: int) -> dict[str, list[HistoryRecord]]:
        from google.cloud import bigquery

        names = sorted(set(check_names))
        if not names:
            return {}
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ArrayQueryParameter("names", "STRING", names),
                bigquery.ScalarQueryParameter("limit", "INT64", limit),
            ],
            labels={"app": "anomaly-monitor", "check": "history"},
        )
        try:
            job = self._client().query(HISTORY_SQL.format(table=self.table_id), job_config=config)
            rows = list(job.result(timeout=QUERY_TIMEOUT_S))
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"history could not be read from {self.table_id}: {exc}") from exc
        return by_check(from_row(row) for row in rows)

    def append_events(self, events: Sequence[IncidentEvent]) -> None:
        """Streaming inserts with insertId = event_id: a click Slack delivers twice is recorded once."""
        if not events:
            return
        from google.cloud import bigquery

        rows = [{c: _json_value(getattr(e, c)) for c in EVENT_COLUMNS} for e in events]
        try:
            errors = self._client().insert_rows_json(
                self.events_table_id,
                rows,
                row_ids=[e.event_id for e in events],
                retry=bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S),
            )
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"incident events could not be written to {self.events_table_id}: {exc}") from exc
        if errors:
            raise StateError(f"incident events could not be written to {self.events_table_id}: {errors[:3]}")

    def events(self, check_names: Collection[str]) -> dict[str, list[IncidentEvent]]:
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        names = sorted(set(check_names))
        if not names:
            return {}
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ArrayQueryParameter("names", "STRING", names)],
            labels={"app": "anomaly-monitor", "check": "events"},
        )
        try:
            job = self._client().query(EVENTS_SQL.format(table=self.events_table_id), job_config=config)
            rows = list(job.result(timeout=QUERY_TIMEOUT_S))
        except NotFound:
            return {}  # a deployment from before the table existed: nobody has clicked anything yet
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"incident events could not be read from {self.events_table_id}: {exc}") from exc
        out: dict[str, list[IncidentEvent]] = {}
        for row in rows:
            event = IncidentEvent(**{c: row[c] for c in EVENT_COLUMNS})
            out.setdefault(event.check_name, []).append(event)
        return out

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """Serialises runs within this instance; see _run_lock for why that is enough in the cloud."""
        with _run_lock:
            yield
