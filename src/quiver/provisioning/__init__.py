"""Provisioning: the manifest of MCP servers Quiver can install on demand, and its loader."""

from quiver.provisioning.manifest import (
    CATEGORIES,
    EnvVar,
    Install,
    InstallKind,
    Manifest,
    ManifestEntry,
    ManifestError,
    NpmInstall,
    PypiInstall,
    RemoteInstall,
    UnknownServerError,
    load_manifest,
    parse_manifest,
)

__all__ = [
    "CATEGORIES",
    "EnvVar",
    "Install",
    "InstallKind",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "NpmInstall",
    "PypiInstall",
    "RemoteInstall",
    "UnknownServerError",
    "load_manifest",
    "parse_manifest",
]
