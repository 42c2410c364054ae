"""Checking call arguments against a tool's input schema before anything is sent.

Validators are compiled once per tool, on its first call. A downstream schema that is itself
invalid is not the caller's fault: such a tool gets a validator that accepts everything (the
backend judges).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

MAX_PROBLEMS = 5


class _AcceptAll:
    def iter_errors(self, instance: object) -> list[Any]:
        return []


class ArgumentValidator:
    """Checks call arguments against one tool's input schema.

    A call's arguments are checked by `jsonschema-rs` (compiled Rust, well under a microsecond
    for a typical tool), and only arguments it rejects go through the `jsonschema` package,
    whose errors say what is wrong. Arguments either of them accepts pass: where the two differ
    (regular-expression dialects, say), the backend has the last word.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self._fast = _fast_validator(schema)
        self._full: Any = None

    def problems(self, arguments: Mapping[str, Any]) -> list[str]:
        """What is wrong with `arguments`, one phrase each; empty when they are fine."""
        if self._fast is not None and self._fast.is_valid(arguments):
            return []
        if self._full is None:
            self._full = _full_validator(self.schema)
        return _problems(self._full, self.schema, arguments)


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"remote schema references are not fetched ({uri})")


def _fast_validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema_rs

    try:
        return jsonschema_rs.validator_for(dict(schema), validate_formats=False, retriever=_refuse_remote)
    except (jsonschema_rs.ValidationError, TypeError, ValueError):
        return None  # the full validator judges the schema (and says so)


def _full_validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema
    import referencing
    from jsonschema.exceptions import SchemaError

    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(dict(schema))
        # A downstream schema is untrusted: its remote `$ref`s are never fetched.
        registry = referencing.Registry(retrieve=_refuse_remote)  # type: ignore[call-arg]  # attrs alias
        return cls(schema, format_checker=None, registry=registry)
    except (SchemaError, TypeError, ValueError) as exc:
        logger.warning("tool input schema is not valid JSON schema; arguments are passed unchecked: %s", exc)
        return _AcceptAll()


def _problems(validator: Any, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    from referencing.exceptions import Unresolvable

    try:
        return _collect(validator, schema, arguments)
    except Unresolvable as exc:  # a `$ref` to somewhere else: the backend judges
        logger.debug("arguments passed unchecked: %s", exc)
        return []


def _collect(validator: Any, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for error in validator.iter_errors(arguments):
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        if error.validator == "required" and not path:
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            text = f"argument '{missing}' is required"
            unknown = _unknown_keys(schema, arguments)
            near = difflib.get_close_matches(missing, unknown, n=1)
            if near:
                text += f" (you passed '{near[0]}')"
            found.append(text)
        elif error.validator == "additionalProperties" and not path:
            found.append(f"{error.message}; allowed: {', '.join(_known_keys(schema)) or 'none'}")
        else:
            found.append(f"'{path}': {error.message}" if path else error.message)
        if len(found) >= MAX_PROBLEMS:
            break
    return found


def _known_keys(schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties")
    return [str(key) for key in properties] if isinstance(properties, Mapping) else []


def _unknown_keys(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    known = set(_known_keys(schema))
    return [key for key in arguments if key not in known]
