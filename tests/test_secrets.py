"""Secret Manager: the real client (REST transport) against the documented JSON, served by `responses`."""

from __future__ import annotations

import base64
import json
import logging

import pytest
import responses

from anomaly_monitor import clients
from anomaly_monitor.clients import secret_manager
from anomaly_monitor.clients.secret_manager import slack_bot_token
from anomaly_monitor.errors import ConfigError
from anomaly_monitor.settings import Settings

VERSION = "projects/demo/secrets/slack-bot-token/versions/latest"
URL = f"https://secretmanager.googleapis.com/v1/{VERSION}:access"
TOKEN = "xoxb-123-secret-token"


@pytest.fixture
def api(tmp_path, monkeypatch):
    """Application Default Credentials from a user-credentials file, and a fresh instance (empty caches)."""
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    monkeypatch.setattr(clients, "_clients", {})
    secret_manager._read.cache_clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("https://oauth2.googleapis.com/token", json={"access_token": "ya29.test", "expires_in": 3600})
        yield mock
    secret_manager._read.cache_clear()


def serve_secret(api, payload: str) -> None:
    data = base64.b64encode(payload.encode()).decode()
    api.get(URL, json={"name": VERSION.replace("latest", "3"), "payload": {"data": data}})


def test_the_secret_is_read_once_per_instance(api) -> None:
    serve_secret(api, TOKEN + "\n")
    assert secret_manager.read_secret(VERSION) == TOKEN
    assert secret_manager.read_secret(VERSION) == TOKEN
    reads = [c for c in api.calls if c.request.url.startswith(URL)]
    assert len(reads) == 1
    assert reads[0].request.headers["Authorization"] == "Bearer ya29.test"


def test_slack_bot_token_wins_over_the_secret(api) -> None:
    serve_secret(api, TOKEN)
    both = Settings(slack_bot_token="xoxb-from-env", slack_bot_token_secret=VERSION)
    assert slack_bot_token(both) == "xoxb-from-env"
    assert not [c for c in api.calls if c.request.url.startswith(URL)]
    assert slack_bot_token(Settings(slack_bot_token_secret=VERSION)) == TOKEN
    assert slack_bot_token(Settings()) is None


def test_a_denied_secret_is_a_config_error_naming_the_fix(api) -> None:
    error = {
        "error": {
            "code": 403,
            "message": "Permission 'secretmanager.versions.access' denied",
            "status": "PERMISSION_DENIED",
        }
    }
    api.get(URL, json=error, status=403)
    with pytest.raises(ConfigError, match="Secret Manager Secret Accessor") as raised:
        secret_manager.read_secret(VERSION)
    assert VERSION in str(raised.value)


def test_the_token_never_reaches_logs_or_settings_repr(api, caplog) -> None:
    serve_secret(api, TOKEN)
    with caplog.at_level(logging.DEBUG):
        token = slack_bot_token(Settings(slack_bot_token_secret=VERSION))
    assert token == TOKEN
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(Settings(slack_bot_token=TOKEN))
