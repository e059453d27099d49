"""The cloud warehouse: each check is one labelled, byte-capped, time-limited BigQuery query job."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import decimal
import re
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from anomaly_monitor.clients.bigquery import bigquery_client, bigquery_dataset
from anomaly_monitor.errors import QueryError
from anomaly_monitor.models import GB, QueryResult
from anomaly_monitor.readonly import take_parsed
from anomaly_monitor.redact import quote
from anomaly_monitor.settings import Settings
from anomaly_monitor.warehouses.clock import pin_now

if TYPE_CHECKING:
    from google.cloud import bigquery

APP_LABEL = "anomaly-monitor"
QUOTA_REASONS = ("quotaExceeded", "rateLimitExceeded", "billingTierLimitExceeded", "billingNotEnabled")
DENIED_DATASET = re.compile(r"(?:Table|Dataset|dataset) ([\w-]+[:.][\w]+)")  # "Access Denied: Table p:d.t: ..."


def label_value(text: str) -> str:
    """BigQuery label values: at most 63 lowercase letters, digits, underscores or dashes."""
    return re.sub(r"[^a-z0-9_-]", "_", text.lower())[:63]


def json_safe(value: Any) -> Any:
    """A BigQuery cell as JSON-ready Python: numbers stay numbers, times become ISO-8601 text."""
    if isinstance(value, decimal.Decimal):  # NUMERIC / BIGNUMERIC
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):  # STRUCT
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):  # ARRAY
        return [json_safe(v) for v in value]
    return value


class BigQueryWarehouse:
    def __init__(self, project: str, dataset: str, api_endpoint: str | None = None) -> None:
        self.project = project
        self.dataset = dataset
        self.api_endpoint = api_endpoint

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> BigQueryWarehouse:
        project, dataset = bigquery_dataset(url)
        return cls(project, dataset, settings.bigquery_api_endpoint)

    @property
    def client(self) -> bigquery.Client:
        try:
            return bigquery_client(self.project, self.api_endpoint)
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and the like
            raise QueryError(
                f"no BigQuery client: {exc} (set up Application Default Credentials)", cause="authentication"
            ) from exc

    def _config(self, check_name: str, **options: Any) -> bigquery.QueryJobConfig:
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(
            default_dataset=f"{self.project}.{self.dataset}",  # unqualified tables resolve here
            labels={"app": APP_LABEL, "check": label_value(check_name)},  # find the cost of each check in billing
            use_legacy_sql=False,
            **options,
        )

    def query(
        self,
        sql: str,
        *,
        check_name: str,
        limit: int | None,
        timeout_s: float,
        max_bytes: int | None,
        now: dt.datetime,
    ) -> QueryResult:
        """Submits the job, waits at most timeout_s (then cancels it), and fetches only the rows needed.

        CURRENT_TIMESTAMP() and its kin are pinned to `now`, the run's instant (or --now)."""
        config = self._config(check_name, maximum_bytes_billed=max_bytes)
        sql = pin_now(sql, now)
        client = self.client
        try:
            job = client.query(sql, job_config=config)
            try:
                # max_results: only the first `limit` rows travel; total_rows still counts the whole result
                rows = job.result(timeout=timeout_s, max_results=limit)
            except concurrent.futures.TimeoutError:
                job.cancel()  # a job left running keeps scanning (and billing) after we stopped waiting
                raise QueryError(f"timed out after {timeout_s:g} s (QUERY_TIMEOUT_S) and was cancelled") from None
            columns = [field.name for field in rows.schema]
            kept = [tuple(json_safe(v) for v in row.values()) for row in rows]  # in the schema's order
        except QueryError:
            raise
        except Exception as exc:
            raise self._query_error(exc, max_bytes) from None
        total = rows.total_rows if rows.total_rows is not None else len(kept)
        return QueryResult(columns, kept, total, job.total_bytes_processed)

    def dry_run(self, sql: str, *, check_name: str, now: dt.datetime) -> int | None:
        """A dry-run job: BigQuery parses and plans the query and says how many bytes it would scan."""
        config = self._config(check_name, dry_run=True, use_query_cache=False)
        try:
            job = self.client.query(pin_now(sql, now), job_config=config)
        except Exception as exc:
            raise self._query_error(exc, None) from None
        return job.total_bytes_processed

    def session(self) -> AbstractContextManager[BigQueryWarehouse]:
        """Its client is already created once and cached: a session is the warehouse itself."""
        return nullcontext(self)

    def prepare(self, sql: str) -> None:
        """BigQuery runs the text as written: the guard's tree is not kept (pin_now reads the tokens)."""
        take_parsed(sql)

    def workers(self, max_workers: int) -> int:
        return max_workers  # checks wait on BigQuery's jobs: MAX_WORKERS of them wait at once

    def _query_error(self, exc: Exception, max_bytes: int | None) -> QueryError:
        """Turns what BigQuery answered into a message the check's owner can act on."""
        from google.api_core import exceptions as api
        from google.auth.exceptions import GoogleAuthError

        if isinstance(exc, GoogleAuthError):
            return QueryError(f"BigQuery refused the credentials: {quote(exc)}", cause="authentication")
        if not isinstance(exc, api.GoogleAPICallError):
            return QueryError(f"BigQuery could not be reached: {type(exc).__name__}: {quote(exc)}", cause="warehouse")
        errors = exc.errors or [{}]
        reason = errors[0].get("reason", "")
        detail = quote(errors[0].get("message") or exc.message, 1000)
        if isinstance(exc, api.Unauthorized) or reason in ("authError", "unauthorized"):
            return QueryError(f"BigQuery refused the credentials: {detail}", cause="authentication")
        if reason in QUOTA_REASONS or isinstance(exc, api.TooManyRequests):
            return QueryError(f"BigQuery quota or rate limit exceeded ({reason}): {detail}", cause="quota")
        if isinstance(exc, api.ServerError):
            return QueryError(f"BigQuery error {exc.code} {reason}: {detail}", cause="warehouse")
        if reason == "bytesBilledLimitExceeded":
            cap = f"max_gb_billed={max_bytes / GB:g} GB" if max_bytes else "its byte cap"
            fix = "raise the column max_gb_billed or filter on the partition column"
            return QueryError(f"would scan more than {cap}: {fix} ({detail})")
        if isinstance(exc, api.NotFound) or reason == "notFound":
            return QueryError(
                f"not found: {detail} (unqualified tables are looked up in {self.project}.{self.dataset})"
            )
        if isinstance(exc, api.Forbidden) and reason in ("accessDenied", ""):
            dataset = DENIED_DATASET.search(detail)
            return QueryError(
                f"permission denied: {detail}: grant the function's service account BigQuery Data Viewer "
                f"on that dataset (and Job User on project {self.project})",
                cause=f"permission:{dataset.group(1).replace(':', '.')}" if dataset else "permission",
            )
        if reason == "invalidQuery" or isinstance(exc, api.BadRequest):
            return QueryError(f"BigQuery rejected the SQL: {detail}")
        return QueryError(f"BigQuery error {exc.code} {reason}: {detail}")
