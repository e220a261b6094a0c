"""Parameters in paths and queries, and the log line for requests that are not HTTP."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from node.api import INT_PARAM_MAX, WAIT_S_MAX, ApiError, int_param, seconds_param
from node.logs import configure


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("7", 7), ("007", 7), (str(INT_PARAM_MAX), INT_PARAM_MAX)],
)
def test_int_param_reads_decimal_digits(text: str, value: int) -> None:
    assert int_param(text, "height") == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "decimal digits"),
        ("abc", "decimal digits"),
        ("1_0", "decimal digits"),  # int() would read 10
        (" 1", "decimal digits"),  # and 1
        ("+1", "decimal digits"),
        ("\u0661", "decimal digits"),  # an Arabic-Indic one
        ("\uff11", "decimal digits"),  # a fullwidth one
        ("1.5", "decimal digits"),
        ("nan", "decimal digits"),
        ("-1", "from 0 to"),
        (str(INT_PARAM_MAX + 1), "from 0 to"),
        ("9" * 5000, "from 0 to"),  # no int() of 5,000 digits
        ("-" + "9" * 5000, "from 0 to"),
    ],
)
def test_int_param_refuses_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(ApiError) as info:
        int_param(text, "height")
    assert (info.value.status, info.value.code) == (400, "bad_parameter")
    assert info.value.message.startswith("height must be")
    assert why in info.value.message


def test_int_param_bounds_are_the_callers() -> None:
    assert int_param("1", "limit", 1, 100) == 1
    for text in ("0", "101"):
        with pytest.raises(ApiError, match="limit must be from 1 to 100"):
            int_param(text, "limit", 1, 100)


def test_seconds_param_takes_fractions_and_clamps() -> None:
    assert seconds_param("0", "wait") == 0.0
    assert seconds_param("2.5", "wait") == 2.5
    assert seconds_param("99999", "wait") == WAIT_S_MAX
    assert seconds_param("9" * 5000, "wait") == WAIT_S_MAX
    for text in ("", "-1", "nan", "inf", "1e1", ".5", "1.", "1_0"):
        with pytest.raises(ApiError, match="wait must be a number of seconds"):
            seconds_param(text, "wait")


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """`configure` sets process-wide logging; the other tests get theirs back."""
    root, server = logging.getLogger(), logging.getLogger("aiohttp.server")
    saved = (root.handlers[:], root.level, server.filters[:])
    yield
    root.handlers[:], server.filters[:] = saved[0], saved[2]
    root.setLevel(saved[1])


def _server_log(level: str, exc: Exception) -> str:
    """What the node's log shows when the HTTP server logs `exc` for a request."""
    configure("test-node", "text", level, None)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        raise exc
    except Exception:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "1.2.3.4")
    return stream.getvalue()


def test_a_request_that_is_not_http_is_one_info_line() -> None:
    text = _server_log("info", BadHttpMessage("Invalid method encountered"))
    assert text.count("\n") == 1, text
    assert " INFO " in text
    assert "refused a malformed HTTP request from 1.2.3.4" in text
    assert "Invalid method encountered" in text
    assert "Traceback" not in text
    assert _server_log("warning", BadHttpMessage("Invalid method encountered")) == ""


def test_other_server_errors_keep_their_traceback() -> None:
    text = _server_log("info", RuntimeError("a bug of ours"))
    assert "Traceback" in text
    assert " ERROR " in text
