"""Settings, read once from the environment into a frozen dataclass: one field per variable, named alike."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from anomaly_monitor.errors import ConfigError


def number_above(low: float, *, at_least: bool = False) -> Callable[[str, str], float]:
    """A finite number above `low` (or at least `low`)."""
    bound = f"at least {low:g}" if at_least else f"above {low:g}"

    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not at_least):
            raise ConfigError(f"environment variable {name} must be a number {bound}, got {raw!r}")
        return value

    return parse


def whole_number_from(low: int) -> Callable[[str, str], int]:
    """A whole number of at least `low`."""

    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"environment variable {name} must be a whole number such as 8, got {raw!r}") from None
        if value < low:
            raise ConfigError(f"environment variable {name} must be at least {low}, got {raw!r}")
        return value

    return parse


def one_of(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw not in allowed:
            raise ConfigError(f"environment variable {name} must be {' or '.join(map(repr, allowed))}, got {raw!r}")
        return raw

    return parse


def web_address(name: str, raw: str) -> str:
    """An http(s) base URL with a host (the API endpoints tests point at local servers)."""
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        valid = False
    if not valid:
        raise ConfigError(
            f"environment variable {name} must be an http(s) URL such as http://127.0.0.1:8080/, got {raw!r}"
        )
    return raw


def env(parse: Callable[[str, str], Any] | None = None) -> dict[str, Any]:
    """Field metadata: how the variable's text becomes the value (default: the text itself)."""
    return {"parse": parse} if parse else {}


def in_cloud(environ: Mapping[str, str]) -> bool:
    """Cloud Run (and so Cloud Functions gen2) sets K_SERVICE."""
    return bool(environ.get("K_SERVICE"))


@dataclass(frozen=True)
class Settings:
    """Each field is read from the variable of its name in capitals (checks_source: CHECKS_SOURCE); a blank or
    unset variable leaves the default."""

    checks_source: str = "data/checks.csv"
    checks_worksheet: str = "checks"
    status_worksheet: str = "status"
    exclusions_worksheet: str = "exclusions"
    warehouse_url: str = "sqlite:///data/warehouse.db"
    state_url: str = "sqlite:///data/state.db"
    slack_bot_token: str | None = field(default=None, repr=False)  # never in a log line
    slack_bot_token_secret: str | None = None
    slack_default_channel: str | None = None
    slack_api_url: str | None = field(default=None, metadata=env(web_address))
    bigquery_api_endpoint: str | None = field(default=None, metadata=env(web_address))
    sheets_api_url: str | None = field(default=None, metadata=env(web_address))
    max_gb_billed: float = field(default=10.0, metadata=env(number_above(0)))
    query_timeout_s: float = field(default=120.0, metadata=env(number_above(0)))
    # checks waiting on BigQuery at once (README, MAX_WORKERS: why 8); SQLite runs no more than it has CPUs
    max_workers: int = field(default=8, metadata=env(whole_number_from(1)))
    log_format: str = field(default="text", metadata=env(one_of("json", "text")))  # "json" in the cloud
    # the invocation's time budget (the function's timeout): Slack waits fit in it
    run_timeout_s: float = field(default=540.0, metadata=env(number_above(30, at_least=True)))
    # checks failing for one cause outside their SQL that make one grouped alert
    shared_cause_min_checks: int = field(default=3, metadata=env(whole_number_from(2)))
    slack_signing_secret: str | None = field(default=None, repr=False)  # slack_actions only: a click is Slack's
    slack_signing_secret_secret: str | None = None

    def __post_init__(self) -> None:
        # one tab for two jobs would have the status table overwrite the registry (Sheets titles ignore case)
        named = {"CHECKS_WORKSHEET": self.checks_worksheet, "STATUS_WORKSHEET": self.status_worksheet,
                 "EXCLUSIONS_WORKSHEET": self.exclusions_worksheet}  # fmt: skip
        for (first, title), (second, other) in itertools.combinations(named.items(), 2):
            if title.casefold() == other.casefold():
                raise ConfigError(
                    f"environment variable {second} names worksheet {other!r}, as {first} does: each needs its "
                    "own tab (defaults checks, status, exclusions)"
                )

    @property
    def worksheets(self) -> tuple[str, str, str]:
        """The worksheets the monitor reads or writes itself (no check may export rows into them)."""
        return self.checks_worksheet, self.status_worksheet, self.exclusions_worksheet

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {"log_format": "json"} if in_cloud(environ) else {}
        for item in fields(cls):
            name = item.name.upper()
            raw = environ.get(name, "").strip()
            if raw:
                parse = item.metadata.get("parse")
                values[item.name] = parse(name, raw) if parse else raw
        return cls(**values)


# Every variable the product reads; infra/ must set the ones the cloud needs.
ENV_VARS = tuple(item.name.upper() for item in fields(Settings))
