"""`quiver demo` (what `make demo` runs) completes against the real reference servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import NODE_MODULES

pytestmark = pytest.mark.e2e


def test_demo_walks_search_describe_call_for_every_server(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "quiver", "demo", "--node-modules", str(NODE_MODULES)],
        capture_output=True,
        text=True,
        timeout=110,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "6 real servers" in text
    assert "The client sees 5 tools" in text
    assert text.count("call_tool → ok") == 5
    assert "call_tool → error" not in text
    assert "Quiver meta-tools + instructions" in text
    assert "less context" in text
