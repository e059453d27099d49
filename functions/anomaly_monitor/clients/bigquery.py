"""The BigQuery client the warehouse and the state store share, and the bigquery:// URLs that name a dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from anomaly_monitor.clients import cached
from anomaly_monitor.errors import ConfigError

if TYPE_CHECKING:
    from google.cloud import bigquery

# Connections kept open per host: one for each check a run waits on at once (infra/ allows MAX_WORKERS up to 64).
# requests keeps 10, and a check beyond them opens a connection, drops it after one request and logs a warning.
CONNECTIONS = 64


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
            return pooled(bigquery.Client(project=project))  # Application Default Credentials
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return pooled(
            bigquery.Client(
                project=project,
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=api_endpoint),
            )
        )

    return cached(("bigquery", project, api_endpoint), build)


def pooled(client: bigquery.Client) -> bigquery.Client:
    """The client's HTTP session keeps CONNECTIONS connections per host (a mutual-TLS adapter, if the
    environment configured one, is left as it is)."""
    from requests.adapters import HTTPAdapter

    session = client._http
    for prefix in ("https://", "http://"):
        if type(session.get_adapter(prefix)) is HTTPAdapter:
            session.mount(prefix, HTTPAdapter(pool_maxsize=CONNECTIONS))
    return client
