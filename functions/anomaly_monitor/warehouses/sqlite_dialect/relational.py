"""Relational forms: table names, SELECT * EXCEPT/REPLACE, GROUP BY ALL, QUALIFY and UNNEST of literal arrays."""

from __future__ import annotations

import functools

from sqlglot import exp

from anomaly_monitor.errors import QueryError
from anomaly_monitor.warehouses.sqlite_dialect.rules import SCHEMA, name_anonymous_columns, rule, unsupported


@rule(exp.Table, exp.Column)
def _unqualified(node: exp.Table | exp.Column) -> exp.Expr | None:
    # Local mode is one SQLite file: `project.dataset.table` and `dataset.table` both mean `table`.
    if node.args.get("db") is not None or node.args.get("catalog") is not None:
        node.set("db", None)
        node.set("catalog", None)
    return None


# --- SELECT * EXCEPT / REPLACE ------------------------------------------------------------------------------------


@rule(exp.Star, resolve=True)
def _star(node: exp.Star) -> exp.Expr | None:
    """`* EXCEPT (a)` and `* REPLACE (x AS a)` become the column list they stand for."""
    if not node.args.get("except_") and not node.args.get("replace"):
        return None
    if node.args.get("rename"):
        raise unsupported(node, "SELECT * RENAME")
    projection = node.parent if isinstance(node.parent, exp.Column) else node
    select = projection.parent
    if not isinstance(select, exp.Select) or projection not in select.selects:
        raise unsupported(node, "* EXCEPT/REPLACE outside a SELECT list")
    expanded = _expand(select, projection)
    position = select.selects.index(projection)
    select.set("expressions", [*select.selects[:position], *expanded, *select.selects[position + 1 :]])
    return None


def _expand(select: exp.Select, projection: exp.Expr) -> list[exp.Expr]:
    """The columns a star projection stands for, with its EXCEPT and REPLACE applied."""
    star = projection.this if isinstance(projection, exp.Column) else projection
    table = projection.table if isinstance(projection, exp.Column) else None
    columns = [(source, name) for source, names in _sources(select, table) for name in names]
    excluded = {column.name.lower() for column in star.args.get("except_") or []}
    replaced = {alias.alias.lower(): alias for alias in star.args.get("replace") or []}
    known = {name.lower() for _, name in columns}
    for name in [*excluded, *replaced]:
        if name not in known:
            raise QueryError(f"column {name} in SELECT * EXCEPT/REPLACE is not among the columns * stands for")
    expanded: list[exp.Expr] = []
    for source, name in columns:
        if name.lower() in excluded:
            continue
        if name.lower() in replaced:
            expanded.append(replaced[name.lower()].copy())
        else:
            expanded.append(exp.column(name, table=source, quoted=True))
    return expanded


def _sources(select: exp.Select, only: str | None) -> list[tuple[str, list[str]]]:
    """(alias, column names) of each source in FROM and JOIN, in order; only the one named `only` if given."""
    source = select.args.get("from_") or select.args.get("from")
    sources = [source.this] if source is not None else []
    sources += [join.this for join in select.args.get("joins") or []]
    found = [(item.alias_or_name, _columns(item, select)) for item in sources]
    if only is not None:
        found = [(alias, names) for alias, names in found if alias.lower() == only.lower()]
        if not found:
            raise QueryError(f"{only}.* names no table in FROM")
    return found


def _columns(source: exp.Expr, select: exp.Select) -> list[str]:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        cte = _cte(select, source.name)
        if cte is not None:
            return output_names(cte.this)
        schema = SCHEMA.get()
        columns = schema.columns.get(source.name.lower()) if schema is not None else None
        if columns is None:
            raise QueryError(f"SELECT * EXCEPT/REPLACE needs the columns of {source.name}: no such table")
        return columns
    if isinstance(source, exp.Subquery):
        return output_names(source.this)
    if isinstance(source, exp.Unnest):
        alias = source.args.get("alias")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else []
        offset = source.args.get("offset")
        offset_names = [offset.name if isinstance(offset, exp.Identifier) else "offset"] if offset else []
        return (names or [alias.name if alias is not None and alias.name else "f0_"]) + offset_names
    raise unsupported(source, "SELECT * EXCEPT/REPLACE over this source")


def output_names(query: exp.Expr) -> list[str]:
    """The names of a query's result columns (a UNION's are its first SELECT's)."""
    while isinstance(query, exp.SetOperation | exp.Subquery):
        query = query.this
    if not isinstance(query, exp.Select):
        raise unsupported(query, "SELECT * EXCEPT/REPLACE over this query")
    names: list[str] = []
    for projection in query.selects:
        star = projection.this if isinstance(projection, exp.Column) and projection.is_star else projection
        if isinstance(star, exp.Star):
            names += [expression.alias_or_name for expression in _expand(query, projection)]
        else:
            names.append(projection.alias_or_name)
    return names


def _cte(node: exp.Expr, name: str) -> exp.CTE | None:
    return next((cte for with_ in _ancestors_with(node) for cte in with_.expressions if cte.alias == name), None)


def _ancestors_with(node: exp.Expr | None) -> list[exp.With]:
    found = []
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if with_ is not None:
            found.append(with_)
        node = node.parent
    return found


# --- GROUP BY ALL -----------------------------------------------------------------------------------------------


@rule(exp.Group, resolve=True)
def _group_by_all(node: exp.Group) -> exp.Expr | None:
    """GROUP BY ALL groups by each SELECT item without aggregates or window functions that reads a column."""
    if not node.args.get("all"):
        return None
    select = node.parent
    if not isinstance(select, exp.Select):
        raise unsupported(node, "GROUP BY ALL outside a SELECT")
    keys = []
    for position, projection in enumerate(select.selects, 1):
        if isinstance(projection, exp.Star) or (isinstance(projection, exp.Column) and projection.is_star):
            raise unsupported(node, "GROUP BY ALL with SELECT * (list the columns)")
        expression = projection.unalias()
        if expression.find(exp.AggFunc, exp.Window) is None and expression.find(exp.Column) is not None:
            keys.append(exp.Literal.number(position))
    if not keys:
        select.set("group", None)  # nothing to group by: one group, as BigQuery does
        return None
    return exp.Group(expressions=keys)


# --- QUALIFY ----------------------------------------------------------------------------------------------------


@rule(exp.Select)
def _qualify(node: exp.Select) -> exp.Expr | None:
    """QUALIFY becomes a filter on a subquery that computes the condition as a hidden column.

    sqlglot's own rewrite keeps ORDER BY/LIMIT inside the subquery (so LIMIT applies before QUALIFY) and leaks
    its helper column through SELECT *; this one does neither.
    """
    qualify = node.args.get("qualify")
    if qualify is None:
        return None
    condition = qualify.this.copy()
    aliases = {s.alias_or_name: s for s in node.selects if isinstance(s, exp.Alias)}
    for column in list(condition.find_all(exp.Column)):
        if not column.table and column.name in aliases:
            column.replace(exp.Paren(this=aliases[column.name].this.copy()))
    inner = node.copy()
    # BigQuery applies QUALIFY before DISTINCT, ORDER BY and LIMIT, so those move to the outer query.
    for key in ("qualify", "distinct", "order", "limit", "offset"):
        inner.set(key, None)
    name_anonymous_columns(inner)  # the outer query needs a name to select each column by
    inner.select(exp.alias_(condition, "_bq_qualify"), copy=False)
    outer_order = node.args.get("order")
    if any(isinstance(s, exp.Star) or (isinstance(s, exp.Column) and s.is_star) for s in node.selects):
        return _qualify_star(node, inner)
    names = [s.alias_or_name for s in inner.selects[:-1]]
    outer = exp.select(*[exp.column(n, quoted=True) for n in names]).from_(inner.subquery("_bq_q"))
    outer = outer.where(exp.column("_bq_qualify"))
    if outer_order is not None:
        for column in outer_order.find_all(exp.Column):
            column.set("table", None)
        outer.set("order", outer_order)
    for key in ("distinct", "limit", "offset"):
        outer.set(key, node.args.get(key))
    return outer


def _qualify_star(node: exp.Select, inner: exp.Select) -> exp.Expr:
    """SELECT * ... QUALIFY on a single table: keep the rows whose rowid passes, so no helper column shows."""
    source = node.args.get("from_") or node.args.get("from")
    table = source.this if source is not None else None
    if node.args.get("joins") or not isinstance(table, exp.Table) or _cte(node, table.name) is not None:
        raise unsupported(node, "SELECT * with QUALIFY over a join, subquery or CTE (list the columns instead)")
    name = table.alias_or_name
    inner.set("expressions", [exp.alias_(exp.column("rowid", table=name), "_bq_rowid"), *inner.selects[-1:]])
    keep = exp.select("_bq_rowid").from_(inner.subquery("_bq_q")).where(exp.column("_bq_qualify"))
    result = node.copy()
    result.set("qualify", None)
    return result.where(exp.column("rowid", table=name).isin(query=keep))


# --- UNNEST of literal arrays -----------------------------------------------------------------------------------


def literal_array(node: exp.Unnest) -> list[exp.Expr] | None:
    """The elements of `UNNEST([a, b])`, or None when the array is computed."""
    arrays = node.expressions
    if len(arrays) == 1 and isinstance(arrays[0], exp.Array) and not arrays[0].find(exp.Query):
        return arrays[0].expressions
    return None


@rule(exp.Unnest)
def _unnest_table(node: exp.Unnest) -> exp.Expr | None:
    """`FROM UNNEST([1, 2]) AS n` becomes a UNION ALL subquery with column n (and the offset column if asked)."""
    if isinstance(node.parent, exp.In):
        return None
    elements = literal_array(node)
    if elements is None:
        raise unsupported(node, "UNNEST of anything but a literal array in FROM")
    alias = node.args.get("alias")
    names = [c.name for c in alias.columns] if alias is not None and alias.columns else []
    column = names[0] if names else (alias.name if alias is not None and alias.name else "f0_")
    offset = node.args.get("offset")
    offset_name = offset.name if isinstance(offset, exp.Identifier) else ("offset" if offset else None)
    rows: list[exp.Query] = []
    for index, element in enumerate(elements):
        projections = [exp.alias_(element.copy(), column, quoted=True)]
        if offset_name:
            projections.append(exp.alias_(exp.Literal.number(index), offset_name, quoted=True))
        rows.append(exp.select(*projections))
    if not rows:
        rows = [exp.select(exp.alias_(exp.null(), column, quoted=True)).where(exp.false())]
    union = functools.reduce(lambda left, right: exp.union(left, right, distinct=False), rows)
    return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(column, quoted=True)))
