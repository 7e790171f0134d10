"""Publishing enforced rules to Redis, where the gateway reads them.

Keys (prefix ``BLOCKING_RULES_KEY_PREFIX``, default ``budmetrics:blocking_rules``):

* ``<prefix>:global`` — rules with no project; always present after a publish (may hold
  an empty ``rules`` list).
* ``<prefix>:project:<project uuid>`` — one project's own rules; deleted when the
  project has no enforced rule (absent key ≡ no project rules). The gateway applies
  global rules plus the request's project rules.
* After each change a message with the changed key's scope (``global`` or the project
  uuid) is published on channel ``<prefix>:changed`` so gateways can reload at once.

Each key holds one JSON document, replaced atomically (``MULTI`` … ``SET``/``DEL`` …
``EXEC``), so a reader never sees half a rule set::

    {
      "schema_version": 1,
      "scope": "project",                 # or "global"
      "project_id": "<uuid>",             # null for global
      "generated_at": "2025-01-15T12:00:00Z",
      "rules": [                          # priority descending, then name
        {
          "id": "<uuid>",
          "name": "block scanners",
          "rule_type": "ip_blocking",     # | country_blocking | user_agent_blocking
                                          # | rate_based_blocking
          "config": {"ip_addresses": ["10.0.0.0/8", "2001:db8::/32"]},
          #   country_blocking:    {"countries": ["KP", "RU"]}
          #   user_agent_blocking: {"patterns": ["curl/"], "match_type": "substring"|"regex"}
          #   rate_based_blocking: {"threshold": 100, "window_seconds": 60}
          "priority": 100,                # higher first
          "reason": "scanner",            # to record as block_reason
          "project_id": "<uuid>" | null,
          "endpoint_id": "<uuid>" | null, # null: every endpoint
          "expires_at": "2025-02-01T00:00:00Z" | null
        }
      ]
    }

Only rules that are ``active`` and not past ``expires_at`` are published. Without
``REDIS_URL`` publishing is off (logged once per call at debug level).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics.cache import invalidate_endpoint
from analytics.query.buckets import format_time
from blocking.models import BlockingRule

logger = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
GLOBAL = None  # the "project" of global rules in the sets below


def _prefix() -> str:
    return settings.BLOCKING_RULES_KEY_PREFIX


def global_key() -> str:
    return f"{_prefix()}:global"


def project_key(project_id: uuid.UUID | str) -> str:
    return f"{_prefix()}:project:{uuid.UUID(str(project_id))}"


def changes_channel() -> str:
    return f"{_prefix()}:changed"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return format_time(value)


def rule_document(rule: BlockingRule) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "name": rule.name,
        "rule_type": rule.rule_type,
        "config": rule.rule_config,
        "priority": rule.priority,
        "reason": rule.reason,
        "project_id": str(rule.project_id) if rule.project_id else None,
        "endpoint_id": str(rule.endpoint_id) if rule.endpoint_id else None,
        "expires_at": _iso(rule.expires_at),
    }


def scope_document(project_id: uuid.UUID | None, now: datetime | None = None) -> dict[str, Any]:
    """The JSON document for one key: the enforced rules of that project (or global)."""
    now = now or timezone.now()
    rules = BlockingRule.objects.enforced(now).filter(project_id=project_id)
    return {
        "schema_version": SCHEMA_VERSION,
        "scope": "global" if project_id is None else "project",
        "project_id": str(project_id) if project_id else None,
        "generated_at": _iso(now),
        "rules": [rule_document(r) for r in rules.order_by("-priority", "name", "id")],
    }


def redis_connection() -> Any | None:
    """The raw Redis client behind the default cache, or None when Redis is not set up."""
    if not settings.REDIS_URL:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def publish_scopes(project_ids: Iterable[uuid.UUID | None]) -> None:
    """Rewrite the keys of the given projects (``None`` = global) atomically each."""
    connection = redis_connection()
    if connection is None:
        logger.debug("blocking_rules_publish_skipped", reason="REDIS_URL not set")
        return
    now = timezone.now()
    for project_id in sorted(set(project_ids), key=lambda p: "" if p is None else str(p)):
        document = scope_document(project_id, now)
        key = global_key() if project_id is None else project_key(project_id)
        pipe = connection.pipeline(transaction=True)
        if project_id is not None and not document["rules"]:
            pipe.delete(key)
        else:
            pipe.set(key, json.dumps(document, separators=(",", ":")))
        pipe.publish(changes_channel(), "global" if project_id is None else str(project_id))
        pipe.execute()
        logger.info(
            "blocking_rules_published",
            key=key,
            rules=len(document["rules"]),
        )


def publish_on_commit(project_ids: Iterable[uuid.UUID | None]) -> None:
    """Publish once the surrounding transaction commits, so Redis never shows a rule the
    database rolled back."""
    scopes = set(project_ids)
    transaction.on_commit(lambda: publish_scopes(scopes))
    # Cached blocking statistics name rules and their status: drop them with the change.
    transaction.on_commit(lambda: invalidate_endpoint("blocking-stats"))


def publish_all() -> dict[str, int]:
    """Republish everything: global, every project that has rules, and delete project
    keys left over for projects that no longer have any rule."""
    projects = set(
        BlockingRule.objects.exclude(project_id=None).values_list("project_id", flat=True)
    )
    connection = redis_connection()
    stale: set[uuid.UUID] = set()
    if connection is not None:
        pattern = f"{_prefix()}:project:*"
        for raw in connection.scan_iter(match=pattern, count=500):
            key = raw.decode() if isinstance(raw, bytes) else raw
            try:
                stale.add(uuid.UUID(key.rsplit(":", 1)[1]))
            except ValueError:
                continue
    publish_scopes({GLOBAL, *projects, *stale})
    return {"projects": len(projects), "stale_keys_checked": len(stale - projects)}
