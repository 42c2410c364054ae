from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from quiver.config.interpolate import referenced_variables, resolve_backend
from quiver.config.models import BackendConfig, HttpBackendConfig, StdioBackendConfig
from quiver.errors import MissingEnvError
from quiver.ids import check_backend_name
from quiver.provisioning import (
    CATEGORIES,
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

MIN_ENTRIES = 100
BACKEND = TypeAdapter(BackendConfig)


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest()


def entry_yaml(**overrides: Any) -> dict[str, Any]:
    """A valid manifest entry as parsed YAML, with `overrides` applied (None removes a key)."""
    entry: dict[str, Any] = {
        "name": "demo",
        "title": "Demo",
        "description": "A demo server.",
        "categories": ["utility"],
        "install": {"npm": {"package": "demo-mcp", "version": "1.0.0", "bin": "demo-mcp"}},
        "homepage": "https://example.com/demo",
    }
    for key, value in overrides.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


def manifest_text(*entries: dict[str, Any]) -> str:
    return yaml.safe_dump({"version": 1, "servers": list(entries)})


# --- the bundled file ---------------------------------------------------------------------


def test_bundled_manifest_ships_inside_the_package() -> None:
    assert resources.files("quiver.provisioning").joinpath("manifest.yaml").is_file()


def test_bundled_manifest_loads_once_with_enough_servers(manifest: Manifest) -> None:
    assert len(manifest) >= MIN_ENTRIES
    assert load_manifest() is manifest  # cached: validated once per process


def test_names_are_unique_valid_backend_names(manifest: Manifest) -> None:
    names = [entry.name for entry in manifest]
    assert len(names) == len(set(names))
    for name in names:
        assert check_backend_name(name) == name
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name), name


def test_every_entry_has_exactly_one_install_method_with_what_it_runs(manifest: Manifest) -> None:
    for entry in manifest:
        given = [spec for spec in (entry.install.npm, entry.install.pypi, entry.install.remote) if spec is not None]
        assert len(given) == 1, entry.name
        spec = entry.install.spec
        if isinstance(spec, NpmInstall):
            assert spec.version, entry.name
            assert spec.bin, entry.name
            assert entry.transport == "stdio"
        elif isinstance(spec, PypiInstall):
            assert spec.version, entry.name
            assert spec.entry_point, entry.name
            assert spec.python, entry.name
            assert entry.transport == "stdio"
        else:
            assert entry.transport == spec.transport, entry.name
            assert not entry.args, entry.name


def test_most_entries_install_from_a_registry(manifest: Manifest) -> None:
    kinds = [entry.kind for entry in manifest]
    assert kinds.count("npm") + kinds.count("pypi") > 0.9 * len(kinds)
    assert {"npm", "pypi", "remote"} <= set(kinds)


def test_categories_come_from_the_vocabulary_and_all_are_used(manifest: Manifest) -> None:
    used = {category for entry in manifest for category in entry.categories}
    assert used <= set(CATEGORIES)
    assert used == set(CATEGORIES), f"unused categories: {set(CATEGORIES) - used}"
    assert list(CATEGORIES) == sorted(CATEGORIES)


def test_env_entries_say_where_a_value_comes_from(manifest: Manifest) -> None:
    for entry in manifest:
        for var in entry.env:
            assert var.description, (entry.name, var.name)
            assert var.obtain, (entry.name, var.name)  # the bundled file sets it for every variable
            if var.secret:
                assert var.default is None, (entry.name, var.name)


def test_every_variable_an_entry_refers_to_is_declared(manifest: Manifest) -> None:
    for entry in manifest:
        texts = list(entry.args)
        if entry.install.remote is not None:
            texts += [entry.install.remote.url, *entry.install.remote.headers.values()]
        declared = {var.name for var in entry.env}
        for text in texts:
            assert set(referenced_variables(text)) <= declared, (entry.name, text)


def test_descriptions_are_single_searchable_lines(manifest: Manifest) -> None:
    for entry in manifest:
        assert "\n" not in entry.description
        assert 20 <= len(entry.description) <= 200, entry.name
        assert entry.keywords, entry.name
        assert entry.homepage.startswith("https://"), entry.name


def test_well_known_servers_are_listed(manifest: Manifest) -> None:
    expected = {"filesystem", "memory", "time", "git", "fetch", "github", "gitlab", "slack", "notion", "postgres"}
    expected |= {"playwright", "sentry", "stripe", "brave-search", "tavily", "supabase", "kubernetes", "docker"}
    assert expected <= set(manifest.names)
    time = manifest.entry("time").install.pypi
    assert time is not None
    assert time.package == "mcp-server-time"
    filesystem = manifest.entry("filesystem").install.npm
    assert filesystem is not None
    assert filesystem.package == "@modelcontextprotocol/server-filesystem"


# --- the configs an installed entry becomes -------------------------------------------------


def test_every_entry_becomes_a_valid_backend_config(manifest: Manifest) -> None:
    for entry in manifest:
        command = None if entry.kind == "remote" else f"/opt/quiver/{entry.name}/bin/run"
        config = BACKEND.validate_python(entry.backend_config(command))
        environ = {name: f"value-of-{name}" for name in entry.required_env}
        resolved = resolve_backend(entry.name, config, environ)  # no variable is left unresolvable
        if isinstance(resolved, StdioBackendConfig):
            assert resolved.command == command
            assert "${" not in " ".join([*resolved.args, *resolved.env.values()])


def test_backend_config_passes_variables_through_as_references(manifest: Manifest) -> None:
    config = manifest.entry("mysql").backend_config("/opt/mysql/run")
    assert config["command"] == "/opt/mysql/run"
    assert config["env"]["MYSQL_USER"] == "${MYSQL_USER}"  # required: unset is an error at start
    assert config["env"]["MYSQL_HOST"] == "${MYSQL_HOST:-127.0.0.1}"  # default
    assert config["env"]["MYSQL_DB"] == "${MYSQL_DB:-}"  # optional without default
    stdio = StdioBackendConfig.model_validate(config)
    with pytest.raises(MissingEnvError, match="MYSQL_USER"):
        resolve_backend("mysql", stdio, {"MYSQL_PASS": "x"})


def test_filesystem_defaults_to_the_current_directory(manifest: Manifest) -> None:
    config = StdioBackendConfig.model_validate(manifest.entry("filesystem").backend_config("fs"))
    for environ, expected in (({}, ["."]), ({"QUIVER_DEFAULT_DIR": "/data"}, ["/data"])):
        resolved = resolve_backend("filesystem", config, environ)
        assert isinstance(resolved, StdioBackendConfig)
        assert resolved.args == expected


def test_remote_entry_becomes_an_http_backend_with_header_references(manifest: Manifest) -> None:
    entry = manifest.entry("github")
    assert isinstance(entry.install.spec, RemoteInstall)
    config = HttpBackendConfig.model_validate(entry.backend_config())
    assert config.headers == {"Authorization": "Bearer ${GITHUB_PERSONAL_ACCESS_TOKEN}"}
    assert entry.required_env == ["GITHUB_PERSONAL_ACCESS_TOKEN"]


def test_a_local_entry_needs_the_installed_command(manifest: Manifest) -> None:
    with pytest.raises(ValueError, match="needs the installed command"):
        manifest.entry("time").backend_config()


# --- lookups ------------------------------------------------------------------------------


def test_lookup_by_name_ignores_case_and_spaces(manifest: Manifest) -> None:
    assert manifest.entry(" GitHub ").name == "github"
    assert "github" in manifest
    assert "GITHUB" in manifest
    assert manifest.get("no-such-server") is None
    assert 42 not in manifest


def test_unknown_name_suggests_near_names(manifest: Manifest) -> None:
    with pytest.raises(UnknownServerError) as caught:
        manifest.entry("postgresql")
    assert caught.value.code == "unknown_server"
    assert caught.value.suggestions[0] == "postgres"
    assert "did you mean 'postgres'" in str(caught.value)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("githb", "github"), ("slak", "slack"), ("confluence", "atlassian"), ("gdrive", "google-drive"), ("gh", "github")],
)
def test_did_you_mean(manifest: Manifest, typed: str, expected: str) -> None:
    assert expected in manifest.did_you_mean(typed)


def test_did_you_mean_offers_nothing_for_nonsense(manifest: Manifest) -> None:
    assert manifest.did_you_mean("zzqqxx") == []
    assert manifest.did_you_mean("   ") == []
    with pytest.raises(UnknownServerError, match="search the manifest"):
        manifest.entry("zzqqxx")


def test_in_category_and_search_text(manifest: Manifest) -> None:
    databases = {entry.name for entry in manifest.in_category("data")}
    assert {"postgres", "sqlite", "mongodb"} <= databases
    with pytest.raises(ValueError, match="unknown category 'databse'"):
        manifest.in_category("databse")
    assert "jira" in manifest.entry("atlassian").search_text()


# --- broken manifests ---------------------------------------------------------------------


def test_a_small_valid_manifest_parses() -> None:
    manifest = parse_manifest(manifest_text(entry_yaml(), entry_yaml(name="other")), "test.yaml")
    assert manifest.names == ["demo", "other"]
    assert manifest.source == "test.yaml"
    only = manifest.entry("demo")
    assert isinstance(only, ManifestEntry)
    assert only.install.kind == "npm"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            entry_yaml(install={"npm": {"package": "a"}, "pypi": {"package": "b"}}),
            "servers[0] ('demo'): install: needs exactly one of npm, pypi, remote (found: npm, pypi)",
        ),
        (entry_yaml(install={}), "install: needs exactly one of npm, pypi, remote (found: none)"),
        (entry_yaml(categories=["databse"]), "categories[0]: unknown category 'databse' (did you mean 'data'?)"),
        (entry_yaml(categories=[]), "categories: list at least one category"),
        (entry_yaml(name="My.Server"), "name: 'My.Server' is not a valid backend name"),
        (entry_yaml(name="MyServer"), "name: use lowercase letters"),
        (entry_yaml(description="two\nlines"), "description: must be one line"),
        (entry_yaml(homepage="example.com"), "homepage: must be an http:// or https:// URL"),
        (entry_yaml(args=["${TOKEN}"]), "refers to ${TOKEN} without a default, but env does not declare it"),
        (
            entry_yaml(env=[{"name": "TOKEN", "description": "A token.", "required": True}]),
            "env[0]: TOKEN is required, so 'obtain' must say where",
        ),
        (entry_yaml(env=[{"name": "BAD-NAME", "description": "x"}]), "env[0].name: 'BAD-NAME' is not a valid"),
        (entry_yaml(transport="http"), "npm installs run over stdio, not 'http'"),
        (
            entry_yaml(install={"remote": {"url": "https://x.example/mcp"}}, transport="http", args=["--x"]),
            "a remote server takes no args",
        ),
        (entry_yaml(install={"npm": {"package": "Bad Name"}}), "install.npm.package: 'Bad Name' is not a valid npm"),
        (entry_yaml(install={"pypi": {"package": "ok", "version": 1.0}}), "install.pypi.version: Input should be"),
        (entry_yaml(colour="blue"), "colour: unknown key"),
        (entry_yaml(title=None), "title: required key is missing"),
    ],
)
def test_a_broken_entry_is_named_with_its_field(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(manifest_text(entry), "broken.yaml")
    assert str(caught.value).startswith("broken.yaml: servers[0]")
    assert message in str(caught.value)
    assert caught.value.code == "manifest_invalid"


def test_every_problem_is_reported_at_once() -> None:
    text = manifest_text(entry_yaml(categories=["nope"]), entry_yaml(name="second", homepage="nope"), entry_yaml())
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.yaml")
    lines = caught.value.message.splitlines()
    assert lines[0].startswith("m.yaml: servers[0] ('demo'): categories[0]: unknown category 'nope'")
    assert lines[1].startswith("m.yaml: servers[1] ('second'): homepage:")
    assert len(lines) == 2


def test_duplicate_names_name_the_first_use() -> None:
    with pytest.raises(ManifestError, match=r"servers\[1\] \('demo'\): name: already used by servers\[0\]"):
        parse_manifest(manifest_text(entry_yaml(), entry_yaml()), "m.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("servers: [unclosed", "m.yaml: not valid YAML"),
        ("- just\n- a list\n", "m.yaml: must be a mapping with a 'servers' list"),
        ("version: 1\nservers: {}\n", "m.yaml: must be a mapping with a 'servers' list"),
        ("version: 2\nservers: []\n", "m.yaml: version: must be 1, not 2"),
        ("version: 1\nservers: []\nextra: 1\n", "m.yaml: unknown top-level key(s): extra"),
        ("version: 1\nservers: [42]\n", "m.yaml: servers[0]: (entry): Input should be a valid dictionary"),
    ],
)
def test_a_broken_file_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "m.yaml")
    assert message in str(caught.value)


def test_load_manifest_reads_a_given_file(tmp_path: Path) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(manifest_text(entry_yaml()), encoding="utf-8")
    assert load_manifest(path).names == ["demo"]
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "missing.yaml")
