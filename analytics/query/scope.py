"""The caller's project scope: every data query carries one.

``analytics.query.tree.Rows`` (the only source a data query can read) requires a
``ProjectScope``, and the printer turns it into the tenant guard, so a new endpoint cannot
forget access control (Snuba's required-filter rule, PostHog's team guard).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ProjectScope:
    """Projects a caller may read. ``project_ids=None`` means every project (superusers,
    unrestricted service clients); an empty tuple means none, and matches no rows."""

    project_ids: tuple[uuid.UUID, ...] | None

    @classmethod
    def all_projects(cls) -> ProjectScope:
        return cls(project_ids=None)

    @classmethod
    def only(cls, project_ids: Sequence[uuid.UUID | str]) -> ProjectScope:
        unique = sorted({uuid.UUID(str(p)) for p in project_ids}, key=str)
        return cls(project_ids=tuple(unique))

    @property
    def is_all(self) -> bool:
        return self.project_ids is None

    def as_list(self) -> list[str] | None:
        return None if self.project_ids is None else [str(p) for p in self.project_ids]
