"""The capability file format: REST requests described in YAML or JSON, and the tools they become.

A capability file names a tool, the request it makes (method, URL template, parameters, body,
headers, auth) and what of the response to keep. This module reads and checks such files;
`quiver.backends.rest` sends the requests. The format is described in docs/CAPABILITIES.md.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import mcp_types as types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from quiver.errors import ConfigError

logger = logging.getLogger(__name__)

FILE_SUFFIXES = (".yaml", ".yml", ".json")
# What a model reads costs context: answers past this are cut unless a capability allows more.
DEFAULT_MAX_BYTES = 50_000

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
# `{name}` in a URL template (not `${VAR}`, which is a variable).
PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}$]+)\}")


# -- the capability file format ---------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Parameter(_Strict):
    """One input of a request: a path segment, a query parameter, a header, or a field of a JSON body."""

    name: str = Field(min_length=1)
    in_: Literal["path", "query", "header", "body"] = Field(default="query", alias="in")
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "string"}, alias="schema")
    required: bool = False
    description: str | None = None
    argument: str | None = Field(default=None, description="The tool argument's name, when not `name`.")

    @property
    def key(self) -> str:
        return self.argument or self.name


class RequestBody(_Strict):
    """The whole request body as one tool argument."""

    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    required: bool = False
    description: str | None = None
    content_type: Literal["application/json", "application/x-www-form-urlencoded"] = "application/json"
    argument: str = "body"


class BasicAuth(_Strict):
    username: str
    password: str


class ApiKeyAuth(_Strict):
    in_: Literal["header", "query"] = Field(default="header", alias="in")
    name: str = Field(min_length=1)
    value: str


class Auth(_Strict):
    """How requests authenticate: exactly one of the three."""

    bearer: str | None = None
    basic: BasicAuth | None = None
    api_key: ApiKeyAuth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        given = [kind for kind in ("bearer", "basic", "api_key") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of bearer, basic, api_key (got {', '.join(given) or 'none'})")
        return self


class ResponseSpec(_Strict):
    projection: str | None = Field(default=None, description="JMESPath expression selecting what to keep.")
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, gt=0, description="Cap on the text returned.")

    @field_validator("projection")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compiled_projection(value)
        return value


class Hints(_Strict):
    """Overrides for the annotations derived from the method (e.g. a POST that only searches)."""

    read_only: bool | None = Field(default=None, alias="readOnlyHint")
    destructive: bool | None = Field(default=None, alias="destructiveHint")
    idempotent: bool | None = Field(default=None, alias="idempotentHint")
    open_world: bool | None = Field(default=None, alias="openWorldHint")


class Capability(_Strict):
    """One tool: the HTTP request it makes and what of the answer it keeps."""

    name: str
    title: str | None = None
    description: str = Field(min_length=1)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str = Field(min_length=1)
    parameters: list[Parameter] = Field(default_factory=list)
    body: RequestBody | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    timeout: float | None = Field(default=None, gt=0)
    annotations: Hints | None = None

    @field_validator("name")
    @classmethod
    def _tool_name(cls, value: str) -> str:
        if not _TOOL_NAME.match(value):
            raise ValueError("use letters, digits, '_', '-' and '.' (at most 128 characters)")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Capability:
        placeholders = set(PLACEHOLDER.findall(self.url))
        path_params = {p.name for p in self.parameters if p.in_ == "path"}
        if placeholders - path_params:
            missing = ", ".join(sorted(placeholders - path_params))
            raise ValueError(f"url has {{{missing}}} but no path parameter of that name")
        if path_params - placeholders:
            unused = ", ".join(sorted(path_params - placeholders))
            raise ValueError(f"path parameter {unused} does not appear in the url as {{{unused}}}")
        keys = [p.key for p in self.parameters] + ([self.body.argument] if self.body else [])
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"two inputs share the argument name {', '.join(duplicates)}; set `argument` on one")
        if self.body and any(p.in_ == "body" for p in self.parameters):
            raise ValueError("use either `body` or parameters with `in: body`, not both")
        return self


class CapabilityFile(_Strict):
    capabilities: list[Capability]


@functools.lru_cache(maxsize=256)
def compiled_projection(expression: str) -> Any:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"not a valid JMESPath expression: {exc}") from None


def read_capability_file(path: Path) -> list[Capability]:
    """The capabilities in one file: a single mapping, a list, or `capabilities: [...]`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint="check that it exists and is readable") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML or JSON: {exc}", hint=_FORMAT_HINT) from None
    if data is None:  # an empty file, often one an editor has just created
        return []
    try:
        if isinstance(data, list):
            return CapabilityFile.model_validate({"capabilities": data}).capabilities
        if isinstance(data, dict) and "capabilities" in data:
            return CapabilityFile.model_validate(data).capabilities
        return [Capability.model_validate(data)]
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}", hint=_FORMAT_HINT) from None


_FORMAT_HINT = "see docs/CAPABILITIES.md for the capability file format"


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors()[:5]:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"]).lstrip(".")
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def capability_files(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.iterdir()
        if path.suffix in FILE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def load_directory(
    directory: Path,
    *,
    has_base_url: bool,
    previous: Mapping[Path, list[Capability]] | None = None,
) -> dict[Path, list[Capability]]:
    """Every file's capabilities.

    Without `previous` (at start) the first bad file raises. With it (a live reload) a bad file
    keeps its last good version, and the error is logged: a half-saved edit never drops tools."""
    loaded: dict[Path, list[Capability]] = {}
    seen: dict[str, Path] = {}
    for path in capability_files(directory) if directory.is_dir() else []:
        try:
            capabilities = read_capability_file(path)
            for capability in capabilities:
                _check_capability(path, capability, has_base_url, seen)
        except ConfigError as exc:
            if previous is None:
                raise
            logger.error("capability file rejected, its last good version stays: %s", exc)
            capabilities = previous.get(path, [])
        loaded[path] = capabilities
        for capability in capabilities:
            seen.setdefault(capability.name, path)
    return loaded


def _check_capability(path: Path, capability: Capability, has_base_url: bool, seen: Mapping[str, Path]) -> None:
    if capability.name in seen:
        raise ConfigError(
            f"{path}: tool '{capability.name}' is already defined in {seen[capability.name].name}",
            hint="tool names must be unique across the directory",
        )
    if not has_base_url and not capability.url.startswith(("http://", "https://", "${")):
        raise ConfigError(
            f"{path}: url '{capability.url}' of '{capability.name}' is relative, and the backend has no base_url",
            hint="give a full URL (it may start with ${VAR}), or set base_url on the backend",
        )


# -- tools ---------------------------------------------------------------------------------------


def tool_of(capability: Capability) -> types.Tool:
    properties: dict[str, Any] = {}
    required: list[str] = []
    inputs: list[tuple[str, dict[str, Any], str | None, bool]] = [
        (p.key, p.schema_, p.description, p.required or p.in_ == "path") for p in capability.parameters
    ]
    if capability.body is not None:
        body = capability.body
        inputs.append((body.argument, body.schema_, body.description, body.required))
    for key, schema, description, is_required in inputs:
        prop = dict(schema)
        if description and "description" not in prop:
            prop["description"] = description
        properties[key] = prop
        if is_required:
            required.append(key)
    input_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        input_schema["required"] = required
    return types.Tool(
        name=capability.name,
        title=capability.title,
        description=capability.description,
        input_schema=input_schema,
        annotations=annotations_of(capability),
    )


def annotations_of(capability: Capability) -> types.ToolAnnotations:
    """What the method promises (GET reads, PUT repeats safely, DELETE destroys), then the file's overrides."""
    method = capability.method
    reads = method in ("GET", "HEAD", "OPTIONS")
    hints: dict[str, bool] = {"read_only_hint": reads, "open_world_hint": True}
    if reads or method in ("PUT", "DELETE"):
        hints["idempotent_hint"] = True
    if method == "DELETE":
        hints["destructive_hint"] = True
    elif reads:
        hints["destructive_hint"] = False
    overrides = capability.annotations
    if overrides is not None:
        for name, value in (
            ("read_only_hint", overrides.read_only),
            ("destructive_hint", overrides.destructive),
            ("idempotent_hint", overrides.idempotent),
            ("open_world_hint", overrides.open_world),
        ):
            if value is not None:
                hints[name] = value
    return types.ToolAnnotations(title=capability.title, **hints)
