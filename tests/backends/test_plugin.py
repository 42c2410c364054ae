"""Python functions as tools: schemas, calls, results, errors and progress, through the real gateway."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import mcp_types as types
import pytest

from quiver.backends.base import BackendState
from quiver.backends.factory import make_backend
from quiver.backends.mcp import McpBackend
from quiver.backends.plugin import PluginBackend, PluginBackendConfig, discover_entry_points
from quiver.backends.rest import RestBackend
from quiver.config.loader import read_config_file
from quiver.config.models import QuiverConfig, RestBackendConfig, StdioBackendConfig
from quiver.errors import BackendUnavailableError, CallTimeoutError, InvalidArgumentsError
from quiver.gateway import Gateway
from quiver.plugins import FunctionTool, ToolContext, options_of, parse_docstring, tool
from tests.fakes import text_of
from tests.fixtures import plugin_tools

pytestmark = pytest.mark.anyio

FIXTURE = "tests.fixtures.plugin_tools"


@pytest.fixture(autouse=True)
def restore_import_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plugins extend sys.path and sys.modules; each test gets them back as they were."""
    monkeypatch.setattr(sys, "path", [*sys.path])
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("quiver_plugin_", "plugin_tmp_", "quiverdemo")):
            del sys.modules[name]


def gateway_for(**backends: PluginBackendConfig) -> Gateway:
    return Gateway(QuiverConfig.model_validate({"backends": backends}), backend_factory=make_backend)


def write_module(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / f"{name}.py"
    file.write_text(textwrap.dedent(source))
    return file


async def listed(config: PluginBackendConfig) -> dict[str, types.Tool]:
    backend = PluginBackend("tools", config)
    async with backend.lifespan():
        return {definition.name: definition for definition in await backend.list_tools()}


# -- schemas ----------------------------------------------------------------------------------


async def test_tools_are_listed_in_definition_order_with_undecorated_functions_left_out() -> None:
    tools = await listed(PluginBackendConfig(module=FIXTURE))
    assert list(tools) == [
        "add",
        "greet",
        "mean_of",
        "midpoint",
        "tags",
        "lookup",
        "explode",
        "verdict",
        "count_up",
        "count_up_sync",
        "wait_for_release",
    ]


async def test_input_schemas_come_from_type_hints_defaults_and_docstrings() -> None:
    tools = await listed(PluginBackendConfig(module=FIXTURE))
    add = tools["add"]
    assert add.description == "Add two integers."
    assert add.input_schema["required"] == ["a"]
    assert add.input_schema["properties"]["a"] == {"title": "A", "type": "integer", "description": "The first number."}
    assert add.input_schema["properties"]["b"]["default"] == 2
    assert add.input_schema["properties"]["b"]["description"] == "The second number, two unless given."

    greet = tools["greet"].input_schema["properties"]
    assert greet["style"]["enum"] == ["plain", "loud"]
    assert greet["suffix"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert tools["greet"].input_schema["required"] == ["name"]
    assert tools["greet"].description == "Greet someone by name.\n\nMentions nobody else."

    values = tools["mean_of"].input_schema["properties"]["values"]
    assert values == {
        "description": "The numbers.",
        "items": {"type": "number"},
        "minItems": 1,
        "title": "Values",
        "type": "array",
    }
    assert tools["tags"].input_schema["properties"]["limit"]["minimum"] == 1
    midpoint = tools["midpoint"].input_schema
    assert midpoint["properties"]["a"] == {"$ref": "#/$defs/Point"}
    assert set(midpoint["$defs"]["Point"]["properties"]) == {"x", "y"}


async def test_the_context_parameter_is_not_an_argument() -> None:
    tools = await listed(PluginBackendConfig(module=FIXTURE))
    assert list(tools["count_up"].input_schema["properties"]) == ["steps"]


async def test_output_schemas_only_for_structured_return_types() -> None:
    tools = await listed(PluginBackendConfig(module=FIXTURE))
    assert tools["mean_of"].output_schema is not None
    assert tools["mean_of"].output_schema["required"] == ["count", "mean"]
    assert tools["midpoint"].output_schema is not None
    assert tools["midpoint"].output_schema["title"] == "Point"
    assert tools["tags"].output_schema == {
        "additionalProperties": {"type": "integer"},
        "title": "tagsDictOutput",
        "type": "object",
    }
    for plain in ("add", "greet", "lookup", "verdict"):
        assert tools[plain].output_schema is None, plain


async def test_decorator_options_set_name_title_description_and_annotations() -> None:
    tools = await listed(PluginBackendConfig(module=FIXTURE))
    assert tools["mean_of"].description == "The count and mean of some numbers."
    assert tools["greet"].title == "Greeter"
    assert tools["greet"].annotations == types.ToolAnnotations(read_only_hint=True, idempotent_hint=True)
    assert tools["explode"].annotations == types.ToolAnnotations(destructive_hint=True)
    assert tools["add"].annotations is None


def test_decorated_functions_stay_plain_functions() -> None:
    assert plugin_tools.add(1, 2) == 3
    assert options_of(plugin_tools.add) is not None
    assert options_of(plugin_tools.helper) is None
    with pytest.raises(TypeError, match="decorates functions"):
        tool(42)  # type: ignore[call-overload]


def test_docstring_sections_give_the_description_and_parameter_texts() -> None:
    doc = """Fetch a page.

    Follows redirects.

    Args:
        url (str): Where to go.
        timeout: Seconds to wait,
            at most.
        *headers: Sent as they are.

    Returns:
        The body.
    """
    summary, params = parse_docstring(doc)
    assert summary == "Fetch a page.\n\nFollows redirects."
    assert params == {"url": "Where to go.", "timeout": "Seconds to wait, at most.", "headers": "Sent as they are."}


def test_an_annotation_that_names_nothing_is_a_clear_error() -> None:
    def broken(x: Missing) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(ValueError, match="type hints cannot be evaluated"):
        FunctionTool.build(broken)


# -- through the gateway ------------------------------------------------------------------------


async def test_gateway_finds_describes_and_calls_plugin_tools() -> None:
    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE))
    async with gateway.running():
        reply = await gateway.search("add two integers")
        assert reply.cards[0].id == "tools.add"
        assert reply.cards[0].required == ["a"]
        [described] = await gateway.describe(["tools.greet"])
        assert described["inputSchema"]["properties"]["name"]["description"] == "Who to greet."
        assert text_of(await gateway.call("tools.add", {"a": 40})) == "42"
        assert text_of(await gateway.call("tools.greet", {"name": "ada", "style": "loud"})) == "HELLO ADA"
        [server] = gateway.servers()
        assert server.status.type == "plugin"
        assert server.status.state is BackendState.RUNNING
        assert server.tools == 11


async def test_structured_returns_carry_structured_content_and_json_text() -> None:
    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE))
    async with gateway.running():
        stats = await gateway.call("tools.mean_of", {"values": [1, 2, 6]})
        midpoint = await gateway.call("tools.midpoint", {"a": {"x": 0, "y": 0}, "b": {"x": 2, "y": 4}})
        tags = await gateway.call("tools.tags", {"words": ["a", "b", "a"], "limit": 1})
        lookup = await gateway.call("tools.lookup", {"key": "k"})
    assert isinstance(stats, types.CallToolResult)
    assert stats.structured_content == {"count": 3, "mean": 3.0}
    assert '"mean": 3.0' in text_of(stats)
    assert isinstance(midpoint, types.CallToolResult)
    assert midpoint.structured_content == {"x": 1.0, "y": 2.0}
    assert isinstance(tags, types.CallToolResult)
    assert tags.structured_content == {"a": 2}
    assert isinstance(lookup, types.CallToolResult)
    assert lookup.structured_content == {"key": "k", "found": True}  # undeclared, but data all the same


async def test_a_result_built_by_hand_is_returned_as_it_is() -> None:
    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE))
    async with gateway.running():
        result = await gateway.call("tools.verdict", {"ok": False})
    assert isinstance(result, types.CallToolResult)
    assert result.is_error
    assert text_of(result) == "no"


async def test_arguments_the_schema_rejects_never_reach_the_function() -> None:
    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE))
    async with gateway.running():
        with pytest.raises(InvalidArgumentsError) as caught:
            await gateway.call("tools.add", {"a": "forty"})
    assert "'a'" in caught.value.message


async def test_bad_arguments_are_listed_in_an_error_result() -> None:
    backend = PluginBackend("tools", PluginBackendConfig(module=FIXTURE))
    async with backend.lifespan():
        result = await backend.call_tool("add", {"a": "forty", "b": [1]})
        missing = await backend.call_tool("midpoint", {"a": {"x": 1}})
    assert result.is_error
    assert text_of(result).startswith("invalid arguments for tool 'add': 'a': Input should be a valid integer")
    assert "(got 'forty')" in text_of(result)
    assert "'b': Input should be a valid integer (got [1])" in text_of(result)
    assert "'a.y': Field required" in text_of(missing) or "argument 'a.y' is required" in text_of(missing)
    assert "argument 'b' is required" in text_of(missing)


async def test_a_tool_that_raises_gives_an_error_result_and_logs_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE))
    with caplog.at_level(logging.ERROR, logger="quiver.plugins"):
        async with gateway.running():
            result = await gateway.call("tools.explode", {"reason": "not today"})
    assert isinstance(result, types.CallToolResult)
    assert result.is_error
    assert text_of(result) == "tool 'explode' raised ValueError: refused: not today"
    assert "Traceback" not in text_of(result)
    [record] = [r for r in caplog.records if r.name == "quiver.plugins"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


async def test_a_return_value_that_breaks_its_declared_type_is_an_error_result() -> None:
    def misshapen() -> plugin_tools.Point:
        return {"x": 1}  # type: ignore[return-value]

    def unsendable() -> str:
        return b"\xff"  # type: ignore[return-value]

    context = ToolContext("t", "b")
    result = await FunctionTool.build(misshapen).call({}, context)
    assert result.is_error
    assert (
        text_of(result) == "tool 'misshapen' returned a value that does not match its return type: 'y': Field required"
    )
    result = await FunctionTool.build(unsendable).call({}, context)
    assert result.is_error
    assert text_of(result).startswith("tool 'unsendable' returned a value that cannot be sent: ")


async def test_an_unknown_tool_is_refused() -> None:
    from mcp.shared.exceptions import MCPError

    backend = PluginBackend("tools", PluginBackendConfig(module=FIXTURE))
    async with backend.lifespan():
        with pytest.raises(MCPError, match="Unknown tool: nope"):
            await backend.call_tool("nope", {})


@pytest.mark.parametrize("tool_name", ["count_up", "count_up_sync"])
async def test_progress_reaches_the_caller(tool_name: str) -> None:
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE))
    async with gateway.running():
        result = await gateway.call(f"tools.{tool_name}", {"steps": 3}, progress=progress)
    assert text_of(result).startswith("counted to 3")
    assert [(done, total) for done, total, _ in reports] == [(1, 3), (2, 3), (3, 3)]
    if tool_name == "count_up":
        assert text_of(result) == "counted to 3 in tools.count_up"
        assert reports[0][2] == "step 1"


async def test_a_blocked_sync_tool_times_out_without_holding_the_call() -> None:
    gateway = gateway_for(tools=PluginBackendConfig(module=FIXTURE, call_timeout=0.3))
    try:
        async with gateway.running():
            with anyio.fail_after(5), pytest.raises(CallTimeoutError):
                await gateway.call("tools.wait_for_release", {})
    finally:
        plugin_tools.RELEASE.set()


async def test_reports_after_the_call_is_over_go_nowhere() -> None:
    reports: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append(progress)

    context = ToolContext("t", "b", progress)
    await context.report_progress(1)
    context.close()
    await context.report_progress(2)
    await ToolContext("t", "b").report_progress(3)  # made by hand, e.g. to test a tool: no one listens
    assert reports == [1]


# -- modules that cannot be plugins -------------------------------------------------------------

BROKEN_MODULES = {
    "syntax": ("def oops(:\n    pass\n", "could not be imported: SyntaxError: "),
    "raises": ("raise RuntimeError('no database')\n", "could not be imported: RuntimeError: no database"),
    "empty": ("def helper() -> None:\n    pass\n", "defines no tools"),
    "duplicate": (
        "from quiver.plugins import tool\n\n"
        "@tool(name='same')\ndef one() -> str:\n    return ''\n\n"
        "@tool(name='same')\ndef two() -> str:\n    return ''\n",
        "has two tools named 'same'",
    ),
    "bad_name": (
        "from quiver.plugins import tool\n\n@tool(name='has space')\ndef one() -> str:\n    return ''\n",
        "one cannot be a tool: 'has space' is not a valid tool name",
    ),
    "unschemable": (
        "from quiver.plugins import tool\n\nclass Thing:\n    pass\n\n"
        "@tool\ndef one(thing: Thing) -> str:\n    return ''\n",
        "one cannot be a tool: Cannot generate a JsonSchema for core_schema.IsInstanceSchema",
    ),
    "bad_signature": (
        "from quiver.plugins import tool\n\n@tool\ndef one(_hidden: int) -> str:\n    return ''\n",
        "one cannot be a tool: Parameter _hidden of one cannot start with '_'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_MODULES))
async def test_a_module_that_cannot_be_loaded_is_a_clear_start_error(case: str, tmp_path: Path) -> None:
    source, expected = BROKEN_MODULES[case]
    write_module(tmp_path / "plugins", f"plugin_tmp_{case}", source)
    config = PluginBackendConfig(module=f"plugin_tmp_{case}", path=str(tmp_path / "plugins"))
    gateway = gateway_for(broken=config)
    async with gateway.running():
        with pytest.raises(BackendUnavailableError) as caught:
            await gateway.call("broken.anything", {})
        [server] = gateway.servers()
    message = caught.value.message
    assert message.startswith(f"plugin module 'plugin_tmp_{case}' of backend 'broken'")
    assert expected in message
    assert caught.value.hint
    assert server.status.state is BackendState.FAILED
    assert server.status.last_error == message


async def test_a_missing_module_says_where_to_look() -> None:
    gateway = gateway_for(gone=PluginBackendConfig(module="no_such_plugin_package.tools"))
    async with gateway.running():
        with pytest.raises(BackendUnavailableError) as caught:
            await gateway.call("gone.anything", {})
    assert "ModuleNotFoundError: No module named 'no_such_plugin_package'" in caught.value.message
    assert caught.value.hint is not None
    assert "check `module` and `path`" in caught.value.hint


async def test_a_missing_dependency_says_what_to_install(tmp_path: Path) -> None:
    write_module(tmp_path, "plugin_tmp_needy", "import no_such_dependency_of_a_plugin\n")
    backend = PluginBackend("needy", PluginBackendConfig(module="plugin_tmp_needy", path=str(tmp_path)))
    with pytest.raises(BackendUnavailableError) as caught:
        async with backend.lifespan():
            pass
    assert "No module named 'no_such_dependency_of_a_plugin'" in caught.value.message
    assert caught.value.hint is not None
    assert "install it where Quiver runs" in caught.value.hint


# -- files, paths and identity ---------------------------------------------------------------------

FILE_PLUGIN = """\
    '''Tools from a file.'''
    from quiver.plugins import tool

    @tool
    def version() -> str:
        return "{version}"
"""


async def test_a_file_plugin_is_loaded_afresh_on_every_start(tmp_path: Path) -> None:
    file = write_module(tmp_path, "tools", FILE_PLUGIN.format(version="one"))
    config = PluginBackendConfig(module=str(file))
    backend = PluginBackend("files", config)
    async with backend.lifespan():
        assert text_of(await backend.call_tool("version", {})) == "one"
        assert backend.server_title == "Tools from a file."
    file.write_text(textwrap.dedent(FILE_PLUGIN.format(version="two")))
    async with backend.lifespan():
        assert text_of(await backend.call_tool("version", {})) == "two"


async def test_a_config_file_names_a_plugin_beside_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_module(project / "plugins", "plugin_tmp_configured", FILE_PLUGIN.format(version="configured"))
    config_file = project / "quiver.yaml"
    config_file.write_text(
        "backends:\n  mytools:\n    type: plugin\n    module: plugin_tmp_configured\n    path: ./plugins\n"
    )
    config = read_config_file(config_file)  # read from elsewhere: the test runs in tmp_path
    async with Gateway(config).running() as gateway:
        assert text_of(await gateway.call("mytools.version", {})) == "configured"


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    with_path = PluginBackendConfig(module="tools.py", path="plugins").resolved(tmp_path)
    assert with_path.path == str(tmp_path / "plugins")
    assert with_path.source_file() == tmp_path / "plugins" / "tools.py"
    alone = PluginBackendConfig(module="plugins/tools.py").resolved(tmp_path)
    assert alone.module == str(tmp_path / "plugins" / "tools.py")
    dotted = PluginBackendConfig(module="pkg.tools").resolved(tmp_path)
    assert dotted.module == "pkg.tools"
    assert dotted.path is None


def test_the_identity_follows_the_module_source(tmp_path: Path) -> None:
    file = write_module(tmp_path / "pkg", "tools", FILE_PLUGIN.format(version="one"))
    (tmp_path / "pkg" / "__init__.py").write_text("raise RuntimeError('never imported to find the file')\n")
    by_path = PluginBackendConfig(module="pkg.tools", path=str(tmp_path))
    by_file = PluginBackendConfig(module=str(file))
    assert by_path.source_file() == file
    before = (by_path.fingerprint(), by_file.fingerprint())
    file.write_text(textwrap.dedent(FILE_PLUGIN.format(version="two")))
    assert by_path.fingerprint() != before[0]
    assert by_file.fingerprint() != before[1]
    assert PluginBackendConfig(module="no_such_plugin_module").identity()["source"] is None


def test_make_backend_picks_the_class_by_type(tmp_path: Path) -> None:
    plugin = make_backend("p", PluginBackendConfig(module="tools.py", path="plugins"), base_dir=tmp_path)
    assert isinstance(plugin, PluginBackend)
    assert plugin.config.path == str(tmp_path / "plugins")
    rest = make_backend("r", RestBackendConfig(dir="api"), base_dir=tmp_path)
    assert isinstance(rest, RestBackend)
    assert rest.directory == tmp_path / "api"
    assert isinstance(make_backend("s", StdioBackendConfig(command="true")), McpBackend)


# -- entry points -------------------------------------------------------------------------------------


def install_fake_distribution(site: Path) -> None:
    """What `pip install` leaves for a package that publishes a plugin: its module and its metadata."""
    dist_info = site / "quiverdemo-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: quiverdemo\nVersion: 1.0\nSummary: Demo tools\n")
    (dist_info / "entry_points.txt").write_text("[quiver.plugins]\nquiver demo = quiverdemo_tools\n")
    write_module(
        site,
        "quiverdemo_tools",
        """\
        from quiver.plugins import tool

        @tool
        def shout(text: str) -> str:
            '''Say it louder.'''
            return text.upper()
        """,
    )


async def test_installed_packages_publish_plugins_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    discovered = discover_entry_points()
    assert discovered["quiver-demo"] == PluginBackendConfig(module="quiverdemo_tools", description="Demo tools")
    gateway = gateway_for(**{"quiver-demo": discovered["quiver-demo"]})
    async with gateway.running():
        assert text_of(await gateway.call("quiver-demo.shout", {"text": "hi"})) == "HI"


def test_a_config_gets_the_published_plugins_unless_it_names_its_own_or_turns_them_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake_distribution(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    config = tmp_path / "quiver.yaml"
    config.write_text("backends:\n  time: {command: mcp-server-time}\n")
    assert set(read_config_file(config).backends) == {"time", "quiver-demo"}
    config.write_text("backends:\n  quiver-demo: {command: my-own-demo}\n")
    assert read_config_file(config).backends["quiver-demo"].type == "stdio"  # the file wins
    config.write_text("gateway: {plugin_entry_points: false}\nbackends: {}\n")
    assert read_config_file(config).backends == {}
