"""Config: typed models, discovery and reading of config files, `${VAR}` interpolation."""

from quiver.config.loader import discover_config_path, load_config, parse_config, read_config_file
from quiver.config.models import (
    AnyBackendConfig,
    GatewaySettings,
    HttpBackendConfig,
    HttpSettings,
    QuiverConfig,
    SseBackendConfig,
    StdioBackendConfig,
)

__all__ = [
    "AnyBackendConfig",
    "GatewaySettings",
    "HttpBackendConfig",
    "HttpSettings",
    "QuiverConfig",
    "SseBackendConfig",
    "StdioBackendConfig",
    "discover_config_path",
    "load_config",
    "parse_config",
    "read_config_file",
]
