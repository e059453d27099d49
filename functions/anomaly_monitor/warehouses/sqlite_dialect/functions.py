"""Aggregates, strings and regular expressions SQLite lacks or spells differently."""

from __future__ import annotations

from sqlglot import exp

from anomaly_monitor.warehouses.sqlite_dialect.rules import ARRAY, Rule, refuse, rule, sql

# COUNTIF: SUM(IIF(...)), sqlglot's choice, gives NULL on no rows where BigQuery's COUNTIF gives 0.
rule(exp.CountIf)(lambda n: sql("COUNT(CASE WHEN :x THEN 1 END)", x=n.this))
rule(exp.ApproxDistinct)(lambda n: sql("COUNT(DISTINCT :x)", x=n.this))
# SQLite has no standard deviation: Python aggregates (also window functions), Welford's method.
rule(exp.Stddev, exp.StddevSamp)(lambda n: sql("bq_stddev_samp(:x)", x=n.this))
rule(exp.StddevPop)(lambda n: sql("bq_stddev_pop(:x)", x=n.this))
rule(exp.Variance)(lambda n: sql("bq_var_samp(:x)", x=n.this))
rule(exp.VariancePop)(lambda n: sql("bq_var_pop(:x)", x=n.this))

rule(exp.StartsWith)(lambda n: sql("substr(:x, 1, length(:p)) = :p", x=n.this, p=n.expression))
rule(exp.EndsWith)(lambda n: sql("(length(:p) = 0 OR substr(:x, -length(:p)) = :p)", x=n.this, p=n.expression))
rule(exp.Contains)(lambda n: sql("instr(:x, :p) > 0", x=n.this, p=n.expression))
rule(exp.Repeat)(lambda n: sql("bq_repeat(:x, :n)", x=n.this, n=n.args["times"]))


def _regexp_function(name: str, *keys: str, type_: str | None = None) -> Rule:
    """REGEXP_EXTRACT and friends as Python functions over RE2 (literal patterns were checked when parsed)."""

    def translate(node: exp.Expr) -> exp.Expr:
        values = [node.this, node.expression, *(node.args[k] for k in keys if node.args.get(k) is not None)]
        names = ", ".join(f":a{index}" for index in range(len(values)))
        return sql(f"{name}({names})", type_, **{f"a{index}": value for index, value in enumerate(values)})

    return translate


# REGEXP_CONTAINS is sqlglot's `x REGEXP p`, which SQLite sends to the regexp() function registered over RE2.
rule(exp.RegexpExtract)(_regexp_function("bq_regexp_extract", "position", "occurrence"))
rule(exp.RegexpExtractAll)(_regexp_function("bq_regexp_extract_all", type_=ARRAY))
rule(exp.RegexpInstr)(_regexp_function("bq_regexp_instr", "position", "occurrence", "option"))
rule(exp.RegexpReplace)(_regexp_function("bq_regexp_replace", "replacement"))

rule(exp.Explode)(refuse("UNNEST/EXPLODE"))
rule(exp.Struct)(refuse("STRUCT values"))
rule(exp.Bracket)(refuse("Array subscripts"))
