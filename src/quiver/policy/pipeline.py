"""The steps around every downstream call, each wrapping the next: audit → rate limit → limits → redaction.

A step receives the request and `call_next` (the rest of the chain, ending in the backend call)
and returns the result. Steps record what they did in `request.actions`, which the audit step
writes down and the result's `_meta` reports to the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from quiver.policy.engine import View
from quiver.policy.principal import Principal

Result = types.CallToolResult | types.InputRequiredResult
CallNext = Callable[[], Awaitable[Result]]
Step = Callable[["CallRequest", CallNext], Awaitable[Result]]

ACTIONS_META_KEY = "quiver/policy"
"""Where a result says what policy did to it (redactions, truncation)."""


@dataclass
class CallRequest:
    principal: Principal
    view: View
    tool_id: str
    arguments: Mapping[str, Any]
    actions: dict[str, Any] = field(default_factory=dict)


class Pipeline:
    def __init__(self, steps: Sequence[Step] = ()) -> None:
        self.steps = list(steps)

    async def run(self, request: CallRequest, call: CallNext) -> Result:
        if not self.steps:
            return await call()
        handler = call
        for step in reversed(self.steps):
            handler = _bind(step, request, handler)
        return with_actions(await handler(), request.actions)


def _bind(step: Step, request: CallRequest, call_next: CallNext) -> CallNext:
    async def run() -> Result:
        return await step(request, call_next)

    return run


def with_actions(result: Result, actions: Mapping[str, Any]) -> Result:
    """The result, saying in `_meta` what policy did to it."""
    if not actions or not isinstance(result, types.CallToolResult):
        return result
    meta = dict(result.meta or {})
    meta[ACTIONS_META_KEY] = dict(actions)
    return result.model_copy(update={"meta": meta})
