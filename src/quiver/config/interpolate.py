"""`${VAR}` and `${VAR:-default}` in a backend's command, args, env, cwd, url and headers.

Resolved when the backend starts, not when the config loads, so one backend's missing
variable never stops the others; the error names the variable and the backend. `$${VAR}`
is a literal `${VAR}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from quiver.config.models import AnyBackendConfig, PluginBackendConfig, RestBackendConfig, StdioBackendConfig
from quiver.errors import MissingEnvError

_REFERENCE = re.compile(r"(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: str, environ: Mapping[str, str], *, backend: str, where: str) -> str:
    """Replace every `${VAR}` in `value`; raise `MissingEnvError` for an unset variable."""

    def replace(match: re.Match[str]) -> str:
        escaped, name, default = match.group(1), match.group(2), match.group(3)
        if escaped:
            return match.group(0)[1:]
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:  # set but empty, and no default: empty is what the user set
            return found
        raise MissingEnvError(name, backend, where, obtain_hint(name, backend))

    return _REFERENCE.sub(replace, value) if "${" in value else value


def obtain_hint(variable: str, backend: str) -> str | None:
    """Where to get a value for `variable`, from the manifest entry of that name (or any that declares it)."""
    from quiver.provisioning.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest()
    except ManifestError:  # a broken bundled manifest must not hide the real error
        return None
    own = manifest.get(backend)
    candidates = [own, *manifest] if own is not None else list(manifest)
    found = (var.obtain for entry in candidates for var in entry.env if var.name == variable and var.obtain)
    return next(found, None)


def referenced_variables(value: str) -> list[str]:
    """Names of the variables `value` refers to without a default (for diagnostics)."""
    return [m.group(2) for m in _REFERENCE.finditer(value) if not m.group(1) and m.group(3) is None]


def resolve_backend(name: str, config: AnyBackendConfig, environ: Mapping[str, str]) -> AnyBackendConfig:
    """A copy of `config` with every reference replaced."""

    def sub(value: str, where: str) -> str:
        return interpolate(value, environ, backend=name, where=where)

    if isinstance(config, PluginBackendConfig):
        return config
    if isinstance(config, StdioBackendConfig):
        return config.model_copy(
            update={
                "command": sub(config.command, "command"),
                "args": [sub(arg, f"args[{i}]") for i, arg in enumerate(config.args)],
                "env": {key: sub(val, f"env.{key}") for key, val in config.env.items()},
                "cwd": sub(config.cwd, "cwd") if config.cwd else None,
            }
        )
    if isinstance(config, RestBackendConfig):
        return config.model_copy(
            update={
                "base_url": sub(config.base_url, "base_url") if config.base_url else None,
                "headers": {key: sub(val, f"headers.{key}") for key, val in config.headers.items()},
            }
        )
    return config.model_copy(
        update={
            "url": sub(config.url, "url"),
            "headers": {key: sub(val, f"headers.{key}") for key, val in config.headers.items()},
        }
    )
