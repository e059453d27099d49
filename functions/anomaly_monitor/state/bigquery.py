"""The cloud state store: `check_results`, `notices` and `incident_events` in BigQuery, appended by streaming
inserts."""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from anomaly_monitor.clients import cached
from anomaly_monitor.clients.bigquery import bigquery_client, bigquery_dataset
from anomaly_monitor.errors import StateError
from anomaly_monitor.models import HistoryRecord, IncidentEvent, NoticeRecord
from anomaly_monitor.settings import Settings
from anomaly_monitor.state import CLOSING_KINDS, NO_ROW, POINTS_LIMIT, UNCONFIRMED
from anomaly_monitor.state.schema import COLUMNS, EVENT_COLUMNS, NOTICE_COLUMNS, TABLES, from_values, to_values

if TYPE_CHECKING:
    from google.cloud import bigquery

# Every read filters on the partitioning column and names its checks (the clustering column), so what a run
# scans depends on the window, never on the table's age (docs/state.md has the figures).
LATEST_WINDOWS_DAYS = (2, 35, 400)  # the newest row of each check, looked for in widening windows
POINTS_WINDOWS_DAYS = (7, 90)  # a 10-minute check has its points in a week; slower ones look back up to 90 days
NOTICES_DAYS = 90  # a notice still pending after this long is given up on (and was logged every run before)
EVENTS_DAYS = 400  # clicks older than this no longer change what a run does (the table holds a row per click)
CLICK_MARGIN = dt.timedelta(days=1)  # a clicked message's rows are read from a day before its ts on
PARTITIONING = {"check_results": "checked_at", "notices": "recorded_at", "incident_events": "at"}
QUERY_TIMEOUT_S = 60
REQUEST_DEADLINE_S = 60  # retries of one API call stop here (the client's default is 10 minutes)

# One run at a time per process. Across processes the platform serialises runs: the function is deployed with
# max_instance_count = 1 and max_instance_request_concurrency = 1, so Cloud Run hands one request at a time to
# one instance (retries and overlapping Scheduler jobs queue). A BigQuery-side lock was weighed and rejected:
# BigQuery has no row locks, multi-statement transactions only abort the loser of a conflicting DML race
# (a lock table would need DML on every run and cleanup of stale leases), and a run holds this lock from
# reading the history to recording its results, so a retried invocation sees what the first one notified.
_run_lock = threading.Lock()


def bigquery_schema(table: str) -> list[bigquery.SchemaField]:
    """The table's schema (shared with SQLite and Terraform) as BigQuery fields."""
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, kind, mode=mode) for name, kind, mode in TABLES[table]]


def to_row(record: HistoryRecord | NoticeRecord | IncidentEvent) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in to_values(record).items()}


LATEST_SQL = f"""
SELECT {", ".join(COLUMNS)}
FROM `{{table}}`
WHERE (check_name IN UNNEST(@names) {{reserved}})
  AND status != 'invalid'
  AND checked_at >= @since AND checked_at <= @now
QUALIFY ROW_NUMBER() OVER (PARTITION BY check_name ORDER BY checked_at DESC) = 1
"""

POINTS_SQL = """
SELECT check_name, checked_at, value
FROM `{table}`
WHERE check_name IN UNNEST(@names)
  AND status IN ('ok', 'alert') AND value IS NOT NULL
  AND checked_at >= @since AND checked_at <= @now
QUALIFY ROW_NUMBER() OVER (PARTITION BY check_name ORDER BY checked_at DESC) <= @limit
ORDER BY check_name, checked_at
"""

PENDING_SQL = f"""
SELECT {", ".join(NOTICE_COLUMNS)}
FROM (
  SELECT *
  FROM `{{table}}`
  WHERE check_name IN UNNEST(@names)
    AND recorded_at >= @since
  QUALIFY ROW_NUMBER() OVER (PARTITION BY notice_id ORDER BY recorded_at DESC) = 1
)
WHERE event IN UNNEST(@unconfirmed)
   OR (event = 'failed' AND kind IN UNNEST(@closing))
   OR CONCAT(check_name, '/', based_on) IN UNNEST(@committed)
ORDER BY recorded_at, notice_id
"""

# `at` is quoted: BigQuery does not need it, but the emulator's SQL engine (DuckDB) takes it for a keyword.
QUOTED_EVENT_COLUMNS = ", ".join(f"`{c}`" for c in EVENT_COLUMNS)

EVENTS_SQL = f"""
SELECT {QUOTED_EVENT_COLUMNS}
FROM `{{table}}`
WHERE check_name IN UNNEST(@names)
  AND `at` >= @since AND `at` <= @now
QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY `at`) = 1
ORDER BY `at`, event_id
"""

# A click's lookup, one job: the check's newest row since the clicked message was posted, and the clicks on it.
CLICKED_SQL = f"""
SELECT
  ARRAY(
    SELECT AS STRUCT {", ".join(COLUMNS)}
    FROM `{{table}}`
    WHERE check_name = @name AND status != 'invalid' AND checked_at >= @since AND checked_at <= @now
    ORDER BY checked_at DESC
    LIMIT 1
  ) AS newest,
  ARRAY(
    SELECT AS STRUCT {QUOTED_EVENT_COLUMNS}
    FROM `{{events}}`
    WHERE check_name = @name AND slack_channel = @channel AND slack_ts = @ts AND `at` >= @since AND `at` <= @now
    ORDER BY `at`, event_id
  ) AS events
"""


def message_time(ts: str) -> dt.datetime | None:
    """A Slack message ts is the Unix time it was posted (`1700000000.000100`); None if it is not one."""
    try:
        return dt.datetime.fromtimestamp(float(ts), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


class BigQueryStateStore:
    def __init__(self, project: str, dataset: str, api_endpoint: str | None = None, *, read_only: bool = False) -> None:
        self.project = project
        self.dataset = dataset
        self.api_endpoint = api_endpoint
        self.read_only = read_only  # reads only, and creates nothing: the tables it lacks read as empty
        self.table_id = f"{project}.{dataset}.check_results"
        self.notices_id = f"{project}.{dataset}.notices"
        self.events_id = f"{project}.{dataset}.incident_events"
        self._absent: set[str] | None = None  # read only: the tables that do not exist (known on first use)
        self.bytes_processed = 0  # by this store's queries, for the run's summary line

    @classmethod
    def from_url(cls, url: str, settings: Settings, *, read_only: bool = False) -> BigQueryStateStore:
        project, dataset = bigquery_dataset(url)
        return cls(project, dataset, settings.bigquery_api_endpoint, read_only=read_only)

    def _client(self) -> bigquery.Client:
        """The instance's client, once the tables are known to be there: checked on first use, then never again
        (read only: which tables are absent, found once per store)."""
        client = bigquery_client(self.project, self.api_endpoint)
        if self.read_only:
            if self._absent is None:
                self._absent = self._absent_tables(client)
            return client
        for table in TABLES:
            key = ("bigquery table", self.project, self.dataset, table, self.api_endpoint)
            cached(key, functools.partial(self._ensure_table, client, table))
        return client

    def _has(self, table_id: str) -> bool:
        self._client()
        return table_id not in (self._absent or set())

    def _absent_tables(self, client: bigquery.Client) -> set[str]:
        """Read only: which tables do not exist yet (they read as empty); the dataset itself must."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        retry = bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S)
        absent = set()
        try:
            for name in TABLES:
                table_id = f"{self.project}.{self.dataset}.{name}"
                try:
                    client.get_table(table_id, retry=retry)
                except NotFound:
                    absent.add(table_id)
            if absent:
                client.get_dataset(f"{self.project}.{self.dataset}", retry=retry)
        except NotFound:
            raise StateError(f"dataset {self.project}.{self.dataset} does not exist: fix the state URL") from None
        except Exception as exc:
            raise StateError(f"state dataset {self.project}.{self.dataset} cannot be read: {exc}") from exc
        return absent

    def _ensure_table(self, client: bigquery.Client, name: str) -> None:
        """Terraform creates the tables; this covers local use, a deleted table, and a table from an older version
        (the columns added since are appended, NULLABLE: no row is rewritten). One GET per table and instance."""
        from google.api_core.exceptions import NotFound
        from google.cloud import bigquery

        retry = bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S)
        table_id = f"{self.project}.{self.dataset}.{name}"
        try:
            table = client.get_table(table_id, retry=retry)
        except NotFound:
            table = None
        except Exception as exc:
            raise StateError(f"state table {table_id} cannot be read: {exc}") from exc
        if table is not None:
            have = {field.name for field in table.schema}
            missing = [(n, kind) for n, kind, _ in TABLES[name] if n not in have]
            try:  # DDL, once per column and per upgrade: a NULLABLE column is added without rewriting a row
                for n, kind in missing:
                    client.query(f"ALTER TABLE `{table_id}` ADD COLUMN IF NOT EXISTS {n} {kind}").result(
                        timeout=QUERY_TIMEOUT_S
                    )
            except Exception as exc:
                raise StateError(
                    f"state table {table_id} lacks the columns {', '.join(n for n, _ in missing)} and they "
                    f"could not be added ({exc}): run terraform apply, or grant the function BigQuery Data "
                    "Editor on the state dataset"
                ) from exc
            return
        try:
            client.get_dataset(f"{self.project}.{self.dataset}", retry=retry)
        except NotFound:
            raise StateError(
                f"dataset {self.project}.{self.dataset} does not exist: create it (terraform apply) or fix STATE_URL"
            ) from None
        table = bigquery.Table(table_id, schema=bigquery_schema(name))
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=PARTITIONING[name]
        )
        table.clustering_fields = ["check_name"]
        client.create_table(table, exists_ok=True, retry=retry)

    def _insert(
        self, table_id: str, rows: Sequence[HistoryRecord | NoticeRecord | IncidentEvent], row_ids: list[str]
    ) -> None:
        """Streaming inserts, chosen over the Storage Write API: rows are queryable at once (the next run's
        incident lifecycle reads them back), one REST call with no gRPC stream to manage, and at a few rows
        per run the cost is negligible. The insertId lets BigQuery drop a retried duplicate."""
        if not rows:
            return
        if self.read_only:
            raise StateError(f"state store {self.project}.{self.dataset} is opened read-only: {table_id} not written")
        from google.cloud import bigquery

        try:
            errors = self._client().insert_rows_json(
                table_id,
                [to_row(r) for r in rows],
                row_ids=row_ids,
                retry=bigquery.DEFAULT_RETRY.with_deadline(REQUEST_DEADLINE_S),
            )
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"rows could not be written to {table_id}: {exc}") from exc
        if errors:
            raise StateError(f"rows could not be written to {table_id}: {errors[:3]}")

    def append(self, records: Sequence[HistoryRecord]) -> None:
        self._insert(self.table_id, records, [f"{r.run_id}:{r.check_name}" for r in records])

    def append_notices(self, events: Sequence[NoticeRecord]) -> None:
        ids = [f"{e.notice_id}:{e.event}:{e.recorded_at.timestamp():.6f}" for e in events]
        self._insert(self.notices_id, events, ids)

    def append_events(self, events: Sequence[IncidentEvent]) -> None:
        """The event_id is the insertId: BigQuery drops a second delivery of one click that arrives within its
        de-duplication window, and every read keeps one row per event_id for any that lands later."""
        self._insert(self.events_id, events, [e.event_id for e in events])

    def _query(self, sql: str, parameters: list[Any], check: str) -> list[Any]:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=parameters, labels={"app": "anomaly-monitor", "check": check})
        try:
            job = self._client().query(sql, job_config=config)
            rows = list(job.result(timeout=QUERY_TIMEOUT_S))
        except StateError:
            raise
        except Exception as exc:
            raise StateError(f"state could not be read from {self.project}.{self.dataset}: {exc}") from exc
        self.bytes_processed += job.total_bytes_processed or 0
        return rows

    def latest(self, check_names: Collection[str], now: dt.datetime) -> dict[str, HistoryRecord]:
        """Widening windows: almost every check ran in the last two days, so the wider scans are for the few that
        did not (weekly or monthly schedules, a new check, a monitor that was down for days)."""
        from google.cloud import bigquery

        found: dict[str, HistoryRecord] = {}
        if not self._has(self.table_id):
            return found
        missing = sorted(set(check_names))
        for n, days in enumerate(LATEST_WINDOWS_DAYS):
            if n and not missing:
                break
            reserved = "OR STARTS_WITH(check_name, '_')" if n == 0 else ""
            rows = self._query(
                LATEST_SQL.format(table=self.table_id, reserved=reserved),
                [
                    bigquery.ArrayQueryParameter("names", "STRING", missing),
                    bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - dt.timedelta(days=days)),
                    bigquery.ScalarQueryParameter("now", "TIMESTAMP", now),
                ],
                "state",
            )
            for row in rows:
                found[row["check_name"]] = from_values(HistoryRecord, dict(row.items()))
            missing = [name for name in missing if name not in found]
        return found

    def points(
        self, check_names: Collection[str], now: dt.datetime, *, limit: int = POINTS_LIMIT
    ) -> dict[str, list[tuple[dt.datetime, float]]]:
        """Widening windows again: only checks short of `limit` points in the first one are looked for further."""
        from google.cloud import bigquery

        out: dict[str, list[tuple[dt.datetime, float]]] = {}
        if not self._has(self.table_id):
            return out
        short = sorted(set(check_names))
        for days in POINTS_WINDOWS_DAYS:
            if not short:
                break
            rows = self._query(
                POINTS_SQL.format(table=self.table_id),
                [
                    bigquery.ArrayQueryParameter("names", "STRING", short),
                    bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - dt.timedelta(days=days)),
                    bigquery.ScalarQueryParameter("now", "TIMESTAMP", now),
                    bigquery.ScalarQueryParameter("limit", "INT64", limit),
                ],
                "points",
            )
            found: dict[str, list[tuple[dt.datetime, float]]] = {}
            for row in rows:
                found.setdefault(row["check_name"], []).append((row["checked_at"].astimezone(dt.UTC), row["value"]))
            out.update(found)
            short = [name for name in short if len(found.get(name, [])) < limit]
        return out

    def pending_notices(
        self, check_names: Collection[str], now: dt.datetime, committed: Mapping[str, str]
    ) -> list[NoticeRecord]:
        from google.cloud import bigquery

        names = sorted(set(check_names))
        if not names or not self._has(self.notices_id):
            return []
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=NOTICES_DAYS)  # recorded_at is the wall clock
        rows = self._query(
            PENDING_SQL.format(table=self.notices_id),
            [
                bigquery.ArrayQueryParameter("names", "STRING", names),
                bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
                bigquery.ArrayQueryParameter("unconfirmed", "STRING", list(UNCONFIRMED)),
                bigquery.ArrayQueryParameter("closing", "STRING", list(CLOSING_KINDS)),
                bigquery.ArrayQueryParameter(
                    "committed", "STRING", [f"{name}/{committed.get(name, NO_ROW)}" for name in names]
                ),
            ],
            "notices",
        )
        return [from_values(NoticeRecord, dict(row.items())) for row in rows]

    def incident_events(self, check_names: Collection[str], now: dt.datetime) -> list[IncidentEvent]:
        from google.cloud import bigquery

        names = sorted(set(check_names))
        if not names or not self._has(self.events_id):
            return []
        rows = self._query(
            EVENTS_SQL.format(table=self.events_id),
            [
                bigquery.ArrayQueryParameter("names", "STRING", names),
                bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - dt.timedelta(days=EVENTS_DAYS)),
                bigquery.ScalarQueryParameter("now", "TIMESTAMP", now),
            ],
            "incident_events",
        )
        return [from_values(IncidentEvent, dict(row.items())) for row in rows]

    def clicked_incident(
        self, check_name: str, channel: str, ts: str, now: dt.datetime
    ) -> tuple[HistoryRecord | None, list[IncidentEvent]]:
        """One query over the partitions since the message was posted (its ts is its time): the cost follows the
        incident's age, not the history's."""
        from google.cloud import bigquery

        posted = message_time(ts)
        if posted is None or not (self._has(self.table_id) and self._has(self.events_id)):
            return None, []
        rows = self._query(
            CLICKED_SQL.format(table=self.table_id, events=self.events_id),
            [
                bigquery.ScalarQueryParameter("name", "STRING", check_name),
                bigquery.ScalarQueryParameter("channel", "STRING", channel),
                bigquery.ScalarQueryParameter("ts", "STRING", ts),
                bigquery.ScalarQueryParameter("since", "TIMESTAMP", min(posted, now) - CLICK_MARGIN),
                bigquery.ScalarQueryParameter("now", "TIMESTAMP", now),
            ],
            "click",
        )
        if not rows:
            return None, []
        newest = [from_values(HistoryRecord, dict(row)) for row in rows[0]["newest"]]
        events: dict[str, IncidentEvent] = {}
        for row in rows[0]["events"]:
            events.setdefault(row["event_id"], from_values(IncidentEvent, dict(row)))
        return (newest[0] if newest else None), list(events.values())

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """Serialises runs within this instance; see _run_lock for why that is enough in the cloud."""
        with _run_lock:
            yield
