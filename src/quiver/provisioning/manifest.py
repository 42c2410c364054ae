"""The bundled manifest: MCP servers that Quiver knows how to install.

`manifest.yaml` beside this module lists real servers, each installed from npm or PyPI or reached
at a hosted URL, with what the user must supply (environment variables, and where to get them).
`load_manifest()` validates the file once, entry by entry, so an error names the server and the
field; everything downstream receives `ManifestEntry` models. An entry's version is the one it
was verified against; `bench/manifest_check.py` re-checks every package against its registry.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from quiver.config.interpolate import referenced_variables
from quiver.errors import ConfigError, QuiverError
from quiver.ids import check_backend_name

MANIFEST_RESOURCE = "manifest.yaml"
FORMAT_VERSION = 1
MAX_SUGGESTIONS = 3  # as many names as a "did you mean" hint can offer before it stops helping

InstallKind = Literal["npm", "pypi", "remote"]
Transport = Literal["stdio", "http", "sse"]

# The fixed vocabulary an entry's `categories` come from; search and listings group by these.
CATEGORIES: Mapping[str, str] = MappingProxyType(
    {
        "ai": "AI models, inference, agents and ML platforms",
        "browser": "drives a real web browser (clicks, forms, screenshots)",
        "business": "CRM, ERP, marketing and sales systems",
        "cloud": "cloud providers and hosting platforms",
        "commerce": "online stores and e-commerce platforms",
        "communication": "chat, email, messaging and phone",
        "data": "databases, warehouses, vector stores and analytics",
        "design": "design files, diagrams and charts",
        "developer": "source code, repositories and developer tooling",
        "devops": "CI/CD, containers, Kubernetes and infrastructure as code",
        "documents": "office documents, PDFs and format conversion",
        "files": "local files and cloud drives",
        "finance": "payments, billing, costs and market data",
        "knowledge": "memory, notes, wikis and documentation lookup",
        "location": "maps, places, routes, travel and weather",
        "media": "images, audio, video and music",
        "monitoring": "observability, errors, logs and incidents",
        "productivity": "tasks, projects, calendars and office suites",
        "research": "academic papers and scientific literature",
        "search": "web search engines",
        "security": "code scanning and security analysis",
        "system": "shell commands, processes and the local machine",
        "utility": "small self-contained helpers (time, maths)",
        "web": "fetching, scraping and crawling web pages",
    }
)

_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NPM_PACKAGE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$")
_PYPI_PACKAGE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_HTTP_URL = re.compile(r"^https?://\S+$")


class ManifestError(ConfigError):
    """The manifest file cannot be read or one of its entries does not validate."""

    code = "manifest_invalid"


class UnknownServerError(QuiverError):
    """A server name that the manifest does not list."""

    code = "unknown_server"

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        if suggestions:
            hint = "did you mean " + ", ".join(f"'{s}'" for s in suggestions) + "?"
        else:
            hint = "search the manifest by what the server does (a product or a task) to find its name"
        super().__init__(f"no server named '{name}' in the manifest", hint=hint)
        self.suggestions = list(suggestions)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_category(value: str) -> str:
    if value not in CATEGORIES:
        near = difflib.get_close_matches(value, list(CATEGORIES), n=1)
        guess = f" (did you mean '{near[0]}'?)" if near else ""
        raise ValueError(f"unknown category '{value}'{guess}; use one of: {', '.join(CATEGORIES)}")
    return value


Category = Annotated[str, AfterValidator(_known_category)]


def _one_line(value: str) -> str:
    if "\n" in value.strip():
        raise ValueError("must be one line")
    return value.strip()


OneLine = Annotated[str, Field(min_length=1), AfterValidator(_one_line)]


class EnvVar(_Strict):
    """An environment variable the server reads (or its arguments refer to), and how to get a value."""

    name: str
    description: OneLine
    obtain: str | None = Field(default=None, description="Where or how to get a value: a URL or instructions.")
    required: bool = False
    secret: bool = Field(default=False, description="Holds a credential: never log or echo it.")
    default: str | None = Field(default=None, description="Used when the variable is unset.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"'{value}' is not a valid environment variable name")
        return value

    @field_validator("default")
    @classmethod
    def _no_brace(cls, value: str | None) -> str | None:
        if value is not None and "}" in value:
            raise ValueError("cannot contain '}' (it ends a ${VAR:-default} reference)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EnvVar:
        if self.required and not self.obtain:
            raise ValueError(f"{self.name} is required, so 'obtain' must say where to get a value")
        if self.required and self.default is not None:
            raise ValueError(f"{self.name} has a default, so it cannot be required")
        return self

    def reference(self) -> str:
        """How a backend config refers to this variable: unset is an error only when it is required."""
        if self.required:
            return f"${{{self.name}}}"
        return f"${{{self.name}:-{self.default or ''}}}"


class NpmInstall(_Strict):
    package: str
    version: str | None = Field(default=None, description="The version this entry was verified against.")
    bin: str | None = Field(default=None, description="The executable to run; default: the unscoped package name.")
    node: str | None = Field(default=None, description="The Node.js versions that version supports (engines.node).")

    @field_validator("package")
    @classmethod
    def _valid_package(cls, value: str) -> str:
        if not _NPM_PACKAGE.match(value):
            raise ValueError(f"'{value}' is not a valid npm package name")
        return value

    @property
    def bin_name(self) -> str:
        return self.bin or self.package.rsplit("/", 1)[-1]


class PypiInstall(_Strict):
    package: str
    version: str | None = Field(default=None, description="The version this entry was verified against.")
    entry_point: str | None = Field(default=None, description="The console script to run; default: the package name.")
    python: str | None = Field(default=None, description="The Python versions that version supports (Requires-Python).")
    requires: tuple[str, ...] = Field(
        default=(),
        description="Extra requirements pip installs alongside, where the package's own are too loose (e.g. 'mcp<2').",
    )

    @field_validator("package")
    @classmethod
    def _valid_package(cls, value: str) -> str:
        if not _PYPI_PACKAGE.match(value):
            raise ValueError(f"'{value}' is not a valid PyPI project name")
        return value

    @property
    def script(self) -> str:
        return self.entry_point or self.package


class RemoteInstall(_Strict):
    url: str
    transport: Literal["http", "sse"] = "http"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not _HTTP_URL.match(value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class Install(_Strict):
    """Exactly one way to get the server: an npm package, a PyPI package, or a hosted URL."""

    npm: NpmInstall | None = None
    pypi: PypiInstall | None = None
    remote: RemoteInstall | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Install:
        given = [kind for kind in ("npm", "pypi", "remote") if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"needs exactly one of npm, pypi, remote (found: {found})")
        return self

    @property
    def kind(self) -> InstallKind:
        if self.npm is not None:
            return "npm"
        return "pypi" if self.pypi is not None else "remote"

    @property
    def spec(self) -> NpmInstall | PypiInstall | RemoteInstall:
        if self.npm is not None:
            return self.npm
        if self.pypi is not None:
            return self.pypi
        if self.remote is not None:
            return self.remote
        raise AssertionError("unreachable: _exactly_one guarantees one install method")


class ManifestEntry(_Strict):
    """One installable server."""

    name: str
    title: OneLine
    description: OneLine
    categories: tuple[Category, ...]
    keywords: tuple[str, ...] = ()
    install: Install
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    transport: Transport = "stdio"
    homepage: str
    notes: str | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        try:
            check_backend_name(value)
        except ConfigError as exc:
            raise ValueError(f"{exc.message} ({exc.hint})") from None
        if not _SERVER_NAME.match(value):
            raise ValueError("use lowercase letters, digits, '_' and '-', starting with a letter or digit")
        return value

    @field_validator("categories")
    @classmethod
    def _some_category(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one category")
        return value

    @field_validator("homepage")
    @classmethod
    def _http_homepage(cls, value: str) -> str:
        if not _HTTP_URL.match(value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ManifestEntry:
        remote = self.install.remote
        if remote is not None:
            if self.transport != remote.transport:
                raise ValueError(f"transport is '{self.transport}' but install.remote says '{remote.transport}'")
            if self.args:
                raise ValueError("a remote server takes no args")
        elif self.transport != "stdio":
            raise ValueError(f"{self.install.kind} installs run over stdio, not '{self.transport}'")
        names = [var.name for var in self.env]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"env lists {', '.join(duplicates)} more than once")
        undeclared = sorted(set(self._references()) - set(names))
        if undeclared:
            raise ValueError(f"refers to ${{{undeclared[0]}}} without a default, but env does not declare it")
        return self

    def _references(self) -> list[str]:
        texts = list(self.args)
        if self.install.remote is not None:
            texts += [self.install.remote.url, *self.install.remote.headers.values()]
        return [name for text in texts for name in referenced_variables(text)]

    @property
    def kind(self) -> InstallKind:
        return self.install.kind

    @property
    def required_env(self) -> list[str]:
        """Variables that must be set before the server can start."""
        return [var.name for var in self.env if var.required]

    def env_references(self) -> dict[str, str]:
        """`{NAME: "${NAME}"}` for every declared variable, so the gateway passes the user's values through."""
        return {var.name: var.reference() for var in self.env}

    def backend_config(self, command: str | None = None) -> dict[str, Any]:
        """The backend config for this server once installed, with `command` the installed executable.

        Variables stay `${NAME}` references: the gateway resolves them when the backend starts.
        A remote server needs no command.
        """
        remote = self.install.remote
        if remote is not None:
            return {"type": remote.transport, "url": remote.url, "headers": dict(remote.headers)}
        if not command:
            raise ValueError(f"'{self.name}' runs a local process: backend_config() needs the installed command")
        return {"command": command, "args": list(self.args), "env": self.env_references()}

    def search_text(self) -> str:
        """Everything a search should match an entry by, as one string."""
        return " ".join([self.name, self.title, self.description, *self.keywords, *self.categories])


class Manifest:
    """The validated entries, in file order, looked up by name."""

    __slots__ = ("_by_name", "source")

    def __init__(self, entries: Sequence[ManifestEntry], source: str = "<manifest>") -> None:
        self.source = source
        self._by_name: dict[str, ManifestEntry] = {}
        for entry in entries:
            if entry.name in self._by_name:
                raise ManifestError(f"{source}: server name '{entry.name}' is used more than once")
            self._by_name[entry.name] = entry

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._by_name

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> ManifestEntry | None:
        return self._by_name.get(_key(name))

    def entry(self, name: str) -> ManifestEntry:
        """The entry called `name`, or an `UnknownServerError` that suggests near names."""
        found = self.get(name)
        if found is None:
            raise UnknownServerError(name, self.did_you_mean(name))
        return found

    def did_you_mean(self, name: str, n: int = MAX_SUGGESTIONS) -> list[str]:
        """Names close to `name`: similar spellings, then servers it names a product of, then name prefixes.

        `postgresql` finds `postgres`, `confluence` finds `atlassian` (a keyword), `aws` finds `aws-*`.
        """
        key = _key(name)
        if not key:
            return []
        found = difflib.get_close_matches(key, self.names, n=n, cutoff=0.6)
        tiers: tuple[Callable[[ManifestEntry], bool], ...] = (
            lambda entry: key in {word.lower() for word in entry.keywords} or key in _words(entry.title),
            lambda entry: entry.name.startswith(key),
        )
        for matches in tiers:
            for entry in self:
                if len(found) >= n:
                    return found
                if entry.name not in found and matches(entry):
                    found.append(entry.name)
        return found

    def in_category(self, category: str) -> list[ManifestEntry]:
        _known_category(category)
        return [entry for entry in self if category in entry.categories]


def _key(name: str) -> str:
    return name.strip().lower()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def parse_manifest(text: str, source: str = "<manifest>") -> Manifest:
    """Validate manifest YAML; a `ManifestError` lists every problem, each naming its entry and field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers"), list):
        raise ManifestError(f"{source}: must be a mapping with a 'servers' list")
    unknown = sorted(str(key) for key in data if key not in ("version", "servers"))
    if unknown:
        raise ManifestError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    if data.get("version") != FORMAT_VERSION:
        raise ManifestError(f"{source}: version: must be {FORMAT_VERSION}, not {data.get('version')!r}")
    entries: list[ManifestEntry] = []
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(data["servers"]):
        label = _label(index, raw)
        try:
            entry = ManifestEntry.model_validate(raw)
        except ValidationError as exc:
            problems += [f"{source}: {label}: {problem}" for problem in _problems(exc)]
            continue
        if entry.name in first_index:
            problems.append(f"{source}: {label}: name: already used by servers[{first_index[entry.name]}]")
            continue
        first_index[entry.name] = index
        entries.append(entry)
    if problems:
        raise ManifestError("\n".join(problems), hint="fix the entries named above; each line gives the field")
    return Manifest(entries, source)


def _label(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"servers[{index}] ('{name}')" if isinstance(name, str) else f"servers[{index}]"


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{where or '(entry)'}: {message}")
    return lines


def load_manifest(path: str | Path | None = None) -> Manifest:
    """The manifest at `path`, or the one bundled with Quiver (read and validated once, then cached)."""
    if path is None:
        return _bundled_manifest()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {file}: {exc.strerror or exc}") from None
    return parse_manifest(text, str(file))


@functools.cache
def _bundled_manifest() -> Manifest:
    text = resources.files("quiver.provisioning").joinpath(MANIFEST_RESOURCE).read_text(encoding="utf-8")
    return parse_manifest(text, MANIFEST_RESOURCE)
