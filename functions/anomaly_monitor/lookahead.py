"""Finds what a backtest cannot replay faithfully in a check's SQL: rows that arrived after the tick.

A backtest runs today's warehouse as of a past tick. A filter such as `created_date >= TIMESTAMP_SUB(
CURRENT_TIMESTAMP(), INTERVAL 2 HOUR)` means "the last two hours" only while nothing newer than now exists; at a
past tick it also takes every row loaded since. A column bounded from below relative to the current time, with no
upper bound in the same SELECT, is such a filter.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

NOW_CALLS = (exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentDatetime, exp.CurrentTime)
LOWER = (exp.GT, exp.GTE)  # `column > …` bounds it from below; LT and LTE from above
FLIPPED: dict[type[exp.Expr], type[exp.Expr]] = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}


def _relative_to_now(node: exp.Expr) -> bool:
    return isinstance(node, NOW_CALLS) or node.find(*NOW_CALLS) is not None


def _bounds(predicate: exp.Expr) -> list[tuple[str, str]]:
    """(column, "lower"/"upper") for each side of the current time this comparison bounds a column on."""
    if isinstance(predicate, exp.Between):
        column, ends = predicate.this, (predicate.args.get("low"), predicate.args.get("high"))
        if isinstance(column, exp.Column) and any(e is not None and _relative_to_now(e) for e in ends):
            return [(column.name, "lower"), (column.name, "upper")]
        return []
    left, right = predicate.this, predicate.expression
    kind = type(predicate)
    if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
        left, right, kind = right, left, FLIPPED.get(kind, kind)
    if not isinstance(left, exp.Column) or not _relative_to_now(right):
        return []
    if kind is exp.EQ:
        return [(left.name, "lower"), (left.name, "upper")]
    return [(left.name, "lower" if kind in LOWER else "upper")]


def unbounded_columns(sql: str) -> list[str]:
    """Columns that the query bounds from below relative to the current time but never from above (same SELECT)."""
    try:
        tree = sqlglot.parse_one(sql, read="bigquery")
    except SqlglotError:
        return []
    seen: dict[int, dict[str, set[str]]] = {}
    for predicate in tree.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.Between):
        scope = id(predicate.find_ancestor(exp.Select))
        for column, side in _bounds(predicate):
            seen.setdefault(scope, {}).setdefault(column, set()).add(side)
    found = [c for columns in seen.values() for c, sides in columns.items() if sides == {"lower"}]
    return list(dict.fromkeys(found))


def lookahead_note(sql: str) -> str | None:
    """What a person should know before reading the backtest of this query, or None."""
    columns = unbounded_columns(sql)
    if not columns:
        return None
    names = ", ".join(columns)
    example = f"AND {columns[0]} < CURRENT_TIMESTAMP()"
    return (
        f"the query bounds {names} from below relative to the current time but not from above, so at each tick it "
        f"also reads the rows that arrived after it: add an upper bound (e.g. `{example}`) for a faithful replay"
    )
