"""One node: load and check everything, then run the servers and the driver until told to stop.

Start-up refuses, with one line saying what is wrong, a node whose config,
key, data directory or transaction-family code does not match its genesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from consensus.config import Parameters, ReplicaConfig
from consensus.crypto import Ed25519Signer, ed25519_verify
from consensus.replica import Replica
from consensus.types import ReplicaId
from ledger.errors import KeyFileError
from ledger.genesis import Genesis, GenesisError, parse_genesis
from ledger.keyfile import load_private_key
from ledger.keys import PrivateKey, public_key_text, verifier_is_strict
from node.admission import Admission, StateChecks, VerifiedSignatures, make_request_validator
from node.api import build_api, transaction_view, unordered_view
from node.commits import CommitFeed
from node.config import NodeConfig
from node.driver import Driver
from node.executor import Executor
from node.families import code_hashes, instantiate
from node.fetching import serve_blocks
from node.logs import set_context
from node.material import passphrase_from_env
from node.memory import trim_heap_periodically, tune_collector
from node.metrics import Metrics
from node.reading import ReadPool
from node.storage import RECORDS_CACHE_KIB, StorageError, Store
from node.transport import TlsFiles, Transport, server_context

log = logging.getLogger("notarychain.node")

READY_LAG_BLOCKS_MAX = 5
"""A node this many blocks behind a peer is not ready (it is catching up)."""


class StartupError(Exception):
    """The node cannot start; the message is the one line the operator sees."""


class NodeStopped(Exception):
    """The running node stopped on a failure; the message is the one line the operator
    sees (the log has the detail)."""


def stop_reason(failure: BaseException) -> str:
    """What made consensus or execution stop, for the log and the operator.

    A database that cannot be written (a full or failing disk, a file size limit) is
    an operating fault, not a bug: one line says what to do. Anything else is a bug,
    and the log keeps its traceback.
    """
    if isinstance(failure, sqlite3.Error):
        return (
            f"the database could not be written ({failure}): free disk space or fix the "
            "disk, then start the node again; it resumes from what it stored and catches up"
        )
    return f"internal error ({type(failure).__name__}: {failure}); see the log"


def load_genesis_file(path: Path) -> Genesis:
    try:
        return parse_genesis(path.read_bytes())
    except FileNotFoundError:
        raise StartupError(f"{path}: genesis file not found") from None
    except GenesisError as exc:
        raise StartupError(f"{path}: {exc.reason}") from None


def check_families(genesis: Genesis) -> None:
    mine = code_hashes()
    if set(genesis.families) != set(mine):
        raise StartupError(
            f"the genesis registers families {sorted(genesis.families)}, "
            f"this node has {sorted(mine)}"
        )
    for name, digest in genesis.families.items():
        if mine[name] != digest:
            raise StartupError(
                f"transaction family {name!r}: this node's code differs from the genesis "
                "(it could execute blocks differently from its peers)"
            )


class Node:
    def _check_genesis_entry(self, config: NodeConfig) -> int | None:
        """This node's index among the genesis validators; None for an institution that joins
        later (it follows the chain until governance makes it a member)."""
        names = [i.name for i in self.genesis.institutions]
        if config.institution not in names:
            log.info("%s is not in the genesis: following the chain", config.institution)
            return None
        institution = self.genesis.institution(config.institution)
        listen = config.listen
        node = institution.node
        if (listen.peer_port, listen.api_port) != (node.peer_port, node.api_port):
            raise StartupError(
                f"{config.path}: ports {listen.peer_port}/{listen.api_port} differ from the "
                f"genesis entry {node.peer_port}/{node.api_port}"
            )
        if public_key_text(self.key.public_key) != node.key:
            raise StartupError(
                f"{config.node_key_path}: not {config.institution}'s node key in the genesis"
            )
        return names.index(config.institution)

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.genesis = load_genesis_file(config.genesis_path)
        check_families(self.genesis)
        if not verifier_is_strict():
            raise StartupError(
                "this node's Ed25519 check accepts a small-order key's forgery, which its peers "
                "refuse (PyNaCl with a libsodium too old?)"
            )
        passphrase = passphrase_from_env()
        try:
            self.key: PrivateKey = load_private_key(config.node_key_path, passphrase)
        except KeyFileError as exc:
            raise StartupError(exc.reason) from None
        self.replica_id = self._check_genesis_entry(config)
        self.tls = TlsFiles(
            config.tls_cert_path, config.tls_key_path, config.ca_cert_path, passphrase
        )
        self.metrics = Metrics()
        self.families = instantiate(self.genesis)
        self.db_path = config.data_dir / "chain.db"
        try:
            # Two writer connections: execution's, and consensus records' (so that a vote
            # is persisted while a block executes; SQLite serializes their commits).
            self.store = Store(self.db_path, self.genesis.genesis_hash)
            self.records = Store(
                self.db_path, self.genesis.genesis_hash, cache_kib=RECORDS_CACHE_KIB
            )
        except StorageError as exc:
            raise StartupError(str(exc)) from None
        self.executor = Executor(self.store, self.genesis, self.families)
        self.verified = VerifiedSignatures()
        parameters = Parameters(**self.genesis.consensus.as_dict())
        replica = Replica(
            ReplicaConfig(
                self.genesis.chain_id,
                self.genesis.validator_set(),
                None if self.replica_id is None else ReplicaId(self.replica_id),
                parameters,
            ),
            Ed25519Signer(self.key),
            ed25519_verify,
            make_request_validator(self.genesis.chain_id, self.verified),
            self.records.restored(self.executor.pending_schedule()),
        )
        self.transport = Transport(
            self.genesis, config.institution, self.tls, self._on_message, config.transport.proxy
        )
        self.driver = Driver(
            replica,
            self.records,
            self.executor,
            self.transport,
            self.metrics,
            clock_offset_ms=config.transport.clock_offset_ms,
        )
        self.reads = ReadPool(self.db_path)
        self.admission = Admission(
            self.genesis.chain_id,
            parameters.tx_lifetime_max_ms,
            self.families,
            self.verified,
        )
        self.state_checks = StateChecks(
            self.admission, self.reads.run, lambda: self.driver.executed_height + 1
        )
        self.waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self.driver.listeners.append(self._on_committed)
        self.commit_feed = CommitFeed()
        self.driver.listeners.append(self.commit_feed.on_committed)
        self.started_ms = int(time.time() * 1000)

    def _on_message(self, message: Any) -> None:
        self.driver.on_message(message)

    def _on_committed(self, height: int, tx_ids: list[bytes]) -> None:
        for tx_id in tx_ids:
            for future in self.waiters.pop(tx_id, ()):
                if not future.done():
                    future.set_result(None)

    # ------------------------------------------------------------ queries

    async def transaction_status(self, tx_id: bytes) -> dict[str, Any]:
        entry = await self.reads.run(lambda reader: reader.transaction(tx_id))
        if entry is not None:
            return transaction_view(tx_id, entry)
        if tx_id in self.driver.replica.pool:
            return unordered_view(tx_id, "pending")
        return unordered_view(tx_id, "unknown")

    async def wait_for_transaction(self, tx_id: bytes, timeout_s: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(tx_id, []).append(future)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, timeout_s)
        waiting = self.waiters.get(tx_id)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self.waiters[tx_id]

    def peers(self) -> list[dict[str, Any]]:
        replica = self.driver.replica
        index_of = {key: index for index, key in enumerate(replica.keys)}
        peers = []
        for key, link in self.transport.links.items():
            index = index_of.get(key)
            announced = None if index is None else replica.peer_status.get(ReplicaId(index))
            peers.append(
                {
                    "institution": link.name,
                    "replica_id": index,
                    "reachable": link.reachable,
                    "height": None if announced is None else announced.executed_height,
                    "view": None if announced is None else announced.view,
                }
            )
        return peers

    def status(self) -> dict[str, Any]:
        replica = self.driver.replica
        peers = self.peers()
        catch_up = self.driver.catch_up
        return {
            "institution": self.config.institution,
            "replica_id": replica.id if replica.member else None,
            "epoch": replica.epoch,
            "validator": replica.member,
            "chain_id": self.genesis.chain_id,
            "genesis_hash": self.genesis.genesis_hash,
            "height": self.driver.executed_height,
            "view": replica.view,
            "view_active": replica.active,
            "primary": replica.primary_of(replica.view),
            "stable_height": replica.stable_height,
            "mempool": len(replica.pool),
            "diverged": replica.diverged,
            "peers": peers,
            "catch_up": None if catch_up is None else {"from": catch_up[0], "to": catch_up[1]},
            "started_ms": self.started_ms,
        }

    def readiness_problems(self) -> list[str]:
        replica = self.driver.replica
        problems = []
        replica_keys = set(replica.keys)
        reachable = int(replica.member) + sum(
            1 for k, link in self.transport.links.items() if link.reachable and k in replica_keys
        )
        quorum = replica.quorum
        if reachable < quorum:
            problems.append(f"connected to {reachable} of the {quorum} nodes a quorum needs")
        # The height f + 1 peers claim, one of them honest: a single liar's claim must not
        # make every honest node report itself not ready.
        height, target = self.driver.executed_height, replica.peers_executed_height()
        if target > height + READY_LAG_BLOCKS_MAX or (replica.fetching and target > height):
            problems.append(f"catching up: at height {height} of {target}")
        if replica.diverged:
            problems.append("this node's state diverged from the quorum's; it stopped signing")
        return problems

    def refresh_gauges(self) -> None:
        replica = self.driver.replica
        self.metrics.mempool.set(len(replica.pool))
        own = self.driver.executed_height
        for peer in self.peers():
            self.metrics.peer_reachable.labels(peer=peer["institution"]).set(peer["reachable"])
            if peer["height"] is not None:
                self.metrics.peer_lag.labels(peer=peer["institution"]).set(own - peer["height"])
        size = sum(p.stat().st_size for p in self.db_path.parent.glob("chain.db*") if p.exists())
        self.metrics.storage_bytes.set(size)

    # ------------------------------------------------------------ running

    async def serve_blocks(self, request: web.Request) -> web.Response:
        self.transport.authenticate(request)
        try:
            from_height = int(request.query["from"])
            until = request.query.get("until")
            until_height = None if until is None else int(until)
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="from=HEIGHT (and optionally until=HEIGHT)") from None
        data = await self.reads.run(lambda reader: serve_blocks(reader, from_height, until_height))
        if data is None:
            raise web.HTTPNotFound(text="no provable blocks from that height")
        return web.Response(body=data, content_type="application/msgpack")

    async def run(self, stop: asyncio.Event) -> None:
        listen = self.config.listen
        peer_runner = web.AppRunner(self.transport.peer_app(self.serve_blocks), access_log=None)
        api_runner = web.AppRunner(build_api(self), access_log=None)
        await peer_runner.setup()
        await api_runner.setup()
        try:
            await web.TCPSite(
                peer_runner, listen.host, listen.peer_port, ssl_context=server_context(self.tls)
            ).start()
            await web.TCPSite(api_runner, listen.host, listen.api_port).start()
        except OSError as exc:
            await peer_runner.cleanup()
            await api_runner.cleanup()
            raise StartupError(f"cannot listen on {listen.host}: {exc.strerror}") from None
        await self.transport.start(self.executor.members().members)
        tune_collector()
        driver = asyncio.create_task(self.driver.run(), name="driver")
        trimmer = asyncio.create_task(trim_heap_periodically(), name="heap-trim")
        log.info(
            "node %s (genesis index %s) running: api http://%s:%d, peers https://%s:%d, height %d",
            self.config.institution,
            self.replica_id,
            listen.host,
            listen.api_port,
            listen.host,
            listen.peer_port,
            self.driver.executed_height,
        )
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({driver, stopper}, return_when=asyncio.FIRST_COMPLETED)
        failure = driver.exception() if driver in done else None
        if failure is not None:
            reason = stop_reason(failure)
            log.critical(
                "the node stops: %s",
                reason,
                exc_info=None if isinstance(failure, sqlite3.Error) else failure,
            )
        for task in (driver, trimmer):
            task.cancel()
        await asyncio.gather(driver, trimmer, return_exceptions=True)  # the failure is known
        await self.transport.stop()
        await api_runner.cleanup()
        await peer_runner.cleanup()
        self.driver.shutdown()
        self.reads.close()
        self.records.close()
        self.store.close()
        log.info("node %s stopped", self.config.institution)
        if failure is not None:
            raise NodeStopped(f"the node stopped: {reason}")


async def run_until_signal(config: NodeConfig) -> None:
    node = Node(config)
    set_context(lambda: {"height": node.driver.executed_height, "view": node.driver.replica.view})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await node.run(stop)
