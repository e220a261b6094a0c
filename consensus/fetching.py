"""What a replica serves to a peer that asks for blocks (the serving side of catch-up).

Rule: an answer holds consecutive blocks from the height asked for, and every
one of them is provable to the asker: those up to the last checkpoint
certificate in range by the hash chain into the certified block, those after
it by their own commit certificates. A block with neither ends the answer.
The function is pure over mappings, so the simulator's disk and the node's
database serve with the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping

from consensus.events import CommittedBlock
from ledger.checkpoint import CheckpointCertificate


def select_fetch_answer(
    blocks: Mapping[int, CommittedBlock],
    certificates: Mapping[int, CheckpointCertificate],
    from_height: int,
    chunk_max: int,
) -> tuple[CheckpointCertificate | None, tuple[CommittedBlock, ...]] | None:
    end = from_height
    while end < from_height + chunk_max and end in blocks:
        end += 1
    available = range(from_height, end)  # heights held, consecutive
    certified = [h for h in available if h in certificates]
    if not certified:
        # Nothing certified in range: a certificate further on still proves the chain up to it.
        later = min((h for h in certificates if h >= end), default=None)
        if later is not None and all(h in blocks for h in range(end, later + 1)):
            certified, available = [later], range(from_height, later + 1)
    certificate_height = max(certified, default=from_height - 1)
    answer = [blocks[h] for h in available if h <= certificate_height]
    for height in available:
        if height <= certificate_height:
            continue
        if blocks[height].certificate is None:
            break
        answer.append(blocks[height])
    if not answer:
        return None
    certificate = certificates.get(certificate_height)
    return certificate, tuple(answer)
