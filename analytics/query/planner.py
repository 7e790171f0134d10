"""The planner: which storage answers a query, with the choice and its reasons on the plan.

Priority (Snuba's storage selector, written where it is decided):
1. a storage that covers every column the query reads and the time range asked for;
2. among those, the one with the fewest rows per unit of time (rollups before raw);
3. the raw table ``gateway_analytics`` always covers everything and is the fallback.

Today only the raw table exists, so every plan says ``raw``; the rollup issue adds
storages here and nowhere else. The printer prints the table the plan names.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.query.registry import TABLE
from analytics.query.tree import BucketList, Select, UnscopedSystemQuery


@dataclass(frozen=True)
class Storage:
    name: str  # what ``meta.source`` and the query log call it
    table: str  # the ClickHouse table (Distributed in cluster mode) it reads


RAW = Storage(name="raw", table=TABLE)
STORAGES: dict[str, Storage] = {RAW.name: RAW}


@dataclass(frozen=True)
class Plan:
    """A query and the storage chosen for it. ``refused`` names each storage passed over
    and why ("group_by path not covered"), for the query log and debug output."""

    query: Select | BucketList | UnscopedSystemQuery
    storage: Storage | None  # None: a table-less query (bucket lists)
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        return self.storage.name if self.storage else "none"


def plan(query: Select | BucketList | UnscopedSystemQuery) -> Plan:
    """Choose the storage for ``query`` (see the module docstring for the priority)."""
    if isinstance(query, BucketList):
        return Plan(query=query, storage=None)
    candidates = [s for s in STORAGES.values() if s is not RAW]
    refused = tuple((s.name, "not covering this query") for s in candidates)
    return Plan(query=query, storage=RAW, refused=refused)
