"""The read-only SQLite connection translated checks run on, and the few functions SQLite cannot express."""

from __future__ import annotations

import datetime
import functools
import json
import math
import pathlib
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable

from anomaly_monitor import regex
from anomaly_monitor.errors import ConfigError
from anomaly_monitor.warehouses.clock import zone_info

UTC_NAMES = {"UTC", "ETC/UTC", "+00", "+00:00", "Z"}
PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks
MAX_VALUE_BYTES = 16 * 1024 * 1024  # the largest string or blob a query may read or build (SQLITE_LIMIT_LENGTH)
FUNCTION_ERROR = "user-defined"  # how SQLite reports that a Python function raised (details: function_error)

# SQLite's own functions a translated check may call: scalar, aggregate, window, date, math and JSON functions.
# Everything else (load_extension, fts3_tokenizer, the FTS and R-tree helpers, the real clock) is refused.
SAFE_FUNCTIONS = frozenset(
    {
        "->",
        "->>",
        "abs",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "avg",
        "ceil",
        "ceiling",
        "char",
        "coalesce",
        "cos",
        "cosh",
        "count",
        "cume_dist",
        "date",
        "datetime",
        "degrees",
        "dense_rank",
        "exp",
        "first_value",
        "floor",
        "format",
        "glob",
        "group_concat",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "json",
        "json_array",
        "json_array_length",
        "json_extract",
        "json_group_array",
        "json_group_object",
        "json_insert",
        "json_object",
        "json_patch",
        "json_quote",
        "json_remove",
        "json_replace",
        "json_set",
        "json_type",
        "json_valid",
        "julianday",
        "lag",
        "last_value",
        "lead",
        "length",
        "like",
        "likelihood",
        "likely",
        "ln",
        "log",
        "log10",
        "log2",
        "lower",
        "ltrim",
        "max",
        "min",
        "mod",
        "nth_value",
        "ntile",
        "nullif",
        "percent_rank",
        "pi",
        "pow",
        "power",
        "printf",
        "quote",
        "radians",
        "random",
        "randomblob",
        "rank",
        "replace",
        "round",
        "row_number",
        "rtrim",
        "sign",
        "sin",
        "sinh",
        "soundex",
        "sqrt",
        "strftime",
        "substr",
        "substring",
        "sum",
        "tan",
        "tanh",
        "time",
        "total",
        "trim",
        "trunc",
        "typeof",
        "unicode",
        "unixepoch",
        "unlikely",
        "upper",
        "zeroblob",
    }
)
# What the authorizer lets a statement do: select, read columns, recurse (WITH RECURSIVE), call safe functions.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master"}


_call = threading.local()  # the deadline of the statement calling a Python function, on its own thread


class QueryTimeout(Exception):
    """The connection's deadline passed while a Python function was about to run."""


class ReadOnlyConnection(sqlite3.Connection):
    """A connection that can read tables and call safe functions, and nothing else; queries stop at `deadline`."""

    deadline: float = math.inf  # time.monotonic() after which the running statement is interrupted
    now_text: str = ""  # what CURRENT_TIMESTAMP() means (bq_now())
    refused: str | None = None  # what the authorizer refused last, for the error message
    function_error: str | None = None  # why a Python function failed last, for the error message
    functions: frozenset[str] = SAFE_FUNCTIONS  # and the Python functions registered on it

    def past_deadline(self) -> bool:
        return time.monotonic() > self.deadline

    def authorize(self, action: int, arg1: str | None, arg2: str | None, database: str | None, _: object) -> int:
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in self.functions:
            return sqlite3.SQLITE_OK
        # Declaring an eponymous virtual table (json_each) reports updates of the schema table; the file is
        # opened read-only, so nothing can be written there whatever this answers.
        if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
            return sqlite3.SQLITE_OK
        self.refused = (
            f"function {arg2}()"
            if action == sqlite3.SQLITE_FUNCTION
            else _ACTION_NAMES.get(action, "changing the database")
        )
        return sqlite3.SQLITE_DENY


_ACTION_NAMES = {
    sqlite3.SQLITE_PRAGMA: "PRAGMA",
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_INSERT: "INSERT",
    sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE",
    sqlite3.SQLITE_TRANSACTION: "a transaction",
    sqlite3.SQLITE_CREATE_VTABLE: "CREATE VIRTUAL TABLE",
}


def connect_readonly(path: str, now: datetime.datetime) -> ReadOnlyConnection:
    """Open a SQLite warehouse read-only, with the functions translated checks call and `now` as the clock.

    Read-only three times over: the file is opened read-only, `query_only` is on, and an authorizer refuses
    every action but reading tables and calling safe functions. Values are capped at MAX_VALUE_BYTES."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    file = pathlib.Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"SQLite warehouse {str(file)!r} does not exist: create it (init_db.py) or fix the URL")
    uri = f"file:{urllib.request.pathname2url(str(file))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, factory=ReadOnlyConnection)
    except sqlite3.Error as err:
        raise ConfigError(f"cannot open SQLite warehouse {str(file)!r} read-only: {err}") from err
    conn.execute("PRAGMA query_only = ON")
    # BigQuery's LIKE is case-sensitive; SQLite's is not unless told so.
    conn.execute("PRAGMA case_sensitive_like = ON")
    if hasattr(conn, "enable_load_extension"):  # absent when Python's SQLite was built without extensions
        conn.enable_load_extension(False)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.now_text = timestamp_text(now)
    _register_functions(conn)
    conn.functions = SAFE_FUNCTIONS | {"bq_now", *_PYTHON_FUNCTIONS, *_SPREAD_FUNCTIONS}
    conn.set_authorizer(conn.authorize)
    conn.set_progress_handler(conn.past_deadline, PROGRESS_STEPS)
    return conn


def _register_functions(conn: ReadOnlyConnection) -> None:
    # Deterministic lets SQLite evaluate a constant call such as bq_now() once per statement, not once per row.
    conn.create_function("bq_now", 0, lambda: conn.now_text, deterministic=True)
    for name, function in _PYTHON_FUNCTIONS.items():
        conn.create_function(name, -1, _guarded(conn, function), deterministic=True)
    # SQLite has no standard deviation; a window-capable aggregate serves both STDDEV(x) and STDDEV(x) OVER (...).
    for name, (sample, root) in _SPREAD_FUNCTIONS.items():
        conn.create_window_function(name, 1, functools.partial(_Spread, sample, root))


def _guarded(conn: ReadOnlyConnection, function: Callable) -> Callable:
    """The function stops at the connection's deadline (SQLite's progress handler cannot interrupt Python), and
    its error is kept for the message (SQLite only says that a user-defined function raised)."""

    def call(*args: object) -> object:
        if conn.past_deadline():
            raise QueryTimeout
        _call.deadline = conn.deadline  # for functions that loop (regular expressions): they check it as they go
        try:
            return function(*args)
        except Exception as err:
            conn.function_error = str(err) or type(err).__name__
            raise

    return call


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
    return regex.extract(_text(value), _text(pattern), int(position), int(occurrence), deadline=_call.deadline)


@_nullable
def _regexp_extract_all(value: object, pattern: object) -> str:
    return array_text(regex.extract_all(_text(value), _text(pattern), deadline=_call.deadline))


@_nullable
def _regexp_instr(value: object, pattern: object, position: int = 1, occurrence: int = 1, after: int = 0) -> int:
    text, position, occurrence, after = _text(value), int(position), int(occurrence), int(after)
    return regex.instr(text, _text(pattern), position, occurrence, after, deadline=_call.deadline)


@_nullable
def _regexp_replace(value: object, pattern: object, replacement: object) -> str:
    text, replacement = _text(value), _text(replacement)
    return regex.replace(text, _text(pattern), replacement, max_bytes=MAX_VALUE_BYTES, deadline=_call.deadline)


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


_PYTHON_FUNCTIONS: dict[str, Callable] = {
    "regexp": _regexp,
    "bq_regexp_extract": _regexp_extract,
    "bq_regexp_extract_all": _regexp_extract_all,
    "bq_regexp_instr": _regexp_instr,
    "bq_regexp_replace": _regexp_replace,
    "bq_repeat": _repeat,
    "bq_safe_int64": _safe_int64,
    "bq_safe_float64": _safe_float64,
    "bq_format": _format_fallback,
    "bq_to_local": _to_local,
    "bq_from_local": _from_local,
    "bq_parse_date": _parse_date,
    "bq_parse_timestamp": _parse_timestamp_format,
}
