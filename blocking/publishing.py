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

Only rules that are ``active`` and not past ``expires_at`` are published.

Delivery goes through a transactional outbox (``BlockingRuleOutbox``): a rule change and
the row naming its scope commit together; the publisher writes the scope's current rule
set to Redis right after the commit and, if Redis did not answer, again on every run of
``blocking.deliver_rule_publications`` (beat schedule / in-process jobs) until Redis
acknowledges. Until then the rule's ``publication`` is ``pending``. Publishing goes to
``BLOCKING_RULES_REDIS_URL`` (default ``REDIS_URL``); with neither set it is off, said
at start-up and on the admin pages, and changes stay pending.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from analytics.cache import invalidate_endpoint
from analytics.query.buckets import format_time
from blocking.models import BlockingRule, BlockingRuleOutbox

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


def publishing_configured() -> bool:
    return bool(settings.BLOCKING_RULES_REDIS_URL)


def redis_connection() -> Any | None:
    """A client for the Redis the gateway reads rules from, or None when publishing is not
    configured. One client (and pool) per URL; short timeouts so a dead Redis costs a
    request two seconds at most."""
    url = settings.BLOCKING_RULES_REDIS_URL
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        _clients[url] = client
    return client


_clients: dict[str, Any] = {}


def _scope_order(project_id: uuid.UUID | None) -> str:
    return "" if project_id is None else str(project_id)


def publish_scope(connection: Any, project_id: uuid.UUID | None, now: datetime) -> None:
    """Rewrite one project's key (``None`` = global) atomically and announce it; raises
    ``redis.RedisError`` when Redis did not acknowledge."""
    document = scope_document(project_id, now)
    key = global_key() if project_id is None else project_key(project_id)
    pipe = connection.pipeline(transaction=True)
    if project_id is not None and not document["rules"]:
        pipe.delete(key)
    else:
        pipe.set(key, json.dumps(document, separators=(",", ":")))
    pipe.publish(changes_channel(), "global" if project_id is None else str(project_id))
    pipe.execute()
    logger.info("blocking_rules_published", key=key, rules=len(document["rules"]))


def publish_scopes(project_ids: Iterable[uuid.UUID | None]) -> None:
    """Rewrite the keys of the given projects (``None`` = global) now, bypassing the
    outbox (``sync_blocking_rules``); raises when Redis is unreachable."""
    connection = redis_connection()
    if connection is None:
        logger.warning("blocking_rules_publish_skipped", reason=NOT_CONFIGURED)
        return
    now = timezone.now()
    for project_id in sorted(set(project_ids), key=_scope_order):
        publish_scope(connection, project_id, now)


NOT_CONFIGURED = (
    "publishing is not configured (BLOCKING_RULES_REDIS_URL / REDIS_URL empty): rule changes "
    "are stored but the gateway never receives them"
)


def enqueue(project_ids: Iterable[uuid.UUID | None]) -> None:
    """Queue the publication of these scopes in the caller's transaction (the outbox), and
    try to deliver it as soon as that transaction commits."""
    scopes = sorted(set(project_ids), key=_scope_order)
    BlockingRuleOutbox.objects.bulk_create(BlockingRuleOutbox(project_id=p) for p in scopes)
    transaction.on_commit(deliver_after_commit)
    # Cached blocking statistics name rules and their status: drop them with the change.
    transaction.on_commit(lambda: invalidate_endpoint("blocking-stats"))


def deliver_after_commit() -> None:
    """The immediate delivery attempt after a change: it never fails the request, whose
    change is stored and stays pending for the retry job."""
    try:
        deliver_pending()
    except Exception as exc:  # noqa: BLE001 - the outbox keeps the change; the job retries
        logger.warning("blocking_rules_delivery_failed", error=str(exc)[:200])


def deliver_pending() -> dict[str, int]:
    """Deliver the outbox: each pending scope's current rule set is written to Redis, in
    the order the changes were queued, and its rows are deleted once Redis acknowledged.

    Idempotent (a scope is always published from the rule store as it is now, so delivering
    twice writes the same document). Rows are locked for the whole delivery, so two
    publishers never interleave and an older rule set never overwrites a newer one. On a
    Redis error the remaining rows stay pending with the error recorded; the retry job
    (``blocking.deliver_rule_publications``) tries again."""
    connection = redis_connection()
    if connection is None:
        return {"published": 0, "pending": BlockingRuleOutbox.objects.count()}
    with transaction.atomic():
        rows = list(
            BlockingRuleOutbox.objects.select_for_update()
            .order_by("id")
            .values_list("id", "project_id")
        )
        ids_by_scope: dict[uuid.UUID | None, list[int]] = {}
        for row_id, project_id in rows:
            ids_by_scope.setdefault(project_id, []).append(row_id)
        now = timezone.now()
        delivered: list[int] = []
        failed: list[int] = []
        error = ""
        for project_id, ids in ids_by_scope.items():  # first-queued scope first
            if error:
                failed.extend(ids)
                continue
            try:
                publish_scope(connection, project_id, now)
            except redis.RedisError as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
                failed.extend(ids)
                continue
            delivered.extend(ids)
        BlockingRuleOutbox.objects.filter(id__in=delivered).delete()
        if failed:
            BlockingRuleOutbox.objects.filter(id__in=failed).update(
                attempts=F("attempts") + 1, last_attempt_at=now, last_error=error
            )
            logger.warning("blocking_rules_publication_pending", rows=len(failed), error=error)
    return {"published": len(delivered), "pending": len(failed)}


def pending_scopes() -> set[uuid.UUID | None]:
    """The scopes whose rule set in Redis is out of date (one query)."""
    return set(BlockingRuleOutbox.objects.values_list("project_id", flat=True).distinct())


def backlog() -> dict[str, Any]:
    """Size and age of the outbox, for ``/readyz`` and the admin."""
    oldest = BlockingRuleOutbox.objects.order_by("id").values_list("created_at", flat=True)
    first = oldest.first()
    return {
        "configured": publishing_configured(),
        "pending": BlockingRuleOutbox.objects.count(),
        "oldest_pending_seconds": (
            None if first is None else round((timezone.now() - first).total_seconds(), 1)
        ),
    }


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
