"""`quiver import-openapi`: a petstore spec in, capability files out, called through a real Gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import typer
import yaml
from typer.testing import CliRunner

from quiver.backends.base import Backend
from quiver.backends.capabilities import read_capability_file, tool_of
from quiver.backends.rest import RestBackend, RestBackendConfig
from quiver.cli.openapi import register
from quiver.config import QuiverConfig
from quiver.errors import InvalidArgumentsError
from quiver.gateway import Gateway
from quiver.openapi import OpenApiError, Resolver, import_openapi, read_spec, write_capabilities
from tests.fakes import text_of
from tests.fixtures.rest_api import ADMIN_KEY, PASSWORD, QUERY_KEY, SPEC, TOKEN, USERNAME, serving

ENVIRON = {
    "PETSTORE_TOKEN": TOKEN,
    "PETSTORE_ADMIN_KEY": ADMIN_KEY,
    "PETSTORE_QUERY_KEY": QUERY_KEY,
    "PETSTORE_USERNAME": USERNAME,
    "PETSTORE_PASSWORD": PASSWORD,
}


@pytest.fixture
def api() -> Iterator[str]:
    with serving() as base:
        yield base


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Quiver."""

    register(app)
    return app


def import_petstore(out: Path, *extra: str) -> str:
    result = CliRunner().invoke(cli(), ["import-openapi", str(SPEC), "--prefix", "petstore", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.stdout


def spec(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}


def imported(tmp_path: Path, document: dict[str, Any], **options: Any) -> tuple[dict[str, dict[str, Any]], Any]:
    report = write_capabilities(document, prefix=options.pop("prefix", "api"), out=tmp_path / "out", **options)
    files = {path.stem: yaml.safe_load(path.read_text()) for path in report.written}
    return files, report


# -- the import ----------------------------------------------------------------------------------


def test_the_command_writes_one_file_per_operation_and_reports_what_it_skipped(tmp_path: Path) -> None:
    out = tmp_path / "petstore"
    printed = import_petstore(out, "--base-url", "http://127.0.0.1:9/v1")
    assert printed.splitlines()[0] == f"wrote 18 capability files to {out}"
    assert (
        "skipped POST /pets/{petId}/photos (uploadPhoto): request body only as multipart/form-data"
        " (only JSON and form bodies are supported)"
    ) in printed
    assert "skipped POST /reports/export (importReport): request body only as application/xml" in printed
    assert "note: petstore_who_am_i: cookie parameter 'session' left out (not supported)" in printed
    assert (
        "set before calling (export, or `quiver secrets set NAME`): PETSTORE_TOKEN, PETSTORE_ADMIN_KEY,"
        " PETSTORE_USERNAME, PETSTORE_PASSWORD, PETSTORE_QUERY_KEY"
    ) in printed
    names = sorted(path.stem for path in out.glob("*.yaml"))
    assert len(names) == 18
    assert "petstore_get_pets_pet_id_photos" in names  # no operationId: method and path
    for path in out.glob("*.yaml"):
        read_capability_file(path)  # every file is one the backend accepts

    get_pet = yaml.safe_load((out / "petstore_get_pet.yaml").read_text())
    assert get_pet["url"] == "${PETSTORE_BASE_URL:-http://127.0.0.1:9/v1}/pets/{petId}"
    assert get_pet["parameters"] == [
        {
            "name": "petId",
            "in": "path",
            "required": True,
            "description": "The pet's id.",
            "schema": {"type": "integer", "format": "int64", "minimum": 1},
        }
    ]
    assert get_pet["auth"] == {"bearer": "${PETSTORE_TOKEN}"}
    delete = yaml.safe_load((out / "petstore_delete_pet.yaml").read_text())
    assert delete["auth"] == {"api_key": {"in": "header", "name": "X-Admin-Key", "value": "${PETSTORE_ADMIN_KEY}"}}
    assert "auth" not in yaml.safe_load((out / "petstore_list_pets.yaml").read_text())  # security: []


def test_json_output(tmp_path: Path) -> None:
    out = tmp_path / "petstore"
    report = json.loads(import_petstore(out, "--json"))
    assert len(report["written"]) == 18
    assert [item["operation"] for item in report["skipped"]] == [
        "POST /pets/{petId}/photos (uploadPhoto)",
        "POST /reports/export (importReport)",
    ]


def test_refs_are_inlined_nested_and_recursive_ones_cut(tmp_path: Path) -> None:
    files, _ = imported(tmp_path, read_spec(str(SPEC))[0], prefix="petstore")
    order = {p["name"]: p for p in files["petstore_place_order"]["parameters"]}
    assert order["items"]["required"] is True
    item = order["items"]["schema"]["items"]
    assert item["properties"]["pet_id"] == {"type": "integer", "format": "int64", "minimum": 1}  # Order → Item → Id
    assert order["note"]["schema"] == {"type": ["string", "null"]}  # nullable, in JSON Schema terms
    category = {p["name"]: p for p in files["petstore_create_category"]["parameters"]}
    level_two = category["children"]["schema"]["items"]
    assert level_two["properties"]["children"]["items"] == {
        "description": "a Category (nested too deep to describe here)",
        "type": "object",
    }
    owner = files["petstore_create_owner"]["body"]
    assert owner["content_type"] == "application/x-www-form-urlencoded"
    assert owner["schema"]["required"] == ["name"]  # a requestBodies/schemas $ref pair
    pet = {p["name"]: p["schema"] for p in files["petstore_create_pet"]["parameters"]}
    assert pet["tags"]["items"]["required"] == ["name"]
    assert pet["owner_id"]["type"] == ["integer", "null"]  # allOf of one $ref, nullable


def test_openapi_30_dialect_becomes_json_schema() -> None:
    resolver = Resolver({"components": {"schemas": {"N": {"type": "integer", "x-internal": True}}}})
    schema = resolver.schema(
        {
            "type": "object",
            "discriminator": {"propertyName": "kind"},
            "properties": {
                "n": {"$ref": "#/components/schemas/N", "description": "a number"},
                "lower": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "example": 1.5},
                "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
                "any": {"nullable": True, "oneOf": [{"type": "string"}, {"type": "integer"}]},
            },
        }
    )
    assert schema == {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "description": "a number"},
            "lower": {"type": "number", "exclusiveMinimum": 0, "examples": [1.5]},
            "kind": {"type": ["string", "null"], "enum": ["a", "b", None]},
            "any": {"anyOf": [{"oneOf": [{"type": "string"}, {"type": "integer"}]}, {"type": "null"}]},
        },
    }


def test_unsupported_operations_are_skipped_with_reasons(tmp_path: Path) -> None:
    document = spec(
        {
            "/a": {"get": {"operationId": "external", "parameters": [{"$ref": "other.yaml#/components/parameters/P"}]}},
            "/b": {"get": {"operationId": "dangling", "parameters": [{"$ref": "#/components/parameters/Nope"}]}},
            "/c": {"get": {"operationId": "cookie", "parameters": [{"name": "s", "in": "cookie", "required": True}]}},
            "/d": {"get": {"operationId": "fine"}},
        },
        servers=[{"url": "https://api.example.com"}],
    )
    files, report = imported(tmp_path, document)
    assert list(files) == ["api_fine"]
    assert [(s.operation, s.reason) for s in report.skipped] == [
        (
            "GET /a (external)",
            "$ref other.yaml#/components/parameters/P points outside the spec (external references are not supported)",
        ),
        ("GET /b (dangling)", "$ref #/components/parameters/Nope points to nothing in the spec"),
        ("GET /c (cookie)", "required cookie parameter 's' is not supported"),
    ]


def test_names_arguments_and_servers(tmp_path: Path) -> None:
    long_id = "x" * 80
    document = spec(
        {
            "/users/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "operationId": "Get User/By-ID",
                    "summary": "Get a user",
                    "parameters": [
                        {"name": "id", "in": "query", "schema": {"type": "string"}},
                        {"name": "filter[name]", "in": "query"},
                    ],
                },
                "put": {"operationId": "getUserByID", "summary": "Same name, other method"},
                "delete": {"operationId": long_id, "deprecated": True},
            }
        }
    )
    files, report = imported(tmp_path, document, prefix="My API")
    assert sorted(files) == ["my_api_get_user_by_id", "my_api_get_user_by_id_2", f"my_api_{'x' * 57}"]
    params = files["my_api_get_user_by_id"]["parameters"]
    assert [(p["name"], p.get("argument")) for p in params] == [
        ("id", None),
        ("id", "query_id"),
        ("filter[name]", "query_filter_name"),
    ]
    assert files[f"my_api_{'x' * 57}"]["description"] == "Deprecated. DELETE /users/{id}"
    assert files["my_api_get_user_by_id"]["url"] == "${MY_API_BASE_URL}/users/{id}"  # no servers at all
    assert "no absolute server URL in the spec: set MY_API_BASE_URL, or import with --base-url" in report.notes
    assert report.variables == ["MY_API_BASE_URL"]
    tool = tool_of(read_capability_file(tmp_path / "out" / "my_api_get_user_by_id.yaml")[0])
    assert sorted(tool.input_schema["properties"]) == ["id", "query_filter_name", "query_id"]


def test_security_schemes_map_to_auth(tmp_path: Path) -> None:
    schemes = {
        "oauth": {"type": "oauth2", "flows": {}},
        "session": {"type": "apiKey", "in": "cookie", "name": "sid"},
        "digest": {"type": "http", "scheme": "digest"},
    }
    document = spec(
        {
            "/o": {"get": {"operationId": "oauth", "security": [{"oauth": ["read"]}]}},
            "/c": {"get": {"operationId": "cookie", "security": [{"session": []}]}},
            "/d": {"get": {"operationId": "digest", "security": [{"digest": []}]}},
            "/e": {"get": {"operationId": "either", "security": [{}, {"oauth": []}]}},
        },
        servers=[{"url": "https://api.example.com/"}],
        components={"securitySchemes": schemes},
    )
    files, report = imported(tmp_path, document)
    assert files["api_oauth"]["auth"] == {"bearer": "${API_TOKEN}"}
    assert files["api_cookie"]["auth"] == {"api_key": {"in": "header", "name": "Cookie", "value": "sid=${API_SESSION}"}}
    assert "auth" not in files["api_digest"]
    assert "auth" not in files["api_either"]
    assert "api_digest: its security schemes are not supported; it is called without auth" in report.notes
    assert files["api_oauth"]["url"] == "${API_BASE_URL:-https://api.example.com}/o"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"swagger": "2.0", "paths": {}}', "is not OpenAPI 3.0 or 3.1 (Swagger 2.0)"),
        ("- a\n- b\n", "is not an OpenAPI document"),
        ("openapi: 3.0.0\n", "has no paths"),
        ("openapi: [3\n", "is not valid JSON or YAML"),
    ],
)
def test_what_is_not_an_openapi_3_spec_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(OpenApiError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_spec(str(path))
    result = CliRunner().invoke(cli(), ["import-openapi", str(path), "--prefix", "p", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "error:" in result.output


# -- calling what was imported -------------------------------------------------------------------


def rest_factory(environ: dict[str, str]) -> Any:
    def factory(name: str, config: Any) -> Backend:
        assert isinstance(config, RestBackendConfig)
        return RestBackend(name, config, environ=environ)

    return factory


def gateway_over(directory: Path, environ: dict[str, str]) -> Gateway:
    config = QuiverConfig.model_validate({"gateway": {"discovery_timeout": 10}})
    backend = RestBackendConfig(dir=str(directory), description="The petstore API")
    backends: dict[str, Any] = config.backends  # `rest` may not be in the config union yet
    backends["petstore"] = backend
    return Gateway(config, backend_factory=rest_factory(environ))


@pytest.mark.anyio
async def test_imported_operations_are_called_through_the_gateway(api: str, tmp_path: Path) -> None:
    out = tmp_path / "petstore"
    import_petstore(out, "--base-url", f"{api}/v1")
    gateway = gateway_over(out, ENVIRON)
    async with gateway.running():
        found = await gateway.search("add a new pet to the store", 3)
        assert found.cards[0].id == "petstore.petstore_create_pet"

        async def call(tool: str, **arguments: Any) -> types.CallToolResult:
            result = await gateway.call(f"petstore.petstore_{tool}", arguments)
            assert isinstance(result, types.CallToolResult)
            return result

        dogs = await call("list_pets", tag=["dog"], limit=5)
        assert json.loads(text_of(dogs)) == [{"id": 1, "name": "Rex", "status": "available", "tags": [{"name": "dog"}]}]
        created = await call("create_pet", name="Fido", status="available", tags=[{"name": "dog"}])
        assert created.structured_content == {
            "id": 4,
            "name": "Fido",
            "status": "available",
            "tags": [{"name": "dog"}],
        }
        patched = await call("patch_pet", petId=4, status="sold")
        assert patched.structured_content is not None
        assert patched.structured_content["status"] == "sold"
        assert (await call("get_pets_pet_id_photos", petId=4)).structured_content is None
        assert (await call("get_inventory")).structured_content == {"available": 1, "pending": 1, "sold": 2}
        owner = await call("create_owner", body={"name": "Bo", "email": "bo@example.com"})
        assert owner.structured_content == {"id": 2, "name": "Bo", "email": "bo@example.com"}
        order = await call("place_order", items=[{"pet_id": 1, "quantity": 2}], note=None)
        assert order.structured_content == {
            "id": 1,
            "status": "placed",
            "items": [{"pet_id": 1, "quantity": 2}],
            "note": None,  # null is a value a nullable field can take
        }
        tree = await call("create_category", name="animals", children=[{"name": "dogs", "children": []}])
        assert tree.structured_content == {"name": "animals", "children": [{"name": "dogs", "children": []}]}
        me = await call("who_am_i", **{"X-Request-Id": "req-7"})
        assert me.structured_content == {"caller": "bearer", "request_id": "req-7"}
        report = await call("export_report")
        assert text_of(report).startswith("id,name,status\n1,Rex,available\n")

        deleted = await call("delete_pet", petId=4)
        assert not deleted.is_error
        missing = await call("get_pet", petId=4)
        assert missing.is_error
        assert f"GET {api}/v1/pets/4 returned HTTP 404 Not Found" in text_of(missing)

        with pytest.raises(InvalidArgumentsError, match="quantity"):
            await call("place_order", items=[{"pet_id": 1, "quantity": 0}])  # a bound from a nested $ref


@pytest.mark.anyio
async def test_a_spec_fetched_over_http_resolves_its_relative_server(api: str, tmp_path: Path) -> None:
    out = tmp_path / "pets"
    report = import_openapi(f"{api}/openapi-relative.json", prefix="pets", out=out)
    assert len(report.written) == 18
    [capability] = read_capability_file(out / "pets_list_pets.yaml")
    assert capability.url == f"${{PETS_BASE_URL:-{api}/v1}}/pets"
    backend = RestBackend("pets", RestBackendConfig(dir=str(out)), environ={})
    async with backend.lifespan():
        result = await backend.call_tool("pets_list_pets", {"status": "sold"})
    assert json.loads(text_of(result)) == [{"id": 3, "name": "Kiwi", "status": "sold", "tags": [{"name": "bird"}]}]
