"""BigQuery functions SQLite lacks, as Python functions the read-only connection registers.

Each is bounded: values are capped at MAX_VALUE_BYTES, and what loops over its input (regular expressions)
checks the calling statement's deadline as it goes.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import math
import threading
import time
from collections.abc import Callable

from anomaly_monitor import regex
from anomaly_monitor.warehouses.clock import zone_info

UTC_NAMES = {"UTC", "ETC/UTC", "+00", "+00:00", "Z"}
MAX_VALUE_BYTES = 16 * 1024 * 1024  # the largest string or blob a query may read or build (SQLITE_LIMIT_LENGTH)
MAX_COLLECTED = 1_000_000  # values one ARRAY_AGG or STRING_AGG may gather (sorting them is one long Python call)
DEADLINE = threading.local()  # .value: the deadline of the statement calling a function, on its own thread


def _deadline() -> float:
    return getattr(DEADLINE, "value", math.inf)


def _stop_at_deadline() -> None:
    if time.monotonic() > _deadline():
        raise TimeoutError("stopped at the query's deadline")


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


class _Collect:
    """ARRAY_AGG and STRING_AGG with BigQuery's DISTINCT, IGNORE NULLS, ORDER BY and LIMIT (SQLite's own
    aggregates take no ORDER BY before 3.44). Called as (spec, [separator,] value, key...)."""

    def __init__(self, separated: bool) -> None:
        self.separated = separated
        self.spec: dict | None = None
        self.separator = ","
        self.rows: list[tuple[object, tuple]] = []
        self.size = 0

    def step(self, spec: str, *args: object) -> None:
        if self.spec is None:
            self.spec = _collect_spec(spec)
            self.separator = _text(args[0]) if self.separated and args[0] is not None else ","
        value, *keys = args[1:] if self.separated else args
        self.size += len(value) if isinstance(value, str | bytes) else 8
        if self.size > MAX_VALUE_BYTES or len(self.rows) >= MAX_COLLECTED:
            raise ValueError(
                f"ARRAY_AGG/STRING_AGG over more than {MAX_COLLECTED:,} values or {MAX_VALUE_BYTES:,} bytes: "
                "aggregate fewer rows (filter or group first)"
            )
        self.rows.append((value, tuple(keys)))

    def finalize(self) -> str | None:
        """Sorting is one long call, so the deadline is checked before each pass (SQLite also calls this when
        the statement is interrupted)."""
        if self.spec is None:
            return None  # no rows: NULL, as in BigQuery
        _stop_at_deadline()
        rows = self.rows
        if self.separated or self.spec["ignore_nulls"]:  # STRING_AGG always leaves NULLs out
            rows = [row for row in rows if row[0] is not None]
        elif any(value is None for value, _ in rows):
            raise ValueError("ARRAY_AGG: an array cannot hold NULL (write ARRAY_AGG(x IGNORE NULLS))")
        if self.spec["distinct"]:
            first: dict[tuple[int, object], tuple[object, tuple]] = {}
            for value, keys in rows:
                first.setdefault(_sort_key(value), (value, keys))
            rows = list(first.values())
        for position, (descending, nulls_first) in reversed(list(enumerate(self.spec["order"]))):
            _stop_at_deadline()
            present = [r for r in rows if r[1][position] is not None]
            present.sort(key=lambda r: _sort_key(r[1][position]), reverse=descending)  # stable either way
            missing = [r for r in rows if r[1][position] is None]
            rows = missing + present if nulls_first else present + missing
        if self.spec["limit"] is not None:
            rows = rows[: self.spec["limit"]]
        values = [value for value, _ in rows]
        if self.separated:
            return self.separator.join(_text(value) for value in values) if values else None
        return array_text([base64.b64encode(v).decode() if isinstance(v, bytes) else v for v in values])


@functools.lru_cache(maxsize=64)
def _collect_spec(spec: str) -> dict:
    return json.loads(spec)


def _sort_key(value: object) -> tuple[int, object]:
    """SQLite's order across types: NULL, numbers, text, blobs."""
    if value is None:
        return -1, 0
    if isinstance(value, int | float):
        return 0, value
    return (1, value) if isinstance(value, str) else (2, bytes(value))  # type: ignore[call-overload]


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _nullable(function: Callable) -> Callable:
    """SQL NULL in any argument gives NULL, as in BigQuery."""

    @functools.wraps(function)
    def call(*args: object) -> object:
        return None if any(arg is None for arg in args) else function(*args)

    return call


@_nullable
def _regexp(pattern: object, value: object) -> bool:
    return regex.contains(_text(value), _text(pattern))


@_nullable
def _regexp_extract(value: object, pattern: object, position: int = 1, occurrence: int = 1) -> str | None:
    return regex.extract(_text(value), _text(pattern), int(position), int(occurrence), deadline=_deadline())


@_nullable
def _regexp_extract_all(value: object, pattern: object) -> str:
    return array_text(regex.extract_all(_text(value), _text(pattern), deadline=_deadline()))


@_nullable
def _regexp_instr(value: object, pattern: object, position: int = 1, occurrence: int = 1, after: int = 0) -> int:
    text, position, occurrence, after = _text(value), int(position), int(occurrence), int(after)
    return regex.instr(text, _text(pattern), position, occurrence, after, deadline=_deadline())


@_nullable
def _regexp_replace(value: object, pattern: object, replacement: object) -> str:
    text, replacement = _text(value), _text(replacement)
    return regex.replace(text, _text(pattern), replacement, max_bytes=MAX_VALUE_BYTES, deadline=_deadline())


@_nullable
def _split(value: object, delimiter: object) -> str:
    text, delimiter = _text(value), _text(delimiter)
    return array_text(list(text) if delimiter == "" else text.split(delimiter))


@_nullable
def _repeat(value: object, times: int) -> str:
    text = _text(value)
    if times < 0:
        raise ValueError(f"REPEAT: the count cannot be negative ({times})")
    if len(text.encode()) * times > MAX_VALUE_BYTES:
        raise ValueError(f"REPEAT would build a value over {MAX_VALUE_BYTES:,} bytes")
    return text * times


def array_text(items: list) -> str:
    """An ARRAY as SQLite holds it: compact JSON text, as json_group_array() writes it."""
    return json.dumps(items, ensure_ascii=False, separators=(",", ":"))


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


SCALARS: dict[str, Callable] = {
    "regexp": _regexp,
    "bq_regexp_extract": _regexp_extract,
    "bq_regexp_extract_all": _regexp_extract_all,
    "bq_regexp_instr": _regexp_instr,
    "bq_regexp_replace": _regexp_replace,
    "bq_repeat": _repeat,
    "bq_split": _split,
    "bq_safe_int64": _safe_int64,
    "bq_safe_float64": _safe_float64,
    "bq_format": _format_fallback,
    "bq_to_local": _to_local,
    "bq_from_local": _from_local,
    "bq_parse_date": _parse_date,
    "bq_parse_timestamp": _parse_timestamp_format,
}
# SQLite has no standard deviation; a window-capable aggregate serves both STDDEV(x) and STDDEV(x) OVER (...).
WINDOW_AGGREGATES: dict[str, Callable] = {
    name: functools.partial(_Spread, sample, root) for name, (sample, root) in _SPREAD_FUNCTIONS.items()
}
AGGREGATES: dict[str, Callable] = {
    "bq_array_agg": functools.partial(_Collect, False),
    "bq_string_agg": functools.partial(_Collect, True),
}
