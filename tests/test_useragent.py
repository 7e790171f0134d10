"""``analytics.useragent``: the one user-agent classification, and the proof that the demo
generator and client analytics agree on it (real chDB rows, the real endpoint)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import ua_parser
from django.core.management import call_command
from ua_parser import BasicResolver, Parser, load_builtins

from analytics.demo.generator import USER_AGENTS
from analytics.routes_clients.queries import MAX_PARSED_USER_AGENTS
from analytics.useragent import (
    DEVICE_TYPES,
    AgentInfo,
    UserAgentInfo,
    agent_value,
    classify_user_agent,
    parse_agent,
)
from tests.conftest import clickhouse_client, insert_rows, make_row

IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1"
)
KINDLE = (
    "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/112.4.1 like Chrome/112.0.5615.213 Safari/537.36"
)
GALAXY_TAB = (
    "Mozilla/5.0 (Linux; Android 12; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_TABLET = "Mozilla/5.0 (Android 13; Tablet; rv:120.0) Gecko/120.0 Firefox/120.0"
FIREFOX_PHONE = "Mozilla/5.0 (Android 13; Mobile; rv:120.0) Gecko/120.0 Firefox/120.0"
REDUCED_ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
DALVIK = "Dalvik/2.1.0 (Linux; U; Android 11; SM-G991B Build/RP1A.200720.012)"
SMART_TV = (
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36"
)
WINDOWS_PHONE = (
    "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063"
)
CLAUDEBOT = "Mozilla/5.0 (compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"

# Agents outside the demo catalogue, each with the class it must get.
EXTRA_AGENTS: dict[str, str] = {
    KINDLE: "tablet",
    GALAXY_TAB: "tablet",
    FIREFOX_TABLET: "tablet",
    FIREFOX_PHONE: "mobile",
    REDUCED_ANDROID_PHONE: "mobile",
    DALVIK: "mobile",  # an app's HTTP client: no "Mobile" token, but a phone all the same
    SMART_TV: "other",
    WINDOWS_PHONE: "mobile",
    CLAUDEBOT: "bot",
    "Wget/1.21.4": "other",
    "okhttp/4.12.0": "other",
    "something-unheard-of": "other",
}


def _catalogue(fragment: str) -> str:
    return next(ua.string for ua in USER_AGENTS if fragment in ua.string)


# --- the classification -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "device_type", "browser", "os"),
    [
        ("Windows NT 10.0; Win64; x64) AppleWebKit", "desktop", "Chrome", "Windows"),
        ("Version/18.1 Safari/605.1.15", "desktop", "Safari", "Mac OS X"),
        ("X11; Linux x86_64", "desktop", "Firefox", "Linux"),
        ("Edg/131", "desktop", "Edge", "Windows"),
        ("CrOS", "desktop", "Chrome", "Chrome OS"),
        ("iPhone", "mobile", "Mobile Safari", "iOS"),
        ("Pixel 8", "mobile", "Chrome Mobile", "Android"),
        ("SAMSUNG SM-S921B", "mobile", "Samsung Internet", "Android"),
        ("iPad", "tablet", "Mobile Safari", "iOS"),
        ("SM-X710", "tablet", "Chrome", "Android"),
        ("OpenAI/Python", "other", "", ""),
        ("OpenAI/NodeJS", "other", "", ""),
        ("python-requests", "other", "Python Requests", ""),
        ("curl/", "other", "curl", ""),
        ("axios/", "other", "axios", ""),
        ("Go-http-client", "other", "Go-http-client", ""),
        ("PostmanRuntime", "other", "PostmanRuntime", ""),
        ("Googlebot", "bot", "Googlebot", ""),
        ("bingbot", "bot", "bingbot", ""),
        ("GPTBot", "bot", "GPTBot", ""),
        ("YandexBot", "bot", "YandexBot", ""),
    ],
)
def test_demo_catalogue_classes(fragment: str, device_type: str, browser: str, os: str) -> None:
    info = classify_user_agent(_catalogue(fragment))

    assert (info.device_type, info.browser, info.os) == (device_type, browser, os)
    assert info.is_bot is (device_type == "bot")


def test_every_catalogue_agent_is_classified() -> None:
    classes = {classify_user_agent(ua.string).device_type for ua in USER_AGENTS}
    assert classes == set(DEVICE_TYPES)


@pytest.mark.parametrize(("agent", "device_type"), EXTRA_AGENTS.items())
def test_agents_beyond_the_catalogue(agent: str, device_type: str) -> None:
    assert classify_user_agent(agent).device_type == device_type


def test_versions_are_dotted_and_stop_at_the_first_missing_part() -> None:
    info = classify_user_agent(_catalogue("iPhone"))
    assert (info.browser_version, info.os_version) == ("18.1", "18.1")
    assert classify_user_agent(_catalogue("X11; Linux")).os_version == ""
    assert classify_user_agent("curl/8.5.0").browser_version == "8.5.0"


def test_unknown_parts_are_empty_never_uaparsers_other() -> None:
    for agent in [ua.string for ua in USER_AGENTS] + list(EXTRA_AGENTS):
        info = classify_user_agent(agent)
        assert "Other" not in (info.browser, info.os), agent
        assert info.device_type in DEVICE_TYPES, agent


def test_empty_agent_says_nothing() -> None:
    assert classify_user_agent("") == UserAgentInfo("", "", "", "", "", is_bot=False)
    assert parse_agent("") == AgentInfo(None, None, None)


def test_api_view_turns_unknown_into_none() -> None:
    assert parse_agent("python-requests/2.28.0") == AgentInfo("other", "Python Requests", None)
    assert parse_agent(IPAD) == AgentInfo("tablet", "Mobile Safari", "iOS")
    info = parse_agent("curl/8.5.0")
    assert [agent_value(info, c) for c in ("device_type", "browser", "os")] == [
        "other",
        "curl",
        None,
    ]


def test_the_rust_resolver_is_used_and_agrees_with_the_python_one() -> None:
    # ua-parser-rs is pinned: without it parsing is ~30x slower (see the module docstring).
    assert ua_parser.RegexResolver is not None
    assert ua_parser.BestAvailableResolver is ua_parser.RegexResolver
    python = Parser(BasicResolver(load_builtins()))
    rust = Parser(ua_parser.RegexResolver(load_builtins()))
    for agent in [ua.string for ua in USER_AGENTS] + list(EXTRA_AGENTS):
        slow, fast = python.parse(agent), rust.parse(agent)
        assert (slow.user_agent, slow.os, slow.device) == (fast.user_agent, fast.os, fast.device)


def test_the_cache_holds_one_request_worth_of_distinct_agents() -> None:
    # Speed itself is a benchmark figure (bench/), not a timed test: here only the bound.
    assert classify_user_agent.cache_info().maxsize >= MAX_PARSED_USER_AGENTS


# --- the demo generator and client analytics agree ----------------------------------------

END = datetime.now(UTC).replace(second=0, microsecond=0)
START = END - timedelta(days=2)
WINDOW = {"start_time": START.isoformat(), "end_time": END.isoformat()}
FILTER_COLUMNS = ("device_type", "browser", "os")


def _rows() -> list[dict[str, Any]]:
    result = clickhouse_client().query(
        "SELECT client_id, user_agent, device_type, browser, os FROM gateway_analytics"
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


@pytest.fixture
def demo_rows(module_rows: Any, django_db_blocker: Any) -> Iterator[list[dict[str, Any]]]:
    """The module's shared rows (written once; its tests only read them)."""
    rows = module_rows(_write_demo_rows)
    with django_db_blocker.unblock():
        yield rows


def _write_demo_rows() -> list[dict[str, Any]]:
    """4,000 demo rows; a copy of about a quarter of them with device/browser/os left empty
    (as a gateway that stored nothing would), and clients whose only agent is outside the
    catalogue, also stored empty. Returns every row as read back from chDB."""
    call_command(
        "generate_traffic",
        rows=4_000,
        days=2,
        projects=2,
        seed=7,
        end=END.isoformat(),
        verbosity=0,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    client = clickhouse_client()
    client.command(
        "INSERT INTO gateway_analytics SELECT * REPLACE (generateUUIDv4() AS request_id, "
        "'' AS device_type, '' AS browser, '' AS os, '' AS browser_version, '' AS os_version) "
        "FROM gateway_analytics WHERE cityHash64(request_id) % 4 = 0"
    )
    project = client.query("SELECT any(project_id) FROM gateway_analytics").result_rows[0][0]
    extra = [
        make_row(
            client_id=f"key-extra-{i}",
            user_agent=agent,
            project_id=project,
            timestamp=END - timedelta(hours=1 + i),
        )
        for i, agent in enumerate(EXTRA_AGENTS)
        for _ in range(1 + i % 3)
    ]
    insert_rows(extra)
    return _rows()


def _matches(row: dict[str, Any], column: str, value: str) -> bool:
    """The documented filter rule, computed in Python: the stored field, else (stored
    empty) what the classifier reads from the row's user agent."""
    stored = row[column]
    if stored == "":
        stored = getattr(classify_user_agent(row["user_agent"]), column)
    return stored != "" and stored.lower() == value.lower()


def _expected(rows: list[dict[str, Any]], **filters: str) -> dict[str, int]:
    counts = Counter(
        row["client_id"]
        for row in rows
        if row["client_id"] and all(_matches(row, c, v) for c, v in filters.items())
    )
    return dict(counts)


def _answered(client: Any, **filters: str) -> dict[str, int]:
    response = client.get("/gateway/client-analytics", {**WINDOW, "limit": 1000, **filters})
    body = response.json()
    assert response.status_code == 200, body
    assert body["data"]["pagination"]["has_more"] is False
    return {c["client_id"]: c["request_count"] for c in body["data"]["clients"]}


@pytest.mark.django_db(databases=["default", "clickhouse"])
def test_stored_demo_fields_are_what_the_classifier_says(demo_rows: list[dict[str, Any]]) -> None:
    stored = clickhouse_client().query(
        "SELECT DISTINCT user_agent, device_type, browser, browser_version, os, os_version, "
        "is_bot FROM gateway_analytics WHERE device_type != ''"
    )
    agents = set()
    for agent, *fields in stored.result_rows:
        assert tuple(fields) == tuple(classify_user_agent(agent)), agent
        agents.add(agent)
    assert agents <= {ua.string for ua in USER_AGENTS}
    assert len(agents) >= 15


@pytest.mark.django_db(databases=["default", "clickhouse"])
@pytest.mark.parametrize("device_type", DEVICE_TYPES)
def test_device_type_filter_returns_the_clients_the_classifier_gives(
    superuser_client: Any, demo_rows: list[dict[str, Any]], device_type: str
) -> None:
    want = _expected(demo_rows, device_type=device_type)

    assert _answered(superuser_client, device_type=device_type) == want
    assert want, device_type
    if device_type == "bot":  # demo crawlers carry no API key: only the added ClaudeBot key
        assert set(want) == {f"key-extra-{list(EXTRA_AGENTS).index(CLAUDEBOT)}"}
    # the fallback is exercised: some matching rows of clients had nothing stored
    assert any(
        row["client_id"] and row["device_type"] == "" and _matches(row, "device_type", device_type)
        for row in demo_rows
    )


@pytest.mark.django_db(databases=["default", "clickhouse"])
@pytest.mark.parametrize(
    "filters",
    [
        {"browser": "chrome"},
        {"browser": "Mobile Safari", "os": "iOS"},
        {"os": "android", "device_type": "tablet"},
        {"browser": "Python Requests"},
        {"os": "Windows", "device_type": "desktop"},
    ],
)
def test_browser_and_os_filters_agree_with_the_classifier(
    superuser_client: Any, demo_rows: list[dict[str, Any]], filters: dict[str, str]
) -> None:
    want = _expected(demo_rows, **filters)

    assert want
    assert _answered(superuser_client, **filters) == want


@pytest.mark.django_db(databases=["default", "clickhouse"])
def test_clients_with_nothing_stored_show_the_classifiers_fields(
    superuser_client: Any, demo_rows: list[dict[str, Any]]
) -> None:
    response = superuser_client.get(
        "/gateway/client-analytics", {**WINDOW, "limit": 1000, "search": "key-extra-"}
    )
    clients = response.json()["data"]["clients"]
    assert len(clients) == len(EXTRA_AGENTS)
    for client in clients:
        parsed = parse_agent(client["user_agent"])
        assert (client["device_type"], client["browser"], client["os"]) == (
            parsed.device_type,
            parsed.browser,
            parsed.os,
        ), client["user_agent"]
        assert client["device_type"] == EXTRA_AGENTS[client["user_agent"]]
