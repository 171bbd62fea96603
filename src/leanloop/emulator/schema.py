"""The smallest JSON value a JSON schema accepts, and whether a value fits one: what the emulator needs to answer
a forced tool call or a ``json_schema`` output format the way the real API would (the model's output always parses
and validates). Pure.

Covered: ``type`` (one or a list), ``properties``/``required``/``additionalProperties``, ``items``/``minItems``,
``enum``, ``const``, ``default``, ``anyOf``/``oneOf``/``allOf``, local ``$ref`` (``#/$defs/...``,
``#/definitions/...``), ``minimum``/``exclusiveMinimum``, ``minLength`` and common string ``format``s. Only required
properties are filled in. Anything else in a schema is ignored: the value is the simplest one of the right shape.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

__all__ = ["example_of", "fits"]

_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_MAX_DEPTH = 32  # a recursive schema stops here


def _mapping(value: Any) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = root
    for part in ref[2:].split("/"):
        target = _mapping(target).get(part)
    return _mapping(target)


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [str(k) for k in cast(list[Any], kind)]
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return []


def example_of(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """The simplest value ``schema`` accepts (an empty object for an empty schema)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    for keyword in ("const", "default"):
        if keyword in schema:
            return schema[keyword]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return cast(list[Any], enum)[0]
    for keyword in ("anyOf", "oneOf", "allOf"):
        options = schema.get(keyword)
        if isinstance(options, list) and options:
            return example_of(_mapping(cast(list[Any], options)[0]), root, depth + 1)
    types = [t for t in _types(schema) if t != "null"] or _types(schema) or ["object"]
    return _example_of_type(types[0], schema, root, depth)


def _example_of_type(kind: str, schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Any:
    if kind == "object":
        if depth >= _MAX_DEPTH:
            return {}
        properties = _mapping(schema.get("properties"))
        required = [str(r) for r in cast(list[Any], schema.get("required") or [])]
        return {name: example_of(_mapping(properties.get(name)), root, depth + 1) for name in required}
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [example_of(_mapping(schema.get("items")), root, depth + 1) for _ in range(count)]
    if kind == "string":
        text = _FORMATS.get(str(schema.get("format")), "example")
        return text.ljust(int(schema.get("minLength") or 0), "x")
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """0 when the bounds allow it, else the nearest bound (one above an exclusive minimum)."""
    low, high, above = schema.get("minimum"), schema.get("maximum"), schema.get("exclusiveMinimum")
    value = 0.0
    if isinstance(low, int | float) and value < low:
        value = float(low)
    if isinstance(above, int | float) and value <= above:
        value = float(above) + 1
    if isinstance(high, int | float) and value > high:
        value = float(high)
    return math.ceil(value) if integer else value


def fits(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> bool:
    """Whether ``value`` fits ``schema`` as far as the keywords above go."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema and value != schema["const"]:
        return False
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in cast(list[Any], enum):
        return False
    for keyword, needed in (("anyOf", any), ("oneOf", any), ("allOf", all)):
        options = schema.get(keyword)
        if isinstance(options, list) and not needed(fits(value, _mapping(o), root) for o in cast(list[Any], options)):
            return False
    types = _types(schema)
    if types and not any(_is(value, kind) for kind in types):
        return False
    if isinstance(value, Mapping):
        return _object_fits(cast(Mapping[str, Any], value), schema, root)
    if isinstance(value, list):
        items = _mapping(schema.get("items"))
        return all(fits(item, items, root) for item in cast(list[Any], value))
    return True


def _object_fits(value: Mapping[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    properties = _mapping(schema.get("properties"))
    required = cast(Sequence[Any], schema.get("required") or [])
    if any(name not in value for name in required):
        return False
    if schema.get("additionalProperties") is False and any(name not in properties for name in value):
        return False
    return all(fits(item, _mapping(properties[name]), root) for name, item in value.items() if name in properties)


def _is(value: Any, kind: str) -> bool:
    checks: dict[str, bool] = {
        "object": isinstance(value, Mapping),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }
    return checks.get(kind, True)
