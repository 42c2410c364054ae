"""RestBackend against a real HTTP API on a local socket: requests, auth, answers, errors, live reload."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import yaml

from quiver.backends.base import Change
from quiver.backends.capabilities import Capability, annotations_of, load_directory, read_capability_file, tool_of
from quiver.backends.rest import RestBackend, RestBackendConfig
from quiver.errors import ConfigError, MissingEnvError
from tests.fakes import text_of
from tests.fixtures.rest_api import ADMIN_KEY, QUERY_KEY, TOKEN, serving
from tests.servers import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def api() -> Iterator[str]:
    with serving() as base:
        yield base


@pytest.fixture
def capabilities(tmp_path: Path) -> Path:
    directory = tmp_path / "capabilities"
    directory.mkdir()
    return directory


def write(directory: Path, name: str, data: Any) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@asynccontextmanager
async def connected(directory: Path, environ: dict[str, str], **settings: Any) -> AsyncIterator[RestBackend]:
    backend = RestBackend("api", RestBackendConfig(dir=str(directory), **settings), environ=environ)
    async with backend.lifespan():
        yield backend


async def call(backend: RestBackend, name: str, /, **arguments: Any) -> types.CallToolResult:
    return await backend.call_tool(name, arguments)


# -- requests ----------------------------------------------------------------------------------


async def test_get_with_path_and_query_parameters(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "find.yaml",
        {
            "name": "find_item",
            "description": "Find an item",
            "url": "${API}/echo/items/{item_id}",
            "parameters": [
                {"name": "item_id", "in": "path", "schema": {"type": "string"}},
                {"name": "q", "in": "query", "required": True},
                {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "exact", "in": "query", "schema": {"type": "boolean"}},
            ],
        },
    )
    async with connected(capabilities, {"API": api}) as backend:
        [tool] = await backend.list_tools()
        assert tool.input_schema["required"] == ["item_id", "q"]
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint
        result = await call(backend, "find_item", item_id="a b/c", q="red", tag=["x", "y"], exact=True)
    assert not result.is_error
    echoed = result.structured_content
    assert echoed is not None
    assert echoed["method"] == "GET"
    assert echoed["path"] == "/echo/items/a b/c"  # one path segment, escaped on the wire
    assert echoed["query"] == [["q", "red"], ["tag", "x"], ["tag", "y"], ["exact", "true"]]


async def test_post_with_json_body_fields_and_a_header_parameter(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "create.yaml",
        {
            "name": "create_item",
            "description": "Create an item",
            "method": "post",
            "url": "${API}/echo/items",
            "headers": {"X-Client": "quiver-tests"},
            "parameters": [
                {"name": "X-Trace", "in": "header", "argument": "trace"},
                {"name": "name", "in": "body", "required": True},
                {"name": "size", "in": "body", "schema": {"type": "integer"}},
            ],
        },
    )
    async with connected(capabilities, {"API": api}) as backend:
        [tool] = await backend.list_tools()
        assert set(tool.input_schema["properties"]) == {"trace", "name", "size"}
        assert tool.annotations is not None
        assert not tool.annotations.read_only_hint
        result = await call(backend, "create_item", trace="t-1", name="box", size=3)
    echoed = result.structured_content
    assert echoed is not None
    assert echoed["method"] == "POST"
    assert echoed["body"] == {"name": "box", "size": 3}
    assert echoed["headers"] == {"x-client": "quiver-tests", "x-trace": "t-1"}


async def test_whole_body_as_json_and_as_a_form(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "bodies.yaml",
        {
            "capabilities": [
                {
                    "name": "put_doc",
                    "description": "Replace a document",
                    "method": "PUT",
                    "url": "${API}/echo/doc",
                    "body": {"schema": {"type": "array"}, "required": True},
                },
                {
                    "name": "send_form",
                    "description": "Send a form",
                    "method": "POST",
                    "url": "${API}/echo/form",
                    "body": {"content_type": "application/x-www-form-urlencoded", "argument": "fields"},
                },
            ]
        },
    )
    async with connected(capabilities, {"API": api}) as backend:
        put = await call(backend, "put_doc", body=[1, {"a": 2}])
        form = await call(backend, "send_form", fields={"name": "Ada", "admin": False})
        missing = await call(backend, "put_doc")
    assert put.structured_content is not None
    assert put.structured_content["body"] == [1, {"a": 2}]
    assert form.structured_content is not None
    assert form.structured_content["body"] == "name=Ada&admin=false"
    assert form.structured_content["content_type"] == "application/x-www-form-urlencoded"
    assert missing.is_error
    assert "missing required argument 'body'" in text_of(missing)


async def test_base_url_and_backend_headers_resolve_from_the_environment(api: str, capabilities: Path) -> None:
    write(capabilities, "ping.yaml", {"name": "ping", "description": "Ping", "url": "/echo/ping"})
    environ = {"API": api, "CLIENT_ID": "client-7"}
    settings: dict[str, Any] = {"base_url": "${API}/", "headers": {"X-Client-Id": "${CLIENT_ID}"}}
    async with connected(capabilities, environ, **settings) as backend:
        result = await call(backend, "ping")
    assert result.structured_content is not None
    assert result.structured_content["path"] == "/echo/ping"
    assert result.structured_content["headers"] == {"x-client-id": "client-7"}


# -- auth ----------------------------------------------------------------------------------------


def petstore_capability(name: str, url: str, auth: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": name, "url": "${API}/v1" + url, **({"auth": auth} if auth else {}), **extra}


async def test_bearer_api_key_and_basic_auth_from_the_environment(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "petstore.yaml",
        [
            petstore_capability(
                "whoami",
                "/whoami",
                {"bearer": "${PETS_TOKEN}"},
                parameters=[{"name": "X-Request-Id", "in": "header"}],
            ),
            petstore_capability(
                "inventory", "/store/inventory", {"api_key": {"in": "query", "name": "api_key", "value": "${QK}"}}
            ),
            petstore_capability(
                "delete_pet",
                "/pets/{id}",
                {"api_key": {"in": "header", "name": "X-Admin-Key", "value": "${ADMIN}"}},
                method="DELETE",
                parameters=[{"name": "id", "in": "path", "schema": {"type": "integer"}}],
            ),
            petstore_capability(
                "add_owner",
                "/owners",
                {"basic": {"username": "admin", "password": "${OWNER_PW}"}},
                method="POST",
                body={"content_type": "application/x-www-form-urlencoded"},
            ),
        ],
    )
    environ = {"API": api, "PETS_TOKEN": TOKEN, "QK": QUERY_KEY, "ADMIN": ADMIN_KEY, "OWNER_PW": "pw-secret-42"}
    async with connected(capabilities, environ) as backend:
        whoami = await call(backend, "whoami", **{"X-Request-Id": "r-1"})
        inventory = await call(backend, "inventory")
        deleted = await call(backend, "delete_pet", id=2)
        owner = await call(backend, "add_owner", body={"name": "Bo", "email": "bo@example.com"})
    assert whoami.structured_content == {"caller": "bearer", "request_id": "r-1"}
    assert inventory.structured_content == {"available": 1, "pending": 1, "sold": 1}
    assert not deleted.is_error
    assert deleted.structured_content is not None
    assert deleted.structured_content["status"] == 204
    assert owner.structured_content == {"id": 2, "name": "Bo", "email": "bo@example.com"}


async def test_wrong_credentials_are_an_error_that_never_shows_them(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "inventory.yaml",
        petstore_capability(
            "inventory", "/store/inventory", {"api_key": {"in": "query", "name": "api_key", "value": "${QK}"}}
        ),
    )
    async with connected(capabilities, {"API": api, "QK": "wrong-key-000"}) as backend:
        result = await call(backend, "inventory")
    text = text_of(result)
    assert result.is_error
    assert f"GET {api}/v1/store/inventory?api_key=*** returned HTTP 401 Unauthorized" in text
    assert "wrong-key-000" not in text
    assert "hint: check the credentials" in text


async def test_missing_variable_names_it_and_the_backend(api: str, capabilities: Path) -> None:
    write(capabilities, "whoami.yaml", petstore_capability("whoami", "/whoami", {"bearer": "${PETS_TOKEN}"}))
    async with connected(capabilities, {"API": api}) as backend:
        with pytest.raises(MissingEnvError) as caught:
            await call(backend, "whoami")
    assert caught.value.variable == "PETS_TOKEN"
    assert "backend 'api' needs environment variable PETS_TOKEN (used in whoami.yaml: auth.bearer)" in str(caught.value)


# -- answers -------------------------------------------------------------------------------------


async def test_projection_keeps_what_it_selects(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "repos.yaml",
        [
            {
                "name": "top_repos",
                "description": "Top repositories",
                "url": "${API}/big",
                "response": {"projection": "items[:2].{name: name, url: html_url}"},
            },
            {
                "name": "repo_summary",
                "description": "How many repositories",
                "url": "${API}/big",
                "response": {"projection": "{total: total, first: items[0].name}"},
            },
        ],
    )
    async with connected(capabilities, {"API": api}) as backend:
        top = await call(backend, "top_repos")
        summary = await call(backend, "repo_summary")
    assert json.loads(text_of(top)) == [
        {"name": "repo0", "url": "https://example.com/repo0"},
        {"name": "repo1", "url": "https://example.com/repo1"},
    ]
    assert top.structured_content is None  # structured content is for objects only
    assert summary.structured_content == {"total": 500, "first": "repo0"}


async def test_large_answers_are_cut_and_say_so(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "big.yaml",
        {"name": "everything", "description": "All", "url": "${API}/big", "response": {"max_bytes": 1000}},
    )
    async with connected(capabilities, {"API": api}) as backend:
        result = await call(backend, "everything")
    text = text_of(result)
    assert not result.is_error
    body, _, note = text.partition("\n[cut at 1000 of ")
    assert 990 < len(body.encode()) <= 1000
    total, _, advice = note.partition(" bytes; ")
    assert int(total) > 50_000
    assert advice.startswith("narrow the request, or set response.projection")
    assert result.structured_content is None  # a cut document is no longer an object


async def test_text_and_head_answers(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "plain.yaml",
        [
            {"name": "text", "description": "Text", "url": "${API}/text"},
            {"name": "probe", "description": "Probe", "method": "HEAD", "url": "${API}/text"},
        ],
    )
    async with connected(capabilities, {"API": api}) as backend:
        text = await call(backend, "text")
        head = await call(backend, "probe")
    assert text_of(text) == "plain words"
    assert head.structured_content is not None
    assert head.structured_content["status"] == 200
    assert head.structured_content["headers"]["content-type"].startswith("text/plain")


# -- errors --------------------------------------------------------------------------------------


async def test_http_errors_name_status_and_url_with_an_excerpt(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "errors.yaml",
        [
            petstore_capability(
                "get_pet",
                "/pets/{id}",
                {"bearer": "${PETS_TOKEN}"},
                parameters=[{"name": "id", "in": "path", "schema": {"type": "integer"}}],
            ),
            {"name": "boom", "description": "Fails", "url": "${API}/boom", "auth": {"bearer": "${PETS_TOKEN}"}},
        ],
    )
    async with connected(capabilities, {"API": api, "PETS_TOKEN": TOKEN}) as backend:
        missing = await call(backend, "get_pet", id=99)
        boom = await call(backend, "boom")
    assert missing.is_error
    assert text_of(missing).startswith(
        f'GET {api}/v1/pets/99 returned HTTP 404 Not Found: {{"error":"pet 99 not found"}}'
    )
    assert "hint: check the path parameters" in text_of(missing)
    assert boom.is_error
    first_line = text_of(boom).splitlines()[0]
    assert first_line.startswith(f"GET {api}/boom returned HTTP 500 Internal Server Error: Traceback")
    assert len(first_line) < 500  # an excerpt, not the whole page
    assert TOKEN not in text_of(boom)
    assert "Bearer ***" in text_of(boom)
    assert "hint: the API failed on its side" in text_of(boom)


async def test_timeout_and_refused_connection_are_clear_errors(api: str, capabilities: Path) -> None:
    write(
        capabilities,
        "flaky.yaml",
        [
            {"name": "slow", "description": "Slow", "url": "${API}/slow", "timeout": 0.3},
            {"name": "nowhere", "description": "Nothing listens", "url": f"http://127.0.0.1:{free_port()}/x"},
        ],
    )
    async with connected(capabilities, {"API": api}) as backend:
        with anyio.fail_after(5):
            slow = await call(backend, "slow")
        refused = await call(backend, "nowhere")
    assert slow.is_error
    assert text_of(slow).startswith(f"GET {api}/slow did not answer within 0.3s")
    assert refused.is_error
    assert text_of(refused).startswith("could not connect to http://127.0.0.1:")


async def test_api_key_header_does_not_follow_a_redirect_to_another_origin(api: str, capabilities: Path) -> None:
    other_origin = api.replace("127.0.0.1", "localhost")
    key = {"api_key": {"name": "X-Api-Key", "value": "${KEY}"}}
    write(
        capabilities,
        "hops.yaml",
        [
            {"name": "same", "description": "Hop", "url": f"${{API}}/hop?to={api}/echo/same", "auth": key},
            {"name": "away", "description": "Hop", "url": f"${{API}}/hop?to={other_origin}/echo/away", "auth": key},
        ],
    )
    async with connected(capabilities, {"API": api, "KEY": "k-123456"}) as backend:
        same = await call(backend, "same")
        away = await call(backend, "away")
    assert same.structured_content is not None
    assert away.structured_content is not None
    assert same.structured_content["headers"] == {"x-api-key": "k-123456"}
    assert away.structured_content["path"] == "/echo/away"
    assert away.structured_content["headers"] == {}


# -- the file format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "description": "d", "url": "http://h/{id}"}, "url has {id} but no path parameter"),
        (
            {"name": "x", "description": "d", "url": "http://h", "parameters": [{"name": "a", "in": "cookie"}]},
            "parameters[0].in: Input should be 'path', 'query', 'header' or 'body'",
        ),
        ({"name": "x y", "description": "d", "url": "http://h"}, "name: use letters, digits"),
        ({"name": "x", "url": "http://h"}, "description: Field required"),
        (
            {"name": "x", "description": "d", "url": "http://h", "auth": {"bearer": "a", "basic": {}}},
            "auth.basic.username: Field required",
        ),
        (
            {"name": "x", "description": "d", "url": "http://h", "auth": {"bearer": "a", "api_key": "abc"}},
            "auth.api_key: Input should be a valid dictionary",
        ),
        (
            {"name": "x", "description": "d", "url": "http://h", "auth": {}},
            "auth: give exactly one of bearer, basic, api_key (got none)",
        ),
        (
            {"name": "x", "description": "d", "url": "http://h", "response": {"projection": "items[*"}},
            "response.projection: not a valid JMESPath expression",
        ),
        ({"name": "x", "description": "d", "url": "http://h", "verb": "GET"}, "verb: Extra inputs are not permitted"),
    ],
)
def test_invalid_files_name_the_file_and_the_field(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    path = write(tmp_path, "bad.yaml", data)
    with pytest.raises(ConfigError) as caught:
        read_capability_file(path)
    assert caught.value.message.startswith(f"{path}: ")
    assert message in caught.value.message
    assert caught.value.hint is not None
    assert "docs/CAPABILITIES.md" in caught.value.hint


def test_a_directory_rejects_duplicates_and_relative_urls_without_a_base(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", {"name": "same", "description": "d", "url": "http://h/a"})
    write(tmp_path, "b.yaml", {"name": "same", "description": "d", "url": "http://h/b"})
    with pytest.raises(ConfigError, match=r"b\.yaml: tool 'same' is already defined in a\.yaml"):
        load_directory(tmp_path, has_base_url=False)
    (tmp_path / "b.yaml").unlink()
    write(tmp_path, "c.yaml", {"name": "rel", "description": "d", "url": "/relative"})
    with pytest.raises(ConfigError, match="is relative, and the backend has no base_url"):
        load_directory(tmp_path, has_base_url=False)
    assert {c.name for caps in load_directory(tmp_path, has_base_url=True).values() for c in caps} == {"same", "rel"}


async def test_a_missing_directory_fails_the_start(tmp_path: Path) -> None:
    backend = RestBackend("api", RestBackendConfig(dir=str(tmp_path / "nope")), environ={})
    with pytest.raises(ConfigError, match=r"capability directory .*nope does not exist"):
        async with backend.lifespan():
            pass


def test_annotations_follow_the_method_and_the_file_overrides_them() -> None:
    def hints(method: str, **extra: Any) -> tuple[bool | None, bool | None, bool | None]:
        capability = Capability.model_validate(
            {"name": "t", "description": "d", "url": "http://h", "method": method, **extra}
        )
        annotations = annotations_of(capability)
        return annotations.read_only_hint, annotations.idempotent_hint, annotations.destructive_hint

    assert hints("GET") == (True, True, False)
    assert hints("head") == (True, True, False)
    assert hints("PUT") == (False, True, None)
    assert hints("DELETE") == (False, True, True)
    assert hints("POST") == (False, None, None)
    assert hints("POST", annotations={"readOnlyHint": True}) == (True, None, None)


def test_identity_is_the_directory_not_its_contents(tmp_path: Path) -> None:
    config = RestBackendConfig(dir=str(tmp_path), headers={"X-Key": "${KEY}"})
    assert config.identity() == {
        "type": "rest",
        "dir": str(tmp_path),
        "base_url": None,
        "headers": ["X-Key"],
        "timeout": 30.0,
    }
    tool = tool_of(Capability.model_validate({"name": "t", "description": "d", "url": "http://h"}))
    assert tool.input_schema == {"type": "object", "properties": {}, "additionalProperties": False}


# -- live reload ---------------------------------------------------------------------------------


class Watcher:
    """Records the backend's change announcements; waits on them, never on the clock."""

    def __init__(self, backend: RestBackend) -> None:
        self.backend = backend
        self.announced: list[Change] = []
        self._event = anyio.Event()
        backend.changed = self._on_change

    def _on_change(self, change: Change) -> None:
        self.announced.append(change)
        self._event.set()

    async def next(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()

    async def until(self, predicate: Callable[[set[str]], bool]) -> set[str]:
        with anyio.fail_after(10):
            while True:
                names = {tool.name for tool in await self.backend.list_tools()}
                if predicate(names):
                    return names
                await self.next()


async def test_added_changed_and_removed_files_are_picked_up_live(api: str, capabilities: Path) -> None:
    write(capabilities, "one.yaml", {"name": "one", "description": "First", "url": "${API}/echo/one"})
    async with connected(capabilities, {"API": api}) as backend:
        watcher = Watcher(backend)
        assert await watcher.until(lambda names: True) == {"one"}

        write(capabilities, "two.yaml", {"name": "two", "description": "Second", "url": "${API}/echo/two"})
        await watcher.until(lambda names: names == {"one", "two"})
        assert (await call(backend, "two")).structured_content is not None

        write(capabilities, "two.yaml", {"name": "two", "description": "Second, moved", "url": "${API}/echo/2"})

        async def moved() -> bool:
            result = await call(backend, "two")
            return result.structured_content is not None and result.structured_content["path"] == "/echo/2"

        with anyio.fail_after(10):
            while not await moved():
                await watcher.next()

        (capabilities / "one.yaml").unlink()
        await watcher.until(lambda names: names == {"two"})
        gone = await call(backend, "one")
        assert gone.is_error
        assert "has no tool 'one'" in text_of(gone)
    assert set(watcher.announced) == {Change.TOOLS}


async def test_a_broken_edit_keeps_the_last_good_version(api: str, capabilities: Path) -> None:
    write(capabilities, "one.yaml", {"name": "one", "description": "First", "url": "${API}/echo/one"})
    async with connected(capabilities, {"API": api}) as backend:
        watcher = Watcher(backend)
        (capabilities / "one.yaml").write_text("name: one\nurl: [unclosed\n")
        write(capabilities, "two.yaml", {"name": "two", "description": "Second", "url": "${API}/echo/two"})
        assert await watcher.until(lambda names: "two" in names) == {"one", "two"}
        assert not (await call(backend, "one")).is_error


async def test_removing_the_directory_ends_the_connection(capabilities: Path) -> None:
    write(capabilities, "one.yaml", {"name": "one", "description": "First", "url": "http://127.0.0.1:9/one"})
    async with connected(capabilities, {}) as backend:
        (capabilities / "one.yaml").unlink()
        await anyio.Path(capabilities).rmdir()
        with anyio.fail_after(10):
            await backend.lost.wait()
