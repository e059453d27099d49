"""Arrays, held locally as JSON text: literals, ARRAY_AGG, ordered STRING_AGG, ARRAY_LENGTH, IN UNNEST, SPLIT.

The warehouse turns result columns of ARRAY type back into lists, so they read as BigQuery's arrays do.
"""

from __future__ import annotations

import json

from sqlglot import exp

from anomaly_monitor.warehouses.sqlite_dialect.relational import literal_array
from anomaly_monitor.warehouses.sqlite_dialect.rules import ARRAY, rule, sql, type_of, typed, unsupported


@rule(exp.Array)
def _array(node: exp.Array) -> exp.Expr | None:
    if isinstance(node.parent, exp.Unnest) and literal_array(node.parent) is not None:
        return None  # UNNEST([1, 2]) reads the elements themselves
    if node.find(exp.Query):
        raise unsupported(node, "ARRAY(subquery)")
    return typed(exp.Anonymous(this="json_array", expressions=[e.copy() for e in node.expressions]), ARRAY)


rule(exp.ArraySize)(lambda n: sql("json_array_length(:x)", x=n.this))
rule(exp.Split)(lambda n: sql("bq_split(:x, :d)", ARRAY, x=n.this, d=n.expression or exp.Literal.string(",")))


@rule(exp.In)
def _in_unnest(node: exp.In) -> exp.Expr | None:
    """`x IN UNNEST([1, 2])` lists the elements; `x IN UNNEST(array)` looks in the JSON array."""
    unnest = node.args.get("unnest")
    if unnest is None:
        return None
    elements = literal_array(unnest)
    if elements is not None:
        return exp.In(this=node.this, expressions=[e.copy() for e in elements])
    if len(unnest.expressions) != 1:
        raise unsupported(node, "IN UNNEST of several arrays")
    return sql(":x IN (SELECT value FROM json_each(:a))", x=node.this, a=unnest.expressions[0])


def _aggregate_call(node: exp.Expr, function: str, *leading: exp.Expr) -> exp.Expr:
    """ARRAY_AGG / STRING_AGG with DISTINCT, ORDER BY and LIMIT, as a Python aggregate over (value, keys...)."""
    if isinstance(node.parent, exp.Window):
        raise unsupported(node, "ARRAY_AGG or STRING_AGG as a window function")
    inner, limit, keys = node.this, None, []
    if isinstance(inner, exp.Limit):
        inner, limit = inner.this, inner.expression
        if not (isinstance(limit, exp.Literal) and limit.is_int):
            raise unsupported(node, "a LIMIT that is not a whole number")
    if isinstance(inner, exp.Order):
        inner, keys = inner.this, inner.expressions
    distinct = isinstance(inner, exp.Distinct)
    if distinct:
        if len(inner.expressions) != 1:
            raise unsupported(node, "DISTINCT over several values")
        inner = inner.expressions[0]
    spec = {
        "distinct": distinct,
        "ignore_nulls": isinstance(node.parent, exp.IgnoreNulls),
        "limit": int(limit.name) if limit is not None else None,
        "order": [[bool(key.args.get("desc")), bool(key.args.get("nulls_first"))] for key in keys],
    }
    values = [exp.Literal.string(json.dumps(spec)), *leading, inner, *(key.this for key in keys)]
    names = ", ".join(f":a{index}" for index in range(len(values)))
    return sql(f"{function}({names})", **{f"a{index}": value for index, value in enumerate(values)})


@rule(exp.ArrayAgg)
def _array_agg(node: exp.ArrayAgg) -> exp.Expr:
    return typed(_aggregate_call(node, "bq_array_agg"), ARRAY)


@rule(exp.IgnoreNulls, exp.RespectNulls)
def _null_handling(node: exp.Expr) -> exp.Expr | None:
    return node.this if type_of(node.this) == ARRAY else None  # ARRAY_AGG read it already


@rule(exp.GroupConcat)
def _string_agg(node: exp.GroupConcat) -> exp.Expr | None:
    if not isinstance(node.this, exp.Order | exp.Limit | exp.Distinct):
        return None  # SQLite's group_concat, in the order rows arrive
    return _aggregate_call(node, "bq_string_agg", node.args.get("separator") or exp.Literal.string(","))
