"""Python functions as tools: the `@tool` decorator, `ToolContext`, and `FunctionTool`, the translation.

The decorator only marks a function, so a module of tools stays plain Python that imports and
tests without Quiver running. A plugin backend (`quiver.backends.plugin`) builds a `FunctionTool`
for each marked function when it loads the module: the SDK's own function inspection (the one its
`MCPServer` uses) gives the argument model, input schema, output schema and result conversion;
this module adds docstring descriptions, the context parameter, and errors as `isError` results.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import types as pytypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass, is_dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, Union, get_args, get_origin, overload

import anyio
import anyio.to_thread
import mcp_types as types

if TYPE_CHECKING:
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
    from pydantic import ValidationError

    from quiver.backends.base import ProgressFn

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

MARK = "__quiver_tool__"
"""The attribute `@tool` sets on a function; its value is the function's `ToolOptions`."""

# The MCP spec's rule for tool names; clients reject anything else.
TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Docstring sections (Google style) that end the description; `Args:` and its aliases give parameter text.
_SECTION = re.compile(
    r"^(args|arguments|parameters|params|keyword args|returns?|yields?|raises|examples?|notes?|"
    r"attributes|see also|warnings?|todo)\s*:\s*$",
    re.IGNORECASE,
)
_ARGS_SECTIONS = ("args", "arguments", "parameters", "params", "keyword args")
_PARAM_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SHOWN_INPUT = 60  # characters of a rejected argument value quoted back to the caller


@dataclass(frozen=True, slots=True)
class ToolOptions:
    """What `@tool(...)` was told; unset values come from the function (name, docstring) or stay unstated."""

    name: str | None = None
    title: str | None = None
    description: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None

    def annotations(self) -> types.ToolAnnotations | None:
        hints = (self.read_only, self.destructive, self.idempotent, self.open_world)
        if all(hint is None for hint in hints):
            return None
        return types.ToolAnnotations(
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    read_only: bool | None = None,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool | None = None,
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    read_only: bool | None = None,
    destructive: bool | None = None,
    idempotent: bool | None = None,
    open_world: bool | None = None,
) -> F | Callable[[F], F]:
    """Mark a function (sync or async) as a tool of its module; use bare (`@tool`) or with options.

    `name` defaults to the function's name and `description` to its docstring; `read_only`,
    `destructive`, `idempotent` and `open_world` become the tool's annotations (hints to clients;
    a tool that is read-only and idempotent may be called again after a failure). The function
    is returned unchanged, so it can still be called directly.
    """
    options = ToolOptions(name, title, description, read_only, destructive, idempotent, open_world)

    def mark(function: F) -> F:
        if not callable(function):
            raise TypeError(f"@tool decorates functions, not {type(function).__name__}")
        setattr(function, MARK, options)
        return function

    return mark if fn is None else mark(fn)


def options_of(value: object) -> ToolOptions | None:
    """The options `@tool` left on `value`, or None when it is not a marked function."""
    options = getattr(value, "__dict__", {}).get(MARK)  # not getattr(value, MARK): objects may compute attributes
    return options if isinstance(options, ToolOptions) else None


class ToolContext:
    """Handed to a tool function that has a parameter annotated `ToolContext` (which is not a tool argument).

    Progress reports reach the caller as MCP progress notifications and push the call's timeout back.
    An async tool awaits `report_progress`; a sync tool (which runs in a worker thread) calls
    `report_progress_sync`.
    """

    def __init__(self, tool: str, backend: str, progress: ProgressFn | None = None) -> None:
        self.tool = tool
        """The tool's name as listed (without the backend prefix)."""
        self.backend = backend
        """The name of the backend the tool is served by."""
        self._progress = progress

    async def report_progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Say how far the call has got: `done` out of `total` (if known), with an optional message."""
        if self._progress is not None:
            await self._progress(done, total, message)

    def report_progress_sync(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """`report_progress` for a sync tool: call it from the tool's own worker thread."""
        if self._progress is not None:
            import anyio.from_thread

            anyio.from_thread.run(self._progress, done, total, message)

    def close(self) -> None:
        """The call is over: later reports (from a thread the call stopped waiting for) go nowhere."""
        self._progress = None


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """One tool function, ready to list (`definition`) and to call."""

    definition: types.Tool
    function: Callable[..., Any]
    metadata: FuncMetadata
    context_parameter: str | None
    is_async: bool

    @property
    def name(self) -> str:
        return self.definition.name

    @classmethod
    def build(cls, function: Callable[..., Any], options: ToolOptions | None = None) -> FunctionTool:
        """Inspect `function`; raises `ValueError` saying what is wrong with it as a tool."""
        from mcp.server.mcpserver.exceptions import InvalidSignature
        from mcp.server.mcpserver.utilities.func_metadata import func_metadata
        from pydantic import PydanticUserError

        options = options or ToolOptions()
        name = options.name or str(getattr(function, "__name__", ""))
        if not TOOL_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid tool name (letters, digits, '_', '-', '.'; at most 128)")
        try:
            signature = inspect.signature(function, eval_str=True)
        except (NameError, TypeError, ValueError) as exc:
            raise ValueError(f"its type hints cannot be evaluated: {exc}") from None
        context = _context_parameter(signature)
        summary, documented = parse_docstring(function.__doc__)
        try:
            metadata = func_metadata(
                function,
                skip_names=[context] if context else [],
                structured_output=_declares_structure(signature.return_annotation),
            )
            schema = metadata.arg_model.model_json_schema(by_alias=True)
        except (InvalidSignature, PydanticUserError, TypeError, ValueError) as exc:
            raise ValueError(str(exc).partition("\n")[0]) from None
        for parameter, prop in schema.get("properties", {}).items():
            if parameter in documented and isinstance(prop, dict):
                prop.setdefault("description", documented[parameter])
        definition = types.Tool(
            name=name,
            title=options.title,
            description=options.description or summary or None,
            input_schema=schema,
            output_schema=metadata.output_schema,
            annotations=options.annotations(),
        )
        return cls(definition, function, metadata, context, inspect.iscoroutinefunction(function))

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> types.CallToolResult:
        """Validate, run, convert; every failure of the tool itself comes back as an `isError` result."""
        from pydantic import ValidationError

        try:
            kwargs = self.metadata.validate_arguments(dict(arguments))
        except ValidationError as exc:
            return error_result(f"invalid arguments for tool '{self.name}': " + "; ".join(argument_problems(exc)))
        except Exception as exc:  # a validator that crashed rather than rejected
            return self._raised(exc, context)
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        try:
            if self.is_async:
                value = await self.function(**kwargs)
            else:
                # A cancelled call stops waiting; the thread cannot be stopped and finishes on its own.
                call = functools.partial(self.function, **kwargs)
                value = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
                if inspect.isawaitable(value):  # a plain function that hands back a coroutine
                    value = await value
        except Exception as exc:
            return self._raised(exc, context)
        finally:
            context.close()
        return self.result(value)

    def result(self, value: Any) -> types.CallToolResult:
        """A return value as a tool result: see docs/PLUGINS.md for the mapping."""
        from pydantic import ValidationError

        try:
            converted = self.metadata.convert_result(value)
        except ValidationError as exc:
            problems = "; ".join(f"'{_location(problem['loc'])}': {problem['msg']}" for problem in exc.errors())
            return error_result(f"tool '{self.name}' returned a value that does not match its return type: {problems}")
        except Exception as exc:  # a value that cannot be serialised
            text = str(exc).partition("\n")[0]
            return error_result(
                f"tool '{self.name}' returned a value that cannot be sent: {type(exc).__name__}: {text}"
            )
        if not isinstance(converted, types.CallToolResult):
            return error_result(f"tool '{self.name}' returned {type(value).__name__}, which plugins cannot return")
        if converted.structured_content is None and not converted.is_error and _is_data(value):
            from pydantic_core import to_jsonable_python

            converted.structured_content = to_jsonable_python(value, by_alias=True, fallback=str)
        return converted

    def _raised(self, exc: Exception, context: ToolContext) -> types.CallToolResult:
        logger.error("tool '%s' of backend '%s' raised", self.name, context.backend, exc_info=exc)
        return error_result(f"tool '{self.name}' raised {type(exc).__name__}: {str(exc) or '(no message)'}")


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def argument_problems(error: ValidationError) -> list[str]:
    """One phrase per rejected argument, in the words the gateway's own schema check uses."""
    found: list[str] = []
    for problem in error.errors(include_url=False):
        where = _location(problem["loc"])
        if problem["type"] == "missing":
            found.append(f"argument '{where}' is required")
            continue
        shown = repr(problem["input"])
        if len(shown) > _SHOWN_INPUT:
            shown = shown[: _SHOWN_INPUT - 3] + "..."
        found.append(f"'{where}': {problem['msg']} (got {shown})")
    return found


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "value"


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (the text before the first section) and the `Args:` entries of a Google-style docstring."""
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    indent: int | None = None  # of the entries in an `Args:` section
    current: str | None = None
    for line in inspect.cleandoc(doc or "").splitlines():
        stripped = line.strip()
        if line == line.lstrip() and (header := _SECTION.match(stripped)):
            section, indent, current = header.group(1).lower(), None, None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in _ARGS_SECTIONS or not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        entry = _PARAM_LINE.match(stripped) if depth <= indent else None
        if entry:
            current = entry.group(1)
            params[current] = entry.group(2).strip()
        elif current is not None and depth > indent:
            params[current] = f"{params[current]} {stripped}".strip()
    return "\n".join(summary).strip(), {name: text for name, text in params.items() if text}


def _context_parameter(signature: inspect.Signature) -> str | None:
    """The parameter annotated `ToolContext` (or `ToolContext | None`), which receives the call's context."""
    for parameter in signature.parameters.values():
        annotation = parameter.annotation
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        if annotation is ToolContext:
            return parameter.name
        if get_origin(annotation) in (Union, pytypes.UnionType) and ToolContext in get_args(annotation):
            return parameter.name
    return None


def _declares_structure(annotation: Any) -> bool:
    """Whether a return annotation describes structured data: a model, TypedDict, dataclass or dict[str, ...].

    Only these publish an output schema; anything else (str, numbers, lists, content blocks) is
    returned as content alone, which keeps listings small."""
    if get_origin(annotation) is Annotated:
        return _declares_structure(get_args(annotation)[0])
    if get_origin(annotation) is dict:
        return get_args(annotation)[:1] == (str,)
    if not isinstance(annotation, type):
        return False
    from pydantic import BaseModel
    from typing_extensions import is_typeddict

    if _is_mcp_type(annotation):  # results and content blocks are content, not data
        return False
    return issubclass(annotation, BaseModel) or is_typeddict(annotation) or is_dataclass(annotation)


def _is_data(value: Any) -> bool:
    """A dict or a model (not an MCP content block) returned without a declared structure."""
    from pydantic import BaseModel

    if isinstance(value, dict):
        return True
    return isinstance(value, BaseModel) and not _is_mcp_type(type(value))


def _is_mcp_type(cls: type) -> bool:
    return cls.__module__.partition(".")[0] == types.__name__
