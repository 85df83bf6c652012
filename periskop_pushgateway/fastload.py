"""Loading data with a marshmallow schema, without Schema.load's per-object overhead.

A typical push holds 50 occurrences, each three nested objects: Schema.load spends about
10 µs of bookkeeping on each object before any field is checked, most of a push's cost. The
loader compiled here walks the same declared fields and calls the same field code, but skips
that bookkeeping. At the first sign of trouble it hands the whole input to Schema.load, so a
rejected push gets exactly marshmallow's errors and field paths; the schemas stay the one
description of the wire format.

It supports what this gateway's schemas use: EXCLUDE of unknown fields, no hooks, fields
that are plain, Nested (single) or List.
"""

from marshmallow import EXCLUDE, ValidationError, fields
from marshmallow.utils import missing


class _SlowPath(Exception):
    """Something Schema.load must decide (and word the error for)."""


def compile_loader(schema):
    """Return load(data), equivalent to schema.load(data) for the schemas it accepts."""
    load_fast = _schema_loader(schema)

    def load(data):
        try:
            return load_fast(data)
        except (_SlowPath, ValidationError):
            return schema.load(data)

    return load


def _schema_loader(schema):
    if schema.unknown != EXCLUDE or any(schema._hooks.values()):
        raise ValueError(f"{type(schema).__name__}: only EXCLUDE schemas without hooks compile")
    plan = [
        (field.data_key or name, field.attribute or name, field, *_field_loader(field))
        for name, field in schema.load_fields.items()
    ]

    def load(data):
        if type(data) is not dict:
            raise _SlowPath
        result = {}
        for data_key, attribute, field, load_value, plain in plan:
            value = data.get(data_key, missing)
            if value is missing:
                if field.required:
                    raise _SlowPath
                default = field.load_default
                if default is missing:
                    continue
                value = default() if callable(default) else default
            elif value is None:
                if not field.allow_none:
                    raise _SlowPath
            elif plain:
                value = load_value(value, None, None)
            else:
                value = load_value(value)
            result[attribute] = value
        return result

    return load


def _field_loader(field):
    """(load, plain): plain means load is the field's own _deserialize(value, attr, data),
    called directly to save a call per field on the hot path."""
    validators = tuple(field.validators)
    if isinstance(field, fields.Nested):
        if field.many:
            raise ValueError("Nested(many=True) does not compile; use List(Nested(...))")
        load = _schema_loader(field.schema)
    elif isinstance(field, fields.List):
        load_item, plain_item = _field_loader(field.inner)
        if plain_item:
            raise ValueError("List of plain fields does not compile; use one field for the list")

        def load(value):
            if type(value) is not list or None in value:
                raise _SlowPath
            return [load_item(item) for item in value]

    elif not validators:
        return field._deserialize, True
    else:

        def load(value):
            return field._deserialize(value, None, None)

    if not validators:
        return load, False

    def load_and_validate(value):
        loaded = load(value)
        for validator in validators:
            if validator(loaded) is False:
                raise _SlowPath
        return loaded

    return load_and_validate, False
