"""Table columns derived from the reading contract: the contract is the only list of fields."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from urbanpulse.contract import READING_MODELS, Kind

# Columns ingest adds to every reading.
RECEIVED_AT = "received_at"
BATCH_ID = "batch_id"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    pg_type: str  # a type name psycopg's binary COPY knows


def _pg_type(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _pg_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _pg_type(inner[0])
    if origin is Literal or annotation is str:
        return "text"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int8"
    if annotation is float:
        return "float8"
    if annotation is datetime:
        return "timestamptz"
    msg = f"no column type for {annotation!r}"
    raise TypeError(msg)


def table_name(kind: Kind) -> str:
    return f"{kind.value}_readings"


def reading_columns(kind: Kind) -> tuple[Column, ...]:
    """The contract's fields of ``kind`` as columns, in contract order."""
    model = READING_MODELS[kind]
    return tuple(Column(name, _pg_type(info.annotation)) for name, info in model.model_fields.items())


def table_columns(kind: Kind) -> tuple[Column, ...]:
    """Every column of the kind's readings table: the contract's fields plus ingest's own."""
    return (*reading_columns(kind), Column(RECEIVED_AT, "timestamptz"), Column(BATCH_ID, "int8"))
