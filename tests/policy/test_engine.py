from __future__ import annotations

import mcp_types as types
import pytest

from quiver.config.policy import PolicyConfig, Role
from quiver.errors import ConfigError
from quiver.policy.engine import Policy
from tests.fakes import tool


def read_only(name: str) -> types.Tool:
    return tool(name).model_copy(update={"annotations": types.ToolAnnotations(read_only_hint=True)})


def test_everything_is_visible_by_default() -> None:
    view = Policy(PolicyConfig()).view(None)
    assert view.allows_tool("github.create_issue", tool("create_issue"))


@pytest.mark.parametrize(
    ("allow", "deny", "tool_id", "visible"),
    [
        (["*"], ["github.delete_*"], "github.delete_repo", False),
        (["*"], ["github.delete_*"], "github.create_issue", True),
        (["github.*"], [], "fs.read_file", False),
        (["github.*", "fs.read_*"], [], "fs.read_file", True),
        (["github.*"], ["github.*"], "github.create_issue", False),  # deny wins
        (["*.read_*"], [], "anything.read_me", True),
        (["fs.read_file"], [], "fs.read_file_extra", False),  # globs match whole ids
    ],
)
def test_allow_and_deny_globs(allow: list[str], deny: list[str], tool_id: str, visible: bool) -> None:
    view = Policy(PolicyConfig(allow=allow, deny=deny)).view(None)
    assert view.allows_tool(tool_id, tool(tool_id.split(".", 1)[1])) is visible


def test_read_only_admits_only_declared_read_only_tools() -> None:
    view = Policy(PolicyConfig(read_only=True)).view(None)
    assert view.allows_tool("fs.read_file", read_only("read_file"))
    assert not view.allows_tool("fs.write_file", tool("write_file"))


def test_a_role_narrows_the_gateway_rules() -> None:
    config = PolicyConfig(
        deny=["*.drop_*"],
        roles={"reader": Role(allow=["db.*"], read_only=True), "admin": Role()},
        default_role="reader",
    )
    policy = Policy(config)
    reader, admin = policy.view("reader"), policy.view("admin")
    assert reader.allows_tool("db.query", read_only("query"))
    assert not reader.allows_tool("db.insert", tool("insert"))
    assert not reader.allows_tool("fs.read", read_only("read"))
    assert admin.allows_tool("db.insert", tool("insert"))
    assert not admin.allows_tool("db.drop_table", tool("drop_table"))  # the gateway's deny still applies
    assert policy.view(None).role == "reader"  # no credentials: the default role


def test_an_unknown_role_sees_nothing() -> None:
    assert not Policy(PolicyConfig()).view("intruder").allows_tool("a.b", tool("b"))


def test_quarantined_tools_are_hidden_from_every_role() -> None:
    policy = Policy(PolicyConfig(roles={"admin": Role()}), quarantined=lambda tool_id: tool_id == "x.evil")
    assert not policy.view(None).allows_tool("x.evil", tool("evil"))
    assert not policy.view("admin").allows_tool("x.evil", tool("evil"))
    assert policy.view("admin").allows_tool("x.good", tool("good"))


def test_prompts_and_resources_follow_the_same_rules() -> None:
    view = Policy(PolicyConfig(deny=["secrets.*", "docs.internal://*"])).view(None)
    assert not view.allows_backend_item("secrets", "any_prompt")
    assert not view.allows_backend_item("docs", "internal://roadmap")
    assert view.allows_backend_item("docs", "public://readme")


def test_a_default_role_must_exist() -> None:
    with pytest.raises(ConfigError, match=r"policy\.default_role names role 'ghost'"):
        Policy(PolicyConfig(default_role="ghost"))
