"""What a replica serves to a peer that asks for blocks (the serving side of catch-up).

Rule: an answer holds consecutive blocks from the height asked for, and every
one of them is provable to the asker: those up to the last checkpoint
certificate in range by the hash chain into the certified block, those after
it by their own commit certificates. A block with neither ends the answer.
The store is reached through a small protocol, so the simulator's disk and
the node's database serve with the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from consensus.events import CommittedBlock
from ledger.checkpoint import CheckpointCertificate


class BlockSource(Protocol):
    def block(self, height: int) -> CommittedBlock | None: ...

    def latest_certificate_between(self, low: int, high: int) -> CheckpointCertificate | None: ...

    def first_certificate_from(self, height: int) -> CheckpointCertificate | None: ...


def select_fetch_answer(
    source: BlockSource,
    from_height: int,
    chunk_max: int,
    until_height: int | None = None,
    *,
    size_of: Callable[[CommittedBlock], int] | None = None,
    bytes_max: int = 0,
) -> tuple[CheckpointCertificate | None, tuple[CommittedBlock, ...]] | None:
    """`until_height`: the answer stops there (an epoch's last block: the next blocks are
    certified by another validator set, which the asker may not know yet).

    With `size_of`, the run of blocks also stops once it holds `bytes_max` (at least
    one block): an answer the asker holds in memory at once stays small. The blocks up
    to a later certificate, when none is in range, are added whatever their size."""
    if until_height is not None:
        chunk_max = min(chunk_max, until_height - from_height + 1)
    held: list[CommittedBlock] = []
    size = 0
    while len(held) < chunk_max and (size_of is None or size < bytes_max or not held):
        block = source.block(from_height + len(held))
        if block is None:
            break
        held.append(block)
        if size_of is not None:
            size += size_of(block)
    if not held:
        return None
    end = from_height + len(held) - 1
    certificate = source.latest_certificate_between(from_height, end)
    if certificate is None:
        # Nothing certified in range: a certificate a little further on still proves
        # the chain up to it (checkpoints every `checkpoint_interval` blocks).
        later = source.first_certificate_from(end + 1)
        limit = end + 1 + chunk_max if until_height is None else until_height + 1
        if later is not None and later.checkpoint.height < limit:
            extra = [source.block(h) for h in range(end + 1, later.checkpoint.height + 1)]
            if all(b is not None for b in extra):
                held.extend(b for b in extra if b is not None)
                certificate = later
    certified = from_height - 1 if certificate is None else certificate.checkpoint.height
    answer = [b for b in held if b.block.header.height <= certified]
    for block in held[len(answer) :]:
        if block.certificate is None:
            break
        answer.append(block)
    return (certificate, tuple(answer)) if answer else None
