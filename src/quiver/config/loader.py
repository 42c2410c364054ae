"""Finding and reading config files.

Discovery order: an explicit path (`--config`), `$QUIVER_CONFIG`, `./quiver.yaml`,
`./.mcp.json`, then `quiver.yaml` in the user config dir. Quiver's own YAML is strict (a
typo is an error); `mcpServers` JSON written for other clients is read leniently (keys
other clients use are dropped with a warning). Every problem becomes one `ConfigError`
naming the file, the key and the reason.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from quiver.config.models import (
    BackendBase,
    GatewaySettings,
    HttpBackendConfig,
    HttpSettings,
    PluginBackendConfig,
    QuiverConfig,
    RestBackendConfig,
    SseBackendConfig,
    StdioBackendConfig,
    error_location,
)
from quiver.config.policy import AuthConfig, Limits, OAuthConfig, PolicyConfig, RateLimit, Redaction, Role, Scanning
from quiver.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_ENV = "QUIVER_CONFIG"
LOCAL_FILES = ("quiver.yaml", "quiver.yml", ".mcp.json")
USER_FILE = "quiver.yaml"
APP_NAME = "quiver"

# Keys other clients put on a server entry that mean nothing to Quiver (or map onto its own).
_FOREIGN_KEYS = {
    "alwaysAllow",
    "autoApprove",
    "timeout",
    "disabledTools",
    "trust",
    "includeTools",
    "excludeTools",
}


def user_config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def discover_config_path(
    explicit: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file to use, or None when there is none anywhere."""
    environ = os.environ if environ is None else environ
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", hint="check the --config path")
        return path
    if environ.get(CONFIG_ENV):
        path = Path(environ[CONFIG_ENV]).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${CONFIG_ENV}) does not exist", hint=f"fix ${CONFIG_ENV}")
        return path
    here = cwd or Path.cwd()
    for name in LOCAL_FILES:
        if (here / name).is_file():
            return here / name
    user = user_config_dir() / USER_FILE
    return user if user.is_file() else None


def load_config(
    explicit: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> QuiverConfig:
    """Discover and read the config; an empty config when no file exists."""
    path = discover_config_path(explicit, environ=environ, cwd=cwd)
    if path is None:
        return with_entry_point_plugins(QuiverConfig())
    return read_config_file(path)


def read_config_file(path: Path) -> QuiverConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})", hint="check the file's permissions") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> QuiverConfig:
    is_json = path.suffix == ".json"
    data = _parse_json(text, path) if is_json else _parse_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    data = _normalise(data, path, lenient=is_json)
    policy_file = None
    if isinstance(data.get("policy"), str):
        policy_file, data["policy"] = _policy_file(data["policy"], path)
    try:
        config = QuiverConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            _format_validation(exc, policy_file if policy_file and _in_policy(exc) else path),
            hint="fix the key named above",
        ) from None
    config.source = path
    config.policy_source = policy_file
    return with_entry_point_plugins(config)


def with_entry_point_plugins(config: QuiverConfig) -> QuiverConfig:
    """Add the plugins installed packages publish (`quiver.plugins` entry points); the config file wins."""
    if not config.gateway.plugin_entry_points:
        return config
    from quiver.backends.plugin import discover_entry_points

    for name, plugin in discover_entry_points().items():
        config.backends.setdefault(name, plugin)
    return config


def _policy_file(reference: str, config_path: Path) -> tuple[Path, Any]:
    """`policy: ./policy.yaml` keeps the policy in a file of its own (relative to the config)."""
    path = (config_path.parent / Path(reference).expanduser()).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{config_path}: policy: the policy file {path} cannot be read ({exc.strerror})",
            hint="give a path relative to the config file, or write the policy inline under policy:",
        ) from None
    data = _parse_json(text, path) if path.suffix == ".json" else _parse_yaml(text, path)
    if isinstance(data, dict) and set(data) == {"policy"}:
        data = data["policy"]  # the file may repeat the top-level key
    return path, {} if data is None else data


def _in_policy(exc: ValidationError) -> bool:
    return any(error["loc"][:1] == ("policy",) for error in exc.errors(include_url=False))


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})",
            hint="check for a missing comma or quote, or a trailing comma",
        ) from None


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}invalid YAML ({problem})", hint="check the indentation") from None


def _normalise(data: dict[str, Any], path: Path, *, lenient: bool) -> dict[str, Any]:
    """Fold the `mcpServers` spelling into `backends`; tidy foreign entries in lenient mode."""
    data = dict(data)
    servers = data.pop("mcpServers", None)
    if lenient:
        data = {key: value for key, value in data.items() if key in ("backends", "gateway", "policy", "auth")}
    if servers is None:
        return data
    if not isinstance(servers, dict):
        raise ConfigError(f"{path}: mcpServers: must be a mapping of name to server")
    backends = data.setdefault("backends", {})
    if not isinstance(backends, dict):
        raise ConfigError(f"{path}: backends: must be a mapping of name to server")
    for name, entry in servers.items():
        if name in backends:
            raise ConfigError(f"{path}: mcpServers.{name}: also defined under backends", hint="keep one of them")
        backends[name] = _tidy_foreign_entry(name, entry, path) if lenient else entry
    return data


def _tidy_foreign_entry(name: str, entry: Any, path: Path) -> Any:
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    if entry.pop("disabled", False):
        entry["enabled"] = False
    if "transportType" in entry and "type" not in entry:
        entry["type"] = entry.pop("transportType")
    known = set(BackendBase.model_fields) | {"type", "command", "args", "env", "cwd", "url", "headers"}
    dropped = sorted(key for key in entry if key not in known)
    if dropped:
        unexpected = [key for key in dropped if key not in _FOREIGN_KEYS]
        if unexpected:
            logger.warning("%s: mcpServers.%s: ignoring keys Quiver does not use: %s", path, name, unexpected)
        entry = {key: value for key, value in entry.items() if key in known}
    return entry


def _known_keys() -> list[str]:
    models: list[type[BaseModel]] = [
        QuiverConfig,
        GatewaySettings,
        HttpSettings,
        StdioBackendConfig,
        HttpBackendConfig,
        SseBackendConfig,
        RestBackendConfig,
        PluginBackendConfig,
        PolicyConfig,
        Role,
        Limits,
        RateLimit,
        Redaction,
        Scanning,
        AuthConfig,
        OAuthConfig,
    ]
    return sorted({name for model in models for name in model.model_fields})


def _format_validation(exc: ValidationError, path: Path) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        # Under `backends.NAME` pydantic adds the union's tag: not a key the file has.
        loc = error_location(error["loc"], tag_at=2 if error["loc"][:1] == ("backends",) else -1)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
            near = difflib.get_close_matches(str(error["loc"][-1]), _known_keys(), n=1)
            if near:
                message += f" (did you mean '{near[0]}'?)"
        elif error["type"] == "missing":
            message = "required key is missing"
            if error["loc"][-1] == "command":
                message += " (a backend needs 'command' to run over stdio, or 'url' for http/sse)"
        lines.append(f"{path}: {loc or '(top level)'}: {message}")
    return "\n".join(lines)
