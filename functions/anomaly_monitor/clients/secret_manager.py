"""Secret Manager: a secret read once per instance, never logged, never in an error message."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from anomaly_monitor.clients import cached
from anomaly_monitor.errors import ConfigError

if TYPE_CHECKING:
    from google.cloud import secretmanager

_lock = threading.Lock()


def secret_client() -> secretmanager.SecretManagerServiceClient:
    """REST transport: lighter to import and start than gRPC, and one call per instance needs no stream."""

    def build() -> secretmanager.SecretManagerServiceClient:
        from google.cloud import secretmanager

        return secretmanager.SecretManagerServiceClient(transport="rest")

    return cached(("secretmanager",), build)


@functools.cache
def _read(version_name: str) -> str:
    try:
        response = secret_client().access_secret_version(name=version_name)
    except Exception as exc:
        # the exception text names the version and the cause; it cannot hold the payload, which never arrived
        raise ConfigError(
            f"secret {version_name} could not be read ({type(exc).__name__}: {exc}); check the variable that names "
            "it (e.g. SLACK_BOT_TOKEN_SECRET: projects/P/secrets/NAME/versions/latest) and that the function's "
            "service account has Secret Manager Secret Accessor on it"
        ) from None
    return response.payload.data.decode("utf-8").strip()


def read_secret(version_name: str) -> str:
    """The secret version's payload as text, fetched on first use and cached for the life of the instance."""
    with _lock:
        return _read(version_name)
