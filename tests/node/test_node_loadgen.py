"""The load generator reads a refusal's code the same way for one transaction or a batch."""

from __future__ import annotations

import msgpack

from node.loadgen import _error_code


def test_a_refusal_answer_gives_its_stable_code() -> None:
    answer = msgpack.packb({"error": {"code": "mempool_full", "reason": "retry later"}})
    assert _error_code(answer) == "mempool_full"


def test_an_answer_that_is_not_a_refusal_is_unreadable() -> None:
    assert _error_code(b"\xc1 not msgpack") == "unreadable"
    assert _error_code(msgpack.packb({"results": []})) == "unreadable"
    assert _error_code(msgpack.packb(["error"])) == "unreadable"
    assert _error_code(b"") == "unreadable"
