from __future__ import annotations

import pytest

from quiver.config import HttpBackendConfig, StdioBackendConfig
from quiver.config.interpolate import interpolate, resolve_backend
from quiver.errors import MissingEnvError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOME_DIR}/x", "/home/a/x"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY}", ""),
        ("$${HOME_DIR}", "${HOME_DIR}"),
        ("no refs", "no refs"),
        ("${HOME_DIR}:${HOME_DIR}", "/home/a:/home/a"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    env = {"HOME_DIR": "/home/a", "EMPTY": ""}
    assert interpolate(text, env, backend="b", where="args[0]") == expected


def test_missing_variable_names_variable_and_backend() -> None:
    with pytest.raises(MissingEnvError) as caught:
        interpolate("Bearer ${GITHUB_TOKEN}", {}, backend="github", where="headers.Authorization")
    error = caught.value
    assert error.variable == "GITHUB_TOKEN"
    assert "backend 'github'" in error.message
    assert "GITHUB_TOKEN" in error.message
    assert "headers.Authorization" in error.message
    assert error.hint is not None
    assert "${GITHUB_TOKEN:-" in error.hint


def test_resolves_every_field_of_stdio_and_http() -> None:
    env = {"BIN": "/opt/bin", "TOKEN": "t0k", "PORT": "9"}
    stdio = StdioBackendConfig(command="${BIN}/srv", args=["--port=${PORT}"], env={"K": "${TOKEN}"}, cwd="${BIN}")
    resolved = resolve_backend("s", stdio, env)
    assert isinstance(resolved, StdioBackendConfig)
    assert (resolved.command, resolved.args, resolved.env, resolved.cwd) == (
        "/opt/bin/srv",
        ["--port=9"],
        {"K": "t0k"},
        "/opt/bin",
    )
    http = HttpBackendConfig(url="http://127.0.0.1:${PORT}/mcp", headers={"Authorization": "Bearer ${TOKEN}"})
    resolved_http = resolve_backend("h", http, env)
    assert isinstance(resolved_http, HttpBackendConfig)
    assert resolved_http.url == "http://127.0.0.1:9/mcp"
    assert resolved_http.headers == {"Authorization": "Bearer t0k"}
