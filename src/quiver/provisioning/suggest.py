"""Which manifest servers search may suggest: those not configured under their name or their package."""

from __future__ import annotations

from collections.abc import Mapping

from quiver.catalog import Installable
from quiver.config.models import AnyBackendConfig, StdioBackendConfig
from quiver.provisioning.manifest import Manifest, ManifestEntry


def installable(manifest: Manifest, configured: Mapping[str, AnyBackendConfig]) -> list[Installable]:
    """Every manifest server not already behind the gateway, as search sees it."""
    commands = [
        " ".join([backend.command, *backend.args])
        for backend in configured.values()
        if isinstance(backend, StdioBackendConfig)
    ]
    urls = {getattr(backend, "url", None) for backend in configured.values()}
    return [
        Installable(entry.name, entry.title, entry.description, tuple(entry.required_env), entry.keywords)
        for entry in manifest
        if entry.name not in configured and not _runs(entry, commands, urls)
    ]


def _runs(entry: ManifestEntry, commands: list[str], urls: set[str | None]) -> bool:
    """Whether a configured backend already runs this entry's package (or remote URL) under another name."""
    spec = entry.install
    if spec.remote is not None:
        return spec.remote.url in urls
    package = spec.npm.package if spec.npm is not None else spec.pypi.package if spec.pypi is not None else ""
    return any(package in command.split() or f"{package}@" in command for command in commands)
