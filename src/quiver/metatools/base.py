"""What a meta-tool is: a name, a one-line description, a pydantic input model, a handler.

Input schemas are generated from the models (titles dropped: they cost tokens and say
nothing the property names don't).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mcp_types as types
from pydantic import BaseModel, ConfigDict

from quiver.backends.base import ProgressFn
from quiver.policy.principal import LOCAL, Principal
from quiver.upstream import Upstream

if TYPE_CHECKING:
    from quiver.gateway import Gateway


class MetaArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class CallContext:
    """What a meta-tool handler may use besides its arguments."""

    gateway: Gateway
    progress: ProgressFn | None = None
    upstream: Upstream | None = None
    principal: Principal = LOCAL


Handler = Callable[[Any, CallContext], Awaitable[types.CallToolResult | types.InputRequiredResult]]


@dataclass(frozen=True)
class MetaTool:
    name: str
    description: str
    args: type[MetaArgs]
    handler: Handler
    annotations: types.ToolAnnotations | None = None

    def definition(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=input_schema(self.args),
            annotations=self.annotations,
        )


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = _drop_titles(model.model_json_schema())
    return schema


def _drop_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _drop_titles(value) for key, value in node.items() if not (key == "title" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_drop_titles(item) for item in node]
    return node
