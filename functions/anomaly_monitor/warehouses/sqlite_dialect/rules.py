"""The one registry of rewrite rules, and what rules build SQLite expressions with.

A rule takes one node of the BigQuery tree (whose children are already rewritten) and returns its SQLite
replacement, or None to keep it. Rules register themselves per node type, each type once; `resolve` rules run
in a first pass over the untouched BigQuery tree (expanding `* EXCEPT`, `GROUP BY ALL`), the others after.
"""

from __future__ import annotations

import contextvars
import functools
import zoneinfo
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlglot
from sqlglot import exp

from anomaly_monitor.errors import QueryError
from anomaly_monitor.warehouses.clock import zone_info
from anomaly_monitor.warehouses.sqlite_functions import UTC_NAMES

Rule = Callable[[exp.Expr], exp.Expr | None]
# A rule's parameter is the node types it registers for (`def _star(node: exp.Star)`), which no type can tie to
# the types given to `rule`: the bound accepts any parameter, and the registry calls each rule with its own types.
SomeRule = TypeVar("SomeRule", bound=Callable[[Any], exp.Expr | None])

# The BigQuery type of an expression a rule built, kept in Expression.meta under TYPE.
TYPE = "bq_type"
TIMESTAMP, DATE, ARRAY = "TIMESTAMP", "DATE", "ARRAY"
# SQLite stores TIMESTAMP as UTC text; every timestamp built uses this form (milliseconds kept only when
# non-zero), so it compares correctly with stored `YYYY-MM-DD HH:MM:SS` text.
TIMESTAMP_TEXT = "rtrim(rtrim(strftime('%Y-%m-%d %H:%M:%f', :x{mods}), '0'), '.')"
MAX_NODES = 5_000  # the largest expression one rule may build (checks need a few hundred)
_NODES = "bq_nodes"  # Expression.meta: the size of an expression `sql` built


@dataclass(frozen=True)
class Registered:
    rule: Rule
    resolve: bool  # runs in the first pass, on the BigQuery tree as written


RULES: dict[type[exp.Expr], Registered] = {}


def rule(*types: type[exp.Expr], resolve: bool = False) -> Callable[[SomeRule], SomeRule]:
    """Register a rule for these node types."""

    def register(function: SomeRule) -> SomeRule:
        for kind in types:
            if kind in RULES:
                raise RuntimeError(f"two SQLite rules for {kind.__name__}")
            RULES[kind] = Registered(function, resolve)
        return function

    return register


class Schema:
    """The column names of each table in the warehouse, for what cannot be translated without them (`* EXCEPT`).

    Compared by identity: a warehouse keeps one per version of its file, so translations cache per version."""

    def __init__(self, columns: Mapping[str, Sequence[str]]) -> None:
        self.columns = {table.lower(): list(names) for table, names in columns.items()}


SCHEMA: contextvars.ContextVar[Schema | None] = contextvars.ContextVar("schema", default=None)
# Per translation: id(node) -> (node, template, args) of a cheaper julianday() of a timestamp a rule built.
JULIAN_FORMS: contextvars.ContextVar[dict[int, tuple]] = contextvars.ContextVar("julian_forms")


@functools.cache
def _parsed_template(template: str) -> tuple[exp.Expr, int, Counter[str]]:
    """The template parsed, its own size, and how often each placeholder occurs in it."""
    node = sqlglot.parse_one(f"SELECT {template}", read="sqlite").expressions[0]
    uses = Counter(placeholder.name for placeholder in node.find_all(exp.Placeholder))
    return node, sum(1 for _ in node.walk()) - uses.total(), uses


def sql(template: str, type_: str | None = None, **args: exp.Expr) -> exp.Expr:
    """A SQLite expression from a template whose `:name` placeholders take the given expressions.

    A template may use an argument several times (SQLite has no LET), so nested calls multiply the size of the
    translation; past MAX_NODES it is refused rather than built."""
    parsed, size, uses = _parsed_template(template)
    size += sum(count * _size(args[name]) for name, count in uses.items())
    if size > MAX_NODES:
        raise QueryError(
            "the SQLite translation of this query would be too large (nested date, cast or format functions "
            "repeat their argument): compute the inner value once, in a WITH clause"
        )
    # The arguments move into the new expression (rules pass the children of the node they replace; copy one
    # that must stay). replace_placeholders puts the same object in each place an argument is used: copying
    # the result then gives each place its own.
    node = exp.replace_placeholders(parsed, **args)
    if any(count > 1 for count in uses.values()):
        node = node.copy()
    node.meta[_NODES] = size
    return typed(node, type_) if type_ else node


def _size(node: exp.Expr) -> int:
    """Nodes in an expression, counting what `sql` built by the size it recorded."""
    return sum(n.meta.get(_NODES, 1) for n in node.walk(prune=lambda n: _NODES in n.meta))


def typed(node: exp.Expr, type_: str) -> exp.Expr:
    node.meta[TYPE] = type_
    return node


def type_of(node: exp.Expr) -> str | None:
    return node.meta.get(TYPE)


def unsupported(node: exp.Expr, what: str) -> QueryError:
    return QueryError(f"{what} is not supported on SQLite: {node.sql('bigquery')}")


def refuse(what: str) -> Rule:
    def refusal(node: exp.Expr) -> exp.Expr:
        raise unsupported(node, what)

    return refusal


def zone_argument(node: exp.Expr, key: str = "zone") -> exp.Expr | None:
    """The time zone argument, or None when it is absent or UTC (then native SQLite does everything)."""
    argument = node.args.get(key)
    if argument is None or (isinstance(argument, exp.Literal) and argument.name.upper() in UTC_NAMES):
        return None
    if isinstance(argument, exp.Literal) and argument.is_string:
        try:
            zone_info(argument.name)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError) as err:
            raise QueryError(f"unknown time zone {argument.sql('bigquery')}: {node.sql('bigquery')}") from err
    return argument


def wall_clock(value: exp.Expr, zone: exp.Expr | None) -> exp.Expr:
    """A UTC timestamp as wall-clock text in `zone` (a Python call per row: SQLite knows no time zones)."""
    return value if zone is None else sql("bq_to_local(:x, :z)", x=value, z=zone)


def name_anonymous_columns(select: exp.Select) -> None:
    """Name unnamed result columns f0_, f1_, ... as BigQuery does (SQLite would name them by their text)."""
    counter = 0
    for projection in select.selects:
        if isinstance(projection, exp.Alias | exp.Column | exp.Star):
            continue
        projection.replace(exp.alias_(projection.copy(), f"f{counter}_"))
        counter += 1
