"""Turning outcomes into tool results: the one place errors become `isError` results."""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

import mcp_types as types

from quiver.errors import QuiverError

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=types.Result)

# `_meta` keys the protocol reserves describe the downstream connection, not the result.
_RESERVED_META_PREFIX = "io.modelcontextprotocol/"


def text_result(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=structured)


def error_result(error: BaseException) -> types.CallToolResult:
    """A tool result the model can act on; unexpected errors are logged and reported without internals."""
    if not isinstance(error, QuiverError):
        logger.error("unexpected error in a meta-tool", exc_info=error)
        error = QuiverError(
            f"internal error ({type(error).__name__}); the gateway is still running",
            hint="retry; if it persists, see the gateway log",
        )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=str(error))],
        structured_content={"error": error.to_dict()},
        is_error=True,
    )


def forwarded(result: R) -> R:
    """A downstream result as the client should see it: unchanged but for connection metadata."""
    meta = result.meta
    if meta and any(key.startswith(_RESERVED_META_PREFIX) for key in meta):
        kept = {key: value for key, value in meta.items() if not key.startswith(_RESERVED_META_PREFIX)}
        return result.model_copy(update={"meta": kept or None})
    return result


def compact_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
