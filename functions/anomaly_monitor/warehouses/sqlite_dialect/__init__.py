"""Translate BigQuery Standard SQL checks into SQLite SQL that returns BigQuery's answers.

The rules live by family: `dates` (date and time functions, comparisons), `formats` (FORMAT_*, PARSE_*,
casts), `relational` (table names, * EXCEPT/REPLACE, GROUP BY ALL, QUALIFY, UNNEST), `arrays` (arrays as JSON
text) and `functions` (aggregates, strings, regular expressions), all in the one registry of `rules`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from anomaly_monitor.errors import QueryError
from anomaly_monitor.readonly import UnsafeSql, parse_select, take_parsed
from anomaly_monitor.warehouses.sqlite_dialect import arrays, dates, formats, functions, relational  # noqa: F401
from anomaly_monitor.warehouses.sqlite_dialect.rules import (
    ARRAY,
    JULIAN_FORMS,
    RULES,
    SCHEMA,
    Schema,
    name_anonymous_columns,
    type_of,
)

__all__ = ["Schema", "Translation", "to_sqlite", "translate", "translate_tree"]
NO_ARRAYS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)  # thousands are cached
class Translation:
    sql: str
    arrays: frozenset[str]  # result columns holding an ARRAY (JSON text in SQLite)


def to_sqlite(sql: str) -> str:
    """Translate one BigQuery SELECT into SQLite SQL; raises QueryError for what cannot be translated."""
    return translate(sql).sql


@functools.lru_cache(maxsize=16384)  # each check of a run, translated as its row is read, is still here to run
def translate(sql: str, schema: Schema | None = None) -> Translation:
    """The SQLite translation of one BigQuery SELECT; `schema` is needed only to expand `* EXCEPT/REPLACE`.

    Cached by text; the tree is the one the registry's guard parsed when there is one (parsed once per run)."""
    tree = take_parsed(sql)
    if tree is None:
        try:
            tree = parse_select(sql)
        except UnsafeSql as err:
            raise QueryError(str(err)) from None
    return translate_tree(tree, schema)


def translate_tree(tree: exp.Query, schema: Schema | None = None) -> Translation:
    """The SQLite translation of a SELECT the guard has parsed (readonly.parse_select); the tree is rewritten
    in place, so pass a copy of one still needed."""
    token, forms = SCHEMA.set(schema), JULIAN_FORMS.set({})
    try:
        translated = _rewrite(_rewrite(tree, resolve=True), resolve=False)
        first = translated
        while isinstance(first, exp.SetOperation):
            first = first.this  # a UNION's column names are its first SELECT's
        if isinstance(first, exp.Select):
            name_anonymous_columns(first)
        arrays = _array_columns(translated, first)
        # RAISE turns sqlglot's "not supported in SQLite" warnings into a clear error instead of broken SQL.
        # The tree is ours to change (see above): the generator need not copy it first.
        text = translated.sql(dialect="sqlite", unsupported_level=ErrorLevel.RAISE, copy=False)
        return Translation(text, arrays)
    except SqlglotError as err:
        raise QueryError(f"cannot translate to SQLite: {_first_line(err)}") from err
    except RecursionError:
        raise QueryError("SQL is nested too deeply to translate for SQLite: simplify it") from None
    finally:
        SCHEMA.reset(token)
        JULIAN_FORMS.reset(forms)


def _rewrite(tree: exp.Expr, resolve: bool) -> exp.Expr:
    """Apply one pass of rules bottom-up, so each rule sees arguments that are already rewritten."""
    for node in reversed(list(tree.walk())):
        registered = RULES.get(type(node))
        if registered is None or registered.resolve != resolve:
            continue
        new = registered.rule(node)
        if new is None or new is node:
            continue
        if node is tree:
            tree = new
        else:
            node.replace(new)
    return tree


def _array_columns(tree: exp.Expr, first: exp.Expr) -> frozenset[str]:
    """Result columns of ARRAY type: typed so by a rule, or reading a column named after an array anywhere."""
    if not isinstance(first, exp.Select):
        return NO_ARRAYS
    named = {s.alias for s in tree.find_all(exp.Alias) if type_of(s.this) == ARRAY}
    columns = frozenset(
        projection.alias_or_name
        for projection in first.selects
        if type_of(projection.unalias()) == ARRAY
        or (isinstance(projection.unalias(), exp.Column) and projection.unalias().name in named)
    )
    return columns or NO_ARRAYS  # one empty set for the many cached translations without an array


def _first_line(err: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    return text.splitlines()[0] if text else type(err).__name__
