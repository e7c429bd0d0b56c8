"""The API node's OpenAPI description (api/openapi.yaml) is valid OpenAPI 3.1, names
exactly the routes the node serves, and is what the node serves as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from api.routes import _ACCOUNT_ROUTES, _NAMESPACE_ROUTES, _TOKEN_ROUTES, match
from api.server import OPENAPI_PATH, openapi_document
from edgekv.core.errors import KVError
from tests.integration.rest_api.conftest import ACCOUNT_A, Rest

# The official JSON Schema of OpenAPI 3.1 documents (tests/data/README.md says whence).
SCHEMA = Path(__file__).parents[2] / "data" / "openapi-3.1-schema.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ACCOUNT = "/client/v4/accounts/{account_id}/storage/kv/namespaces"
# What the node serves besides the router's routes (api/server.py).
NODE_OWN = {("GET", "/healthz"), ("GET", OPENAPI_PATH)}


def described() -> set[tuple[str, str]]:
    """(method, full path template) of every operation of the description."""
    doc = openapi_document()
    root = doc["servers"][0]["url"].rstrip("/")
    found = set()
    for path, item in doc["paths"].items():
        prefix = item["servers"][0]["url"].rstrip("/") if "servers" in item else root
        found |= {(m.upper(), prefix + path) for m in METHODS if m in item}
    return found


def routed() -> set[tuple[str, str]]:
    """(method, path template) of every route of api.routes."""
    found = {(method, ACCOUNT) for method in _ACCOUNT_ROUTES}
    found |= {(m, f"/client/v4/{path}") for path, ops in _TOKEN_ROUTES.items() for m in ops}
    for shape, method in _NAMESPACE_ROUTES:
        tail = "/" + shape.replace("*", "{key_name}") if shape else ""
        found.add((method, f"{ACCOUNT}/{{namespace_id}}{tail}"))
    return found


def filled(template: str) -> str:
    return template.format(account_id=ACCOUNT_A, namespace_id="0" * 32, key_name="a%2Fb")


def schemas(node: Any) -> Iterator[Any]:
    """Every schema object of the document (the values of ``schema`` keys, and components)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" or (key == "schemas" and isinstance(value, dict)):
                yield from [value] if key == "schema" else value.values()
            yield from schemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from schemas(item)


def test_the_description_is_valid_openapi_3_1() -> None:
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1.")
    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, "\n".join(errors[:10])
    # That schema leaves schema objects alone: each must be a JSON Schema (2020-12) too.
    for schema in schemas(doc):
        Draft202012Validator.check_schema(schema)
    assert json.loads(json.dumps(doc)) == doc  # pure JSON: the node serves it as such


def test_every_reference_resolves() -> None:
    doc = openapi_document()
    for ref in _refs(doc):
        assert _at(doc, ref) is not None, ref


def _at(doc: dict[str, Any], ref: str) -> Any:
    """What the local reference ``ref`` (``#/a/b``) names in ``doc``."""
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_the_description_names_exactly_the_routes_served() -> None:
    assert described() == routed() | NODE_OWN


@pytest.mark.parametrize(("method", "template"), sorted(routed()))
def test_the_router_routes_each_described_route_and_no_other_method(
    method: str, template: str
) -> None:
    path = filled(template)
    assert match(method, path).op is not None
    taken = {m for m, t in described() if t == template}
    for other in {m.upper() for m in METHODS} - taken:
        with pytest.raises(KVError) as refused:
            match(other, path)
        assert refused.value.http_status == 405


def test_each_operation_declares_its_path_parameters() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        if "{" not in path:
            continue
        parameters = [_at(doc, p["$ref"]) if "$ref" in p else p for p in item["parameters"]]
        declared = {p["name"] for p in parameters if p["in"] == "path"}
        named = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        assert declared == named, path


async def test_the_node_serves_the_description_as_json_without_a_token(rest: Rest) -> None:
    origin = rest.base_url.removesuffix("/client/v4")
    async with rest.http.get(origin + OPENAPI_PATH) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == openapi_document()
    async with rest.http.get(origin + "/healthz") as response:
        assert (await response.json())["status"] == "SERVING"
