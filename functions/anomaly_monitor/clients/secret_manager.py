"""Secret Manager: a secret (the Slack bot token, the signing secret) read once per instance, never logged, never
in an error message; and which of a setting or its secret gives each."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from anomaly_monitor.clients import cached
from anomaly_monitor.errors import ConfigError
from anomaly_monitor.settings import Settings

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
def _read(version_name: str, variable: str) -> str:
    try:
        response = secret_client().access_secret_version(name=version_name)
    except Exception as exc:
        # the exception text names the version and the cause; it cannot hold the payload, which never arrived
        raise ConfigError(
            f"secret {version_name} could not be read ({type(exc).__name__}: {exc}); check {variable} "
            "(projects/P/secrets/NAME/versions/latest) and that the function's service account has "
            "Secret Manager Secret Accessor on it"
        ) from None
    return response.payload.data.decode("utf-8").strip()


def read_secret(version_name: str, variable: str = "SLACK_BOT_TOKEN_SECRET") -> str:
    """The secret version's payload as text, fetched on first use and cached for the life of the instance.
    `variable` names the setting that gave the version, for the error message."""
    with _lock:
        return _read(version_name, variable)


def _setting_or_secret(value: str | None, version_name: str | None, variable: str) -> str | None:
    """The setting's value when set (it wins), else the secret version that `variable` names, else None."""
    if value:
        return value
    return read_secret(version_name, variable) if version_name else None


def slack_bot_token(settings: Settings) -> str | None:
    """SLACK_BOT_TOKEN when set (it wins), else the secret SLACK_BOT_TOKEN_SECRET names, else None."""
    return _setting_or_secret(settings.slack_bot_token, settings.slack_bot_token_secret, "SLACK_BOT_TOKEN_SECRET")


def slack_signing_secret(settings: Settings) -> str | None:
    """SLACK_SIGNING_SECRET when set (it wins), else the secret SLACK_SIGNING_SECRET_SECRET names, else None."""
    return _setting_or_secret(
        settings.slack_signing_secret, settings.slack_signing_secret_secret, "SLACK_SIGNING_SECRET_SECRET"
    )
