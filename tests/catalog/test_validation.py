from __future__ import annotations

from typing import Any

import pytest

from quiver.catalog.validation import ArgumentValidator

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "count": {"type": "integer", "minimum": 1}},
    "required": ["message"],
    "additionalProperties": False,
}


def check(arguments: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> list[str]:
    return ArgumentValidator(schema).problems(arguments)


def test_valid_arguments_have_no_problems() -> None:
    assert check({"message": "hi", "count": 2}) == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "argument 'message' is required"),
        ({"message": 3}, "'message': 3 is not of type 'string'"),
        ({"message": "x", "count": 0}, "'count': 0 is less than the minimum of 1"),
        ({"message": "x", "extra": 1}, "allowed: message, count"),
    ],
)
def test_problems_say_what_is_wrong(arguments: dict[str, Any], expected: str) -> None:
    found = check(arguments)
    assert any(expected in problem for problem in found), found


def test_misspelt_required_argument_is_pointed_out() -> None:
    schema = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
    assert check({"mesage": "hi"}, schema) == ["argument 'message' is required (you passed 'mesage')"]


def test_invalid_downstream_schema_accepts_everything() -> None:
    broken = {"type": "object", "properties": {"x": {"type": "no-such-type"}}}
    assert check({"x": 1}, broken) == []


def test_remote_references_are_never_fetched() -> None:
    # A downstream schema is untrusted: a `$ref` to a URL must not make the gateway fetch it.
    schema = {"type": "object", "properties": {"x": {"$ref": "http://127.0.0.1:9/x.json"}}, "required": ["x"]}
    assert check({"x": 1}, schema) == []
    assert check({}, schema) == ["argument 'x' is required"]


@pytest.mark.parametrize(
    "schema",
    [
        SCHEMA,
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {"n": {"enum": [1, 2]}}},
    ],
)
@pytest.mark.parametrize(
    "arguments",
    [{}, {"message": "hi"}, {"message": 1}, {"tags": ["a"]}, {"tags": ["a", "b", "c"]}, {"tags": [1]}, {"n": 3}],
)
def test_fast_check_agrees_with_the_full_one(schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    import jsonschema

    expected = not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(arguments))
    assert (check(arguments, schema) == []) is expected
