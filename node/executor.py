"""Execution: apply committed blocks to the state, in order, deterministically.

Rule: the same block on the same state gives the same results, state root and
log root on every node. For each transaction, in block order: append it to
the transaction log (every committed transaction is logged, whatever its
outcome); skip it if its id was executed before ("duplicate") or if the block
time is past its expiry ("expired"); refuse it if its sender is not an
enrolled, unrevoked identity; otherwise run its family's operation, keeping
its writes only if the operation did not refuse. Then update the
authenticated state map with the block's writes and store everything in one
database transaction (`node.storage.Store.write_block`).

Runs on the storage thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from consensus.events import CommittedBlock, EpochScheduled, Executed
from ledger.block import tx_leaf
from ledger.encoding import decode, encode
from ledger.families import Refusal
from ledger.families.fees import SCHEDULE_KEY, Account, FeeEntry, Schedule, account_key
from ledger.families.governance import (
    INSTITUTIONS_KEY,
    PROPOSALS_KEY,
    ChangeKind,
    Member,
    Members,
    OpenProposals,
    Proposal,
    ProposalState,
    proposal_key,
)
from ledger.families.identity import Identity, Role, identity_key
from ledger.genesis import Genesis
from ledger.merkle import EMPTY_ROOT, MerkleLog
from ledger.smt import EMPTY as SMT_EMPTY
from ledger.smt import SmtPage, SparseMerkleTree, decode_page, encode_page
from ledger.validators import ValidatorSet
from node.cache import GenerationalCache
from node.families.base import Context, Family, Refused
from node.families.governance import apply_due_changes, apply_membership_change
from node.storage import BlockWrite, Head, Store, TxEntry

OK = "ok"
PROPOSAL_PREFIX = proposal_key(b"")
STATE_CACHE_MAX = 64_000
"""State values held in memory (each about 0.3 KB with its key)."""
SMT_CACHE_MAX = 20_000
"""State-tree pages held in memory (about 1.8 KB each with their binary hashes, some
35 MB in all, about what 128,000 binary nodes took before pages); the top levels stay."""


class FrontierNodeStore:
    """The log's nodes for appending and roots: the last two nodes of each level suffice.

    (An append writes a node and then reads its left sibling, the node before
    it; a root reads only each level's last node.) New nodes are collected for
    the block's database write; proofs read older nodes from the database.
    """

    __slots__ = ("counts", "pending", "tails")

    def __init__(self, counts: list[int], tails: list[list[bytes]]) -> None:
        self.counts = counts
        self.tails = tails  # per level: [second to last, last] (or just [last])
        self.pending: list[tuple[int, int, bytes]] = []

    def get(self, level: int, index: int) -> bytes:
        back = self.counts[level] - index
        assert 1 <= back <= len(self.tails[level]), "the frontier holds each level's last two nodes"
        return self.tails[level][-back]

    def append(self, level: int, digest: bytes) -> None:
        if level == len(self.counts):
            self.counts.append(0)
            self.tails.append([])
        self.pending.append((level, self.counts[level], digest))
        self.counts[level] += 1
        self.tails[level] = [*self.tails[level][-1:], digest]

    def count(self, level: int) -> int:
        return self.counts[level] if level < len(self.counts) else 0


class DatabaseSmtStore:
    """State-tree pages: read from the database, new ones collected for the block's write."""

    __slots__ = ("_cache", "_store", "pending")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: GenerationalCache[bytes, SmtPage] = GenerationalCache(SMT_CACHE_MAX)
        self.pending: list[tuple[int, bytes, bytes]] = []

    def get(self, version: int, page_hash: bytes) -> SmtPage | None:
        # Cached by hash alone: every page under a hash holds the same subtree, and its
        # versions, whichever copy they come from, lead to stored pages and values.
        cached, page = self._cache.lookup(page_hash)
        if cached:
            return page
        data = self._store.smt_page_data(version, page_hash)
        if data is None:
            return None
        page = decode_page(data)
        self._cache.put(page_hash, page)
        return page

    def put(self, version: int, page_hash: bytes, page: SmtPage) -> None:
        self._cache.put(page_hash, page)
        self.pending.append((version, page_hash, encode_page(page)))


class Executor:
    def __init__(self, store: Store, genesis: Genesis, families: Mapping[str, Family]) -> None:
        self.store = store
        self.genesis = genesis
        self.families = families
        self.head = store.head()
        counts, tails = self._load_frontier()
        self.log_store = FrontierNodeStore(counts, tails)
        self.log = MerkleLog(self.log_store)
        self.smt_store = DatabaseSmtStore(store)
        self.state_version = store.smt_root_version(self.head.state_root)
        """The version (block height) the state root node is stored under."""
        self.state_cache: GenerationalCache[bytes, bytes | None] = GenerationalCache(
            STATE_CACHE_MAX
        )
        self.membership_changes: list[tuple[int, Members]] = []
        """(height, members) for each validator-set change executed (read by the driver)."""
        self.epoch_schedules: list[EpochScheduled] = []
        """Validator-set changes approved by executed blocks, for the replica (the driver
        takes them)."""
        self.after_block: list[Callable[[int, Mapping[bytes, bytes]], None]] = []
        """Observers of (height, state writes) once a block is stored, for side effects
        outside the state (the vault drops erased ciphertext); they must not write state."""
        if self.head.height == 0 and not self.head.log_root:
            self._write_genesis_state()

    def _load_frontier(self) -> tuple[list[int], list[list[bytes]]]:
        counts: list[int] = []
        tails: list[list[bytes]] = []
        rows = self.store.db.execute(
            "SELECT level, COUNT(*) FROM log_nodes GROUP BY level ORDER BY level"
        ).fetchall()
        for level, count in rows:
            last_two = self.store.db.execute(
                "SELECT hash FROM log_nodes WHERE level = ? ORDER BY position DESC LIMIT 2",
                (level,),
            ).fetchall()
            counts.append(int(count))
            tails.append([bytes(row[0]) for row in reversed(last_two)])
        return counts, tails

    def _read(self, key: bytes) -> bytes | None:
        cached, value = self.state_cache.lookup(key)
        if cached:
            return value
        row = self.store.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        value = None if row is None else bytes(row[0])
        self.state_cache.put(key, value)
        return value

    def _write_genesis_state(self) -> None:
        """Height 0: the members, their administrators, the genesis identities and fees."""
        writes = genesis_state(self.genesis)
        tree = SparseMerkleTree(self.smt_store, SMT_EMPTY)
        root = tree.update(writes, version=0)
        head = Head(0, bytes.fromhex(self.genesis.genesis_hash), 0, root, 0, EMPTY_ROOT)
        self.store.write_genesis(writes, self.smt_store.pending, tree.version, head)
        self.smt_store.pending = []
        self.head = head
        self.state_version = tree.version

    def execute(self, committed: CommittedBlock) -> Executed:
        block = committed.block
        header = block.header
        assert header.height == self.head.height + 1, (
            f"block {header.height} after {self.head.height}"
        )
        writes: dict[bytes, bytes] = {}
        seen: set[bytes] = set()

        def read(key: bytes) -> bytes | None:
            return writes[key] if key in writes else self._read(key)

        def write(key: bytes, value: bytes) -> None:
            writes[key] = value

        members = apply_due_changes(header.height, read, write)
        if members is not None:
            self.membership_changes.append((header.height, members))
        entries: list[tuple[bytes, TxEntry]] = []
        contexts = [
            Context(read, tx, tx.id, header.height, header.time_ms) for tx in block.transactions
        ]
        executed_before = self._executed_before([ctx.tx_id for ctx in contexts])
        self._read_ahead(contexts)
        for position, ctx in enumerate(contexts):
            tx, tx_id = ctx.tx, ctx.tx_id
            log_index = self.log.append(tx_leaf(tx))
            if tx_id in seen or tx_id in executed_before:
                code, result = _refusal("duplicate", "this transaction was executed before")
            else:
                code, result = self._apply(ctx)
                if code == OK:
                    writes.update(ctx.writes)
            seen.add(tx_id)
            entries.append((tx_id, TxEntry(header.height, position, log_index, code, result)))
        tree = SparseMerkleTree(self.smt_store, self.head.state_root, self.state_version)
        state_root = tree.update(writes, version=header.height)
        log_root = self.log.root()
        head = Head(header.height, block.hash, header.time_ms, state_root, self.log.size, log_root)
        self.store.write_block(
            BlockWrite(
                committed,
                entries,
                writes,
                self.log_store.pending,
                self.smt_store.pending,
                tree.version,
                head,
            )
        )
        self.state_version = tree.version
        self.log_store.pending = []
        self.smt_store.pending = []
        self.state_cache.update(writes)
        self.head = head
        scheduled = self._membership_approved(writes, header.height)
        if scheduled is not None:
            self.epoch_schedules.append(scheduled)
        for observe in self.after_block:
            observe(header.height, writes)
        return Executed(header.height, state_root, self.log.size, log_root)

    def _apply(self, ctx: Context) -> tuple[str, bytes]:
        body = ctx.tx.body
        if ctx.time_ms > body.expires_at_ms:
            return _refusal("expired", "the block time is past the transaction's expiry")
        family = self.families.get(body.family)
        if family is None:
            return _refusal("unknown_family", f"no transaction family {body.family!r}")
        try:
            ctx.sender_identity()
            outcome = family.apply(ctx, body.operation)
        except Refused as refused:
            return _refusal(refused.code, refused.reason)
        return OK, outcome.result

    def _membership_approved(
        self, writes: dict[bytes, bytes], height: int
    ) -> EpochScheduled | None:
        for key, value in writes.items():
            if not key.startswith(PROPOSAL_PREFIX):
                continue
            proposal = decode(Proposal, value)
            if proposal.state is ProposalState.APPROVED and proposal.decided_height == height:
                scheduled = self._schedule_for(proposal)
                if scheduled is not None:
                    return scheduled
        return None

    def _schedule_for(self, proposal: Proposal) -> EpochScheduled | None:
        if proposal.change.kind is ChangeKind.SET_FEE:
            return None
        data = self._read(INSTITUTIONS_KEY)
        assert data is not None, "the genesis writes the members"
        end = proposal.effective_height
        members = apply_membership_change(decode(Members, data), proposal.change, end)
        keys = tuple(m.node_key for m in members.members)
        return EpochScheduled(end, ValidatorSet(end + 1, keys))

    def members(self) -> Members:
        data = self._read(INSTITUTIONS_KEY)
        assert data is not None, "the genesis writes the members"
        return decode(Members, data)

    def pending_schedule(self) -> EpochScheduled | None:
        """After a restart: an approved change of the consortium not yet in force."""
        data = self._read(PROPOSALS_KEY)
        if data is None:
            return None
        for proposal_id in decode(OpenProposals, data).ids:
            value = self._read(proposal_key(proposal_id))
            if value is None:
                continue
            proposal = decode(Proposal, value)
            if (
                proposal.state is ProposalState.APPROVED
                and proposal.effective_height >= self.head.height
            ):
                scheduled = self._schedule_for(proposal)
                if scheduled is not None:
                    return scheduled
        return None

    def _executed_before(self, tx_ids: list[bytes]) -> set[bytes]:
        """Which of these ids the chain executed before."""
        rows = self._rows_in("SELECT id FROM transactions WHERE id IN ({})", tx_ids)
        return {bytes(row[0]) for row in rows}

    def _read_ahead(self, contexts: list[Context]) -> None:
        """Cache the state keys the block's transactions will read, as their families tell.

        Read together, a block's keys take a few queries; read one by one as each
        transaction runs, each query costs several times more (its B-tree pages have
        left the CPU's caches in between). New evidence keys are the common case: a
        miss, which is cached as None like any value.
        """
        wanted: set[bytes] = set()
        for ctx in contexts:
            body = ctx.tx.body
            family = self.families.get(body.family)
            if family is not None:
                wanted.update(family.reads(ctx, body.operation))
        missing = [key for key in wanted if not self.state_cache.lookup(key)[0]]
        if not missing:
            return
        rows = self._rows_in("SELECT key, value FROM state WHERE key IN ({})", missing)
        found = {bytes(key): bytes(value) for key, value in rows}
        for key in missing:
            self.state_cache.put(key, found.get(key))

    def _rows_in(self, sql: str, keys: list[bytes]) -> list[Any]:
        """The rows of `sql`, whose `{}` is the list of keys, one query per 500 keys."""
        rows: list[Any] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = sql.format(",".join("?" * len(chunk)))
            rows.extend(self.store.db.execute(query, chunk).fetchall())
        return rows


def _refusal(code: str, reason: str) -> tuple[str, bytes]:
    return code, encode(Refusal(code, reason))


def genesis_state(genesis: Genesis) -> dict[bytes, bytes]:
    writes: dict[bytes, bytes] = {}
    members = []
    for institution in genesis.institutions:
        admin_key = bytes.fromhex(institution.admin_key)
        admin = Identity(
            admin_key, institution.name, Role.ADMIN, f"{institution.name} admin", 3, 0, None, None
        )
        writes[identity_key(admin_key)] = encode(admin)
        node = institution.node
        members.append(
            Member(
                institution.name,
                institution.role,
                admin_key,
                bytes.fromhex(node.key),
                node.host,
                node.peer_port,
                node.api_port,
            )
        )
    writes[INSTITUTIONS_KEY] = encode(Members(tuple(members), 0))
    for entry in genesis.identities:
        key = bytes.fromhex(entry.key)
        role = Role[entry.role.upper()]
        identity = Identity(key, entry.institution, role, entry.name, entry.level, 0, None, None)
        writes[identity_key(key)] = encode(identity)
        if entry.balance:
            writes[account_key(key)] = encode(Account(entry.balance, 0))
    schedule = Schedule(tuple(FeeEntry(op, amount) for op, amount in sorted(genesis.fees.items())))
    writes[SCHEDULE_KEY] = encode(schedule)
    return writes
