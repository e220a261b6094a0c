"""From ordered batches to chained blocks, and the check of blocks fetched from a peer.

Rule: a block's header is a pure function of its batch and the previous
block, so every replica that orders the same batches builds the same chain.
Its time is the batch's time unless that would not be after the previous
block's time (a null batch, or a batch whose predecessor changed in a view
change), in which case it is the previous time plus one millisecond: block
times strictly increase, and never exceed an honestly prepared time.
"""

from __future__ import annotations

from consensus.events import CommittedBlock
from consensus.messages import Batch
from consensus.verification import PeerError, Verifier
from ledger.block import Block, BlockHeader, transactions_root
from ledger.checkpoint import CheckpointCertificate


def block_of(batch: Batch, previous_hash: bytes, previous_time_ms: int) -> Block:
    header = batch.header
    time_ms = max(header.time_ms, previous_time_ms + 1)
    return Block(
        BlockHeader(
            chain_id=header.chain_id,
            height=header.height,
            view=header.view,
            time_ms=time_ms,
            previous_hash=previous_hash,
            tx_root=header.tx_root,
            proposer=header.proposer,
        ),
        batch.transactions,
    )


def check_fetched_chain(
    verifier: Verifier,
    blocks: tuple[CommittedBlock, ...],
    from_height: int,
    previous: tuple[bytes, int],
    certificate: CheckpointCertificate | None,
) -> None:
    """Blocks from `from_height` link to `previous` (hash, time) and are each proven.

    A block up to the checkpoint certificate's height is proven by the hash
    chain ending in the certified block; a block after it by its own commit
    certificate, whose batch must be the one the block was built from.
    """
    if not blocks:
        raise PeerError("no blocks in the answer")
    certified = from_height - 1 if certificate is None else certificate.checkpoint.height
    if not from_height - 1 <= certified < from_height + len(blocks):
        raise PeerError(f"the certificate for height {certified} does not cover the answer")
    previous_hash, previous_time_ms = previous
    for offset, committed in enumerate(blocks):
        block = committed.block
        height = from_height + offset
        _check_link(verifier.chain_id, block, height, previous_hash)
        if height > certified:
            _check_committed(verifier, committed, previous_time_ms)
        previous_hash, previous_time_ms = block.hash, block.header.time_ms
        signed_hash = (
            None
            if certificate is None or height != certified
            else certificate.checkpoint.block_hash
        )
        if signed_hash is not None and previous_hash != signed_hash:
            raise PeerError(f"block {height} is not the one the certificate signs")


def _check_link(chain_id: str, block: Block, height: int, previous_hash: bytes) -> None:
    header = block.header
    if header.chain_id != chain_id:
        raise PeerError(f"block {header.height} is for chain {header.chain_id!r}")
    if header.height != height:
        raise PeerError(f"expected block {height}, got {header.height}")
    if header.previous_hash != previous_hash:
        raise PeerError(f"block {height} does not link to its predecessor")
    if transactions_root(block.transactions) != header.tx_root:
        raise PeerError(f"block {height} transactions do not match its root")


def _check_committed(verifier: Verifier, committed: CommittedBlock, previous_time_ms: int) -> None:
    block, certificate = committed.block, committed.certificate
    height = block.header.height
    if certificate is None:
        raise PeerError(f"block {height} is beyond the checkpoint and has no commit certificate")
    verifier.commit_certificate(certificate, height)
    batch = Batch(certificate.batch, block.transactions)
    rebuilt = block_of(batch, block.header.previous_hash, previous_time_ms)
    if rebuilt.header != block.header:
        raise PeerError(f"block {height} is not the block its committed batch makes")
