"""The twin a replay fills: a table like the live one, its indexes built, then put in its place.

The twin starts unlogged, with the live table's columns, defaults and checks but only the
indexes the fill needs; the others are built once it is full (a sorted build beats a million
inserts). At the swap the live table is dropped and the twin and its indexes take the live names, so
`appointments_booking_uid_key` (which the workflow maps to layer 4) keeps its name, and so do
the primary key and unique constraints, which follow their indexes' names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from events.store import Connection

_INDEXES = """
SELECT i.relname AS name, x.indisunique AS is_unique,
       substring(pg_get_indexdef(x.indexrelid) FROM ' USING .*$') AS method,
       c.contype::text AS constraint_type
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
 WHERE x.indrelid = $1::regclass
 ORDER BY i.relname
"""
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_CONSTRAINTS = {"p": "PRIMARY KEY", "u": "UNIQUE"}


class TwinError(Exception):
    """The live table has something a twin cannot reproduce, or the twin is not ready."""


@dataclass(frozen=True, slots=True)
class _Index:
    name: str
    twin_name: str
    is_unique: bool
    method: str
    constraint_type: str | None


class Twin:
    """A `<table>_rebuild` twin of a live table; all DDL runs on the caller's connection."""

    def __init__(self, live: str, name: str, indexes: list[_Index]) -> None:
        self.live = live
        self.name = name
        self._indexes = indexes
        self._built: set[str] = set()

    @classmethod
    async def create(
        cls, conn: Connection, live: str, name: str, *, fill_indexes: tuple[str, ...] | None
    ) -> Twin:
        """(Re)create the twin empty, with the indexes named in `fill_indexes` (None: all)."""
        for table in (live, name):
            if not _IDENTIFIER.fullmatch(table):
                raise ValueError(f"not a plain table name: {table!r}")
        indexes = [
            _Index(
                name=row["name"],
                twin_name=f"{name}_{n}",
                is_unique=row["is_unique"],
                method=row["method"],
                constraint_type=row["constraint_type"],
            )
            for n, row in enumerate(await conn.fetch(_INDEXES, live))
        ]
        for index in indexes:
            if index.constraint_type not in (None, *_CONSTRAINTS):
                raise TwinError(f"cannot rebuild {live}: constraint kind of index {index.name}")
        await conn.execute(f"DROP TABLE IF EXISTS {name}")
        # Unlogged while it fills (nothing to recover if the server crashes meanwhile): the fill
        # writes no WAL, and `build_indexes` makes it a logged table in one pass.
        await conn.execute(
            f"CREATE UNLOGGED TABLE {name} (LIKE {live} INCLUDING ALL EXCLUDING INDEXES)"
        )
        twin = cls(live, name, indexes)
        for index in indexes:
            if fill_indexes is None or index.name in fill_indexes:
                await twin._build(conn, index)
        return twin

    async def build_indexes(self, conn: Connection) -> None:
        """Make the twin logged, build the indexes the fill went without, ANALYZE it."""
        await conn.execute(f"ALTER TABLE {self.name} SET LOGGED")
        for index in self._indexes:
            if index.twin_name not in self._built:
                await self._build(conn, index)
        await conn.execute(f"ANALYZE {self.name}")

    async def swap_in(self, conn: Connection) -> None:
        """Drop the live table and give the twin its names; in the caller's transaction."""
        if len(self._built) != len(self._indexes):
            raise TwinError(f"{self.name} is missing indexes; call build_indexes first")
        await conn.execute(f"DROP TABLE {self.live}")
        await conn.execute(f"ALTER TABLE {self.name} RENAME TO {self.live}")
        for index in self._indexes:
            await conn.execute(f'ALTER INDEX "{index.twin_name}" RENAME TO "{index.name}"')

    async def drop(self, conn: Connection) -> None:
        """Remove the twin (a no-op once it has been swapped in)."""
        await conn.execute(f"DROP TABLE IF EXISTS {self.name}")

    async def _build(self, conn: Connection, index: _Index) -> None:
        unique = "UNIQUE " if index.is_unique else ""
        await conn.execute(f'CREATE {unique}INDEX "{index.twin_name}" ON {self.name}{index.method}')
        if index.constraint_type is not None:
            kind = _CONSTRAINTS[index.constraint_type]
            await conn.execute(
                f'ALTER TABLE {self.name} ADD CONSTRAINT "{index.twin_name}"'
                f' {kind} USING INDEX "{index.twin_name}"'
            )
        self._built.add(index.twin_name)
