"""Refuse any check SQL that is not exactly one read-only BigQuery SELECT, before it reaches a warehouse."""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections import OrderedDict

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokens import Token, TokenType

from anomaly_monitor.regex import pattern_error

# Statement kinds a check may never run, as BigQuery spells them; anything else that is not a query is named by its
# first word.
_STATEMENT_NAMES: dict[type[exp.Expr], str] = {
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
# Functions whose second argument is a regular expression, by their BigQuery names.
_REGEX_FUNCTIONS: dict[type[exp.Expr], str] = {
    exp.RegexpLike: "REGEXP_CONTAINS",
    exp.RegexpExtract: "REGEXP_EXTRACT",
    exp.RegexpExtractAll: "REGEXP_EXTRACT_ALL",
    exp.RegexpReplace: "REGEXP_REPLACE",
    exp.RegexpInstr: "REGEXP_INSTR",
}
_MESSAGE_LIMIT = 160
# Brackets nested deeper than this are refused before parsing: sqlglot's parser recurses per level and meets
# Python's recursion limit at about 40 nested function calls. Real checks stay far below (use a WITH instead).
MAX_NESTING = 32
_OPENING = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSING = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}
_DIALECT = Dialect.get_or_raise("bigquery")


class UnsafeSql(ValueError):
    """The SQL is not exactly one read-only BigQuery SELECT; the message says why."""


@functools.lru_cache(maxsize=16384)  # a registry of up to 16,384 checks is not parsed again on the next run
def read_only_error(sql: str) -> str | None:
    """None when `sql` is exactly one BigQuery SELECT (WITH, UNION, one trailing `;` are fine), else why not.

    The tree it parsed is kept for the warehouse that runs the query (take_parsed), so a run parses a check's
    SQL once, when the registry row is read."""
    try:
        tree = parse_select(sql)
    except UnsafeSql as err:
        return str(err)
    _KEPT.put(sql, tree)
    return None


def take_parsed(sql: str) -> exp.Query | None:
    """The tree read_only_error parsed for this text, handed over once (the taker may change it); else None."""
    return _KEPT.take(sql)


class _Kept:
    """Parsed trees waiting for their warehouse, oldest dropped first beyond a budget of SQL characters: a tree
    takes some 70 bytes per character of SQL, so the budget bounds the memory whatever the registry's size."""

    def __init__(self, budget_chars: int) -> None:
        self.budget = budget_chars
        self.trees: OrderedDict[str, exp.Query] = OrderedDict()
        self.chars = 0
        self.lock = threading.Lock()

    def put(self, sql: str, tree: exp.Query) -> None:
        with self.lock:
            if sql in self.trees or len(sql) > self.budget:
                return
            self.trees[sql] = tree
            self.chars += len(sql)
            while self.chars > self.budget:
                self.chars -= len(self.trees.popitem(last=False)[0])

    def take(self, sql: str) -> exp.Query | None:
        with self.lock:
            tree = self.trees.pop(sql, None)
            if tree is not None:
                self.chars -= len(sql)
            return tree


_KEPT = _Kept(budget_chars=250_000)  # about 17 MB of trees at most


def parse_select(sql: str) -> exp.Query:
    """The one read-only BigQuery SELECT in `sql`, parsed; raises UnsafeSql saying why it is not one."""
    if not sql or not sql.strip():
        raise UnsafeSql("SQL is empty")
    try:
        tokens = _DIALECT.tokenize(sql)
        _check_nesting(tokens)
        statements = [s for s in _parse_quietly(tokens, sql) if s is not None]
    except UnsafeSql:
        raise
    except SqlglotError as err:
        raise UnsafeSql(f"SQL does not parse: {_short_reason(err)}") from None
    except RecursionError:  # nesting without brackets (NOT NOT NOT ..., CASE in CASE ...) can go as deep
        raise UnsafeSql("SQL is nested too deeply to parse: simplify it, for instance with a WITH clause") from None
    except Exception as err:  # sqlglot fails on some odd SQL with its own bugs: that SQL does not parse either
        raise UnsafeSql(f"SQL does not parse (the parser failed with {type(err).__name__}: {err})") from None
    if not statements:
        raise UnsafeSql("SQL is empty (only comments or semicolons)")
    if len(statements) > 1:
        kinds = ", ".join(_statement_name(s) for s in statements)
        raise UnsafeSql(f"only one statement is allowed, found {len(statements)} ({kinds})")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise UnsafeSql(f"only SELECT is allowed, found {_statement_name(statement, sql)}")
    check_read_only(statement)
    return statement


def check_read_only(query: exp.Query) -> None:
    """Raises UnsafeSql when a parsed query writes anywhere inside, or holds a pattern RE2 refuses."""
    for node in query.walk():
        if isinstance(node, _WRITES):
            place = "in a CTE" if node.find_ancestor(exp.CTE) else "in a subquery"
            raise UnsafeSql(f"DML/DDL inside the query ({_statement_name(node)} {place}) is not allowed")
        if isinstance(node, exp.Into):
            raise UnsafeSql(f"SELECT ... INTO {node.this.sql('bigquery')} writes a table: a check may only read")
        if type(node) in _REGEX_FUNCTIONS:
            pattern = node.expression
            if isinstance(pattern, exp.Literal | exp.RawString) and (problem := pattern_error(pattern.name)):
                raise UnsafeSql(f"{_REGEX_FUNCTIONS[type(node)]}: {problem}")


def _check_nesting(tokens: list[Token]) -> None:
    depth = 0
    for token in tokens:
        if token.token_type in _OPENING:
            depth += 1
            if depth > MAX_NESTING:
                raise UnsafeSql(
                    f"SQL nests brackets more than {MAX_NESTING} deep (line {token.line}): "
                    "simplify it, for instance with a WITH clause"
                )
        elif token.token_type in _CLOSING:
            depth -= 1


def _parse_quietly(tokens: list[Token], sql: str) -> list[exp.Expr | None]:
    # sqlglot logs a warning when it falls back to an opaque Command (CALL, EXECUTE IMMEDIATE ...); we refuse
    # those anyway, so the warning would only be noise in the monitor's logs.
    logger = logging.getLogger("sqlglot")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _DIALECT.parser().parse(tokens, sql)
    finally:
        logger.setLevel(previous)


def _statement_name(statement: exp.Expr, sql: str | None = None) -> str:
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
