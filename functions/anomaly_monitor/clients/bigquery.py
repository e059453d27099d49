"""The BigQuery client the warehouse and the state store share, and the bigquery:// URLs that name a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from anomaly_monitor.clients import cached
from anomaly_monitor.errors import ConfigError

if TYPE_CHECKING:
    from google.cloud import bigquery


def bigquery_dataset(url: str) -> tuple[str, str]:
    """bigquery://PROJECT/DATASET -> (project, dataset)."""
    parts = url.removeprefix("bigquery://").strip("/").split("/")
    if not url.startswith("bigquery://") or len(parts) != 2 or not all(parts):
        raise ConfigError(f"{url!r} is not a BigQuery URL: write bigquery://PROJECT/DATASET")
    return parts[0], parts[1]


def bigquery_client(project: str, api_endpoint: str | None = None) -> bigquery.Client:
    """A BigQuery client billing jobs to `project`; with an endpoint (an emulator), anonymous credentials."""

    def build() -> bigquery.Client:
        from google.cloud import bigquery

        if not api_endpoint:
            return bigquery.Client(project=project)  # Application Default Credentials
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=api_endpoint),
        )

    return cached(("bigquery", project, api_endpoint), build)
