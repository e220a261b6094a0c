"""Domain integers of the protocol, as distinct types so that mypy catches swapped arguments."""

from typing import NewType

ReplicaId = NewType("ReplicaId", int)
"""A replica's index in the validator set (PBFT's i)."""

View = NewType("View", int)
"""PBFT's v: the primary of view v is replica v mod n."""

SeqNo = NewType("SeqNo", int)
"""PBFT's n: a sequence number; each orders one batch, which becomes the block of that height."""
