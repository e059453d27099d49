"""The read-only SQLite connection translated checks run on: it reads tables and calls safe functions, no more."""

from __future__ import annotations

import datetime
import functools
import math
import pathlib
import sqlite3
import time
import urllib.request
from collections.abc import Callable

from anomaly_monitor.errors import ConfigError
from anomaly_monitor.warehouses import sqlite_functions
from anomaly_monitor.warehouses.sqlite_functions import MAX_VALUE_BYTES, timestamp_text

PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks
FUNCTION_ERROR = "user-defined"  # how SQLite reports that a Python function raised (details: function_error)

# SQLite's own functions a translated check may call: scalar, aggregate, window, date, math and JSON functions.
# Everything else (load_extension, fts3_tokenizer, the FTS and R-tree helpers, the real clock) is refused.
# fmt: off
SAFE_FUNCTIONS = frozenset({
    "->", "->>", "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "avg", "ceil", "ceiling",
    "char", "coalesce", "cos", "cosh", "count", "cume_dist", "date", "datetime", "degrees", "dense_rank", "exp",
    "first_value", "floor", "format", "glob", "group_concat", "hex", "ifnull", "iif", "instr", "json",
    "json_array", "json_array_length", "json_extract", "json_group_array", "json_group_object", "json_insert",
    "json_object", "json_patch", "json_quote", "json_remove", "json_replace", "json_set", "json_type",
    "json_valid", "julianday", "lag", "last_value", "lead", "length", "like", "likelihood", "likely", "ln", "log",
    "log10", "log2", "lower", "ltrim", "max", "min", "mod", "nth_value", "ntile", "nullif", "percent_rank", "pi",
    "pow", "power", "printf", "quote", "radians", "random", "randomblob", "rank", "replace", "round", "row_number",
    "rtrim", "sign", "sin", "sinh", "soundex", "sqrt", "strftime", "substr", "substring", "sum", "tan", "tanh",
    "time", "total", "trim", "trunc", "typeof", "unicode", "unixepoch", "unlikely", "upper", "zeroblob"
})
# fmt: on
# What the authorizer lets a statement do: select, read columns, recurse (WITH RECURSIVE), call safe functions.
_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master"}


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


def connect_readonly(path: str, now: datetime.datetime, *, check_same_thread: bool = True) -> ReadOnlyConnection:
    """Open a SQLite warehouse read-only, with the functions translated checks call and `now` as the clock.

    Read-only three times over: the file is opened read-only, `query_only` is on, and an authorizer refuses
    every action but reading tables and calling safe functions. Values are capped at MAX_VALUE_BYTES.
    `check_same_thread=False` lets a connection move between threads that never use it at once."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    file = pathlib.Path(path).expanduser().resolve()
    if not file.is_file():
        raise ConfigError(f"SQLite warehouse {str(file)!r} does not exist: create it (init_db.py) or fix the URL")
    uri = f"file:{urllib.request.pathname2url(str(file))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, factory=ReadOnlyConnection, check_same_thread=check_same_thread)
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
    conn.set_authorizer(conn.authorize)
    conn.set_progress_handler(conn.past_deadline, PROGRESS_STEPS)
    return conn


def set_clock(conn: ReadOnlyConnection, now: datetime.datetime) -> None:
    """Moves a connection's clock (what CURRENT_TIMESTAMP() and its kin read) to `now`, for its next statements."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    conn.now_text = timestamp_text(now)
    conn.refused = conn.function_error = None


def _register_functions(conn: ReadOnlyConnection) -> None:
    # Deterministic lets SQLite evaluate a constant call such as bq_now() once per statement, not once per row.
    conn.create_function("bq_now", 0, lambda: conn.now_text, deterministic=True)
    for name, function in sqlite_functions.SCALARS.items():
        conn.create_function(name, -1, _guarded(conn, function), deterministic=True)
    for name, factory in sqlite_functions.WINDOW_AGGREGATES.items():
        conn.create_window_function(name, 1, factory)
    for name, factory in sqlite_functions.AGGREGATES.items():
        aggregate = functools.partial(_Recorded, conn, factory)
        conn.create_aggregate(name, -1, aggregate)  # type: ignore[arg-type]  # typeshed: int aggregates only
    conn.functions = SAFE_FUNCTIONS | {"bq_now", *sqlite_functions.SCALARS}
    conn.functions |= {*sqlite_functions.WINDOW_AGGREGATES, *sqlite_functions.AGGREGATES}


def _guarded(conn: ReadOnlyConnection, function: Callable) -> Callable:
    """The function stops at the connection's deadline (SQLite's progress handler cannot interrupt Python), and
    its error is kept for the message (SQLite only says that a user-defined function raised)."""

    def call(*args: object) -> object:
        if conn.past_deadline():
            raise QueryTimeout
        sqlite_functions.DEADLINE.value = conn.deadline  # for functions that loop: they check it as they go
        try:
            return function(*args)
        except Exception as err:
            conn.function_error = str(err) or type(err).__name__
            raise

    return call


class _Recorded:
    """An aggregate whose error is kept on the connection for the message."""

    def __init__(self, conn: ReadOnlyConnection, factory: Callable) -> None:
        self.conn, self.inner = conn, factory()

    def step(self, *args: object) -> None:
        self._call(self.inner.step, *args)

    def finalize(self) -> object:
        return self._call(self.inner.finalize)

    def _call(self, method: Callable, *args: object) -> object:
        sqlite_functions.DEADLINE.value = self.conn.deadline
        try:
            return method(*args)
        except Exception as err:
            self.conn.function_error = str(err) or type(err).__name__
            raise
