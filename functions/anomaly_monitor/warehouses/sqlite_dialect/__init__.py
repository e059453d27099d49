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
    booleans: frozenset[str] = NO_ARRAYS  # result columns holding a BOOL (0 or 1 in SQLite)


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
        flags = _boolean_flags(_first_select(tree))  # read before the rewrite turns TRUE and x > 1 into numbers
        translated = _rewrite(_rewrite(tree, resolve=True), resolve=False)
        first = _first_select(translated)
        if isinstance(first, exp.Select):
            name_anonymous_columns(first)
        arrays = _array_columns(translated, first)
        booleans = _boolean_columns(first, flags)
        # RAISE turns sqlglot's "not supported in SQLite" warnings into a clear error instead of broken SQL.
        # The tree is ours to change (see above): the generator need not copy it first.
        text = translated.sql(dialect="sqlite", unsupported_level=ErrorLevel.RAISE, copy=False)
        return Translation(text, arrays, booleans)
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


def _first_select(tree: exp.Expr) -> exp.Expr:
    while isinstance(tree, exp.SetOperation):
        tree = tree.this  # a UNION's column names and types are its first SELECT's
    return tree


# Expressions whose BigQuery type is BOOL: literals, comparisons, IN, LIKE, IS, EXISTS, AND/OR/NOT, and the
# functions and aggregates that answer one.
BOOLEAN_FORMS = (exp.Boolean, exp.Predicate, exp.Connector, exp.Not, exp.LogicalOr, exp.LogicalAnd,
                 exp.StartsWith, exp.EndsWith, exp.IsNan, exp.IsInf)  # fmt: skip


def _is_boolean(node: exp.Expr) -> bool:
    while isinstance(node, exp.Paren | exp.Alias):
        node = node.this
    if isinstance(node, exp.Cast):
        return node.to.is_type(exp.DataType.Type.BOOLEAN)
    return isinstance(node, BOOLEAN_FORMS)


def _boolean_flags(first: exp.Expr) -> tuple[bool, ...]:
    """Which result columns, by position, are BOOL; empty when a `*` leaves the positions unknown."""
    if not isinstance(first, exp.Select) or any(isinstance(s.unalias(), exp.Star) or s.is_star for s in first.selects):
        return ()
    return tuple(_is_boolean(s) for s in first.selects)


def _boolean_columns(first: exp.Expr, flags: tuple[bool, ...]) -> frozenset[str]:
    """The names of the BOOL result columns, which SQLite returns as 0 and 1 and BigQuery as false and true."""
    if not any(flags) or not isinstance(first, exp.Select) or len(first.selects) != len(flags):
        return NO_ARRAYS
    return frozenset(s.alias_or_name for s, flag in zip(first.selects, flags, strict=True) if flag)


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
