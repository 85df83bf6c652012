"""Loading data with a marshmallow schema, without Schema.load's per-object overhead.

A typical push holds 50 occurrences, each three nested objects: Schema.load's bookkeeping on
each object before any field is checked is most of a push's cost. The
loader compiled here reads the same declared fields and calls the same field code, but skips
that bookkeeping. At the first sign of trouble it hands the whole input to Schema.load, so a
rejected push gets exactly marshmallow's errors and field paths; the schemas stay the one
description of the wire format.

Each schema becomes one generated function with its fields unrolled, the way dataclasses
builds __init__: a loop interpreting the fields cost more than the field code it called. The
generated source holds only names; the keys, fields, defaults and validators it uses are bound
in the namespace it runs in, so nothing loaded can become code.

It supports what this gateway's schemas use: EXCLUDE of unknown fields, no hooks, fields
that are plain, Nested (single) or List.

A List's Nested items may name a memo in their metadata (`metadata={"memo": memo}`): each item is
then loaded by memo.load(item, load), which may give an earlier result for an equal item
(occurrence_cache.py).
"""

from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields
from marshmallow.utils import missing

# Field.deserialize and the methods it calls, which the generated code does in their place.
_SKIPPED = ("deserialize", "_validate", "_validate_all", "_validate_missing")


class _SlowPath(Exception):
    """Something Schema.load must decide (and word the error for)."""


def compile_loader(schema: Schema) -> Callable[[Any], Any]:
    """Return load(data), equivalent to schema.load(data) for the schemas it accepts."""
    load_fast = _Compiler().compile(schema)

    def load(data: Any) -> Any:
        try:
            return load_fast(data)
        except (_SlowPath, ValidationError):
            return schema.load(data)

    return load


class _Compiler:
    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"_SlowPath": _SlowPath, "missing": missing}
        self.source: list[str] = []

    def compile(self, schema: Schema) -> Callable[[Any], Any]:
        name = self.schema(schema)
        exec("\n".join(self.source), self.namespace)
        return self.namespace[name]

    def bind(self, value: Any, prefix: str) -> str:
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def define(self, name: str, argument: str, body: list[str]) -> None:
        self.source += [f"def {name}({argument}):", *_indent(body), ""]

    def schema(self, schema: Schema) -> str:
        """Generate the function loading one object of schema; return its name."""
        if schema.unknown != EXCLUDE or any(schema._hooks.values()):
            raise ValueError(f"{type(schema).__name__}: only EXCLUDE schemas without hooks compile")
        # marshmallow 4 has no "ordered" (every schema keeps its order).
        if schema.many or schema.partial or getattr(schema, "ordered", False):
            raise ValueError(f"{type(schema).__name__}: many, partial or ordered does not compile")
        load_fields = schema.load_fields.items()
        # A field absent without a default is left out, which needs a dict to add to; when
        # none can be, locals and one dict display are quicker.
        always_set = all(f.required or f.load_default is not missing for _, f in load_fields)
        body = ["if type(data) is not dict:", "    raise _SlowPath"]
        if not always_set:
            body.append("result = {}")
        items = []
        for index, (attr_name, field) in enumerate(load_fields):
            attribute = field.attribute or attr_name
            if "." in attribute:
                raise ValueError(f"{attribute}: dotted attributes do not compile")
            key = self.bind(attr_name if field.data_key is None else field.data_key, "key")
            attribute = self.bind(attribute, "attribute")
            target = f"v{index}" if always_set else f"result[{attribute}]"
            items.append(f"{attribute}: {target}")
            body += self.field(field, key, target)
        body.append(f"return {{{', '.join(items)}}}" if always_set else "return result")
        name = self.bind(None, "load_")
        self.define(name, "data", body)
        return name

    def field(self, field: fields.Field, key: str, target: str) -> list[str]:
        """Lines setting target to data[key] loaded as Field.deserialize would."""
        lines, loaded = self.value(field, key, "data")
        present = [*lines, f"{target} = {loaded}"]
        if field.required:
            absent = "raise _SlowPath"
        elif field.load_default is missing:
            absent = "pass"
        elif field.load_default is None:
            absent = f"{target} = None"
        else:
            default = self.bind(field.load_default, "default")
            absent = f"{target} = {default}{'()' if callable(field.load_default) else ''}"
        null = f"{target} = None" if field.allow_none else "raise _SlowPath"
        if absent == null:
            # The common case (optional, or required and not nullable): one test for both.
            return [f"value = data.get({key})", "if value is None:", f"    {absent}"] + [
                "else:",
                *_indent(present),
            ]
        return [
            f"value = data.get({key}, missing)",
            "if value is missing:",
            f"    {absent}",
            "elif value is None:",
            f"    {null}",
            "else:",
            *_indent(present),
        ]

    def value(self, field: fields.Field, attr: str, data: str) -> tuple[list[str], str]:
        """(lines, expression) loading a value that is neither absent nor null."""
        if any(getattr(type(field), name) is not getattr(fields.Field, name) for name in _SKIPPED):
            raise ValueError(f"{type(field).__name__}: overrides {', '.join(_SKIPPED)}")
        if type(field) is fields.Nested:
            lines, loaded = [], f"{self.nested(field)}(value)"
        elif type(field) is fields.List:
            item = self.item(field.inner)
            # Null items and non-lists: List's errors are Schema.load's to word.
            lines = ["if type(value) is not list or None in value:", "    raise _SlowPath"]
            loaded = f"[{item}(item) for item in value]"
        else:
            lines, loaded = [], f"{self.bind(field._deserialize, 'load')}(value, {attr}, {data})"
        if field.validators:
            lines += [f"value = {loaded}"]
            for validator in field.validators:
                name = self.bind(validator, "validate")
                lines += [f"if {name}(value) is False:", "    raise _SlowPath"]
            loaded = "value"
        return lines, loaded

    def nested(self, field: fields.Nested) -> str:
        if field.many:
            raise ValueError("Nested(many=True) does not compile; use List(Nested(...))")
        if field.unknown not in (None, EXCLUDE):
            raise ValueError("Nested(unknown=...) does not compile; set it on the schema")
        return self.schema(field.schema)

    def item(self, field: fields.Field) -> str:
        """The name of a function loading one item of a List."""
        if type(field) is fields.Nested and not field.validators:
            load = self.nested(field)
            memo = field.metadata.get("memo")
            if memo is None:
                return load
            name = self.bind(None, "item")
            self.define(name, "value", [f"return {self.bind(memo.load, 'memo')}(value, {load})"])
            return name
        if type(field) is not fields.List and not field.validators:
            raise ValueError("List of plain fields does not compile; use one field for the list")
        lines, loaded = self.value(field, "None", "None")
        name = self.bind(None, "item")
        self.define(name, "value", [*lines, f"return {loaded}"])
        return name


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]
