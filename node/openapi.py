"""The OpenAPI description of the public API, served at `/v1/openapi.json`."""

from __future__ import annotations

from typing import Any, Final

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {"description": "refused", "content": {"application/json": {"schema": _ERROR}}}
        for code in codes
    }


def _ok(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {}, "application/msgpack": {}},
    }


OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Notary chain node API",
        "version": "1",
        "description": (
            "JSON by default; send `Accept: application/msgpack` for msgpack with raw bytes. "
            "Hashes, ids and keys are lowercase hex in JSON."
        ),
    },
    "paths": {
        "/v1/status": {
            "get": {
                "summary": "This node: height, view, primary, peers and their heights, catch-up",
                "responses": {"200": _ok("status")},
            }
        },
        "/v1/transactions": {
            "post": {
                "summary": "Submit a signed transaction",
                "requestBody": {
                    "content": {
                        "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["transaction"],
                                "properties": {
                                    "transaction": {"type": "string", "description": "hex"}
                                },
                            }
                        },
                    }
                },
                "responses": {
                    "202": _ok("admitted: pending"),
                    "200": _ok("already known: its current status"),
                    **_errors(400, 403, 413, 429, 503),
                },
            }
        },
        "/v1/transactions/{tx_id}": {
            "get": {
                "summary": "A transaction's status: pending, committed (height, index) or rejected",
                "parameters": [
                    {"name": "tx_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "seconds to wait while it is pending (at most 30)",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {"200": _ok("status"), **_errors(400, 404)},
            }
        },
        "/v1/blocks/{height}": {
            "get": {
                "summary": "A committed block with its transactions and commit signers",
                "parameters": [
                    {
                        "name": "height",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {"200": _ok("block"), **_errors(400, 404)},
            }
        },
        "/v1/checkpoints/latest": {
            "get": {
                "summary": "The latest stable checkpoint with its 2f + 1 signatures",
                "responses": {"200": _ok("checkpoint certificate"), **_errors(404)},
            }
        },
        "/v1/health/live": {
            "get": {"summary": "The process is up", "responses": {"200": _ok("live")}}
        },
        "/v1/health/ready": {
            "get": {
                "summary": "Connected to a quorum and caught up (503 with the problems otherwise)",
                "responses": {"200": _ok("ready"), "503": _ok("not ready")},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}
        },
    },
    "components": {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            }
        }
    },
}
