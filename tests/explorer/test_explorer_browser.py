"""The web explorer, driven in a real headless Chromium against a real local consortium.

The page must show the chain and its members, find what is searched, and
verify a file entirely in the browser: hash it with Web Crypto, decode the
proof bundle, check the checkpoint's Ed25519 signatures against the genesis and
the sparse Merkle proof of the record. A bundle changed by one byte on its way
to the browser must fail there. Element ids are documented at the top of
node/explorer/app.js.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

try:
    from playwright.sync_api import Page, Route, expect
except ImportError as exc:  # say how to get it
    raise ImportError("Playwright for Python is missing: pip install -e '.[test]'") from exc

from ledger.documents import iso_time

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOT = ROOT / "docs" / "explorer-verify.png"
PROOF_TIMEOUT_MS = 30_000


def get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET to the node at `url` (127.0.0.1), the path sent exactly as given."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(url: str, path: str) -> Any:
    status, _, body = get(url, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def search(page: Page, query: str) -> None:
    page.fill("#search-input", query)
    page.press("#search-input", "Enter")


@pytest.mark.browser
@pytest.mark.cluster
def test_home_shows_the_chain_its_members_and_latest_blocks(page: Page, consortium: Any) -> None:
    page.goto(consortium.url)
    expect(page.locator("#chain-id")).to_have_text(consortium.chain_id)
    expect(page.locator("#node-status")).to_contain_text("notary-office")
    members = page.locator("#members tr.member")
    expect(members).to_have_count(4)
    for name in consortium.names:
        reach = page.locator(f'#members tr.member[data-name="{name}"] td.reachability')
        expect(reach).to_have_text(re.compile(r"^(this node|reachable)$"))
    height = consortium.registered["height"]
    block = page.locator(f'#blocks tr.block[data-height="{height}"]')
    expect(block).to_contain_text(consortium.registered["tx_id"][:12])
    expect(block).to_contain_text("evidence.register")


@pytest.mark.browser
@pytest.mark.cluster
def test_the_overview_follows_the_chain_live(
    page: Page, consortium: Any, register: Callable[[Path], dict[str, Any]], tmp_path: Path
) -> None:
    page.goto(consortium.url)
    expect(page.locator("#members tr.member")).to_have_count(4)
    later = tmp_path / "later.txt"
    later.write_text("registered while the page was open\n")
    answer = register(later)
    height = answer["height"]
    block = page.locator(f'#blocks tr.block[data-height="{height}"]')
    expect(block).to_contain_text(answer["tx_id"][:12], timeout=15_000)
    expect(page.locator("#node-status")).to_contain_text(f"height {height}")


@pytest.mark.browser
@pytest.mark.cluster
def test_search_finds_the_transaction_and_its_block(page: Page, consortium: Any) -> None:
    tx_id = consortium.registered["tx_id"]
    height = consortium.registered["height"]
    page.goto(consortium.url)
    search(page, tx_id)
    expect(page.locator("#transaction")).to_have_attribute("data-id", tx_id)
    expect(page.locator("#tx-state")).to_have_text("committed")
    expect(page.locator("#transaction")).to_contain_text("evidence.register")
    search(page, str(height))
    expect(page.locator("#block")).to_have_attribute("data-height", str(height))
    expect(page.locator(f'#block tr.tx[data-id="{tx_id}"]')).to_be_visible()
    search(page, consortium.registered["evidence_id"])
    expect(page.locator("#evidence #trusted-time")).to_have_text(
        iso_time(consortium.registered["items"][0]["time_ms"])
    )
    expect(page.locator("#proof-result")).to_have_text("proof verified", timeout=PROOF_TIMEOUT_MS)


@pytest.mark.browser
@pytest.mark.cluster
def test_a_registered_file_is_verified_in_the_browser(page: Page, consortium: Any) -> None:
    registered = consortium.registered
    page.goto(consortium.url + "#/verify")
    page.set_input_files("#file-input", str(consortium.sample))
    expect(page.locator("#file-hash")).to_have_text(registered["evidence_id"])
    expect(page.locator("#verify-result")).to_have_text("registered")
    expect(page.locator("#trusted-time")).to_have_text(iso_time(registered["items"][0]["time_ms"]))
    record = page.locator("#evidence-record")
    expect(record).to_contain_text(consortium.sample.name)
    expect(record).to_contain_text("document")
    expect(page.locator("#proof-result")).to_have_text("proof verified", timeout=PROOF_TIMEOUT_MS)
    expect(page.locator("#proof-checks")).to_contain_text("Ed25519")
    page.screenshot(path=str(SCREENSHOT), full_page=True)


@pytest.mark.browser
@pytest.mark.cluster
def test_an_unregistered_file_is_not_registered(
    page: Page, consortium: Any, tmp_path: Path
) -> None:
    stranger = tmp_path / "never-registered.txt"
    stranger.write_text("nobody registered this\n")
    page.goto(consortium.url + "#/verify")
    page.set_input_files("#file-input", str(stranger))
    digest = hashlib.sha256(stranger.read_bytes()).hexdigest()
    expect(page.locator("#file-hash")).to_have_text(digest)
    expect(page.locator("#verify-result")).to_have_text("not registered")
    expect(page.locator("#proof-result")).to_have_text(
        re.compile(r"^absence proven at height \d+$"), timeout=PROOF_TIMEOUT_MS
    )


@pytest.mark.browser
@pytest.mark.cluster
def test_proofs_are_checked_against_a_genesis_file_the_user_holds(
    page: Page, consortium: Any, tmp_path: Path
) -> None:
    page.goto(consortium.url + "#/verify")
    page.set_input_files("#genesis-input", str(consortium.data / "genesis.json"))
    expect(page.locator("#trust-anchor")).to_contain_text("the file genesis.json")
    page.set_input_files("#file-input", str(consortium.sample))
    expect(page.locator("#proof-result")).to_have_text("proof verified", timeout=PROOF_TIMEOUT_MS)
    other = json.loads((consortium.data / "genesis.json").read_text())
    other["created_at_ms"] += 1
    (tmp_path / "other-genesis.json").write_text(json.dumps(other))
    page.set_input_files("#genesis-input", str(tmp_path / "other-genesis.json"))
    expect(page.locator("#trust-anchor")).to_contain_text("the file other-genesis.json")
    page.set_input_files("#file-input", str(consortium.sample))
    expect(page.locator("#proof-result")).to_have_text(
        "proof failed: the bundle was made under another genesis", timeout=PROOF_TIMEOUT_MS
    )


@pytest.mark.browser
@pytest.mark.cluster
def test_a_certificate_from_its_qr_link_and_its_application(
    page: Page, consortium: Any, client: Callable[..., str]
) -> None:
    evidence_id = consortium.registered["evidence_id"]
    purpose = ["--purpose", "lease of a shop", "--category", "contract"]
    application_id = client("-q", "notarize", "apply", evidence_id, *purpose).strip()
    certificate_id = client("-q", "--as", "officer", "notarize", "issue", application_id).strip()
    _, _, printable = get(consortium.url, f"/v1/certificates/{certificate_id}/html")
    qr_link = f"{consortium.url}#/verify?certificate={certificate_id}"
    assert qr_link.encode() in printable
    assert b"<svg" in printable
    page.goto(qr_link)
    expect(page.locator("#certificate-status")).to_have_text("active")
    expect(page.locator("#certificate")).to_contain_text(evidence_id)
    expect(page.locator("#proof-result")).to_have_text("proof verified", timeout=PROOF_TIMEOUT_MS)
    expect(page.locator("#certificate-signers")).to_contain_text("node")
    html_link = page.locator(f'#certificate a[href="/v1/certificates/{certificate_id}/html"]')
    expect(html_link).to_be_visible()
    page.locator(f'#certificate a[href="#/application/{application_id}"]').click()
    expect(page.locator("#application")).to_contain_text("issued")
    expect(page.locator("#findings tbody tr")).to_have_count(4)
    expect(page.locator("#history")).to_contain_text("audited")
    expect(page.locator("#history")).to_contain_text("issued")


@pytest.mark.browser
@pytest.mark.cluster
@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("checkpoint state root", "bad signature from validator"),
        ("evidence record", "the key's leaf holds the hash of a different value"),
    ],
)
def test_a_tampered_proof_fails_in_the_browser(
    page: Page, consortium: Any, target: str, reason: str
) -> None:
    evidence_id = consortium.registered["evidence_id"]
    genuine = get_json(consortium.url, f"/v1/proofs/evidence/{evidence_id}")
    bundle = bytearray(base64.b64decode(genuine["bundle"]))
    if target == "checkpoint state root":
        at = bundle.find(bytes.fromhex(genuine["state_root"]))
    else:  # the record's title; it first occurs in the state proof's value
        at = bundle.find(consortium.sample.name.encode())
    assert at > 0, target
    bundle[at] ^= 0x01
    tampered = json.dumps({**genuine, "bundle": base64.b64encode(bytes(bundle)).decode()})

    def one_byte_flipped(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=tampered)

    page.route("**/v1/proofs/evidence/**", one_byte_flipped)
    page.goto(consortium.url + "#/verify")
    page.set_input_files("#file-input", str(consortium.sample))
    expect(page.locator("#verify-result")).to_have_text("registered")
    result = page.locator("#proof-result")
    expect(result).to_have_text(re.compile(r"^proof failed: "), timeout=PROOF_TIMEOUT_MS)
    expect(result).to_contain_text(reason)


@pytest.mark.cluster
def test_the_node_serves_the_page_its_files_and_nothing_else(consortium: Any) -> None:
    status, headers, body = get(consortium.url, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'src="/explorer/app.js"' in body
    for name, content_type in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, _ = get(consortium.url, f"/explorer/{name}")
        assert (status, headers["Content-Type"].split(";")[0]) == (200, content_type)
    for path in (
        "/explorer/nothing.js",
        "/explorer/..%2fexplorer.py",
        "/explorer/%2e%2e%2fapi.py",
        "/explorer/../explorer.py",
        "/explorer/.hidden.js",
        "/explorer/app.js%00.css",
        "/explorer/",
    ):
        status, _, body = get(consortium.url, path)
        assert status == 404, (path, status, body[:200])
        assert json.loads(body)["error"]["code"] == "not_found", path


@pytest.mark.cluster
def test_genesis_and_latest_blocks_endpoints(consortium: Any) -> None:
    node_status = get_json(consortium.url, "/v1/status")
    genesis = get_json(consortium.url, "/v1/genesis")
    canonical = json.dumps(genesis, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == node_status["genesis_hash"]
    assert [i["name"] for i in genesis["institutions"]] == list(consortium.names)
    latest = get_json(consortium.url, "/v1/blocks?limit=2")
    heights = [b["height"] for b in latest["blocks"]]
    assert heights == sorted(heights, reverse=True)
    assert heights[0] <= latest["height"]
    height = consortium.registered["height"]
    one = get_json(consortium.url, f"/v1/blocks?to={height}&limit=1")["blocks"]
    assert [b["height"] for b in one] == [height]
    assert one[0]["transactions"][0]["id"] == consortium.registered["tx_id"]
    assert one[0]["transactions"][0]["code"] == "ok"
    for query in ("limit=0", "limit=101", "limit=x", "to=-1"):
        status, _, body = get(consortium.url, f"/v1/blocks?{query}")
        assert status == 400, query
        assert json.loads(body)["error"]["code"] == "bad_parameter"
