"""The compiled loader against Schema.load on the field shapes it generates code for; the push
schema itself is compared in test_properties.py."""

import pytest
from marshmallow import EXCLUDE, INCLUDE, Schema, fields, post_load, validate

from periskop_pushgateway.wire.fastload import compile_loader

from .test_properties import outcome


class Inner(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True, validate=validate.Length(max=3))
    # A key that would be code if it were pasted into the generated source.
    odd = fields.Integer(data_key="x'] or __import__('os')._exit(1) #", load_default=7)


class Outer(Schema):
    class Meta:
        unknown = EXCLUDE

    required = fields.String(required=True)
    optional = fields.String()
    nullable = fields.String(allow_none=True)
    default_none = fields.String(load_default=None)
    default_callable = fields.List(fields.Nested(Inner), load_default=list)
    renamed = fields.String(data_key="wire-name", attribute="stored_name")
    inner = fields.Nested(Inner)
    inners = fields.List(fields.Nested(Inner), validate=validate.Length(max=2))
    matrix = fields.List(fields.List(fields.Nested(Inner)))
    digits = fields.List(fields.Integer(validate=validate.Range(0, 9)))


DOCUMENTS = [
    {"required": "r"},
    {"required": "r", "optional": "o", "nullable": None, "default_none": "d"},
    {
        "required": "r",
        "default_callable": [{"name": "a"}],
        "wire-name": "w",
        "stored_name": "ignored",
    },
    {"required": "r", "inner": {"name": "abc", "x'] or __import__('os')._exit(1) #": 5}},
    {
        "required": "r",
        "inners": [{"name": "a"}, {"name": "b"}],
        "matrix": [[{"name": "a"}], []],
        "digits": [0, 9],
    },
    {"required": "r", "unknown": {"dropped": True}},
    # Each of these is rejected, by marshmallow's own words.
    {},
    {"required": None},
    {"required": "r", "optional": None},
    {"required": "r", "inner": {"name": "abcd"}},
    {"required": "r", "inner": {"name": "a", "x'] or __import__('os')._exit(1) #": "x"}},
    {"required": "r", "inners": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
    {"required": "r", "inners": [None]},
    {"required": "r", "inners": {"name": "a"}},
    {"required": "r", "matrix": [[{"name": 1}]]},
    {"required": "r", "digits": [1, 10]},
    {"required": "r", "digits": [1, "two"]},
    {"required": "r", "matrix": [None]},
    {"required": 5},
    [],
    "text",
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_compiled_loader_agrees_with_marshmallow(document):
    schema = Outer()
    assert outcome(compile_loader(schema), document) == outcome(schema.load, document)


def test_a_default_built_by_a_callable_is_new_for_each_load():
    load = compile_loader(Outer())
    first, second = load({"required": "r"}), load({"required": "r"})
    first["default_callable"].append({"name": "x"})
    assert second["default_callable"] == []


class Included(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.String()


class Hooked(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String()

    @post_load
    def upper(self, data, **kwargs):
        return {"name": data["name"].upper()}


class Dotted(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(attribute="a.b")


class ListOfPlain(Schema):
    class Meta:
        unknown = EXCLUDE

    names = fields.List(fields.String())


class NestedMany(Schema):
    class Meta:
        unknown = EXCLUDE

    inners = fields.Nested(Inner, many=True)


class CustomDeserialize(fields.String):
    def deserialize(self, value, attr=None, data=None, **kwargs):
        return "replaced"


class Custom(Schema):
    class Meta:
        unknown = EXCLUDE

    name = CustomDeserialize()


@pytest.mark.parametrize(
    "schema", [Included(), Hooked(), Dotted(), ListOfPlain(), NestedMany(), Custom()]
)
def test_what_it_cannot_reproduce_is_refused_when_compiled(schema):
    """Rather than load differently from marshmallow, it refuses at start-up."""
    with pytest.raises(ValueError):
        compile_loader(schema)
