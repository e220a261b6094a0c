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


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _read(path: str, summary: str, *codes: int) -> dict[str, Any]:
    """A GET of one record (or proof) named by hex ids in the path."""
    return {
        "get": {
            "summary": summary,
            "parameters": _path_params(path),
            "responses": {"200": _ok(summary), **_errors(400, 404, *codes)},
        }
    }


def _reads(*entries: tuple[str, str]) -> dict[str, Any]:
    return {path: _read(path, summary) for path, summary in entries}


_PROOF = " with a proof bundle that verifies against the genesis alone"
_VAULT_AUTH = (
    "Needs a signed request in the `X-Notarychain-Upload` header (the owner) or the "
    "`X-Notarychain-Download` header (a reader with a committed download authorization)"
)


OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Notary chain node API",
        "version": "1",
        "description": (
            "JSON by default; send `Accept: application/msgpack` for msgpack with raw bytes. "
            "Hashes, ids and keys are lowercase hex in JSON. Every request takes `min_height`: "
            "the node answers once it has executed that block (waiting up to 5 s), else 503 "
            "`behind`, so a client reads its own writes from any node, and a submission is "
            "checked against a state that has them."
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
        "/v1/transactions/batch": {
            "post": {
                "summary": (
                    "Submit up to 1,024 signed transactions; each is admitted or refused on "
                    "its own, and `results` holds, in order, what a single submission of it "
                    "would have answered, with that answer's HTTP status as `status`"
                ),
                "requestBody": {
                    "content": {
                        "application/msgpack": {
                            "schema": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["transactions"],
                                "properties": {
                                    "transactions": {
                                        "type": "array",
                                        "items": {"type": "string", "description": "hex"},
                                    }
                                },
                            }
                        },
                    }
                },
                "responses": {"200": _ok("one result per transaction"), **_errors(400, 413)},
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
        "/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _ok("OpenAPI 3.1")}}
        },
        "/v1/commits": {
            "get": {
                "summary": "Long-poll for blocks committed after a height, with their tx ids",
                "parameters": [
                    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "seconds to wait for a new block (at most 30)",
                        "schema": {"type": "number", "minimum": 0},
                    },
                ],
                "responses": {"200": _ok("commits"), **_errors(400)},
            }
        },
        "/v1/genesis": {
            "get": {
                "summary": "The genesis: the trust anchor",
                "responses": {"200": _ok("genesis")},
            }
        },
        "/v1/blocks": {
            "get": {
                "summary": "Summaries of the latest blocks, newest first",
                "parameters": [
                    {"name": "to", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
                "responses": {"200": _ok("blocks"), **_errors(400)},
            }
        },
        "/v1/members": {
            "get": {
                "summary": "The current validator set: institutions, roles, keys and endpoints",
                "responses": {"200": _ok("members")},
            }
        },
        **_reads(
            ("/v1/evidence/{id}", "An evidence record"),
            ("/v1/applications/{id}", "A notarization application with its history"),
            ("/v1/certificates/{id}", "A certificate record"),
            ("/v1/certificates/{id}/document", "A certificate document" + _PROOF),
            ("/v1/certificates/{id}/html", "A certificate as a printable page with a QR code"),
            ("/v1/accounts/{id}", "An account's balance and holds"),
            ("/v1/identities/{id}", "An enrolled identity"),
            ("/v1/governance/proposals/{id}", "A governance proposal and its approvals"),
            ("/v1/proofs/evidence/{id}", "An evidence record" + _PROOF),
            ("/v1/proofs/applications/{id}", "An application" + _PROOF),
            ("/v1/proofs/certificates/{id}", "A certificate" + _PROOF),
            ("/v1/proofs/transactions/{id}", "A transaction's inclusion" + _PROOF),
            ("/v1/proofs/state/{key}", "Any state key's value or absence" + _PROOF),
            ("/v1/vault/entries/{id}", "A vault entry with its grants, requests and history"),
            ("/v1/vault/grants/{id}/{reader}", "A grant of access to a vault entry"),
            ("/v1/vault/requests/{id}", "An access request"),
            ("/v1/vault/downloads/{id}", "A download authorization"),
            ("/v1/vault/encryption-keys/{id}", "An identity's published encryption key"),
        ),
        "/v1/vault/entries/{id}/manifest": {
            "put": {
                "summary": "Upload the chunk-hash manifest of a vault entry (owner only). "
                + _VAULT_AUTH,
                "parameters": _path_params("/v1/vault/entries/{id}/manifest"),
                "responses": {"200": _ok("stored"), **_errors(400, 401, 403, 404, 410, 413)},
            },
            "get": {
                "summary": "Download the manifest. " + _VAULT_AUTH,
                "parameters": _path_params("/v1/vault/entries/{id}/manifest"),
                "responses": {
                    "200": {"description": "the manifest bytes"},
                    **_errors(400, 401, 403, 404, 410),
                },
            },
        },
        "/v1/vault/entries/{id}/chunks/{index}": {
            "put": {
                "summary": "Upload one encrypted chunk (owner only; checked against the manifest). "
                + _VAULT_AUTH,
                "parameters": _path_params("/v1/vault/entries/{id}/chunks/{index}"),
                "responses": {"200": _ok("stored"), **_errors(400, 401, 403, 404, 409, 410, 413)},
            },
            "get": {
                "summary": "Download one encrypted chunk. " + _VAULT_AUTH,
                "parameters": _path_params("/v1/vault/entries/{id}/chunks/{index}"),
                "responses": {
                    "200": {"description": "the chunk bytes"},
                    **_errors(400, 401, 403, 404, 410),
                },
            },
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
