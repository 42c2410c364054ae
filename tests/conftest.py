"""Shared fixtures: every test runs in its own directory with its own cache and state dirs."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh directory; no config, cache or state leaks in from the machine or other tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUIVER_CONFIG", raising=False)
    monkeypatch.setenv("QUIVER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUIVER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("QUIVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    # A warm tiktoken cache must not hide a missing offline encoding.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    return tmp_path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def lexical_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process search stays lexical even where the optional model is installed (as in CI);
    tests of the semantic stage give their own model."""
    import quiver.search.engine as engine

    monkeypatch.setattr(engine, "find_model_dir", lambda: None)
