"""A client may send garbage: every bad input gets a 4xx with a stable code and a reason,
changes nothing, and no traceback reaches a user.

Checked against a real consortium (four node processes on 127.0.0.1, started once for
this module with the harness of tests/support/cluster.py), on every public route the
node serves (`build_api`'s router: node/api.py, node/records.py, node/explorer.py,
node/vault.py; the peer port is out of scope). Each route gets garbage path
parameters, query parameters, methods and, where it takes one, bodies; every case is
sent to every node. An answer passes when:

- it is a 4xx (the documented exceptions: 503 `behind` for a `min_height` the node has
  not reached; a batch that is well formed as a whole answers 200 with one refusal per
  transaction);
- an error has the API's shape, `{"error": {"code", "message"}}` (JSON, or msgpack when
  asked for), with a machine code and a message for people (errors_middleware);
- no body holds a traceback or the name of a Python exception class;
- and afterwards every node's height, mempool and vault files are what they were.

Cases marked "tolerated" are not errors (an unknown query parameter, a body on a GET):
they may succeed, but never with a 5xx. A bounded, derandomized hypothesis sweep adds
random garbage on top of the tables.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import enum
import http.client
import importlib
import inspect
import json
import re
import socket
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import quote

import pytest
from cluster import (
    Cluster,
    Reply,
    _no_orphan_nodes,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.encoding import encode, unpack_document
from ledger.families.vault import (
    DOWNLOAD_DOMAIN,
    UPLOAD_DOMAIN,
    DownloadRequest,
    SignedDownload,
    SignedUpload,
    UploadRequest,
)
from ledger.keys import PrivateKey
from ledger.tx import BATCH_TRANSACTIONS_MAX, TX_BYTES_MAX
from node.api import MSGPACK, REQUEST_BYTES_MAX, build_api

__all__ = ["_no_orphan_nodes"]  # the session guard that ends started nodes by PID

HOST: Final = "127.0.0.1"
HTTP_TIMEOUT_S: Final = 15.0
"""Long enough for the one documented wait (`min_height`, 5 s), bounded all the same."""
WORKERS: Final = 8
ZERO_ID: Final = "00" * 32
FAR_HEIGHT: Final = str(10**30)
"""Past SQLite's integers: refused as a parameter out of range."""
UNREACHED_HEIGHT: Final = str(10**12)
"""A height the chain will not reach in this test: `min_height` answers 503 `behind`."""
JSON_TYPE: Final = "application/json"


# ---------------------------------------------------------------- what a case expects


class Outcome(enum.Enum):
    REFUSED_AS = "one of the (status, code) pairs in `expect`"
    ANY_REFUSAL = "any 4xx with the error shape"
    TOLERATED = "anything but a 5xx (an error still has the error shape)"
    PER_ITEM = "200 with a 4xx refusal for every transaction of the batch"


Expect = frozenset[tuple[int, str]]
Row = tuple[str, str, Expect | Outcome]
"""(label, text, the answer expected) of a garbage value."""


def refused(*answers: tuple[int, str]) -> Expect:
    return frozenset(answers)


BAD_ID: Final = refused((400, "bad_id"))
BAD_PARAMETER: Final = refused((400, "bad_parameter"))
BAD_REQUEST: Final = refused((400, "bad_request"))
BAD_ENCODING: Final = refused((400, "bad_encoding"))
NOT_FOUND: Final = refused((404, "not_found"))
NOT_ALLOWED: Final = refused((405, "method_not_allowed"))
TOO_LARGE: Final = refused((413, "too_large"))
UNSIGNED: Final = refused((401, "unsigned"))
BEHIND: Final = refused((503, "behind"))


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    method: str
    target: bytes
    outcome: Outcome
    expect: Expect = frozenset()
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def wants_msgpack(self) -> bool:
        return any(n.lower() == b"accept" and MSGPACK.encode() in v for n, v in self.headers)

    def describe(self) -> str:
        target = self.target if len(self.target) <= 120 else self.target[:120] + b"..."
        return f"{self.method} {target.decode('latin-1')} [{self.label}]"


def case(
    label: str,
    method: str,
    target: str | bytes,
    expect: Expect | Outcome,
    *,
    body: bytes = b"",
    headers: Mapping[str, str | bytes] | None = None,
) -> Case:
    if isinstance(expect, Outcome):
        outcome, answers = expect, frozenset[tuple[int, str]]()
    else:
        outcome, answers = Outcome.REFUSED_AS, expect
    encoded = tuple(
        (name.encode(), value if isinstance(value, bytes) else value.encode())
        for name, value in (headers or {}).items()
    )
    raw = target if isinstance(target, bytes) else target.encode()
    return Case(label, method, raw, outcome, answers, body, encoded)


# ---------------------------------------------------------------- talking to a node


def send(port: int, item: Case) -> Reply | None:
    """One request, byte for byte as the case spells it (no client-side checks or
    normalisation); the answer, or None if the node closed the connection without one."""
    lines = [item.method.encode() + b" " + item.target + b" HTTP/1.1", b"Host: " + HOST.encode()]
    lines.append(b"Connection: close")
    framed = any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in item.headers)
    if not framed and (item.body or item.method in ("POST", "PUT")):
        lines.append(b"Content-Length: %d" % len(item.body))
    lines.extend(name + b": " + value for name, value in item.headers)
    data = b"\r\n".join(lines) + b"\r\n\r\n" + item.body
    with socket.create_connection((HOST, port), timeout=HTTP_TIMEOUT_S) as sock:
        # A node may answer (and close) before it has read a body it refuses.
        with contextlib.suppress(OSError):
            sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=item.method)
        try:
            response.begin()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        finally:
            response.close()
    return Reply(response.status, body, response.getheader("Content-Type", ""))


def run(
    cluster: Cluster, cases_of: Callable[[int], Sequence[Case]]
) -> list[tuple[int, Case, Reply | None]]:
    """Node i's cases (`cases_of(i)`) sent to node i, for every node, a few at a time; the
    documented slow ones (a `min_height` not reached: 5 s) go first, so that they overlap."""
    jobs = [(i, item) for i in range(cluster.n) for item in cases_of(i)]
    jobs.sort(key=lambda job: (503, "behind") not in job[1].expect)
    with ThreadPoolExecutor(WORKERS) as pool:
        replies = list(pool.map(lambda job: send(cluster.api_port(job[0]), job[1]), jobs))
    return [(i, item, reply) for (i, item), reply in zip(jobs, replies, strict=True)]


# ---------------------------------------------------------------- judging an answer


def _exception_names() -> set[str]:
    modules = [
        "builtins",
        "aiohttp.web_exceptions",
        "aiohttp.http_exceptions",
        "aiohttp.client_exceptions",
        "asyncio",
        "concurrent.futures",
        "json",
        "sqlite3",
        "ssl",
        "msgpack",
        "msgpack.exceptions",
        "pydantic",
        "cryptography.exceptions",
        "nacl.exceptions",
        "ledger.errors",
        "node.admission",
        "node.api",
        "node.vault",
        "node.proofs",
    ]
    names = set()
    for name in modules:
        module = builtins if name == "builtins" else importlib.import_module(name)
        for attribute, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException):
                names.add(attribute)
    return names


LEAKS: Final = re.compile(
    r"Traceback|File \"[^\"]*\", line \d+|\b[A-Z]\w+(?:Error|Exception)\b|\b(?:"
    + "|".join(sorted(map(re.escape, _exception_names())))
    + r")\b"
)
CODE: Final = re.compile(r"^[a-z][a-z0-9_]*$")


def leaks(text: str) -> list[str]:
    return sorted(set(LEAKS.findall(text)))


def error_of(item: Case, reply: Reply) -> tuple[str, str] | str:
    """The (code, message) of an error answer, or what is wrong with its shape."""
    wanted = MSGPACK if item.wants_msgpack else JSON_TYPE
    if not reply.content_type.startswith(wanted):
        return f"error body is {reply.content_type or 'untyped'}, not {wanted}"
    try:
        data = unpack_document(reply.body) if item.wants_msgpack else json.loads(reply.body)
    except ValueError:
        return "error body does not parse"
    return shape_of(data)


def shape_of(data: Any) -> tuple[str, str] | str:
    """`{"error": {"code", "message"}}` and nothing else (as cluster.expect_refusal has it)."""
    if not isinstance(data, dict) or set(data) != {"error"}:
        return "error body is not {'error': ...}"
    error = data["error"]
    if not isinstance(error, dict) or set(error) != {"code", "message"}:
        return "error is not {'code', 'message'}"
    code, message = error["code"], error["message"]
    if not isinstance(code, str) or not CODE.match(code):
        return f"code {code!r} is not a stable machine code"
    if not isinstance(message, str) or not message.strip():
        return "no message for people"
    return code, message


def per_item_problems(reply: Reply) -> list[str]:
    if reply.status != 200:
        return [f"status {reply.status}, not 200 with one refusal per transaction"]
    results = json.loads(reply.body).get("results")
    if not isinstance(results, list) or not results:
        return ["no results"]
    found = []
    for index, result in enumerate(results):
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int) or not 400 <= status < 500:
            found.append(f"transaction {index}: status {status}, not a 4xx refusal")
            continue
        shape = shape_of({"error": result.get("error")})
        if isinstance(shape, str):
            found.append(f"transaction {index}: {shape}")
    return found


def problems(item: Case, reply: Reply | None) -> list[str]:
    """What is wrong with the answer to one case (nothing: an empty list)."""
    if reply is None:
        return ["the node closed the connection without an answer"]
    status = reply.status
    text = reply.body.decode("utf-8", "replace")
    # A success may be a document that names errors (the OpenAPI schema, the explorer's
    # script): there, only a traceback is out of place.
    if status >= 400 or item.outcome is Outcome.PER_ITEM:
        found = [f"body leaks {name!r}" for name in leaks(text)]
    else:
        found = ["body holds a traceback"] if "Traceback" in text else []
    code: str | None = None
    if status >= 400 and item.method != "HEAD":
        shape = error_of(item, reply)
        if isinstance(shape, str):
            found.append(shape)
        else:
            code = shape[0]
    if item.outcome is Outcome.PER_ITEM:
        return found + per_item_problems(reply)
    if item.outcome is Outcome.TOLERATED:
        return found + ([f"status {status}"] if status >= 500 else [])
    if item.outcome is Outcome.ANY_REFUSAL or (item.method == "HEAD" and status < 500):
        allowed = {s for s, _ in item.expect} or set(range(400, 500))
        return found + ([] if status in allowed else [f"status {status}, not a refusal"])
    if (status, code) not in item.expect:
        found.append(f"answered {status} {code!r}, not one of {sorted(item.expect)}")
    return found


def verdict(cluster: Cluster, results: Sequence[tuple[int, Case, Reply | None]]) -> list[str]:
    lines = []
    for i, item, reply in results:
        wrong = problems(item, reply)
        if wrong:
            got = "no answer" if reply is None else f"{reply.status} {reply.body[:200]!r}"
            lines.append(f"{cluster.name(i)}: {item.describe()}: {'; '.join(wrong)} -- got {got}")
    return lines


def assert_all_refused(cluster: Cluster, cases_of: Callable[[int], Sequence[Case]]) -> None:
    """Send the cases; fail listing every answer that breaks the rule."""
    results = run(cluster, cases_of)
    wrong = verdict(cluster, results)
    shown = "\n".join(wrong[:80])
    more = f"\n... and {len(wrong) - 80} more" if len(wrong) > 80 else ""
    assert not wrong, f"{len(wrong)} of {len(results)} answers break the rule:\n{shown}{more}"


# ---------------------------------------------------------------- the chain, unchanged


@dataclass(frozen=True, slots=True)
class Snapshot:
    heights: list[int]
    mempools: list[int]
    vault_files: list[list[str]]


def vault_files(cluster: Cluster, i: int) -> list[str]:
    config = tomllib.loads(cluster.config_path(i).read_text())
    root = cluster.directory(i) / config["node"]["data_dir"] / "vault"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def snapshot(cluster: Cluster) -> Snapshot:
    statuses = [cluster.status(i) for i in range(cluster.n)]
    return Snapshot(
        [int(s["height"]) for s in statuses],
        [int(s["mempool"]) for s in statuses],
        [vault_files(cluster, i) for i in range(cluster.n)],
    )


def assert_unchanged(cluster: Cluster, before: Snapshot) -> None:
    assert cluster.alive() == list(range(cluster.n)), cluster.summary()
    assert snapshot(cluster) == before, cluster.summary()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One consortium for the whole module (made, started and stopped as `make_cluster`
    does; the suite has no shared running consortium that a tests/api module can reach)."""
    cluster = Cluster(tmp_path_factory.mktemp("garbage") / "consortium")
    try:
        cluster.create()
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def before(running: Cluster) -> Snapshot:
    running.wait_settled(timeout=30, quiet_polls=3)
    return snapshot(running)


# ---------------------------------------------------------------- garbage for every route

HEX_ID_GARBAGE: Final = [
    ("non-hex", "zz" * 32),
    ("odd length", "0" * 63),
    ("31 bytes", "00" * 31),
    ("33 bytes", "00" * 33),
    ("huge (4,000 digits)", "ab" * 2000),
    ("space", "%20"),
    ("NUL", "%00"),
    ("invalid UTF-8", "%ff%fe" * 16),
    ("unicode", "%C3%A9" * 32),
    ("emoji", "%F0%9F%92%A9"),
    ("zero-width space", "%E2%80%8B" + ZERO_ID),
    ("negative", "-1"),
    ("0x prefix", "0x" + "00" * 31),
    ("bad percent-encoding", "%zz"),
    ("backslashes", "%5C..%5C"),
]
STRUCTURAL: Final = [("dot-dot", ".."), ("encoded dot-dot", "%2e%2e"), ("encoded slash", "00%2F00")]
"""Garbage that may change which route matches: 404 `not_found` is as good as `bad_id`."""

INTEGER_GARBAGE: Final = [
    ("non-integer", "abc"),
    ("empty-ish", "%20"),
    ("fraction", "1.5"),
    ("exponent", "1e3"),
    ("hex", "0x10"),
    ("NUL", "%00"),
    ("unicode", "%C3%A9"),
    ("5,000 digits", "9" * 5000),
    ("inf", "inf"),
    ("nan", "nan"),
    # Python's int() reads these as numbers; the API takes ASCII decimal digits only.
    ("underscore", "1_0"),
    ("Arabic-Indic digit", "%D9%A1"),
    ("fullwidth digit", "%EF%BC%91"),
    ("leading space", "%201"),
    ("plus sign", "%2B1"),
]

FILE_GARBAGE: Final = [
    ("dot-dot", ".."),
    ("encoded dot-dot", "%2e%2e"),
    ("traversal", "..%2F..%2Fnode%2Fapi.py"),
    ("traversal to a sibling", "..%2Fexplorer.py"),
    ("absolute", "%2Fetc%2Fpasswd"),
    ("NUL", "index.html%00"),
    ("NUL only", "%00"),
    ("upper case", "INDEX.HTML"),
    ("hidden", ".index.html"),
    ("python", "api.py"),
    ("huge", "a" * 4000 + ".js"),
    ("unicode", "%C3%A9.js"),
    ("trailing space", "app.js%20"),
]
MIN_HEIGHT_GARBAGE: Final = [
    ("non-integer", "abc"),
    ("negative", "-1"),
    ("empty", ""),
    ("fraction", "1.5"),
    ("hex", "0x1"),
    ("5,000 digits", "9" * 5000),
    ("NUL", "%00"),
    ("10**30, past SQLite's integers", FAR_HEIGHT),
    ("underscore", "1_0"),
]
TOLERATED_QUERIES: Final = [
    ("an unknown parameter", "?unknown=1"),
    ("nameless and undecodable parameters", "?%ff=%fe&=&flag&&"),
    ("a 4,000-character parameter", "?x=" + "a" * 4000),
    ("min_height twice, the first valid", "?min_height=0&min_height=abc"),
]
METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
VALID: Final = {
    "id": ZERO_ID,
    "tx_id": ZERO_ID,
    "reader": ZERO_ID,
    "key": ZERO_ID,
    "height": "1",
    "index": "0",
    "file": "app.js",
}


def params_of(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def fill(template: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def garbage_for(name: str) -> list[Row]:
    """(label, text, expected answer) for path parameter `name`."""
    if name in ("id", "tx_id", "reader", "key"):
        hex_ids = HEX_ID_GARBAGE
        if name == "key":  # any 1 to 1,024 bytes
            hex_ids = [g for g in hex_ids if "bytes" not in g[0]] + [("1,025 bytes", "00" * 1025)]
        rows: list[Row] = [(label, text, BAD_ID) for label, text in hex_ids]
        return rows + [(label, text, BAD_ID | NOT_FOUND) for label, text in STRUCTURAL]
    if name == "file":
        return [(label, text, NOT_FOUND) for label, text in FILE_GARBAGE]
    integers: list[Row] = [(label, text, BAD_PARAMETER) for label, text in INTEGER_GARBAGE]
    if name == "index":  # a vault chunk's: beyond the range of the entry, refused later
        return integers
    assert name == "height", name
    return [
        *integers,
        ("negative", "-1", BAD_PARAMETER),
        ("zero", "0", BAD_PARAMETER),
        ("2**63, past SQLite's integers", str(2**63), BAD_PARAMETER),
        ("10**30", FAR_HEIGHT, BAD_PARAMETER),
    ]


def claimed(method: str, path: str) -> bool:
    """Whether a route of `method` matches `path` (GET /v1/transactions/batch is the
    look-up of a transaction whose id would be "batch")."""
    methods = {method, "GET"} if method == "HEAD" else {method}
    return any(
        m in methods and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", t), path) for m, t in ROUTES
    )


def common_cases(template: str) -> list[Case]:
    """What every resource gets: garbage path parameters (also by HEAD), garbage
    `min_height`, tolerated extra parameters, a body on a GET, and wrong methods."""
    served = {m for m, t in ROUTES if t == template} | (
        {"HEAD"} if ("GET", template) in ROUTES else set()
    )
    method = "GET" if "GET" in served else min(served)
    path = fill(template, VALID)
    cases = []
    for name in params_of(template):
        for label, text, expect in garbage_for(name):
            target = fill(template, {**VALID, name: text})
            cases.append(case(f"{name}: {label}", method, target, expect))
            if method == "GET" and label in ("non-hex", "non-integer", "NUL", "dot-dot"):
                cases.append(case(f"HEAD, {name}: {label}", "HEAD", target, expect))
    cases += [
        case(f"min_height: {label}", method, f"{path}?min_height={text}", BAD_PARAMETER)
        for label, text in MIN_HEIGHT_GARBAGE
    ]
    cases.append(
        case(
            "min_height: non-integer, in msgpack",
            method,
            f"{path}?min_height=abc",
            BAD_PARAMETER,
            headers={"Accept": MSGPACK},
        )
    )
    cases += [
        case(label, method, path + query, Outcome.TOLERATED) for label, query in TOLERATED_QUERIES
    ]
    if method == "GET":
        cases.append(
            case(
                "a garbage body on a GET",
                "GET",
                path,
                Outcome.TOLERATED,
                body=b"\xc1\x00garbage{",
                headers={"Content-Type": JSON_TYPE},
            )
        )
    for wrong in sorted(set(METHODS) - served):
        expect = Outcome.ANY_REFUSAL if claimed(wrong, path) else NOT_ALLOWED
        cases.append(case(f"wrong method {wrong}", wrong, path, expect, body=b"x"))
    return cases


# ---------------------------------------------------------------- garbage for one route


def query_cases(path: str, name: str, rows: Sequence[Row]) -> list[Case]:
    return [case(f"{name}: {label}", "GET", f"{path}?{name}={text}", e) for label, text, e in rows]


def integer_rows(*extra: Row) -> list[Row]:
    rows: list[Row] = [(label, text, BAD_PARAMETER) for label, text in INTEGER_GARBAGE]
    return [*rows, ("empty", "", BAD_PARAMETER), ("negative", "-1", BAD_PARAMETER), *extra]


def status_cases(ctx: Context) -> list[Case]:
    return [
        case(
            "min_height: not reached",
            "GET",
            f"/v1/status?min_height={UNREACHED_HEIGHT}",
            BEHIND,
        )
    ]


def transaction_cases(ctx: Context) -> list[Case]:
    # Past SQLite's integers (10**400 is too large even for a float): refused; a wait
    # within them is clamped to the 30 s maximum (and the transaction is unknown: no wait).
    rows = integer_rows(
        ("10**400", str(10**400), BAD_PARAMETER),
        ("99999, clamped", "99999", refused((404, "unknown_transaction"))),
    )
    return query_cases(f"/v1/transactions/{ZERO_ID}", "wait", rows)


def blocks_cases(ctx: Context) -> list[Case]:
    limits = integer_rows(
        ("zero", "0", BAD_PARAMETER), ("101, above the maximum", "101", BAD_PARAMETER)
    )
    tops = integer_rows(("2**63", str(2**63), BAD_PARAMETER))
    return [
        *query_cases("/v1/blocks", "limit", limits),
        *query_cases("/v1/blocks", "to", tops),
        case(
            "limit twice, the first valid", "GET", "/v1/blocks?limit=5&limit=abc", Outcome.TOLERATED
        ),
        case(
            "limit twice, the first garbage", "GET", "/v1/blocks?limit=abc&limit=5", BAD_PARAMETER
        ),
    ]


def commits_cases(ctx: Context) -> list[Case]:
    # Never a positive `wait`: the node would hold its answer that long.
    afters = integer_rows(("10**30", FAR_HEIGHT, BAD_PARAMETER))
    waits = [
        ("non-number", "abc", BAD_PARAMETER),
        ("empty", "", BAD_PARAMETER),
        ("NUL", "%00", BAD_PARAMETER),
        ("negative (the OpenAPI says minimum 0)", "-1", BAD_PARAMETER),
        ("nan", "nan", BAD_PARAMETER),
        ("inf", "inf", BAD_PARAMETER),
        ("exponent", "1e1", BAD_PARAMETER),
    ]
    return [
        *query_cases("/v1/commits", "after", afters),
        *query_cases("/v1/commits", "wait", waits),
    ]


TRUNCATED_TX: Final = b"\x92\xdc\x00\x07\xa5chain"
"""The start of a transaction (an array of two, its body an array of seven), cut short."""

MSGPACK_GARBAGE: Final = [
    ("empty", b""),
    ("not msgpack", b"\xc1 this is not msgpack"),
    ("truncated", TRUNCATED_TX),
    ("a map", b"\x81\xa1a\x01"),
    ("nil", b"\xc0"),
    ("an array of the wrong shape", b"\x93\x01\x02\x03"),
    ("an extension type", b"\xd4\x01\x00"),
    ("a length beyond the input", b"\xdb\xff\xff\xff\xff"),
    ("nested 100,000 deep", b"\x91" * 100_000),
    ("a float", b"\xcb\x7f\xf8" + bytes(6)),
    ("trailing bytes", b"\xc0\x00"),
]
JSON_GARBAGE: Final = [
    ("empty", b""),
    ("an empty object", b"{}"),
    ("an array", b"[]"),
    ("null", b"null"),
    ("a string", b'"00"'),
    ("a number", b"123"),
    ("NaN", b"NaN"),
    ("not JSON", b"{'transaction': '00'"),
    ("invalid UTF-8", b"\xff\xfe{}"),
    ("nested 100,000 deep", b"[" * 100_000),
]
AS_MSGPACK: Final = {"Content-Type": MSGPACK}
AS_JSON: Final = {"Content-Type": JSON_TYPE}


def post_transaction_cases(ctx: Context) -> list[Case]:
    path = "/v1/transactions"
    wrong_shape = [
        ("transaction a number", b'{"transaction": 5}', BAD_REQUEST),
        ("transaction null", b'{"transaction": null}', BAD_REQUEST),
        ("transaction a list", b'{"transaction": ["00"]}', BAD_REQUEST),
        ("transaction not hex", b'{"transaction": "zz"}', BAD_REQUEST),
        ("transaction of odd length", b'{"transaction": "0"}', BAD_REQUEST),
        ("another key", b'{"tx": "00"}', BAD_REQUEST),
        ("transaction empty", b'{"transaction": ""}', BAD_ENCODING),
        ("transaction not msgpack", b'{"transaction": "c1"}', BAD_ENCODING),
        (
            "transaction truncated",
            b'{"transaction": "%s"}' % TRUNCATED_TX.hex().encode(),
            BAD_ENCODING,
        ),
    ]
    odd_types = [
        ("none", None, b'{"transaction": "00"}'),
        ("text/plain", "text/plain", b'{"transaction": "00"}'),
        ("a form", "application/x-www-form-urlencoded", b"transaction=00"),
        ("multipart", "multipart/form-data; boundary=x", b"--x\r\n\r\n00\r\n--x--"),
        (
            "JSON in UTF-16",
            "application/json; charset=utf-16",
            '{"transaction": "zz"}'.encode("utf-16"),
        ),
        ("unknown", "application/x-garbage", b"\x00\x01\x02"),
    ]
    over = [
        ("a transaction one byte over its limit", bytes(TX_BYTES_MAX + 1), AS_MSGPACK),
        ("a body one byte over the request limit", bytes(REQUEST_BYTES_MAX + 1), AS_MSGPACK),
        (
            "JSON of a transaction one byte over its limit",
            b'{"transaction": "%s"}' % (b"00" * (TX_BYTES_MAX + 1)),
            AS_JSON,
        ),
    ]
    return [
        *(
            case(f"msgpack: {label}", "POST", path, BAD_ENCODING, body=body, headers=AS_MSGPACK)
            for label, body in MSGPACK_GARBAGE
        ),
        *(
            case(f"JSON: {label}", "POST", path, BAD_REQUEST, body=body, headers=AS_JSON)
            for label, body in JSON_GARBAGE
        ),
        *(
            case(f"JSON: {label}", "POST", path, expect, body=body, headers=AS_JSON)
            for label, body, expect in wrong_shape
        ),
        *(
            case(
                f"Content-Type: {label}",
                "POST",
                path,
                BAD_ENCODING | BAD_REQUEST,
                body=body,
                headers={} if kind is None else {"Content-Type": kind},
            )
            for label, kind, body in odd_types
        ),
        *(
            case(label, "POST", path, TOO_LARGE, body=body, headers=headers)
            for label, body, headers in over
        ),
        case(
            "garbage behind a min_height not reached",
            "POST",
            f"{path}?min_height={UNREACHED_HEIGHT}",
            BEHIND,
            body=b"\xc1",
            headers=AS_MSGPACK,
        ),
    ]


def msgpack_array(items: Sequence[bytes]) -> bytes:
    """A msgpack array (array 16) of msgpack byte strings (bin 32)."""
    return (
        b"\xdc"
        + len(items).to_bytes(2, "big")
        + b"".join(b"\xc6" + len(item).to_bytes(4, "big") + item for item in items)
    )


def post_batch_cases(ctx: Context) -> list[Case]:
    path = "/v1/transactions/batch"
    garbage = [b"", b"\xc1", bytes(10), TRUNCATED_TX, b"\x91" * 200]
    msgpack_rows = [
        *MSGPACK_GARBAGE,
        ("an empty batch", b"\x90"),
        ("an array of integers", b"\x91\x01"),
    ]
    json_rows = [
        *JSON_GARBAGE,
        ("transactions a string", b'{"transactions": "abc"}'),
        ("transactions null", b'{"transactions": null}'),
        ("transactions an object", b'{"transactions": {"a": 1}}'),
        ("transactions of numbers", b'{"transactions": [1]}'),
        ("transactions not hex", b'{"transactions": ["00", "zz"]}'),
        ("no transactions", b'{"transactions": []}'),
        ("another key", b'{"txs": ["00"]}'),
    ]
    over = [
        (
            f"{BATCH_TRANSACTIONS_MAX + 1} transactions",
            msgpack_array([b"\xc0"] * (BATCH_TRANSACTIONS_MAX + 1)),
        ),
        ("a body one byte over the request limit", bytes(REQUEST_BYTES_MAX + 1)),
    ]
    # Batches well formed as a whole: each transaction is refused on its own (documented).
    per_item = [
        ("msgpack: a batch of garbage transactions", msgpack_array(garbage), AS_MSGPACK),
        (
            "msgpack: a transaction over its limit",
            msgpack_array([bytes(TX_BYTES_MAX + 1)]),
            AS_MSGPACK,
        ),
        (
            "JSON: a batch of garbage transactions",
            json.dumps({"transactions": [g.hex() for g in garbage]}).encode(),
            AS_JSON,
        ),
    ]
    return [
        *(
            case(f"msgpack: {label}", "POST", path, BAD_REQUEST, body=body, headers=AS_MSGPACK)
            for label, body in msgpack_rows
        ),
        *(
            case(f"JSON: {label}", "POST", path, BAD_REQUEST, body=body, headers=AS_JSON)
            for label, body in json_rows
        ),
        *(
            case(label, "POST", path, TOO_LARGE, body=body, headers=AS_MSGPACK)
            for label, body in over
        ),
        *(
            case(label, "POST", path, Outcome.PER_ITEM, body=body, headers=headers)
            for label, body, headers in per_item
        ),
    ]


@dataclass(frozen=True, slots=True)
class Context:
    """What the signed vault headers of a node's cases name: its chain and institution."""

    chain_id: str
    institution: str
    key: PrivateKey
    now_ms: int


def signed_header(
    ctx: Context, upload: bool, index: int, *, bad_signature: bool = False, **changes: Any
) -> str:
    """A signed vault request for entry ZERO_ID at this node, as a header value, with
    `changes` to its fields (and a bit of the signature flipped if `bad_signature`)."""

    def sign(message: bytes) -> bytes:
        signature = bytearray(ctx.key.sign(message))
        signature[5] ^= 1 if bad_signature else 0
        return bytes(signature)

    key = ctx.key.public_key
    if upload:
        up = UploadRequest(ctx.chain_id, bytes(32), ctx.institution, index, bytes(32), ctx.now_ms)
        up = dataclasses.replace(up, **changes)
        return encode(SignedUpload(up, key, sign(UPLOAD_DOMAIN + encode(up)))).hex()
    down = DownloadRequest(ctx.chain_id, bytes(32), bytes(32), index, ctx.now_ms)
    down = dataclasses.replace(down, **changes)
    return encode(SignedDownload(down, key, sign(DOWNLOAD_DOMAIN + encode(down)))).hex()


def vault_cases(ctx: Context, method: str, path: str, index: int) -> list[Case]:
    """Garbage and ill-fitting signed requests for one vault transfer route (no entry
    exists, so a well-signed request is answered with the first thing missing)."""
    upload = method == "PUT"
    header = "X-Notarychain-Upload" if upload else "X-Notarychain-Download"
    found = refused((404, "unknown_vault_entry" if upload else "unknown_authorization"))

    def sign(**changes: Any) -> str:
        return signed_header(ctx, upload, changes.pop("index", index), **changes)

    minutes = 10 * 60_000
    rows: list[tuple[str, str | bytes, Expect]] = [
        ("not hex", "zz", BAD_REQUEST),
        ("empty", "", BAD_REQUEST),
        ("hex of nothing", "00", BAD_REQUEST),
        ("hex of not msgpack", "c1", BAD_REQUEST),
        ("too long", "a" * 3000, BAD_REQUEST),
        ("raw UTF-8", "\u00e9".encode(), BAD_REQUEST),
        ("trailing bytes", sign() + "00", BAD_REQUEST),
        ("another chain", sign(chain_id="another-chain"), refused((400, "wrong_chain"))),
        ("stale", sign(time_ms=ctx.now_ms - minutes), refused((401, "stale_request"))),
        ("from the future", sign(time_ms=ctx.now_ms + minutes), refused((401, "stale_request"))),
        ("for another entry", sign(evidence_id=b"\x01" * 32), refused((403, "wrong_request"))),
        ("for another index", sign(index=index + 5), refused((403, "wrong_request"))),
        ("bad signature", sign(bad_signature=True), refused((403, "bad_signature"))),
        ("well signed, nothing there", sign(), found),
    ]
    if upload:
        rows.append(
            ("for another node", sign(institution="elsewhere"), refused((403, "wrong_request")))
        )
    body = b"\x00garbage" if upload else b""
    cases = [
        case(f"{header}: {label}", method, path, e, body=body, headers={header: value})
        for label, value, e in rows
    ]
    cases.append(case("unsigned", method, path, UNSIGNED, body=body))
    if upload:
        big = bytes(REQUEST_BYTES_MAX + 1)
        cases += [
            case("unsigned, empty body", method, path, UNSIGNED),
            case(
                "unsigned, a body over the request limit",
                method,
                path,
                UNSIGNED | TOO_LARGE,
                body=big,
            ),
            case(
                "signed, nothing there, a body over the request limit",
                method,
                path,
                found | TOO_LARGE,
                body=big,
                headers={header: sign()},
            ),
        ]
    return cases


def chunk_index_cases(ctx: Context) -> list[Case]:
    """Chunk indexes that are integers but no chunk's: refused by what comes first."""
    path = f"/v1/vault/entries/{ZERO_ID}/chunks"
    nothing = refused((404, "unknown_vault_entry"))
    return [
        case("negative index", "GET", f"{path}/-1", UNSIGNED | BAD_PARAMETER),
        case("index 10**30", "GET", f"{path}/{FAR_HEIGHT}", UNSIGNED | BAD_PARAMETER),
        case("HEAD, nothing there", "HEAD", f"{path}/0", nothing),
        case("HEAD, negative index", "HEAD", f"{path}/-1", nothing | BAD_PARAMETER),
        case("HEAD, index 10**30", "HEAD", f"{path}/{FAR_HEIGHT}", nothing | BAD_PARAMETER),
    ]


def nothing_more(ctx: Context) -> list[Case]:
    return []


MANIFEST: Final = f"/v1/vault/entries/{ZERO_ID}/manifest"
CHUNK: Final = f"/v1/vault/entries/{ZERO_ID}/chunks/0"

ROUTES: Final[dict[tuple[str, str], Callable[[Context], list[Case]]]] = {
    ("GET", "/v1/status"): status_cases,
    ("POST", "/v1/transactions"): post_transaction_cases,
    ("POST", "/v1/transactions/batch"): post_batch_cases,
    ("GET", "/v1/transactions/{tx_id}"): transaction_cases,
    ("GET", "/v1/blocks/{height}"): nothing_more,
    ("GET", "/v1/checkpoints/latest"): nothing_more,
    ("GET", "/v1/openapi.json"): nothing_more,
    ("GET", "/v1/health/live"): nothing_more,
    ("GET", "/v1/health/ready"): nothing_more,
    ("GET", "/v1/commits"): commits_cases,
    ("GET", "/metrics"): nothing_more,
    ("GET", "/v1/evidence/{id}"): nothing_more,
    ("GET", "/v1/applications/{id}"): nothing_more,
    ("GET", "/v1/certificates/{id}"): nothing_more,
    ("GET", "/v1/certificates/{id}/document"): nothing_more,
    ("GET", "/v1/certificates/{id}/html"): nothing_more,
    ("GET", "/v1/accounts/{id}"): nothing_more,
    ("GET", "/v1/identities/{id}"): nothing_more,
    ("GET", "/v1/governance/proposals/{id}"): nothing_more,
    ("GET", "/v1/members"): nothing_more,
    ("GET", "/v1/proofs/evidence/{id}"): nothing_more,
    ("GET", "/v1/proofs/applications/{id}"): nothing_more,
    ("GET", "/v1/proofs/certificates/{id}"): nothing_more,
    ("GET", "/v1/proofs/transactions/{id}"): nothing_more,
    ("GET", "/v1/proofs/state/{key}"): nothing_more,
    ("GET", "/v1/vault/entries/{id}"): nothing_more,
    ("PUT", "/v1/vault/entries/{id}/manifest"): lambda ctx: vault_cases(ctx, "PUT", MANIFEST, -1),
    ("GET", "/v1/vault/entries/{id}/manifest"): lambda ctx: vault_cases(ctx, "GET", MANIFEST, -1),
    ("PUT", "/v1/vault/entries/{id}/chunks/{index}"): lambda ctx: vault_cases(ctx, "PUT", CHUNK, 0),
    ("GET", "/v1/vault/entries/{id}/chunks/{index}"): lambda ctx: [
        *vault_cases(ctx, "GET", CHUNK, 0),
        *chunk_index_cases(ctx),
    ],
    ("GET", "/v1/vault/grants/{id}/{reader}"): nothing_more,
    ("GET", "/v1/vault/requests/{id}"): nothing_more,
    ("GET", "/v1/vault/downloads/{id}"): nothing_more,
    ("GET", "/v1/vault/encryption-keys/{id}"): nothing_more,
    ("GET", "/"): nothing_more,
    ("GET", "/explorer/{file}"): nothing_more,
    ("GET", "/v1/genesis"): nothing_more,
    ("GET", "/v1/blocks"): blocks_cases,
}
"""Every public route, with the garbage that only it gets (`common_cases` adds the rest
to the resource's GET route, or its only one)."""


def route_cases(route: tuple[str, str], ctx: Context) -> list[Case]:
    method, template = route
    owner = "GET" if ("GET", template) in ROUTES else method
    return (common_cases(template) if method == owner else []) + ROUTES[route](ctx)


def context(cluster: Cluster, i: int) -> Context:
    return Context(
        cluster.chain_id, cluster.name(i), PrivateKey.generate(), int(time.time() * 1000)
    )


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the public API, read from its router."""
    app = build_api(cast(Any, None))  # building the routes reads nothing from the node
    routes = set()
    for route in app.router.routes():
        if route.method != "HEAD":  # aiohttp adds one to every GET
            info = route.resource.get_info() if route.resource is not None else {}
            routes.add((route.method, str(info.get("path") or info.get("formatter"))))
    return routes


# ---------------------------------------------------------------- beyond the routes

UNKNOWN_ROUTES: Final = [
    ("GET", "/v1/nope"),
    ("GET", "/v2/status"),
    ("GET", "/v1/status/"),
    ("GET", "//v1/status"),
    ("GET", "/V1/STATUS"),
    ("GET", "/v1/evidence"),
    ("GET", "/v1/evidence/"),
    ("GET", f"/v1/evidence/{ZERO_ID}/extra"),
    ("GET", f"/v1/certificates/{ZERO_ID}/pdf"),
    ("GET", f"/v1/vault/grants/{ZERO_ID}"),
    ("PUT", "/v1/vault/entries"),
    ("POST", "/peer/v1/messages"),
    ("GET", "/peer/v1/stream"),
    ("GET", "/metrics/"),
    ("GET", "/explorer/"),
    ("GET", "/explorer"),
    ("GET", "/favicon.ico"),
    ("GET", "/index.html"),
    ("GET", "/.env"),
    ("GET", "/%2e%2e/%2e%2e/etc/passwd"),
    ("GET", "/%00"),
    ("GET", "/%C3%A9"),
    ("DELETE", "/v1/nope"),
    ("OPTIONS", "*"),
    ("GET", "http://127.0.0.1/v1/nope"),
]


def unknown_route_cases(i: int) -> list[Case]:
    html = {"Accept": "text/html"}
    return [
        *(case("unknown route", m, path, NOT_FOUND) for m, path in UNKNOWN_ROUTES),
        *(
            case("unknown route, HTML asked for", m, p, NOT_FOUND, headers=html)
            for m, p in UNKNOWN_ROUTES[:5]
        ),
        case(
            "unknown route, msgpack asked for",
            "GET",
            "/v1/nope",
            NOT_FOUND,
            headers={"Accept": MSGPACK},
        ),
        case("unknown route, garbage body", "POST", "/v1/nope", NOT_FOUND, body=b"\xc1" * 100),
        case(
            "unknown route, garbage min_height",
            "GET",
            "/v1/nope?min_height=abc",
            NOT_FOUND | BAD_PARAMETER,
        ),
        *(
            case("wrong method, HTML asked for", m, p, NOT_ALLOWED, body=b"x", headers=html)
            for m, p in [("DELETE", "/v1/status"), ("POST", "/"), ("PATCH", "/v1/transactions")]
        ),
    ]


def parser_cases(i: int) -> list[Case]:
    """Requests that are not valid HTTP/1.1: refused by the server's parser before any of
    the API's code (its middlewares included) sees them."""
    chunked = {"Transfer-Encoding": "chunked", "Content-Type": MSGPACK}
    refusal = Outcome.ANY_REFUSAL
    return [
        case("a path parameter over 8 KiB", "GET", "/v1/proofs/state/" + "ab" * 5000, refusal),
        case("raw UTF-8 in the path", "GET", b"/v1/evidence/\xc3\xa9", refusal),
        case("a control character in the path", "GET", b"/v1/evidence/\x01", refusal),
        case("an unknown method", "FOO", "/v1/status", refusal),
        case(
            "a header over 8 KiB", "GET", "/v1/status", refusal, headers={"X-Garbage": "a" * 9000}
        ),
        case(
            "a Content-Length that is no number",
            "POST",
            "/v1/transactions",
            refusal,
            headers={"Content-Length": "abc"},
        ),
        case(
            "a chunk size that is no number",
            "POST",
            "/v1/transactions",
            refusal,
            body=b"zz\r\nabc\r\n0\r\n\r\n",
            headers=chunked,
        ),
        case(
            "a chunk longer than it says",
            "POST",
            "/v1/transactions/batch",
            refusal,
            body=b"3\r\nabcdef\r\n0\r\n\r\n",
            headers=chunked,
        ),
    ]


def hang_up_mid_body(port: int, method: str, path: str) -> Reply | None:
    """Announce 100 bytes, send 2 and close our side: the answer, if the node gives one."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {MSGPACK}\r\n"
    with socket.create_connection((HOST, port), timeout=HTTP_TIMEOUT_S) as sock:
        sock.sendall(head.encode() + b"Content-Length: 100\r\n\r\n\x92\xc4")
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method=method)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return Reply(response.status, response.read(), response.getheader("Content-Type", ""))


# ---------------------------------------------------------------- the tests


def test_every_served_route_has_garbage_cases() -> None:
    assert served_routes() == set(ROUTES)


@pytest.mark.cluster
@pytest.mark.parametrize("route", sorted(ROUTES), ids=" ".join)
def test_garbage_is_refused(running: Cluster, before: Snapshot, route: tuple[str, str]) -> None:
    contexts = [context(running, i) for i in range(running.n)]
    assert_all_refused(running, lambda i: route_cases(route, contexts[i]))
    assert_unchanged(running, before)


@pytest.mark.cluster
def test_unknown_routes_and_methods_get_json_errors(running: Cluster, before: Snapshot) -> None:
    assert_all_refused(running, unknown_route_cases)
    assert_unchanged(running, before)


@pytest.mark.cluster
def test_malformed_http_is_refused(running: Cluster, before: Snapshot) -> None:
    """What is not HTTP at all never reaches a route: the HTTP server refuses it with a
    plain-text 400 (node/api.py says so), no traceback in the answer, nothing changed,
    and each node logs one line for it, not a traceback (node/logs.py)."""
    log_sizes = [running.log_path(i).stat().st_size for i in range(running.n)]
    results = run(running, parser_cases)
    for i, item, reply in results:
        line = describe_answer(running, i, item, reply)
        assert reply is not None and 400 <= reply.status < 500, line
        assert not leaks(reply.body.decode("utf-8", "replace")), line
    assert_unchanged(running, before)
    for i, size in enumerate(log_sizes):
        written = running.log_text(i, size)
        assert "refused a malformed HTTP request" in written, running.name(i)
        assert "Traceback" not in written, written[-3000:]
        assert "Error handling request" not in written, written[-3000:]


@pytest.mark.cluster
def test_a_client_hanging_up_mid_body_gets_no_5xx(running: Cluster, before: Snapshot) -> None:
    """A body cut short by the client closing its side: nobody is left to answer, and
    whatever is answered is no 5xx and no traceback, and the node logs no error for it."""
    log_sizes = [running.log_path(i).stat().st_size for i in range(running.n)]
    for i in range(running.n):
        for method, path in [
            ("POST", "/v1/transactions"),
            ("POST", "/v1/transactions/batch"),
            ("PUT", MANIFEST),
        ]:
            reply = hang_up_mid_body(running.api_port(i), method, path)
            if reply is not None:
                line = describe_answer(
                    running, i, case("hang-up", method, path, Outcome.TOLERATED), reply
                )
                assert reply.status < 500, line
                assert not leaks(reply.body.decode("utf-8", "replace")), line
    assert_unchanged(running, before)
    for i, size in enumerate(log_sizes):
        written = running.log_text(i, size)
        assert "Traceback" not in written, written[-3000:]
        assert "unhandled error" not in written, written[-3000:]


def describe_answer(cluster: Cluster, i: int, item: Case, reply: Reply | None) -> str:
    got = "no answer" if reply is None else f"{reply.status} {reply.body[:200]!r}"
    return f"{cluster.name(i)}: {item.describe()} -- got {got}"


SLOW_PARAMETERS: Final = {"min_height", "wait"}
"""Left out of the sweep: a valid value has the node hold its answer for seconds."""

segments = st.one_of(
    st.text(max_size=60).map(lambda text: quote(text, safe="")),
    st.binary(max_size=40).map(bytes.hex),
    st.integers(min_value=-(10**24), max_value=10**24).map(str),
    st.sampled_from(["..", ".", "%00", "%ff", "-0", "0x10", "1e9", "NaN", "", "%2F"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(["transaction", "transactions"]).flatmap(
        lambda key: (st.binary(max_size=64).map(bytes.hex) | json_values).map(
            lambda value: json.dumps({key: value}).encode()
        )
    ),
)


@st.composite
def garbage_requests(draw: st.DrawFn) -> tuple[int, Case]:
    """(a node, a request): a random route with random path segments, query, method,
    Content-Type, body and signed-request header."""
    route_method, template = draw(st.sampled_from(sorted(ROUTES)))
    path = fill(template, {name: draw(segments) for name in params_of(template)})
    names = st.sampled_from(["limit", "to", "after", "x"]) | st.text(max_size=10)
    query = draw(
        st.lists(st.tuples(names.filter(lambda n: n not in SLOW_PARAMETERS), segments), max_size=3)
    )
    if query:
        path += "?" + "&".join(f"{quote(name, safe='')}={value}" for name, value in query)
    method = draw(st.just(route_method) | st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]))
    headers: dict[str, str | bytes] = {}
    content_type = draw(
        st.sampled_from([None, JSON_TYPE, MSGPACK, "text/plain", "multipart/form-data"])
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    if draw(st.booleans()):
        name = draw(st.sampled_from(["X-Notarychain-Upload", "X-Notarychain-Download"]))
        printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
        headers[name] = draw(st.binary(max_size=120).map(bytes.hex) | printable)
    node = draw(st.integers(min_value=0, max_value=3))
    return node, case("random", method, path, Outcome.TOLERATED, body=draw(bodies), headers=headers)


@pytest.mark.cluster
@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(drawn=garbage_requests())
def test_random_garbage_breaks_nothing(
    running: Cluster, before: Snapshot, drawn: tuple[int, Case]
) -> None:
    node, item = drawn
    i = node % running.n
    reply = send(running.api_port(i), item)
    event("no answer" if reply is None else f"answered {reply.status}")
    assert not problems(item, reply), describe_answer(running, i, item, reply)


@pytest.mark.cluster
def test_nothing_changed_anywhere(running: Cluster, before: Snapshot) -> None:
    """After all of the above: every node settled at the height from before, with empty
    mempools, no vault file, and still running."""
    height = running.wait_settled(timeout=30, quiet_polls=3)
    assert [height] * running.n == before.heights
    assert_unchanged(running, before)
