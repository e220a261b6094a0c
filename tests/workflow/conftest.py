"""A consortium of real node processes for the notarization workflow tests.

The shared parts are in tests/support/harness.py (`harness.DevConsortium`): the
consortium's material is made with `create_consortium` on free ports of
127.0.0.1 (a notary office and three enterprises, a development applicant
with a prepaid balance at the last enterprise and a notary officer at the
notary office, the apply fee 100, as `notarychain-node up` makes them), each
node runs as `python -m node run`, and every node is stopped by the PID the
harness started. What is kept here: the institutions' names, the admin keys,
asynchronous and synchronous clients, and the nodes' running list and heights.

Rules: network only to 127.0.0.1; every wait is bounded and fails with the
tail of each node's log; nothing but this harness's own processes is ended.

Test modules reach the harness through the module-scoped `consortium`
fixture (with `--import-mode=importlib` a conftest cannot be imported).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import harness
import pytest
from harness import http_status, wait_until

from client.sdk import AsyncClient
from client.sync import Client
from ledger.keyfile import load_private_key
from ledger.keys import PrivateKey

NAMES = (
    ("notary-office", "notary"),
    ("acme", "enterprise"),
    ("globex", "enterprise"),
    ("initech", "enterprise"),
)


class Consortium(harness.DevConsortium):
    """Four node processes on 127.0.0.1, their material in `root`."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, NAMES, chain="workflow")

    def admin(self, name: str) -> PrivateKey:
        return load_private_key(self.root / name / "admin.key")

    # ---------------------------------------------------------- clients

    def client(self, key: PrivateKey | None = None, first: str | None = None) -> AsyncClient:
        return AsyncClient(self.urls(first), self.genesis, key)

    def sync_client(self, key: PrivateKey | None = None, first: str | None = None) -> Client:
        return Client(self.client(key, first))

    # ---------------------------------------------------------- processes

    def running(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.poll() is None]

    def heights(self) -> dict[str, int]:
        heights = {}
        for name in self.names:
            status = http_status(self.url(name))
            assert status is not None, f"node {name} does not answer\n{self.logs()}"
            heights[name] = int(status["height"])
        return heights


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """One consortium per test module, started before its first test and stopped after."""
    with harness.running(Consortium(tmp_path_factory.mktemp("workflow") / "consortium")) as started:
        yield started


@pytest.fixture(scope="session")
def wait() -> Callable[..., None]:
    """`wait(predicate, what, timeout_s=60)`: a bounded poll with a clear failure message."""
    return wait_until
