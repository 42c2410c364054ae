"""Checking call arguments against a tool's input schema before anything is sent.

Validators are compiled once per tool. A downstream schema that is itself invalid is not the
caller's fault: such a tool gets a validator that accepts everything (the backend judges).
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


def compile_validator(schema: Mapping[str, Any]) -> Any:
    import jsonschema
    from jsonschema.exceptions import SchemaError

    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(dict(schema))
        return cls(schema, format_checker=None)
    except (SchemaError, TypeError, ValueError) as exc:
        logger.warning("tool input schema is not valid JSON schema; arguments are passed unchecked: %s", exc)
        return _AcceptAll()


def problems(validator: Any, schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with `arguments`, one phrase each; empty when they are fine."""
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
