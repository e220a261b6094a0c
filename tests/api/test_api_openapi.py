"""The OpenAPI document describes every public route the node serves, and nothing else."""

from __future__ import annotations

from typing import Any, cast

from node.api import build_api
from node.openapi import OPENAPI

# The explorer's page and its static files are for browsers, not part of the API.
UNDOCUMENTED = {("GET", "/"), ("GET", "/explorer/{file}")}
METHODS = {"GET", "POST", "PUT", "DELETE"}


def served_routes() -> set[tuple[str, str]]:
    # Building the routing table reads nothing from the node; it is only stored.
    app = build_api(cast(Any, None))
    routes = set()
    for route in app.router.routes():
        if route.method in METHODS:
            info = route.resource.get_info() if route.resource is not None else {}
            path = info.get("path") or info.get("formatter")
            routes.add((route.method, str(path)))
    return routes


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in OPENAPI["paths"].items()
        for method in operations
    }


def test_every_served_route_is_documented() -> None:
    missing = served_routes() - UNDOCUMENTED - documented_routes()
    assert missing == set()


def test_every_documented_route_is_served() -> None:
    assert documented_routes() - served_routes() == set()


def test_path_parameters_match_the_path() -> None:
    for path, operations in OPENAPI["paths"].items():
        in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, path


def test_every_operation_has_a_summary_and_a_success_answer() -> None:
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"], (method, path)
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)
