"""Catch-up over HTTP: serving blocks to peers, and reading a peer's answer."""

from __future__ import annotations

from typing import Any, Final

from consensus.events import CommittedBlock
from consensus.fetching import select_fetch_answer
from ledger.checkpoint import CheckpointCertificate
from ledger.encoding import decode, from_wire, pack, to_wire, unpack
from ledger.errors import DecodeError
from node.storage import Reader

FETCH_CHUNK_MAX: Final = 256
ANSWER_BYTES_TARGET: Final = 4 * 1024 * 1024
"""An answer stops adding blocks once it holds this much (at least one block): a node
that catches up holds each answer, decoded, in memory at once."""
ANSWER_BYTES_MAX: Final = 64 * 1024 * 1024
"""The most an asker reads of an answer: the target, plus the block that crossed it (a
proposal is at most 16 MiB), plus the blocks up to a later certificate when none is in
range. A peer that sends more is not read further."""


class ReaderBlockSource:
    """`consensus.fetching.BlockSource` over the node's database."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.stored_bytes: dict[int, int] = {}
        """The stored size of each block read, which the answer's size is counted in."""

    def block(self, height: int) -> CommittedBlock | None:
        data = self.reader.block_data(height)
        if data is None:
            return None
        self.stored_bytes[height] = len(data)
        return decode(CommittedBlock, data)

    def size_of(self, block: CommittedBlock) -> int:
        return self.stored_bytes[block.block.header.height]

    def latest_certificate_between(self, low: int, high: int) -> CheckpointCertificate | None:
        row = self.reader.one(
            "SELECT height FROM certificates WHERE height BETWEEN ? AND ?"
            " ORDER BY height DESC LIMIT 1",
            low,
            high,
        )
        return None if row is None else self.reader.certificates(row[0], row[0])[row[0]]

    def first_certificate_from(self, height: int) -> CheckpointCertificate | None:
        return self.reader.certificate_at_or_after(height)


def serve_blocks(reader: Reader, from_height: int, until_height: int | None) -> bytes | None:
    """An answer never crosses the end of an epoch: the blocks after it are certified by
    another validator set, which the asker may not know yet."""
    ends = [start - 1 for _, start, _ in reader.epoch_starts() if start - 1 >= from_height]
    if until_height is not None:
        ends.append(until_height)
    until = min(ends, default=None)
    source = ReaderBlockSource(reader)
    answer = select_fetch_answer(
        source,
        from_height,
        FETCH_CHUNK_MAX,
        until,
        size_of=source.size_of,
        bytes_max=ANSWER_BYTES_TARGET,
    )
    if answer is None:
        return None
    certificate, blocks = answer
    wire_certificate = None if certificate is None else to_wire(certificate)
    return pack([wire_certificate, [to_wire(b) for b in blocks]])


def decode_blocks_answer(
    data: bytes,
) -> tuple[CheckpointCertificate | None, tuple[CommittedBlock, ...]] | None:
    """A peer's answer, or None if it is not even well-formed (the replica checks the rest)."""
    try:
        wire: Any = unpack(data, input_bytes_max=ANSWER_BYTES_MAX)
        if type(wire) is not tuple or len(wire) != 2 or type(wire[1]) is not tuple:
            return None
        certificate = None if wire[0] is None else from_wire(CheckpointCertificate, wire[0])
        blocks = tuple(from_wire(CommittedBlock, b) for b in wire[1])
    except DecodeError:
        return None
    return certificate, blocks
