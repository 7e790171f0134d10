"""The client-analytics and blocking-stats rollups (issue 11) on real chDB: each endpoint's
answer from its rollups equals the same request forced to raw rows (``exact=true``) on the
same inserted rows, over an unaligned range (raw edges + rollup middle), and
``data.meta.source`` names the storage that answered."""

from __future__ import annotations

import importlib
import io
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command

from analytics.query.planner import plan
from analytics.query.rollups import BLOCKED, CLIENTS, RULE_ATTRIBUTED, PlainAtom
from analytics.query.rollups import RULES as RULE_ROLLUP
from analytics.query.scope import ProjectScope
from blocking import queries as blocking
from tests.conftest import clickhouse_client, insert_rows, make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
M1 = uuid.UUID("33333333-3333-4333-8333-333333333333")
# Unaligned both ends: raw edges 10:07-10:15 and 14:45-14:52 around a rollup middle
# (10:07-11:00 and 14:00-14:52 for the hourly client rollup).
START = datetime(2025, 3, 3, 10, 7, tzinfo=UTC)
END = START + timedelta(days=3, hours=4, minutes=45)  # 2025-03-06 14:52
AGENTS = (
    "python-requests/2.28.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36",
    "curl/8.0",
    "",
)


def traffic(seed: int, count: int) -> list[dict[str, Any]]:
    """Rows around and inside [START, END): many clients, IPs, agents and countries, some
    anonymous, a second project, values of the stored device/browser/os fields."""
    rng = random.Random(seed)
    span = int((END - START).total_seconds()) + 3600
    rows = []
    for _ in range(count):
        moment = START - timedelta(minutes=30) + timedelta(seconds=rng.randrange(span))
        moment += timedelta(milliseconds=rng.randrange(1000))
        rows.append(
            make_row(
                timestamp=moment,
                project_id=rng.choice((P1, P1, P2)),
                model_id=rng.choice((M1, uuid.UUID(int=0))),
                client_id=rng.choice(("", "key-a", "key-b", "key-c", "o'k\"", *map(str, range(8)))),
                client_ip=rng.choice(("", "10.0.0.1", "10.0.0.2", "::1", "192.168.7.7")),
                user_agent=rng.choice(AGENTS),
                device_type=rng.choice(("", "desktop", "mobile")),
                browser=rng.choice(("", "Chrome", "Python Requests")),
                os=rng.choice(("", "Windows", "Linux")),
                country_code=rng.choice(("", "DE", "US", "FR", "IN")),
                status_code=rng.choice((200, 200, 201, 401, 429, 500)),
                response_time_ms=rng.randrange(0, 5000),
                total_tokens=rng.randrange(0, 100_000),
                cost=round(rng.random() * 2, 8),
                routing_decision=rng.choice(("", "primary", "cached", "fallback")),
                is_blocked=rng.random() < 0.2,
            )
        )
    return rows


def window(**extra: Any) -> dict[str, Any]:
    return {"start_time": START.isoformat(), "end_time": END.isoformat(), **extra}


def get(client: Any, url: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(url, params)
    assert response.status_code == 200, response.json()
    return response.json()["data"]


# --- client-analytics ---------------------------------------------------------------------

CLIENTS_URL = "/gateway/client-analytics"


def assert_same_clients(rolled: dict[str, Any], raw: dict[str, Any]) -> None:
    """Every number exact (cost and means to 1e-9 relative: float sums in another order)."""
    assert rolled["summary"] == raw["summary"]
    links = ("next", "previous")  # the raw request's links carry its exact=true
    assert {k: v for k, v in rolled["pagination"].items() if k not in links} == {
        k: v for k, v in raw["pagination"].items() if k not in links
    }
    assert [rolled["pagination"][k] is None for k in links] == [
        raw["pagination"][k] is None for k in links
    ]
    assert [c["client_id"] for c in rolled["clients"]] == [c["client_id"] for c in raw["clients"]]
    for a, b in zip(rolled["clients"], raw["clients"], strict=True):
        for key in ("total_cost", "avg_response_time", "cost_per_1k_tokens", "cache_hit_rate"):
            if b[key] is None:
                assert a[key] is None, key
            else:
                assert a[key] == pytest.approx(b[key], rel=1e-9), key
        rest = {k: v for k, v in b.items() if k not in ("total_cost", "avg_response_time")}
        for key, value in rest.items():
            if key not in ("cost_per_1k_tokens", "cache_hit_rate"):
                assert a[key] == value, (a["client_id"], key)


@pytest.mark.parametrize("order_by", ["requests", "errors", "tokens", "cost", "last_activity"])
def test_client_analytics_from_the_rollup_equals_raw(
    clickhouse: Any, superuser_client: Any, order_by: str
) -> None:
    clickhouse(traffic(seed=11, count=600))
    for limit, offset in ((5, 0), (5, 5), (50, 0)):
        params = window(order_by=order_by, limit=limit, offset=offset)
        rolled = get(superuser_client, CLIENTS_URL, params)
        raw = get(superuser_client, CLIENTS_URL, {**params, "exact": "true"})
        assert rolled["meta"] == {"source": CLIENTS.name, "approximate": {}}
        assert raw["meta"] == {"source": "raw", "approximate": {}}
        assert rolled["clients"], "the page is not empty"
        assert_same_clients(rolled, raw)


def test_client_analytics_top_values_and_their_ties_match_raw(
    clickhouse: Any, superuser_client: Any
) -> None:
    """The most frequent IP/agent/device is counted over both sources: one client whose
    rows in the raw edge outnumber those in the rollup middle, and a tie (smallest wins)."""
    edge, middle = START + timedelta(minutes=3), START + timedelta(hours=2)
    rows = [make_row(timestamp=edge, client_id="k", client_ip="10.0.0.9") for _ in range(3)]
    rows += [make_row(timestamp=middle, client_id="k", client_ip="10.0.0.1") for _ in range(2)]
    rows += [
        make_row(timestamp=middle, client_id="t", client_ip=ip) for ip in ("9.9.9.9", "1.1.1.1")
    ]
    clickhouse(rows)
    rolled = get(superuser_client, CLIENTS_URL, window())
    raw = get(superuser_client, CLIENTS_URL, window(exact=True))
    assert rolled["meta"]["source"] == CLIENTS.name
    assert_same_clients(rolled, raw)
    by_id = {c["client_id"]: c for c in rolled["clients"]}
    assert (by_id["k"]["client_ip"], by_id["k"]["unique_ips"]) == ("10.0.0.9", 2)
    assert by_id["t"]["client_ip"] == "1.1.1.1"


@pytest.mark.parametrize(
    "uncovered",
    [
        {"search": "KEY"},  # case-insensitive substring: a code-written condition
        {"device_type": "desktop"},  # stored or parsed from the agent: code-written
        {"browser": "chrome"},
        {"model_ids": str(M1)},  # model_id is not a client-rollup dimension
        {"exact": "true"},
    ],
)
def test_client_analytics_reads_raw_rows_when_the_rollup_does_not_cover(
    clickhouse: Any, superuser_client: Any, uncovered: dict[str, str]
) -> None:
    clickhouse(traffic(seed=5, count=200))
    data = get(superuser_client, CLIENTS_URL, window(**uncovered))
    assert data["meta"] == {"source": "raw", "approximate": {}}
    assert data["summary"]["total_requests"] > 0


def test_a_range_without_a_whole_bucket_reads_raw(clickhouse: Any, superuser_client: Any) -> None:
    clickhouse([make_row(timestamp=START + timedelta(minutes=1), client_id="k")])
    params = {
        "start_time": START.isoformat(),
        "end_time": (START + timedelta(minutes=7)).isoformat(),
    }
    data = get(superuser_client, CLIENTS_URL, params)
    assert data["meta"]["source"] == "raw"
    assert data["summary"] == {"total_clients": 1, "total_requests": 1}


def test_a_late_row_for_an_old_bucket_is_counted_by_the_client_rollup(
    clickhouse: Any, superuser_client: Any
) -> None:
    old = START + timedelta(hours=5, minutes=1)
    clickhouse([make_row(timestamp=old, client_id="k", cost=0.5, total_tokens=10)])
    first = get(superuser_client, CLIENTS_URL, window())
    late = old + timedelta(minutes=2, milliseconds=345)
    insert_rows([make_row(timestamp=late, client_id="k", client_ip="8.8.8.8", total_tokens=5)])
    again = get(superuser_client, CLIENTS_URL, {**window(), "limit": 49})  # a new cache key
    raw = get(superuser_client, CLIENTS_URL, {**window(), "limit": 49, "exact": True})
    assert first["clients"][0]["request_count"] == 1
    assert again["meta"]["source"] == CLIENTS.name
    (client,) = again["clients"]
    assert (client["request_count"], client["total_tokens"]) == (2, 15)
    assert client["last_activity"] == raw["clients"][0]["last_activity"]
    assert raw["clients"][0]["last_activity"].startswith("2025-03-03T15:10:00.345")
    assert_same_clients(again, raw)


def test_client_rollup_atom_types_match_its_columns(clickhouse: Any) -> None:
    """The raw edges' state expressions return the rollup columns' types (UNION ALL)."""
    client = clickhouse_client()
    exprs = ", ".join(f"toTypeName({a.state})" for a in CLIENTS.atoms)
    (returned,) = client.query(f"SELECT {exprs} FROM gateway_analytics").result_rows  # noqa: S608
    declared = dict(
        client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}",
            parameters={"t": CLIENTS.table},
        ).result_rows
    )
    # count maps are plain Map values in a SimpleAggregateFunction(sumMap, ...) column
    plain = {a.name for a in CLIENTS.atoms if isinstance(a, PlainAtom)}
    assert plain == {"ip_counts", "agent_counts", "device_counts"} | {
        "browser_counts",
        "os_counts",
        "country_counts",
    }
    for atom, got in zip(CLIENTS.atoms, returned, strict=True):
        assert declared[atom.column] == atom.type
        if atom.name in plain:
            assert (got, atom.type) == (atom.arg_types, f"SimpleAggregateFunction(sumMap, {got})")
        else:
            assert got == atom.type


# --- blocking-stats -----------------------------------------------------------------------

BLOCKING_URL = "/gateway/blocking-stats"
RULES = (uuid.UUID("44444444-4444-4444-8444-444444444444"), uuid.UUID(int=0))


def blocked_traffic(seed: int, count: int) -> list[dict[str, Any]]:
    """``traffic`` with reasons and rule ids on the blocked rows (a share of them with
    no reason or no rule), so every list has ties and empties, and a rule id on a few rows
    that were not blocked (the schema allows a match that did not block)."""
    rng = random.Random(seed)
    rows = traffic(seed, count)
    for row in rows:
        if row["is_blocked"]:
            row["block_reason"] = rng.choice(("", "ip_blocked", "country_blocked", "rate"))
            row["block_rule_id"] = rng.choice(RULES)
        elif rng.random() < 0.05:
            row["block_rule_id"] = RULES[0]
    return rows


def without_meta(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "meta"}


@pytest.mark.parametrize(
    ("bucket", "zone", "limit"),
    [("1h", "UTC", 50), ("1d", "Asia/Kolkata", 3), ("15m", "Asia/Kathmandu", 2)],
)
def test_blocking_stats_from_the_rollups_equals_raw(
    clickhouse: Any, superuser_client: Any, bucket: str, zone: str, limit: int
) -> None:
    clickhouse(blocked_traffic(seed=7, count=700))
    params = window(time_bucket=bucket, timezone=zone, limit=limit)
    rolled = get(superuser_client, BLOCKING_URL, params)
    raw = get(superuser_client, BLOCKING_URL, {**params, "exact": "true"})
    # totals and series: series_15m; IPs, reasons, distinct IPs: blocked_15m; rule match
    # counts and last matches: rules_15m (blocked or not)
    assert rolled["meta"] == {
        "source": "series_15m+blocked_15m+rules_15m",
        "approximate": {},
    }
    assert raw["meta"] == {"source": "raw", "approximate": {}}
    assert rolled["summary"]["total_blocked"] > 0
    assert rolled["blocked_ips"]
    assert rolled["block_reasons"]
    assert rolled["time_series"]
    matched = {rule["rule_id"]: rule["match_count"] for rule in rolled["blocking_rules"]}
    assert matched[str(RULES[0])] > 0
    assert without_meta(rolled) == without_meta(raw)


def test_blocking_stats_reads_raw_where_a_rollup_does_not_cover(
    clickhouse: Any, superuser_client: Any
) -> None:
    clickhouse(blocked_traffic(seed=3, count=300))
    # 5m buckets are finer than the series rollup: only the time series reads raw rows
    fine = {"start_time": START.isoformat(), "end_time": (START + timedelta(hours=9)).isoformat()}
    rolled = get(superuser_client, BLOCKING_URL, {**fine, "time_bucket": "5m"})
    raw = get(superuser_client, BLOCKING_URL, {**fine, "time_bucket": "5m", "exact": True})
    assert rolled["meta"]["source"] == "series_15m+blocked_15m+rules_15m+raw"
    assert without_meta(rolled) == without_meta(raw)
    # no whole 15-minute bucket in the range: every statement reads raw rows
    short = {
        "start_time": START.isoformat(),
        "end_time": (START + timedelta(minutes=8)).isoformat(),
    }
    data = get(superuser_client, BLOCKING_URL, {**short, "time_bucket": "1m"})
    assert data["meta"]["source"] == "raw"


def test_a_late_blocked_row_for_an_old_bucket_is_counted(
    clickhouse: Any, superuser_client: Any
) -> None:
    old = START + timedelta(hours=20, minutes=3)
    rule = RULES[0]
    clickhouse(
        [
            make_row(
                timestamp=old,
                is_blocked=True,
                client_ip="6.6.6.6",
                block_reason="rate",
                block_rule_id=rule,
            )
        ]
    )
    params = window(time_bucket="1d")
    first = get(superuser_client, BLOCKING_URL, params)
    late = old + timedelta(minutes=9, milliseconds=250)
    insert_rows(
        [
            make_row(
                timestamp=late,
                is_blocked=True,
                client_ip="6.6.6.6",
                block_reason="geo",
                block_rule_id=rule,
            )
        ]
    )
    again = get(superuser_client, BLOCKING_URL, {**params, "limit": 49})  # a new cache key
    raw = get(superuser_client, BLOCKING_URL, {**params, "limit": 49, "exact": True})
    assert first["summary"]["total_blocked"] == 1
    assert again["meta"]["source"] == "series_15m+blocked_15m+rules_15m"
    (ip,) = again["blocked_ips"]
    assert (ip["block_count"], ip["reasons"]) == (2, ["geo", "rate"])
    assert ip["last_blocked"].startswith("2025-03-04T06:19:00.250")
    (matched,) = again["blocking_rules"]
    assert (matched["rule_id"], matched["match_count"]) == (str(rule), 2)
    assert matched["last_matched"].startswith("2025-03-04T06:19:00.250")
    assert without_meta(again) == without_meta(raw)


def test_the_rule_rollup_answers_only_rows_attributed_to_a_rule() -> None:
    """Its view keeps rows with a rule id: it serves the per-rule match query, whose rows
    carry exactly that condition, and nothing else."""
    query = blocking.StatsQuery(
        scope=ProjectScope.all_projects(), start=START, end=END, limit=10, bucket="1d"
    )
    matches = blocking.rule_matches_select(query, 100)
    assert plan(matches).source == RULE_ROLLUP.name
    assert matches.rows.conditions == (RULE_ATTRIBUTED,)
    everyone = plan(replace(matches, source=query.rows()))
    assert everyone.source == "raw"
    assert dict(everyone.refused)[RULE_ROLLUP.name].startswith("rows not restricted to")
    other = replace(matches, source=query.rows(RULE_ATTRIBUTED, blocking.BLOCKED))
    assert dict(plan(other).refused)[RULE_ROLLUP.name] == "code-written conditions not covered"
    exact = blocking.rule_matches_select(replace(query, exact=True), 100)
    assert plan(exact).source == "raw"


def test_the_blocked_rollup_answers_only_queries_restricted_to_blocked_rows() -> None:
    """Its view keeps blocked rows only: a query over all rows (or the blocked ones as a
    code-written condition) is refused it, and says why."""
    query = blocking.StatsQuery(
        scope=ProjectScope.all_projects(), start=START, end=END, limit=5, bucket="1h"
    )
    covered = plan(blocking.block_reasons_rollup_select(query))
    assert covered.source == BLOCKED.name
    everyone = replace_rows(blocking.block_reasons_rollup_select(query), query.rows())
    refused = plan(everyone)
    assert refused.source == "raw"
    assert dict(refused.refused)[BLOCKED.name] == "rows not restricted to is_blocked eq True"


def replace_rows(select: Any, rows: Any) -> Any:
    return replace(select, source=rows)


def test_blocked_rollup_atom_types_match_its_columns(clickhouse: Any) -> None:
    client = clickhouse_client()
    exprs = ", ".join(f"toTypeName({a.state})" for a in BLOCKED.atoms)
    (returned,) = client.query(f"SELECT {exprs} FROM gateway_analytics").result_rows  # noqa: S608
    declared = dict(
        client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}",
            parameters={"t": BLOCKED.table},
        ).result_rows
    )
    assert list(returned) == [declared[a.column] for a in BLOCKED.atoms]


# --- backfill and tenancy -----------------------------------------------------------------


def test_rebuilding_twice_fills_the_client_and_blocked_rollups_like_raw(
    clickhouse: Any, superuser_client: Any
) -> None:
    """Rows written before the views existed (emptied rollups), then ``rebuild_rollups``
    twice: both endpoints answer from their rollups exactly as from raw rows."""
    clickhouse(blocked_traffic(seed=21, count=300))
    client = clickhouse_client()
    for rollup in (CLIENTS, BLOCKED, RULE_ROLLUP):
        client.command(f"TRUNCATE TABLE {rollup.table}")
    blocking_params = window(time_bucket="1d")
    missing = get(superuser_client, CLIENTS_URL, window(limit=7))
    assert missing["summary"]["total_requests"] < sum(
        1 for r in blocked_traffic(21, 300) if r["client_id"] and START <= r["timestamp"] < END
    )
    for attempt in range(2):
        call_command(
            "rebuild_rollups",
            "--since",
            (START - timedelta(days=1)).isoformat(),
            "--until",
            (END + timedelta(days=1)).isoformat(),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
        limit = 8 + attempt  # a new cache key each time
        rolled = get(superuser_client, CLIENTS_URL, window(limit=limit))
        raw = get(superuser_client, CLIENTS_URL, window(limit=limit, exact=True))
        assert rolled["meta"]["source"] == CLIENTS.name
        assert_same_clients(rolled, raw)
        rolled = get(superuser_client, BLOCKING_URL, {**blocking_params, "limit": limit})
        raw = get(
            superuser_client, BLOCKING_URL, {**blocking_params, "limit": limit, "exact": "true"}
        )
        assert rolled["meta"]["source"] == "series_15m+blocked_15m+rules_15m"
        assert without_meta(rolled) == without_meta(raw)


def test_rollup_answers_keep_the_callers_projects(clickhouse: Any, api_client_factory: Any) -> None:
    """Both rollup branches carry the tenant guard: a key for P1 sees only P1's clients,
    blocked IPs and totals, as raw rows give them."""
    rows = [
        make_row(timestamp=START + timedelta(hours=1), project_id=P1, client_id="mine"),
        make_row(timestamp=START + timedelta(minutes=2), project_id=P2, client_id="theirs"),
        make_row(timestamp=START + timedelta(hours=2), project_id=P2, client_id="theirs"),
        make_row(
            timestamp=START + timedelta(hours=3),
            project_id=P2,
            is_blocked=True,
            client_ip="7.7.7.7",
        ),
        make_row(
            timestamp=START + timedelta(hours=3),
            project_id=P1,
            is_blocked=True,
            client_ip="1.2.3.4",
        ),
    ]
    clickhouse(rows)
    api = api_client_factory([P1])
    clients = get(api, CLIENTS_URL, window())
    assert clients["meta"]["source"] == CLIENTS.name
    assert [c["client_id"] for c in clients["clients"]] == ["mine"]
    assert clients["summary"] == {"total_clients": 1, "total_requests": 1}
    stats = get(api, BLOCKING_URL, window(time_bucket="1d"))
    assert stats["meta"]["source"] == "series_15m+blocked_15m+rules_15m"
    assert [ip["ip_address"] for ip in stats["blocked_ips"]] == ["1.2.3.4"]
    assert (stats["summary"]["total_requests"], stats["summary"]["total_blocked"]) == (2, 1)


@pytest.mark.parametrize("url", [CLIENTS_URL, BLOCKING_URL])
@pytest.mark.parametrize("value", ["1", "yes", "", "True "])
def test_exact_is_parsed_strictly(superuser_client: Any, url: str, value: str) -> None:
    response = superuser_client.get(url, window(exact=value))
    assert response.status_code == 400
    assert "exact" in response.json()["error"]["details"]


def test_migration_0010_feeds_the_hourly_client_rollup_from_raw_rows(
    clickhouse: Any, superuser_client: Any
) -> None:
    """A database migrated before the client rollup started at the hour holds
    ``clients_15m`` and an hourly view fed from it; 0010 drops the 15-minute rollup,
    feeds the hourly one from raw rows, and keeps the hourly rows already there."""
    from django.db import connections

    from analytics import schema

    migration = importlib.import_module("analytics.migrations.0010_clients_hourly")
    client = clickhouse_client()
    options = schema.current_options()
    old_base = replace(
        CLIENTS, name="clients_15m", table=CLIENTS.table.replace("_1h", "_15m"), bucket_seconds=900
    )
    client.command(f"DROP VIEW {schema.rollup_view_name(CLIENTS)}")
    for statement in schema.create_rollup_statements(options, old_base, 730):
        client.command(statement)
    old_hourly = replace(CLIENTS, fed_from=old_base)
    client.command(schema.create_rollup_view_statement(options, old_hourly))
    try:
        before, after = traffic(seed=3, count=120), traffic(seed=4, count=120)
        insert_rows(before)  # through the old chain
        with connections["clickhouse"].schema_editor() as editor:
            migration.refeed_clients(None, editor)
        insert_rows(after)  # through the new view
    finally:
        client.command(f"DROP TABLE IF EXISTS {old_base.table}")
        client.command(f"DROP VIEW IF EXISTS {schema.rollup_view_name(old_base)}")

    tables = {
        name
        for (name,) in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    }
    assert old_base.table not in tables
    assert schema.rollup_view_name(old_base) not in tables
    (feeds,) = client.query(
        "SELECT create_table_query FROM system.tables "
        "WHERE database = currentDatabase() AND name = {v:String}",
        parameters={"v": schema.rollup_view_name(CLIENTS)},
    ).result_rows[0]
    assert feeds.endswith(".gateway_analytics GROUP BY project_id, timestamp, client_id"), feeds
    rolled = get(superuser_client, CLIENTS_URL, window(limit=100))
    raw = get(superuser_client, CLIENTS_URL, window(limit=100, exact=True))
    assert rolled["meta"]["source"] == CLIENTS.name
    in_window = [r for r in before + after if START <= r["timestamp"] < END and r["client_id"]]
    assert rolled["summary"]["total_requests"] == len(in_window)
    assert_same_clients(rolled, raw)
