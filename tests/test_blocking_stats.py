"""GET /gateway/blocking-stats against an independent Python computation over the very
rows inserted into ClickHouse."""

from __future__ import annotations

import ipaddress
import random
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from blocking.models import BlockingRule, RuleStatus
from tests.conftest import ZERO_UUID, make_row

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/blocking-stats"
P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
P2 = uuid.UUID("22222222-2222-2222-2222-222222222222")
E1 = uuid.UUID("eeeeeeee-0000-0000-0000-000000000001")
START = datetime(2025, 1, 15, tzinfo=UTC)
END = datetime(2025, 1, 16, tzinfo=UTC)
WINDOW = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}
DELETED_RULE = uuid.UUID("dddddddd-dddd-dddd-dddd-dddddddddddd")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Fixture data ---------------------------------------------------------------------------


@pytest.fixture
def rules(db):
    def rule(name, rule_type, config, project=P1, **extra):
        return BlockingRule.objects.create(
            name=name, rule_type=rule_type, rule_config=config, project_id=project, **extra
        )

    return {
        "ip": rule("ranges", "ip_blocking", {"ip_addresses": ["203.0.113.0/24", "2001:db8::/32"]}),
        "country": rule("no-ru", "country_blocking", {"countries": ["RU"]}, project=None),
        "ua": rule(
            "curl",
            "user_agent_blocking",
            {"patterns": ["curl/"], "match_type": "substring"},
            endpoint_id=E1,
        ),
        "regex": rule(
            "py",
            "user_agent_blocking",
            {"patterns": ["^python-requests/\\d"], "match_type": "regex"},
            status=RuleStatus.INACTIVE,
        ),
        "unused": rule("unused", "ip_blocking", {"ip_addresses": ["192.0.2.0/24"]}),
        "rate": rule("burst", "rate_based_blocking", {"threshold": 10, "window_seconds": 1}),
        "foreign": rule("theirs", "ip_blocking", {"ip_addresses": ["198.51.100.0/24"]}, project=P2),
    }


IPS = [
    "203.0.113.5",
    "203.0.113.77",
    "2001:db8::1",
    "2001:db8:abcd::9",
    "198.51.100.3",
    "10.0.0.1",
    "2a00:1450::1",
    "",
]
COUNTRIES = ["RU", "US", "DE", ""]
AGENTS = ["curl/8.1", "Mozilla/5.0", "python-requests/2.31", "xcurl/1"]


def _targets(rule: BlockingRule, row: dict) -> bool:
    """Independent reading of the effectiveness definition (see blocking.stats)."""
    if rule.project_id is not None and row["project_id"] != rule.project_id:
        return False
    if rule.endpoint_id is not None and row["endpoint_id"] != rule.endpoint_id:
        return False
    config = rule.rule_config
    if rule.rule_type == "ip_blocking":
        if not row["client_ip"]:
            return False
        address = ipaddress.ip_address(row["client_ip"])
        return any(
            address.version == network.version and address in network
            for network in map(ipaddress.ip_network, config["ip_addresses"])
        )
    if rule.rule_type == "country_blocking":
        return row["country_code"] in config["countries"]
    if rule.rule_type == "user_agent_blocking":
        if config["match_type"] == "regex":
            return any(re.search(p, row["user_agent"]) for p in config["patterns"])
        return any(p in row["user_agent"] for p in config["patterns"])
    return False


@pytest.fixture
def traffic(clickhouse, rules):
    """~600 rows over two projects, inside and just outside the window; blocked rows
    attributed to the first rule that targets them (80 %), to the rate rule, to a rule
    that no longer exists, or to no rule at all."""
    rng = random.Random(20250115)
    ordered = [rules["ip"], rules["country"], rules["ua"], rules["foreign"]]
    rows = []
    for index in range(600):
        seconds = rng.randrange(-3600, 24 * 3600 + 3600)
        row = make_row(
            timestamp=START + timedelta(seconds=seconds),
            project_id=rng.choice([P1, P1, P2]),
            endpoint_id=rng.choice([E1, ZERO_UUID]),
            client_ip=rng.choice(IPS),
            country_code=rng.choice(COUNTRIES),
            user_agent=rng.choice(AGENTS),
        )
        target = next((r for r in ordered if _targets(r, row)), None)
        roll = rng.random()
        if target is not None and roll < 0.8:
            row.update(is_blocked=True, block_rule_id=target.id, block_reason=target.name)
        elif roll < 0.85:
            row.update(is_blocked=True, block_rule_id=rules["rate"].id, block_reason="rate_limit")
        elif roll < 0.88:
            row.update(is_blocked=True, block_rule_id=DELETED_RULE, block_reason="old_rule")
        elif roll < 0.90:
            row.update(is_blocked=True, block_reason="")
        if index == 0:  # exactly at the end: outside the half-open range
            row["timestamp"] = END
        rows.append(row)
    clickhouse(rows)
    return rows


def expected(rows, rules, projects, limit=1000):
    """The response's numbers computed in Python from the inserted rows."""
    scoped = [
        r
        for r in rows
        if START <= r["timestamp"] < END and (projects is None or r["project_id"] in projects)
    ]
    blocked = [r for r in scoped if r["is_blocked"]]
    by_ip = defaultdict(list)
    for row in blocked:
        by_ip[row["client_ip"]].append(row)
    blocked_ips = sorted(
        (
            {
                "ip_address": ip or None,
                "block_count": len(items),
                "reasons": sorted({r["block_reason"] for r in items if r["block_reason"]}),
                "first_blocked": iso(min(r["timestamp"] for r in items)),
                "last_blocked": iso(max(r["timestamp"] for r in items)),
            }
            for ip, items in by_ip.items()
        ),
        key=lambda e: (-e["block_count"], e["ip_address"] or ""),
    )[:limit]
    reasons = Counter(r["block_reason"] for r in blocked)
    matches = defaultdict(list)
    for row in scoped:
        if row["block_rule_id"] != ZERO_UUID:
            matches[row["block_rule_id"]].append(row)
    visible = [
        rule
        for rule in rules.values()
        if projects is None or rule.project_id is None or rule.project_id in projects
    ]
    rule_entries = {}
    for rule in visible:
        hits = matches.get(rule.id, [])
        effectiveness = None
        if rule.rule_type != "rate_based_blocking":
            targeted = [r for r in scoped if _targets(rule, r)]
            if targeted:
                effectiveness = sum(r["is_blocked"] for r in targeted) / len(targeted)
        rule_entries[str(rule.id)] = {
            "name": rule.name,
            "rule_type": rule.rule_type,
            "status": rule.status,
            "match_count": len(hits),
            "last_matched": iso(max(r["timestamp"] for r in hits)) if hits else None,
            "effectiveness": effectiveness,
        }
    for rule_id, hits in matches.items():
        if str(rule_id) not in rule_entries:
            rule_entries[str(rule_id)] = {
                "name": None,
                "rule_type": None,
                "status": None,
                "match_count": len(hits),
                "last_matched": iso(max(r["timestamp"] for r in hits)),
                "effectiveness": None,
            }
    hours = defaultdict(lambda: [0, 0])
    for row in scoped:
        bucket = row["timestamp"].replace(minute=0, second=0, microsecond=0)
        hours[bucket][0] += row["is_blocked"]
        hours[bucket][1] += 1
    series = [
        {
            "timestamp": iso(START + timedelta(hours=h)),
            "blocked_requests": hours[START + timedelta(hours=h)][0],
            "total_requests": hours[START + timedelta(hours=h)][1],
        }
        for h in range(24)
    ]
    return {
        "summary": {
            "total_blocked": len(blocked),
            "total_requests": len(scoped),
            "block_rate": len(blocked) / len(scoped) if scoped else 0.0,
            "unique_blocked_ips": len({r["client_ip"] for r in blocked if r["client_ip"]}),
        },
        "blocked_ips": blocked_ips,
        "block_reasons": {reason or None: count for reason, count in reasons.items()},
        "blocking_rules": rule_entries,
        "time_series": series,
    }


def _rules_by_id(data):
    return {
        entry["rule_id"]: {
            key: entry[key]
            for key in ("name", "rule_type", "status", "match_count", "last_matched")
        }
        | {"effectiveness": entry["effectiveness"]}
        for entry in data["blocking_rules"]
    }


def assert_matches(data, want):
    assert data["summary"]["total_requests"] == want["summary"]["total_requests"]
    assert data["summary"]["total_blocked"] == want["summary"]["total_blocked"]
    assert data["summary"]["unique_blocked_ips"] == want["summary"]["unique_blocked_ips"]
    assert data["summary"]["block_rate"] == pytest.approx(want["summary"]["block_rate"], abs=1e-6)
    assert data["blocked_ips"] == want["blocked_ips"]
    assert {r["block_reason"]: r["count"] for r in data["block_reasons"]} == want["block_reasons"]
    assert data["time_series"] == want["time_series"]
    got_rules = _rules_by_id(data)
    assert set(got_rules) == set(want["blocking_rules"])
    for rule_id, entry in want["blocking_rules"].items():
        got = dict(got_rules[rule_id])
        assert got.pop("effectiveness") == pytest.approx(entry["effectiveness"], abs=1e-6)
        assert got == {k: v for k, v in entry.items() if k != "effectiveness"}, rule_id


# --- Tests ----------------------------------------------------------------------------------


def test_superuser_numbers_match_independent_computation(superuser_client, traffic, rules):
    response = superuser_client.get(URL, {**WINDOW, "limit": 1000})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True
    assert_matches(body["data"], expected(traffic, rules, projects=None))


def test_client_without_project_ids_sees_only_its_projects(api_client_factory, traffic, rules):
    client = api_client_factory([P1])
    data = client.get(URL, {**WINDOW, "limit": 1000}).json()["data"]
    want = expected(traffic, rules, projects={P1})
    assert_matches(data, want)
    assert str(rules["foreign"].id) not in _rules_by_id(data)


def test_deleted_rule_appears_with_null_name(superuser_client, traffic, rules):
    data = superuser_client.get(URL, {**WINDOW, "limit": 1000}).json()["data"]
    deleted = _rules_by_id(data)[str(DELETED_RULE)]
    assert deleted["name"] is None
    assert deleted["match_count"] > 0
    assert deleted["effectiveness"] is None


def test_rule_without_matches_appears_with_zero(superuser_client, traffic, rules):
    data = superuser_client.get(URL, {**WINDOW, "limit": 1000}).json()["data"]
    unused = _rules_by_id(data)[str(rules["unused"].id)]
    assert unused["match_count"] == 0
    assert unused["last_matched"] is None
    assert unused["effectiveness"] is None  # nothing in range came from 192.0.2.0/24
    inactive = _rules_by_id(data)[str(rules["regex"].id)]
    assert (inactive["match_count"], inactive["status"]) == (0, "inactive")
    assert 0 < inactive["effectiveness"] < 1  # targeted traffic, partly blocked by others


def test_effectiveness_on_a_hand_computed_example(superuser_client, clickhouse, db):
    rule = BlockingRule.objects.create(
        name="v6",
        rule_type="ip_blocking",
        rule_config={"ip_addresses": ["2001:db8::/32"]},
        project_id=P1,
    )
    at = START + timedelta(hours=1)
    clickhouse(
        [
            make_row(
                timestamp=at,
                project_id=P1,
                client_ip="2001:db8::1",
                is_blocked=True,
                block_rule_id=rule.id,
            ),
            make_row(
                timestamp=at,
                project_id=P1,
                client_ip="2001:db8:ffff::2",
                is_blocked=True,
                block_rule_id=rule.id,
            ),
            make_row(timestamp=at, project_id=P1, client_ip="2001:db8::3"),  # got through
            make_row(timestamp=at, project_id=P2, client_ip="2001:db8::4"),  # other project
            make_row(timestamp=at, project_id=P1, client_ip="2001:db9::1"),  # not a target
            make_row(timestamp=at, project_id=P1, client_ip="not-an-ip"),
        ]
    )
    data = superuser_client.get(URL, WINDOW).json()["data"]
    entry = _rules_by_id(data)[str(rule.id)]
    assert entry["match_count"] == 2
    assert entry["effectiveness"] == pytest.approx(2 / 3, abs=1e-6)


def test_limit_caps_the_lists(superuser_client, traffic, rules):
    data = superuser_client.get(URL, {**WINDOW, "limit": 2}).json()["data"]
    want = expected(traffic, rules, projects=None, limit=2)
    assert data["blocked_ips"] == want["blocked_ips"]
    assert len(data["blocking_rules"]) == 2
    assert len(data["block_reasons"]) == 2
    top = sorted(want["blocking_rules"].values(), key=lambda e: -e["match_count"])[:2]
    assert [r["match_count"] for r in data["blocking_rules"]] == [r["match_count"] for r in top]


def test_ips_are_masked_when_anonymize_ips_is_on(settings, superuser_client, clickhouse):
    settings.ANONYMIZE_IPS = True
    at = START + timedelta(hours=2)
    clickhouse(
        [
            make_row(timestamp=at, client_ip="203.0.113.77", is_blocked=True),
            make_row(timestamp=at, client_ip="203.0.113.78", is_blocked=True),
            make_row(timestamp=at, client_ip="2001:db8:abcd:12::9", is_blocked=True),
        ]
    )
    data = superuser_client.get(URL, WINDOW).json()["data"]
    # Grouped by the full address (two v4 entries), shown masked.
    assert sorted(e["ip_address"] for e in data["blocked_ips"]) == [
        "2001:db8:abcd::",
        "203.0.113.0",
        "203.0.113.0",
    ]
    assert data["summary"]["unique_blocked_ips"] == 3


def test_ips_are_shown_in_full_by_default(superuser_client, clickhouse):
    clickhouse([make_row(timestamp=START, client_ip="203.0.113.77", is_blocked=True)])
    data = superuser_client.get(URL, WINDOW).json()["data"]
    assert [e["ip_address"] for e in data["blocked_ips"]] == ["203.0.113.77"]


def test_principal_without_access_rows_is_refused_saying_so(user_client_factory, traffic):
    # Issue 15: no project access is a 403 that says so (it was an empty 200).
    response = user_client_factory([]).get(URL, WINDOW)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "no_project_access"
    assert "has no project access" in response.json()["error"]["message"]


def test_explicit_project_ids_narrow_a_superuser(superuser_client, traffic, rules):
    data = superuser_client.get(URL, {**WINDOW, "project_ids": str(P2), "limit": 1000}).json()[
        "data"
    ]
    assert_matches(data, expected(traffic, rules, projects={P2}))


def test_naive_and_offset_timestamps_are_accepted(superuser_client, traffic, rules):
    response = superuser_client.get(
        URL,
        {
            "start_time": "2025-01-15T00:00:00",
            "end_time": "2025-01-16T01:00:00+01:00",
            "limit": 1000,
        },
    )
    assert response.status_code == 200
    want = expected(traffic, rules, projects=None)
    assert (
        response.json()["data"]["summary"]["total_requests"] == (want["summary"]["total_requests"])
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_time": "2025-01-16T00:00:00Z", "end_time": "2025-01-15T00:00:00Z"}, "end_time"),
        ({"start_time": "2024-01-01T00:00:00Z", "end_time": "2025-01-15T00:00:00Z"}, "end_time"),
        ({**WINDOW, "limit": 0}, "limit"),
        ({**WINDOW, "time_bucket": "7m"}, "time_bucket"),
        ({**WINDOW, "project_ids": "not-a-uuid"}, "project_ids"),
        ({"start_time": "2100-01-01T00:00:00Z"}, "end_time"),  # end defaults to now
        ({"start_time": "yesterday", "end_time": "2025-01-15T00:00:00Z"}, "start_time"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(superuser_client, params, field):
    response = superuser_client.get(URL, params)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_injection_attempts_stay_values(superuser_client, clickhouse):
    clickhouse([make_row(timestamp=START, block_reason="x'); DROP TABLE t; --", is_blocked=True)])
    data = superuser_client.get(URL, WINDOW).json()["data"]
    assert data["block_reasons"] == [{"block_reason": "x'); DROP TABLE t; --", "count": 1}]
    response = superuser_client.get(URL, {**WINDOW, "project_ids": "1' OR '1'='1"})
    assert response.status_code == 400


def test_time_bucket_changes_the_series(superuser_client, traffic, rules):
    data = superuser_client.get(URL, {**WINDOW, "time_bucket": "6h"}).json()["data"]
    assert [p["timestamp"] for p in data["time_series"]] == [
        "2025-01-15T00:00:00Z",
        "2025-01-15T06:00:00Z",
        "2025-01-15T12:00:00Z",
        "2025-01-15T18:00:00Z",
    ]
    want = expected(traffic, rules, projects=None)
    assert (
        sum(p["total_requests"] for p in data["time_series"]) == (want["summary"]["total_requests"])
    )


def test_schema_generates_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/gateway/blocking-stats" in schema["paths"]
    assert "/gateway/blocking-rules/{id}" in schema["paths"]
    # Only this app's endpoints are asserted here; other apps test their own.
    problems = [
        str(message)
        for message in (*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache)
        if "blocking" in str(message).lower()
    ]
    assert problems == []


@pytest.mark.django_db(databases=["default", "clickhouse"])
def test_blocking_stats_default_to_the_last_seven_days(superuser_client, clickhouse):
    from datetime import UTC, datetime, timedelta

    from tests.conftest import make_row

    now = datetime.now(UTC)
    clickhouse(
        [
            make_row(
                timestamp=now - timedelta(days=1),
                is_blocked=True,
                client_ip="10.9.9.9",
                block_reason="rate_limit",
                status_code=403,
            ),
            make_row(
                timestamp=now - timedelta(days=8),
                is_blocked=True,
                client_ip="10.9.9.8",
                block_reason="rate_limit",
                status_code=403,
            ),
        ]
    )
    response = superuser_client.get("/gateway/blocking-stats")
    assert response.status_code == 200, response.content
    summary = response.json()["data"]["summary"]
    assert summary["total_blocked"] == 1
    assert summary["total_requests"] == 1
