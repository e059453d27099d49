"""The Google Sheets API v4 as its discovery document describes it: which methods exist, their query parameters,
the schema of every request body, and field masks. The local Sheets server rejects what this refuses.

The document is `sheets.v4.json` from google-api-python-client's offline `discovery_cache` (a test dependency);
its schemas are turned into JSON Schema (unknown fields refused, enums and int32 ranges enforced) and checked with
`jsonschema`. What the discovery format cannot say (one kind per request, a field mask naming real fields) is
checked here as Google's servers check it.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema

INT32 = (-(2**31), 2**31 - 1)
MASKED = {  # request kind -> (schema its `fields` mask names, required)
    "updateCells": ("CellData", True),
    "repeatCell": ("CellData", True),
    "appendCells": ("CellData", True),
    "updateSheetProperties": ("SheetProperties", True),
    "updateDimensionProperties": ("DimensionProperties", True),
    "updateSpreadsheetProperties": ("SpreadsheetProperties", True),
}


@functools.cache
def document() -> dict[str, Any]:
    path = importlib.resources.files("googleapiclient.discovery_cache") / "documents" / "sheets.v4.json"
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Method:
    id: str  # sheets.spreadsheets.values.append
    http_method: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return self.id.removeprefix("sheets.")


class BadRequest(ValueError):
    """What Google answers 400 INVALID_ARGUMENT for; the message says where."""


def _methods(resource: dict[str, Any]) -> list[Method]:
    found = []
    for spec in resource.get("methods", {}).values():
        regex = re.escape("/" + spec["flatPath"])
        regex = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+?)", regex)
        found.append(Method(spec["id"], spec["httpMethod"], re.compile(regex + "$"), spec))
    for child in resource.get("resources", {}).values():
        found += _methods(child)
    return found


@functools.cache
def methods() -> tuple[Method, ...]:
    return tuple(_methods(document()))


def find_method(http_method: str, path: str) -> tuple[Method, dict[str, str]] | None:
    """The API method a request is for, and its path parameters (still percent-encoded)."""
    for method in methods():
        match = method.pattern.match(path)
        if match and method.http_method == http_method:
            return method, match.groupdict()
    return None


# -- query parameters -------------------------------------------------------------------------------------------


def check_query(method: Method, query: dict[str, list[str]]) -> None:
    known = {**document()["parameters"], **method.spec.get("parameters", {})}
    for name, values in query.items():
        spec = known.get(name)
        if spec is None or spec.get("location") != "query":
            raise BadRequest(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter. '
                f"Field '{name}' could not be found in request message."
            )
        if len(values) > 1 and not spec.get("repeated"):
            raise BadRequest(f"Invalid value for parameter '{name}': it is given {len(values)} times")
        for value in values:
            if "enum" in spec and value not in spec["enum"]:
                raise BadRequest(f"Invalid value at '{name}', \"{value}\": must be one of {', '.join(spec['enum'])}")
            if spec.get("type") == "boolean" and value.lower() not in ("true", "false"):
                raise BadRequest(f"Invalid value at '{name}' (TYPE_BOOL), \"{value}\"")
            if spec.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
                raise BadRequest(f"Invalid value at '{name}' (TYPE_INT32), \"{value}\"")


# -- bodies -------------------------------------------------------------------------------------------------------


def _convert(spec: dict[str, Any]) -> dict[str, Any]:
    """A discovery schema as JSON Schema."""
    if "$ref" in spec:
        return {"$ref": f"#/$defs/{spec['$ref']}"}
    kind = spec.get("type")
    if kind == "object":
        out: dict[str, Any] = {"type": "object"}
        if "properties" in spec:
            out["properties"] = {name: _convert(prop) for name, prop in spec["properties"].items()}
            out["additionalProperties"] = False
        elif "additionalProperties" in spec:
            out["additionalProperties"] = _convert(spec["additionalProperties"])
        return out
    if kind == "array":
        return {"type": "array", "items": _convert(spec.get("items", {}))}
    if kind == "string" and "enum" in spec:
        return {"enum": spec["enum"]}
    if kind == "integer":
        return {"type": "integer", "minimum": INT32[0], "maximum": INT32[1]}
    if kind in ("string", "number", "boolean"):
        return {"type": kind}
    return {}  # "any"


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    defs = {name: _convert(spec) for name, spec in document()["schemas"].items()}
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}
    return jsonschema.Draft202012Validator(schema)


def without_nulls(value: Any) -> Any:
    """Google's JSON parser reads a null field as unset (gspread sends `"majorDimension": null`)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "the body"


def check_schema(schema: str, value: Any) -> None:
    """Raises BadRequest for the first way `value` breaks the discovery schema `schema`."""
    validator = _validator().evolve(schema={"$ref": f"#/$defs/{schema}", "$defs": _validator().schema["$defs"]})
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise BadRequest(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': Cannot find field."
        )
    raise BadRequest(f"Invalid value at '{where}': {error.message}")


def check_body(method: Method, body: Any) -> None:
    request = method.spec.get("request")
    if request is None:
        if body not in (None, {}, b"", ""):
            raise BadRequest(f"{method.name} takes no request body")
        return
    if body is None:
        return  # an empty body is an empty message
    if not isinstance(body, dict):
        raise BadRequest(f"Invalid JSON payload received. Expected an object for {request['$ref']}")
    check_schema(request["$ref"], body)
    if method.name == "spreadsheets.batchUpdate":
        for i, item in enumerate(body.get("requests", [])):
            check_request(i, item)


def check_request(index: int, request: dict[str, Any]) -> None:
    """What the discovery schema cannot say about one batchUpdate request."""
    where = f"requests[{index}]"
    if len(request) != 1:
        raise BadRequest(f"Invalid {where}: {'No request set' if not request else 'more than one kind of request'}.")
    ((kind, body),) = request.items()
    if kind == "updateCells" and ("start" in body) == ("range" in body):
        raise BadRequest(f"Invalid {where}.updateCells: exactly one of start or range must be set.")
    if kind in MASKED:
        schema, required = MASKED[kind]
        if required and not body.get("fields"):
            raise BadRequest(f"Invalid {where}.{kind}: At least one field must be specified.")
        check_mask(schema, body["fields"], f"{where}.{kind}")
    for path, cell in _cells(kind, body):
        values = cell.get("userEnteredValue") or {}
        if len(values) > 1:
            raise BadRequest(f"Invalid {where}.{kind}.{path}.userEnteredValue: more than one kind of value is set.")


def _cells(kind: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if kind in ("updateCells", "appendCells"):
        return [
            (f"rows[{r}].values[{c}]", cell)
            for r, row in enumerate(body.get("rows", []))
            for c, cell in enumerate(row.get("values", []))
        ]
    if kind == "repeatCell":
        return [("cell", body.get("cell", {}))]
    return []


# -- field masks --------------------------------------------------------------------------------------------------


def parse_mask(text: str) -> dict[str, Any]:
    """`a.b,c(d,e/f)` -> {"a": {"b": {}}, "c": {"d": {}, "e": {"f": {}}}}; an empty dict selects a whole field."""
    tree: dict[str, Any] = {}
    tokens = re.findall(r"[^,()./\s]+|[,()./]", text)
    position = 0

    def parse_list(into: dict[str, Any]) -> None:
        nonlocal position
        while position < len(tokens):
            parse_path(into)
            if position < len(tokens) and tokens[position] == ",":
                position += 1
                continue
            return

    def parse_path(into: dict[str, Any]) -> None:
        nonlocal position
        if position >= len(tokens) or tokens[position] in ",()./":
            raise BadRequest(f"Invalid field selection: {text!r}")
        name = tokens[position]
        position += 1
        child = into.setdefault(name, {})
        if position < len(tokens) and tokens[position] in "./":
            position += 1
            parse_path(child)
        elif position < len(tokens) and tokens[position] == "(":
            position += 1
            parse_list(child)
            if position >= len(tokens) or tokens[position] != ")":
                raise BadRequest(f"Invalid field selection: {text!r}")
            position += 1

    parse_list(tree)
    if position != len(tokens):
        raise BadRequest(f"Invalid field selection: {text!r}")
    return tree


def check_mask(schema: str, mask: str, where: str) -> None:
    """Every path of the mask names a field of `schema`."""
    defs = document()["schemas"]

    def walk(spec: dict[str, Any], tree: dict[str, Any], path: str) -> None:
        while True:
            if "$ref" in spec:
                spec = defs[spec["$ref"]]
            elif spec.get("type") == "array":
                spec = spec.get("items", {})
            else:
                break
        for name, sub in tree.items():
            if name == "*":
                continue
            props = spec.get("properties")
            if props is None or name not in props:
                raise BadRequest(f"Invalid {where}: Invalid field mask path '{path}{name}': no such field in {schema}.")
            walk(props[name], sub, f"{path}{name}.")

    walk({"$ref": schema}, parse_mask(mask), "")


def select(value: Any, tree: dict[str, Any]) -> Any:
    """A partial response: only the fields the mask names."""
    if not tree or "*" in tree:
        return value
    if isinstance(value, list):
        return [select(item, tree) for item in value]
    if isinstance(value, dict):
        return {k: select(value[k], sub) for k, sub in tree.items() if k in value}
    return value
