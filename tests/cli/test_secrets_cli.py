"""`quiver secrets`: stored 0600, never printed, injected into backends; a missing one says where to get it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quiver.cli.app import app
from quiver.config import read_config_file
from quiver.errors import QuiverError
from quiver.gateway import Gateway
from tests.fakes import text_of
from tests.servers import faulty_backend, write_config

runner = CliRunner()
TOKEN = "ghp_s3cr3tValue0123456789abcdefABCDEF"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # Named like the manifest's `github` entry, whose token the manifest says where to get.
    backend = faulty_backend(env={"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"})
    return write_config(tmp_path / "quiver.json", {"github": backend})


def test_set_list_unset_in_both_scopes_never_printing_values(config: Path, tmp_path: Path) -> None:
    stored = runner.invoke(app, ["secrets", "set", "API_TOKEN", "--config", str(config)], input=TOKEN + "\n")
    assert stored.exit_code == 0, stored.output
    assert TOKEN not in stored.output
    project = runner.invoke(
        app, ["secrets", "set", "DB_PASSWORD", "hunter2-long", "--scope", "project", "--config", str(config)]
    )
    assert project.exit_code == 0, project.output
    project_file = tmp_path / ".quiver" / "secrets.env"
    assert stat.S_IMODE(project_file.stat().st_mode) == 0o600
    assert "DB_PASSWORD=" in project_file.read_text()

    listed = runner.invoke(app, ["secrets", "list", "--json", "--config", str(config)])
    assert json.loads(listed.stdout) == [
        {"name": "API_TOKEN", "scope": "user"},
        {"name": "DB_PASSWORD", "scope": "project"},
    ]
    plain = runner.invoke(app, ["secrets", "list", "--config", str(config)])
    assert TOKEN not in plain.output
    assert "hunter2" not in plain.output

    removed = runner.invoke(app, ["secrets", "unset", "API_TOKEN", "--config", str(config)])
    assert removed.exit_code == 0
    again = runner.invoke(app, ["secrets", "unset", "API_TOKEN", "--config", str(config)])
    assert again.exit_code == 1
    assert "no user secret named API_TOKEN" in again.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["secrets", "set", "1BAD", "x"], "'1BAD' is not a valid secret name"),
        (["secrets", "set", "GOOD", "x", "--scope", "team"], "unknown scope 'team'"),
        (["secrets", "set", "GOOD"], "no value given for GOOD"),
    ],
)
def test_bad_input_says_what_to_do(argv: list[str], message: str) -> None:
    result = runner.invoke(app, argv, input="")
    assert result.exit_code == 1
    assert message in result.output
    assert "hint:" in result.output


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_missing_secret_names_the_variable_and_where_to_get_it_then_a_stored_one_reaches_the_backend(
    config: Path,
) -> None:
    gateway = Gateway(read_config_file(config))
    async with gateway.running():
        with pytest.raises(QuiverError) as missing:
            await gateway.call("github.echo", {"message": "x"})
    assert "needs environment variable GITHUB_PERSONAL_ACCESS_TOKEN" in missing.value.message
    assert "https://github.com/settings/personal-access-tokens" in (missing.value.hint or "")
    assert "quiver secrets set GITHUB_PERSONAL_ACCESS_TOKEN" in (missing.value.hint or "")

    stored = runner.invoke(app, ["secrets", "set", "GITHUB_PERSONAL_ACCESS_TOKEN", TOKEN, "--config", str(config)])
    assert stored.exit_code == 0, stored.output
    gateway = Gateway(read_config_file(config))
    async with gateway.running():
        seen = await gateway.call("github.env_length", {"name": "GITHUB_PERSONAL_ACCESS_TOKEN"})
        assert text_of(seen) == str(len(TOKEN))
        echoed = await gateway.call("github.echo", {"message": f"the token is {TOKEN}"})
        assert TOKEN not in text_of(echoed)  # a stored secret coming back out is redacted
