"""Refuse any check SQL that is not exactly one read-only BigQuery SELECT, before it reaches a warehouse."""

from __future__ import annotations

import functools
import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

# Statement kinds a check may never run, as BigQuery spells them; anything else that is not a query is named by its
# first word.
_STATEMENT_NAMES: dict[type[exp.Expression], str] = {
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
    exp.Merge: "MERGE",
    exp.Create: "CREATE",
    exp.Drop: "DROP",
    exp.Alter: "ALTER",
    exp.TruncateTable: "TRUNCATE TABLE",
    exp.Export: "EXPORT DATA",
    exp.LoadData: "LOAD DATA",
    exp.Grant: "GRANT",
    exp.Revoke: "REVOKE",
    exp.Transaction: "BEGIN",
    exp.Commit: "COMMIT",
    exp.Rollback: "ROLLBACK",
    exp.Set: "SET",
    exp.Declare: "DECLARE",
    exp.Describe: "DESCRIBE",
    exp.Use: "USE",
    exp.EndStatement: "END",
}
# A query must not contain these anywhere (BigQuery has no DML in CTEs, but another parser might accept it).
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable)
_MESSAGE_LIMIT = 160


@functools.lru_cache(maxsize=8192)  # the registry and the warehouse ask about the same text in one run
def read_only_error(sql: str) -> str | None:
    """None when `sql` is exactly one BigQuery SELECT (WITH, UNION, one trailing `;` are fine), else why not."""
    if not sql or not sql.strip():
        return "SQL is empty"
    try:
        statements = [s for s in _parse_quietly(sql) if s is not None]
    except SqlglotError as err:
        return f"SQL does not parse: {_short_reason(err)}"
    if not statements:
        return "SQL is empty (only comments or semicolons)"
    if len(statements) > 1:
        kinds = ", ".join(_statement_name(s) for s in statements)
        return f"only one statement is allowed, found {len(statements)} ({kinds})"
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"only SELECT is allowed, found {_statement_name(statement, sql)}"
    for node in statement.walk():
        if isinstance(node, _WRITES):
            place = "in a CTE" if node.find_ancestor(exp.CTE) else "in a subquery"
            return f"DML/DDL inside the query ({_statement_name(node)} {place}) is not allowed"
    return None


def _parse_quietly(sql: str) -> list[exp.Expression | None]:
    # sqlglot logs a warning when it falls back to an opaque Command (CALL, EXECUTE IMMEDIATE ...); we refuse
    # those anyway, so the warning would only be noise in the monitor's logs.
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return sqlglot.parse(sql, read="bigquery")
    finally:
        logger.setLevel(previous)


def _statement_name(statement: exp.Expression, sql: str | None = None) -> str:
    if isinstance(statement, exp.Query):
        return "SELECT"
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    if isinstance(statement, exp.Create | exp.Drop) and statement.args.get("kind"):
        verb = "CREATE" if isinstance(statement, exp.Create) else "DROP"
        return f"{verb} {str(statement.args['kind']).upper()}"
    for kind, name in _STATEMENT_NAMES.items():
        if isinstance(statement, kind):
            return name
    # Statements sqlglot reads as a bare expression (ASSERT, for one): name them by the text's first word.
    first_word = re.match(r"\s*([A-Za-z_]+)", sql or "")
    return first_word.group(1).upper() if first_word else type(statement).__name__.upper()


def _short_reason(err: SqlglotError) -> str:
    if isinstance(err, ParseError) and err.errors:
        first = err.errors[0]
        description = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", str(first.get("description")))
        reason = f"{description} at line {first.get('line')}, column {first.get('col')}"
        highlight = (first.get("highlight") or "").strip()
        if highlight:
            reason += f" (near {highlight!r})"
    else:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines()[0] if str(err) else type(err).__name__
    return reason if len(reason) <= _MESSAGE_LIMIT else reason[: _MESSAGE_LIMIT - 1] + "…"
