"""The command line: real config files, real backends, one-line errors with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quiver.cli.app import app
from quiver.cli.arguments import ArgumentSyntaxError, parse_arguments
from tests.fakes import install_fake_model
from tests.servers import time_backend, write_config

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "quiver.json", {"time": time_backend(description="Time and time zones")})


@pytest.mark.e2e
def test_refresh_list_search_describe_call(config: Path) -> None:
    listed = runner.invoke(app, ["list", "--config", str(config), "--json"])
    assert listed.exit_code == 0
    assert json.loads(listed.stdout) == [
        {"name": "time", "type": "stdio", "tools": None, "description": "Time and time zones"}
    ]
    refreshed = runner.invoke(app, ["refresh", "--config", str(config)])
    assert refreshed.exit_code == 0, refreshed.output
    assert "time: 2 tools" in refreshed.stdout
    listed = runner.invoke(app, ["list", "--config", str(config), "--json"])
    assert json.loads(listed.stdout)[0]["tools"] == 2
    found = runner.invoke(app, ["search", "convert a time to another timezone", "--config", str(config), "--json"])
    assert json.loads(found.stdout)["results"][0]["id"] == "time.convert_time"
    described = runner.invoke(app, ["describe", "time.get_current_time", "--config", str(config)])
    assert json.loads(described.stdout)[0]["inputSchema"]["required"] == ["timezone"]
    called = runner.invoke(
        app, ["call", "time.get_current_time", "--arg", "timezone=America/New_York", "--config", str(config)]
    )
    assert called.exit_code == 0, called.output
    assert json.loads(called.stdout)["timezone"] == "America/New_York"
    raw = runner.invoke(
        app, ["call", "time.get_current_time", "--json", '{"timezone": "UTC"}', "--raw", "--config", str(config)]
    )
    assert json.loads(raw.stdout)["structuredContent"]["timezone"] == "UTC"
    for given in ('{"timezone": "Europe/Paris"}', "timezone=Europe/Paris"):
        positional = runner.invoke(app, ["call", "time.get_current_time", given, "--config", str(config)])
        assert positional.exit_code == 0, positional.output
        assert json.loads(positional.stdout)["timezone"] == "Europe/Paris"


@pytest.mark.e2e
def test_search_shows_servers_to_install_and_how(config: Path) -> None:
    found = runner.invoke(app, ["search", "open a pull request on my github repository", "--config", str(config)])
    assert found.exit_code == 0, found.output
    assert "github [server, not installed" in found.stdout
    assert "quiver install NAME" in found.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["call", "time.get_curent_time"], "unknown tool id 'time.get_curent_time'", "did you mean"),
        (["call", "time.get_current_time", "--arg", "tz=UTC"], "argument 'timezone' is required", "describe_tools"),
        (["call", "time.get_current_time", "--json", "{oops"], "--json is not valid JSON", "quote it"),
        (["describe", "nosuch.tool"], "unknown tool id", None),
        (["call", "time.get_current_time", "UTC"], "'UTC' is neither a JSON object nor key=value", "key=value pairs"),
        (["call", "time.get_current_time", "{}", "--json", "{}"], "the arguments are given twice", "keep one"),
    ],
)
def test_errors_are_one_line_with_a_hint(config: Path, args: list[str], message: str, hint: str | None) -> None:
    result = runner.invoke(app, [*args, "--config", str(config)])
    assert result.exit_code != 0
    output = result.output
    assert message in output
    if hint:
        assert f"hint: {hint}" in output or hint in output
    assert "Traceback" not in output


def test_bad_config_names_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "quiver.yaml"
    bad.write_text("backends:\n  time:\n    comand: mcp-server-time\n")
    result = runner.invoke(app, ["list", "--config", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {bad}: backends.time.")
    assert f"{bad}: backends.time.comand: unknown key (did you mean 'command'?)" in result.output
    assert "Traceback" not in result.output


def test_missing_env_var_names_the_variable_and_backend(tmp_path: Path) -> None:
    config = write_config(tmp_path / "quiver.json", {"gh": time_backend(env={"TOKEN": "${QUIVER_TEST_UNSET_TOKEN}"})})
    result = runner.invoke(app, ["call", "gh.get_current_time", "--arg", "timezone=UTC", "--config", str(config)])
    assert result.exit_code == 1
    assert "backend 'gh' needs environment variable QUIVER_TEST_UNSET_TOKEN" in result.output
    assert "hint: store it with `quiver secrets set QUIVER_TEST_UNSET_TOKEN`" in result.output


def test_no_config_anywhere() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "no backends configured" in result.output


def eval_search_args(directory: Path, tools: list[tuple[str, str, str]], query: str, gold: str) -> list[str]:
    """`quiver eval-search` over a catalogue of (server, name, description) and one task."""
    catalog = directory / "catalog.jsonl"
    records = [{"server": server, "name": name, "description": text} for server, name, text in tools]
    catalog.write_text("\n".join(json.dumps(record) for record in records))
    queries = directory / "queries.jsonl"
    queries.write_text(json.dumps({"id": "q1", "query": query, "gold": [gold.split(".")]}))
    return ["eval-search", "--catalog", str(catalog), "--queries", str(queries)]


def test_eval_search_prints_every_metric(tmp_path: Path) -> None:
    tools = [
        ("clock", "get_time", "Get the current time in a timezone"),
        ("files", "read_file", "Read a file from disk"),
    ]
    result = runner.invoke(app, [*eval_search_args(tmp_path, tools, "what time is it", "clock.get_time"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"r1", "r5", "r10", "mrr", "p50_ms", "p95_ms", "n"}
    assert metrics["r1"] == 1.0
    assert metrics["n"] == 1


def test_eval_search_keeps_tool_embeddings_between_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoders = install_fake_model(monkeypatch, tmp_path)
    tools = [("garage", "book_service", "Book a service for your car"), ("radio", "play", "Play a song")]
    args = eval_search_args(tmp_path, tools, "automobile", "garage.book_service")
    for run in range(2):
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["r1"] == 1.0  # no word matches: the (fake) model finds it
        tools_embedded = [] if run else ["book service: Book a service for your car", "play: Play a song"]
        assert sorted(encoders[-1].encoded) == sorted([*tools_embedded, "automobile"])
    assert (tmp_path / "cache" / "search-embeddings.npz").is_file()  # QUIVER_CACHE_DIR (conftest)
    other = tmp_path / "elsewhere.npz"
    assert runner.invoke(app, [*args, "--embedding-cache", str(other)]).exit_code == 0
    assert other.is_file()


def test_arguments_are_typed_by_the_schema() -> None:
    schema = {"properties": {"name": {"type": "string"}, "count": {"type": "integer"}, "tags": {"type": "array"}}}
    parsed = parse_arguments(["name=123", "count=3", 'tags=["a"]', "free=true"], None, schema)
    assert parsed == {"name": "123", "count": 3, "tags": ["a"], "free": True}
    with pytest.raises(ArgumentSyntaxError, match="not key=value"):
        parse_arguments(["novalue"], None, schema)
