"""Settings, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from anomaly_monitor.errors import ConfigError

# Every variable the product reads; infra/ must set the ones the cloud needs.
ENV_VARS = (
    "CHECKS_SOURCE",
    "CHECKS_WORKSHEET",
    "STATUS_WORKSHEET",
    "EXCLUSIONS_WORKSHEET",
    "WAREHOUSE_URL",
    "STATE_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_BOT_TOKEN_SECRET",
    "SLACK_DEFAULT_CHANNEL",
    "SLACK_API_URL",
    "BIGQUERY_API_ENDPOINT",
    "SHEETS_API_URL",
    "MAX_GB_BILLED",
    "QUERY_TIMEOUT_S",
    "MAX_WORKERS",
    "LOG_FORMAT",
    "RUN_TIMEOUT_S",
    "SHARED_CAUSE_MIN_CHECKS",
    "SLACK_SIGNING_SECRET",
    "SLACK_SIGNING_SECRET_SECRET",
)

LOCAL_CHECKS = "data/checks.csv"
LOCAL_WAREHOUSE = "sqlite:///data/warehouse.db"
LOCAL_STATE = "sqlite:///data/state.db"


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"environment variable {name} must be at least {minimum:g}, got {raw!r}")
    return value


def in_cloud(env: Mapping[str, str]) -> bool:
    """Cloud Run (and so Cloud Functions gen2) sets K_SERVICE."""
    return bool(env.get("K_SERVICE"))


@dataclass(frozen=True)
class Settings:
    checks_source: str = LOCAL_CHECKS
    checks_worksheet: str = "checks"
    status_worksheet: str = "status"
    exclusions_worksheet: str = "exclusions"
    warehouse_url: str = LOCAL_WAREHOUSE
    state_url: str = LOCAL_STATE
    slack_bot_token: str | None = None
    slack_bot_token_secret: str | None = None
    slack_default_channel: str | None = None
    slack_api_url: str | None = None
    bigquery_api_endpoint: str | None = None
    sheets_api_url: str | None = None
    max_gb_billed: float = 10.0
    query_timeout_s: float = 120.0
    max_workers: int = 8
    log_format: str = "text"
    run_timeout_s: float = 540.0  # the invocation's time budget (the function's timeout): Slack waits fit in it
    shared_cause_min_checks: int = 3  # checks failing for one cause outside their SQL that make one grouped alert
    slack_signing_secret: str | None = None  # slack_actions only: verifies that a click comes from Slack
    slack_signing_secret_secret: str | None = None

    def __repr__(self) -> str:  # the token and the signing secret must never reach a log line
        token = "set" if self.slack_bot_token else "unset"
        signing = "set" if self.slack_signing_secret else "unset"
        return (
            f"Settings(checks_source={self.checks_source!r}, warehouse_url={self.warehouse_url!r}, "
            f"state_url={self.state_url!r}, slack_bot_token={token}, slack_signing_secret={signing})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = lambda name: env.get(name, "").strip() or None  # noqa: E731
        log_format = get("LOG_FORMAT") or ("json" if in_cloud(env) else "text")
        if log_format not in ("json", "text"):
            raise ConfigError(f"environment variable LOG_FORMAT must be 'json' or 'text', got {log_format!r}")
        return cls(
            checks_source=get("CHECKS_SOURCE") or LOCAL_CHECKS,
            checks_worksheet=get("CHECKS_WORKSHEET") or "checks",
            status_worksheet=get("STATUS_WORKSHEET") or "status",
            exclusions_worksheet=get("EXCLUSIONS_WORKSHEET") or "exclusions",
            warehouse_url=get("WAREHOUSE_URL") or LOCAL_WAREHOUSE,
            state_url=get("STATE_URL") or LOCAL_STATE,
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_bot_token_secret=get("SLACK_BOT_TOKEN_SECRET"),
            slack_default_channel=get("SLACK_DEFAULT_CHANNEL"),
            slack_api_url=get("SLACK_API_URL"),
            bigquery_api_endpoint=get("BIGQUERY_API_ENDPOINT"),
            sheets_api_url=get("SHEETS_API_URL"),
            max_gb_billed=_number(env, "MAX_GB_BILLED", 10.0, minimum=0),
            query_timeout_s=_number(env, "QUERY_TIMEOUT_S", 120.0, minimum=0.001),
            max_workers=int(_number(env, "MAX_WORKERS", 8, minimum=1)),
            log_format=log_format,
            run_timeout_s=_number(env, "RUN_TIMEOUT_S", 540.0, minimum=30),
            shared_cause_min_checks=int(_number(env, "SHARED_CAUSE_MIN_CHECKS", 3, minimum=2)),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_signing_secret_secret=get("SLACK_SIGNING_SECRET_SECRET"),
        )
