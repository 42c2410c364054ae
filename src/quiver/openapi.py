"""OpenAPI 3.0/3.1 to capability files: one file, one tool, per operation.

The importer reads a spec (JSON or YAML, a file or an http(s) URL), resolves its `$ref`s and
inlines them so each file stands alone (a schema that contains itself is cut after
`RECURSION_DEPTH` levels), maps security schemes to `auth` with `${PREFIX_...}` variables, and
writes the files `quiver.backends.rest` serves (their format: `quiver.backends.capabilities`).
Operations that cannot be called as a tool (say, a multipart upload) are skipped, and the
report says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import yaml

from quiver.errors import QuiverError

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
# How often a schema may be expanded inside itself before the rest is left as a bare type.
RECURSION_DEPTH = 2
# Nesting beyond this is left unexpanded: it keeps a pathological spec from producing huge files.
MAX_SCHEMA_DEPTH = 24
MAX_REF_HOPS = 32
# Clients commonly accept tool names up to 64 characters.
MAX_TOOL_NAME = 64
MAX_DESCRIPTION = 2000
FETCH_TIMEOUT = 30.0

_ARGUMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_JSON_MEDIA = re.compile(r"^application/(?:[\w.\-]+\+)?json$", re.IGNORECASE)
_FORM_MEDIA = "application/x-www-form-urlencoded"
# Keywords of OpenAPI's schema dialect that JSON Schema validators do not know or read differently.
_DROPPED_KEYWORDS = frozenset({"discriminator", "xml", "externalDocs", "nullable", "example"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_VALUES = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "contains",
        "propertyNames",
        "if",
        "then",
        "else",
        "additionalItems",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})


class OpenApiError(QuiverError):
    """A spec that cannot be read or is not OpenAPI 3."""

    code = "openapi_invalid"


class _Unsupported(Exception):
    """An operation that cannot become a tool; the message says why."""


@dataclass(frozen=True)
class Skipped:
    operation: str
    reason: str


@dataclass
class ImportReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    """Environment variables (or Quiver secrets) the written files need."""


# -- reading -----------------------------------------------------------------------------------


def read_spec(source: str) -> tuple[dict[str, Any], str | None]:
    """The spec document, and the URL it came from (relative server URLs resolve against it)."""
    if source.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(source, follow_redirects=True, timeout=FETCH_TIMEOUT)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OpenApiError(f"cannot fetch {source}: {exc}", hint="check the URL") from None
        text, origin = response.text, str(response.url)
    else:
        path = Path(source).expanduser()
        try:
            text, origin = path.read_text(encoding="utf-8"), None
        except OSError as exc:
            raise OpenApiError(f"cannot read {path}: {exc.strerror}", hint="give a spec file or URL") from None
    try:
        document = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise OpenApiError(f"{source} is not valid JSON or YAML: {exc}") from None
    check_spec(document, source)
    return document, origin


def check_spec(document: Any, source: str) -> None:
    if not isinstance(document, dict):
        raise OpenApiError(f"{source} is not an OpenAPI document (expected a mapping at the top)")
    version = str(document.get("openapi", ""))
    if not version.startswith("3."):
        found = f"Swagger {document['swagger']}" if "swagger" in document else f"openapi: {version or 'missing'}"
        raise OpenApiError(
            f"{source} is not OpenAPI 3.0 or 3.1 ({found})",
            hint="convert it to OpenAPI 3 first (e.g. with swagger2openapi)",
        )
    if not isinstance(document.get("paths"), dict):
        raise OpenApiError(f"{source} has no paths")


# -- $refs ---------------------------------------------------------------------------------------


class Resolver:
    """Follows local `$ref`s and inlines schemas."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise _Unsupported(f"$ref {ref} points outside the spec (external references are not supported)")
        node: Any = self.document
        for raw in filter(None, ref[1:].split("/")):
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _Unsupported(f"$ref {ref} points to nothing in the spec")
        return node

    def deref(self, node: Any) -> Any:
        """A parameter, request body or path item with its `$ref` chain followed (siblings win)."""
        for _ in range(MAX_REF_HOPS):
            if not (isinstance(node, Mapping) and "$ref" in node):
                return node
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            target = self.lookup(str(node["$ref"]))
            node = {**target, **siblings} if isinstance(target, Mapping) and siblings else target
        raise _Unsupported("a $ref chain loops")

    def schema(self, node: Any, stack: tuple[str, ...] = (), depth: int = 0) -> Any:
        """`node` as plain JSON Schema, every `$ref` inlined (recursion cut at `RECURSION_DEPTH`)."""
        if not isinstance(node, Mapping):
            return node  # `true`/`false` schemas (3.1)
        if "$ref" in node:
            ref = str(node["$ref"])
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            if stack.count(ref) >= RECURSION_DEPTH or depth >= MAX_SCHEMA_DEPTH:
                resolved: Any = _cut(ref, self.lookup(ref))
            else:
                resolved = self.schema(self.lookup(ref), (*stack, ref), depth + 1)
            if siblings and isinstance(resolved, dict):
                resolved = {**resolved, **self.schema(siblings, stack, depth)}
            return resolved
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, Mapping):
                out[key] = {name: self.schema(item, stack, depth + 1) for name, item in value.items()}
            elif key in _SCHEMA_VALUES and isinstance(value, Mapping):
                out[key] = self.schema(value, stack, depth + 1)
            elif (key in _SCHEMA_LISTS or key == "items") and isinstance(value, list):
                out[key] = [self.schema(item, stack, depth + 1) for item in value]
            elif not key.startswith("x-") and key not in _DROPPED_KEYWORDS:
                out[key] = value
        return _json_schema(node, out)


def _cut(ref: str, target: Any) -> dict[str, Any]:
    name = ref.rsplit("/", 1)[-1]
    cut: dict[str, Any] = {"description": f"a {name} (nested too deep to describe here)"}
    if isinstance(target, Mapping) and isinstance(target.get("type"), str):
        cut["type"] = target["type"]
    return cut


def _json_schema(original: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0's dialect in JSON Schema terms: `nullable`, boolean exclusive bounds, `example`."""
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
            out[exclusive] = out.pop(bound)
    if "example" in original and "examples" not in out:
        out["examples"] = [original["example"]]
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        del out["allOf"]
        out = {**all_of[0], **out}
    if original.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


# -- operations ----------------------------------------------------------------------------------


class Importer:
    """Turns the operations of one spec into capability documents."""

    def __init__(
        self, document: Mapping[str, Any], *, prefix: str, base_url: str | None = None, spec_url: str | None = None
    ) -> None:
        self.document = document
        self.resolver = Resolver(document)
        self.prefix = _snake(prefix)
        if not self.prefix:
            raise OpenApiError(f"--prefix '{prefix}' has no letters or digits", hint="e.g. --prefix github")
        self.base_url = base_url
        self.spec_url = spec_url
        self.report = ImportReport()
        self._names: set[str] = set()

    def capabilities(self) -> dict[str, dict[str, Any]]:
        """Tool name → capability document, for every operation that can be called."""
        found: dict[str, dict[str, Any]] = {}
        for path, raw_item in self.document["paths"].items():
            label_path = str(path)
            try:
                item = self.resolver.deref(raw_item)
            except _Unsupported as exc:
                self.report.skipped.append(Skipped(label_path, str(exc)))
                continue
            if not isinstance(item, Mapping):
                continue
            for method in HTTP_METHODS:
                operation = item.get(method)
                if not isinstance(operation, Mapping):
                    continue
                label = f"{method.upper()} {label_path}" + (
                    f" ({operation['operationId']})" if operation.get("operationId") else ""
                )
                try:
                    capability = self.operation(label_path, method, item, operation)
                except _Unsupported as exc:
                    self.report.skipped.append(Skipped(label, str(exc)))
                    continue
                found[capability["name"]] = capability
        return found

    def operation(
        self, path: str, method: str, item: Mapping[str, Any], operation: Mapping[str, Any]
    ) -> dict[str, Any]:
        name = self._name(str(operation.get("operationId") or f"{method}_{path}"))
        parameters = self._parameters(item, operation, name)
        taken = {p.get("argument") or p["name"] for p in parameters}
        capability: dict[str, Any] = {
            "name": name,
            "description": _description(operation, method, path),
            "method": method.upper(),
            "url": self._server(item, operation) + path,
        }
        body, headers = self._body(operation, taken, name)
        parameters += [p for p in body if p.get("in") == "body"]
        if parameters:
            capability["parameters"] = parameters
        whole = [p for p in body if "in" not in p]
        if whole:
            capability["body"] = whole[0]
        if headers:
            capability["headers"] = headers
        auth = self._auth(operation, name)
        if auth is not None:
            capability["auth"] = auth
        self._names.add(name)
        return capability

    def _name(self, operation: str) -> str:
        base = f"{self.prefix}_{_snake(operation)}"[:MAX_TOOL_NAME].rstrip("_")
        name, counter = base, 2
        while name in self._names:
            suffix = f"_{counter}"
            name = base[: MAX_TOOL_NAME - len(suffix)] + suffix
            counter += 1
        return name

    def _parameters(self, item: Mapping[str, Any], operation: Mapping[str, Any], tool: str) -> list[dict[str, Any]]:
        merged: dict[tuple[str, str], Mapping[str, Any]] = {}
        for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
            param = self.resolver.deref(raw)
            if isinstance(param, Mapping) and "name" in param and "in" in param:
                merged[(str(param["name"]), str(param["in"]))] = param  # the operation's own win
        out: list[dict[str, Any]] = []
        keys: set[str] = set()
        for (name, where), param in merged.items():
            if where not in ("path", "query", "header"):
                if param.get("required"):
                    raise _Unsupported(f"required {where} parameter '{name}' is not supported")
                self.report.notes.append(f"{tool}: {where} parameter '{name}' left out (not supported)")
                continue
            entry: dict[str, Any] = {"name": name, "in": where}
            if where == "path" or param.get("required"):
                entry["required"] = True
            if param.get("description"):
                entry["description"] = str(param["description"])
            key = name if _ARGUMENT.match(name) and name not in keys else _argument(f"{where}_{name}", keys)
            if key != name:
                entry["argument"] = key
            entry["schema"] = self._parameter_schema(param)
            keys.add(key)
            out.append(entry)
        return out

    def _parameter_schema(self, param: Mapping[str, Any]) -> Any:
        schema = param.get("schema")
        if schema is None and isinstance(param.get("content"), Mapping):
            media: Any = next(iter(param["content"].values()), {})
            schema = media.get("schema") if isinstance(media, Mapping) else None
        return self.resolver.schema(schema) if schema is not None else {"type": "string"}

    def _body(
        self, operation: Mapping[str, Any], taken: set[str], tool: str
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Body parameters (flattened fields) or one whole-body entry, and any header the media type needs."""
        body = self.resolver.deref(operation.get("requestBody"))
        if not isinstance(body, Mapping) or not isinstance(body.get("content"), Mapping):
            return [], {}
        content: Mapping[str, Any] = body["content"]
        required = bool(body.get("required"))
        media_type = next((m for m in content if _JSON_MEDIA.match(m)), None) or (
            _FORM_MEDIA if _FORM_MEDIA in content else None
        )
        if media_type is None:
            kinds = ", ".join(content) or "none"
            if required:
                raise _Unsupported(f"request body only as {kinds} (only JSON and form bodies are supported)")
            self.report.notes.append(f"{tool}: optional request body ({kinds}) left out (not supported)")
            return [], {}
        media = content[media_type] if isinstance(content[media_type], Mapping) else {}
        schema = self.resolver.schema(media.get("schema", {}))
        headers = {"Content-Type": media_type} if media_type not in ("application/json", _FORM_MEDIA) else {}
        if media_type != _FORM_MEDIA and _flattenable(schema, taken):
            needed = set(schema.get("required", [])) if required else set()
            fields = [
                {"name": key, "in": "body", **({"required": True} if key in needed else {}), "schema": value}
                for key, value in schema["properties"].items()
            ]
            return fields, headers
        whole: dict[str, Any] = {}
        argument = _argument("body", taken)
        if argument != "body":
            whole["argument"] = argument
        if required:
            whole["required"] = True
        if media_type == _FORM_MEDIA:
            whole["content_type"] = _FORM_MEDIA
        if body.get("description"):
            whole["description"] = str(body["description"])
        whole["schema"] = schema
        return [whole], headers

    def _server(self, item: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
        """`${PREFIX_BASE_URL:-<server>}`: the spec's (or --base-url's) server, overridable from the environment."""
        variable = _env_name(self.prefix, "BASE_URL")
        url = self.base_url
        if url is None:
            servers = operation.get("servers") or item.get("servers") or self.document.get("servers") or [{}]
            server = servers[0] if isinstance(servers[0], Mapping) else {}
            url = _server_url(server)
            if not url.startswith(("http://", "https://")):
                url = urljoin(self.spec_url, url) if self.spec_url else ""
        url = url.rstrip("/")
        if url and "}" not in url:
            return f"${{{variable}:-{url}}}"
        if variable not in self.report.variables:
            self.report.notes.append(f"no absolute server URL in the spec: set {variable}, or import with --base-url")
        self._need(variable)
        return f"${{{variable}}}"

    def _auth(self, operation: Mapping[str, Any], tool: str) -> dict[str, Any] | None:
        requirements = operation.get("security", self.document.get("security")) or []
        components = self.document.get("components") or {}
        schemes = components.get("securitySchemes") or {}
        first: dict[str, Any] | None = None
        for alternative in requirements:
            if not alternative:
                return None  # anonymous access is one of the options
            mapped = [self._scheme(str(name), self.resolver.deref(schemes.get(name))) for name in alternative]
            if len(mapped) == 1 and mapped[0] is not None:
                return self._used(mapped[0])
            first = first or next((m for m in mapped if m is not None), None)
        if first is not None:
            self.report.notes.append(f"{tool}: needs several security schemes at once; only one is sent")
            return self._used(first)
        if requirements:
            self.report.notes.append(f"{tool}: its security schemes are not supported; it is called without auth")
        return None

    def _scheme(self, name: str, scheme: Any) -> dict[str, Any] | None:
        if not isinstance(scheme, Mapping):
            return None
        kind = scheme.get("type")
        if kind in ("oauth2", "openIdConnect") or (kind == "http" and str(scheme.get("scheme")).lower() == "bearer"):
            return {"bearer": f"${{{_env_name(self.prefix, 'TOKEN')}}}"}
        if kind == "http" and str(scheme.get("scheme")).lower() == "basic":
            return {
                "basic": {
                    "username": f"${{{_env_name(self.prefix, 'USERNAME')}}}",
                    "password": f"${{{_env_name(self.prefix, 'PASSWORD')}}}",
                }
            }
        if kind == "apiKey" and scheme.get("name"):
            value = f"${{{_env_name(self.prefix, _snake(name))}}}"
            if scheme.get("in") == "cookie":
                return {"api_key": {"in": "header", "name": "Cookie", "value": f"{scheme['name']}={value}"}}
            return {"api_key": {"in": scheme.get("in", "header"), "name": str(scheme["name"]), "value": value}}
        return None

    def _used(self, auth: dict[str, Any]) -> dict[str, Any]:
        for variable in re.findall(r"\$\{([A-Za-z0-9_]+)\}", json.dumps(auth)):
            self._need(variable)
        return auth

    def _need(self, variable: str) -> None:
        if variable not in self.report.variables:
            self.report.variables.append(variable)


def _flattenable(schema: Any, taken: set[str]) -> bool:
    """Whether a JSON body's fields can be top-level tool arguments (a plain object, no clashes)."""
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        return False
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return False
    if any(key in schema for key in ("allOf", "anyOf", "oneOf", "not", "if")) or schema.get("additionalProperties"):
        return False
    return all(_ARGUMENT.match(str(key)) and key not in taken for key in properties)


def _server_url(server: Mapping[str, Any]) -> str:
    url = str(server.get("url", ""))
    for variable, spec in (server.get("variables") or {}).items():
        default = spec.get("default") if isinstance(spec, Mapping) else None
        if default is not None:
            url = url.replace(f"{{{variable}}}", str(default))
    return url


def _description(operation: Mapping[str, Any], method: str, path: str) -> str:
    parts = [str(operation[key]).strip() for key in ("summary", "description") if operation.get(key)]
    if len(parts) == 2 and parts[1].startswith(parts[0]):
        parts = parts[1:]
    text = "\n\n".join(parts) or f"{method.upper()} {path}"
    if operation.get("deprecated"):
        text = "Deprecated. " + text
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _snake(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _env_name(prefix: str, suffix: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{prefix}_{suffix}").strip("_").upper()


def _argument(wanted: str, taken: set[str]) -> str:
    base = (re.sub(r"[^A-Za-z0-9_.\-]+", "_", wanted).strip("_") or "arg")[:60]
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}_{counter}", counter + 1
    return name


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (descriptions) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


# -- writing -------------------------------------------------------------------------------------


def import_openapi(source: str, *, prefix: str, out: Path, base_url: str | None = None) -> ImportReport:
    """Read the spec at `source` and write one capability file per callable operation into `out`."""
    document, origin = read_spec(source)
    return write_capabilities(document, prefix=prefix, out=out, base_url=base_url, spec_url=origin, source=source)


def write_capabilities(
    document: Mapping[str, Any],
    *,
    prefix: str,
    out: Path,
    base_url: str | None = None,
    spec_url: str | None = None,
    source: str = "an OpenAPI spec",
) -> ImportReport:
    from pydantic import ValidationError

    from quiver._files import write_atomic
    from quiver.backends.capabilities import Capability

    importer = Importer(document, prefix=prefix, base_url=base_url, spec_url=spec_url)
    found = importer.capabilities()
    report = importer.report
    out.mkdir(parents=True, exist_ok=True)
    info = document.get("info") or {}
    title = f"{info.get('title', 'an API')} {info.get('version', '')}".strip()
    header = f"# {title}, imported from {source} by `quiver import-openapi`; edit freely.\n"
    for name, capability in found.items():
        try:
            Capability.model_validate(capability)
        except ValidationError as exc:
            report.skipped.append(Skipped(name, f"does not make a valid capability: {exc.errors()[0]['msg']}"))
            continue
        path = out / f"{name}.yaml"
        text = yaml.dump(capability, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        write_atomic(path, header + text)
        report.written.append(path)
    return report
