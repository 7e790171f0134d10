"""``GET /gateway/blocking-stats``: ClickHouse numbers joined with rule metadata from Postgres.

Effectiveness of a rule (documented in the API schema too): among the requests in the
caller's scope and time range that the rule *targets* — same project (unless global) and
endpoint (if set), and client IP in one of its IPs/CIDRs (``ip_blocking``), country code in
its list (``country_blocking``) or user agent matching one of its patterns (case-sensitive
substring or regex, ``user_agent_blocking``) — the fraction that was blocked
(``is_blocked``, by this or any other rule). 1.0 means none of the traffic the rule aims
at got through. It is null when nothing in the range was targeted, for rate-based rules
(a single row cannot show a rate was exceeded) and for deleted rules (targets unknown).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Q

from analytics.access.privacy import present_ip
from blocking import queries
from blocking.models import BlockingRule

# Rule ids read from ClickHouse per request, whatever ``limit`` says: bounded work.
MAX_RULE_IDS = 10_000


def _visible_rules(scope: Any) -> dict[uuid.UUID, BlockingRule]:
    rules = BlockingRule.objects.all()
    if not scope.is_all:
        rules = rules.filter(Q(project_id__in=list(scope.project_ids)) | Q(project_id=None))
    return {rule.id: rule for rule in rules}


def blocking_rule_entries(query: queries.StatsQuery) -> list[dict[str, Any]]:
    matches = queries.rule_matches(query, MAX_RULE_IDS)
    rules = _visible_rules(query.scope)
    # Ids seen in the data but not among the caller's rules (deleted, or belonging to a
    # project outside the scope) are listed with name/type/status null: never leak them.
    entries = []
    for rule_id in set(rules) | set(matches):
        rule = rules.get(rule_id)
        count, last = matches.get(rule_id, (0, None))
        entries.append(
            {
                "rule_id": rule_id,
                "name": rule.name if rule else None,
                "rule_type": rule.rule_type if rule else None,
                "status": rule.effective_status if rule else None,
                "project_id": rule.project_id if rule else None,
                "match_count": count,
                "last_matched": last,
                "effectiveness": None,
                "targeted_requests": None,
                "_rule": rule,
            }
        )
    entries.sort(
        key=lambda e: (-e["match_count"], e["name"] is None, e["name"] or "", str(e["rule_id"]))
    )
    entries = entries[: query.limit]
    targets = [
        queries.RuleTarget(
            rule_id=e["rule_id"],
            rule_type=e["_rule"].rule_type,
            config=e["_rule"].rule_config,
            project_id=e["_rule"].project_id,
            endpoint_id=e["_rule"].endpoint_id,
        )
        for e in entries
        if e["_rule"] is not None and queries.has_static_targets(e["_rule"].rule_type)
    ]
    counts = queries.rule_target_counts(query, targets)
    for entry in entries:
        rule = entry.pop("_rule")
        if rule is not None and entry["rule_id"] in counts:
            targeted, blocked = counts[entry["rule_id"]]
            entry["targeted_requests"] = targeted
            entry["effectiveness"] = round(blocked / targeted, 6) if targeted else None
    return entries


def blocking_stats(query: queries.StatsQuery) -> dict[str, Any]:
    """The whole response body's ``data``; IPs are masked here when ``ANONYMIZE_IPS`` is on
    (grouping stays on the full address)."""
    totals = queries.summary(query)
    total = totals["total_requests"]
    return {
        "start_time": query.start,
        "end_time": query.end,
        "time_bucket": query.bucket,
        "blocked_ips": [
            {
                "ip_address": present_ip(row["client_ip"]),
                "block_count": int(row["block_count"]),
                "reasons": list(row["reasons"]),
                "first_blocked": row["first_blocked"],
                "last_blocked": row["last_blocked"],
            }
            for row in queries.blocked_ips(query)
        ],
        "blocking_rules": blocking_rule_entries(query),
        "block_reasons": [
            {"block_reason": row["block_reason"] or None, "count": int(row["count"])}
            for row in queries.block_reasons(query)
        ],
        "time_series": queries.time_series(query),
        "summary": {
            "total_blocked": totals["total_blocked"],
            "total_requests": total,
            "block_rate": round(totals["total_blocked"] / total, 6) if total else 0.0,
            "unique_blocked_ips": totals["unique_blocked_ips"],
        },
    }


def count_rows(data: dict[str, Any]) -> int:
    """Rows returned, for the audit: list entries across the response."""
    return sum(
        len(data[key]) for key in ("blocked_ips", "blocking_rules", "block_reasons", "time_series")
    )
