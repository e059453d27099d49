"""The read-only SQLite connection translated checks run on, and the few functions SQLite cannot express."""

from __future__ import annotations

import datetime
import functools
import pathlib
import re
import sqlite3
import urllib.request
import zoneinfo
from collections.abc import Callable

from anomaly_monitor.errors import ConfigError

UTC_NAMES = {"UTC", "ETC/UTC", "+00", "+00:00", "Z"}


def connect_readonly(path: str, now: datetime.datetime) -> sqlite3.Connection:
    """Open a SQLite warehouse read-only, with the functions translated checks call and `now` as the clock."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    file = pathlib.Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"SQLite warehouse {str(file)!r} does not exist: create it (init_db.py) or fix the URL")
    uri = f"file:{urllib.request.pathname2url(str(file))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise ConfigError(f"cannot open SQLite warehouse {str(file)!r} read-only: {err}") from err
    conn.execute("PRAGMA query_only = ON")
    # BigQuery's LIKE is case-sensitive; SQLite's is not unless told so.
    conn.execute("PRAGMA case_sensitive_like = ON")
    _register_functions(conn, timestamp_text(now))
    return conn


def set_clock(conn: sqlite3.Connection, now: datetime.datetime) -> None:
    """Moves a connection's clock (what CURRENT_TIMESTAMP() and its kin read) to `now`, for its next statements."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now_text = timestamp_text(now)
    conn.create_function("bq_now", 0, lambda: now_text, deterministic=True)


def _register_functions(conn: sqlite3.Connection, now_text: str) -> None:
    # Deterministic lets SQLite evaluate a constant call such as bq_now() once per statement, not once per row.
    functions: dict[str, tuple[int, Callable]] = {
        "bq_now": (0, lambda: now_text),
        "regexp": (2, _regexp),
        "bq_regexp_extract": (2, _py_regexp_extract),
        "bq_regexp_replace": (3, _py_regexp_replace),
        "bq_safe_int64": (1, _safe_int64),
        "bq_safe_float64": (1, _safe_float64),
        "bq_format": (2, _format_fallback),
        "bq_to_local": (2, _to_local),
        "bq_from_local": (2, _from_local),
        "bq_parse_date": (2, _parse_date),
        "bq_parse_timestamp": (2, _parse_timestamp_format),
    }
    for name, (arity, func) in functions.items():
        conn.create_function(name, arity, func, deterministic=True)
    # SQLite has no standard deviation; a window-capable aggregate serves both STDDEV(x) and STDDEV(x) OVER (...).
    for name, (sample, root) in _SPREAD_FUNCTIONS.items():
        conn.create_window_function(name, 1, functools.partial(_Spread, sample, root))


_SPREAD_FUNCTIONS = {
    "bq_stddev_samp": (True, True),
    "bq_stddev_pop": (False, True),
    "bq_var_samp": (True, False),
    "bq_var_pop": (False, False),
}


class _Spread:
    """Variance or standard deviation by Welford's method (numerically stable, like BigQuery's)."""

    def __init__(self, sample: bool, root: bool) -> None:
        self.sample, self.root = sample, root
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def step(self, value: float | None) -> None:
        if value is None:
            return
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    def inverse(self, value: float | None) -> None:
        if value is None:
            return
        if self.count == 1:
            self.count, self.mean, self.m2 = 0, 0.0, 0.0
            return
        delta = value - self.mean
        self.count -= 1
        self.mean -= delta / self.count
        self.m2 -= delta * (value - self.mean)

    def value(self) -> float | None:
        dof = self.count - 1 if self.sample else self.count
        if dof <= 0:
            return None
        variance = max(self.m2, 0.0) / dof
        return variance**0.5 if self.root else variance

    def finalize(self) -> float | None:
        return self.value()


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: str | None) -> bool | None:
    if pattern is None or value is None:
        return None
    return _compiled(pattern).search(str(value)) is not None


def _py_regexp_extract(value: str | None, pattern: str | None) -> str | None:
    if pattern is None or value is None:
        return None
    match = _compiled(pattern).search(str(value))
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def _py_regexp_replace(value: str | None, pattern: str | None, replacement: str | None) -> str | None:
    if pattern is None or value is None or replacement is None:
        return None
    return _compiled(pattern).sub(replacement, str(value))


def _safe_int64(value: object) -> int | None:
    """SAFE_CAST(text AS INT64): decimal or 0x hex digits, else NULL (Python alone would accept `1_000`)."""
    text = str(value).strip()
    if "_" in text:
        return None
    try:
        number = int(text, 16) if text.lower().lstrip("+-").startswith("0x") else int(text, 10)
    except ValueError:
        return None
    return number if -(2**63) <= number < 2**63 else None


def _safe_float64(value: object) -> float | None:
    text = str(value).strip()
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _format_fallback(fmt: str | None, value: str | None) -> str | None:
    """FORMAT_TIMESTAMP with a format that is not a literal (rare): Python's strftime on the UTC value."""
    if fmt is None or value is None:
        return None
    moment = parse_timestamp(value)
    return None if moment is None else moment.strftime(fmt.replace("%Z", "UTC"))


@functools.lru_cache(maxsize=64)
def zone_info(name: str) -> datetime.tzinfo:
    """An IANA zone, or a fixed offset such as '+05:30' or '-08', as BigQuery accepts."""
    offset = re.fullmatch(r"(?:UTC)?([+-])(\d{1,2})(?::?(\d{2}))?", name.strip())
    if offset:
        sign = 1 if offset.group(1) == "+" else -1
        delta = datetime.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return datetime.timezone(sign * delta)
    return zoneinfo.ZoneInfo(name)


def _to_local(value: str | None, zone: str | None) -> str | None:
    moment = parse_timestamp(value) if value is not None and zone is not None else None
    if moment is None:
        return None
    local = moment.replace(tzinfo=datetime.UTC).astimezone(zone_info(zone))
    return timestamp_text(local.replace(tzinfo=None))


def _from_local(value: str | None, zone: str | None) -> str | None:
    if value is None or zone is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_info(zone))
    return timestamp_text(moment)


def _parse_date(fmt: str | None, value: str | None) -> str | None:
    moment = _parse_timestamp_format(fmt, value)
    return None if moment is None else moment[:10]


def _parse_timestamp_format(fmt: str | None, value: str | None) -> str | None:
    """PARSE_TIMESTAMP with a non-ISO format; None (SQL NULL) where BigQuery would fail the query."""
    if fmt is None or value is None:
        return None
    try:
        moment = datetime.datetime.strptime(str(value), fmt.replace("%Z", "UTC"))
    except ValueError:
        return None
    return timestamp_text(moment)


def parse_timestamp(value: str) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment


def timestamp_text(moment: datetime.datetime) -> str:
    """The canonical SQLite text of a timestamp: UTC, seconds, milliseconds only when non-zero."""
    utc = moment.astimezone(datetime.UTC) if moment.tzinfo else moment
    text = utc.strftime("%Y-%m-%d %H:%M:%S")
    millis = utc.microsecond // 1000
    return f"{text}.{millis:03d}".rstrip("0") if millis else text
