"""Readable views of models: JSON-ready dicts for the API, the CLI and documents.

Bytes become lowercase hex, enum members their lowercase names, tuples lists,
nested models dicts; field names stay as in the model.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


def view(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: view(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [view(v) for v in value]
    if isinstance(value, dict):
        return {str(k): view(v) for k, v in value.items()}
    return value
