"""Google Cloud clients, built on first use and cached per instance (never at import: every cold start pays for it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import bigquery

_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()  # checks run in a thread pool: the first ones must not build a client each


def cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """One client per key for the life of the instance."""
    with _lock:
        if key not in _clients:
            _clients[key] = build()
        return _clients[key]


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
