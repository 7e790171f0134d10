"""``manage.py generate_traffic``: row counts, determinism, distributions, argument checks.

Runs the real command into embedded chDB; shares are checked on 50,000 rows, where the
sampling error of a 3 % share is about 0.08 %, well inside the stated tolerances.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pycountry
import pytest
from django.core.management import CommandError, call_command
from ua_parser import parse

from analytics.demo.generator import (
    CITIES,
    HOURLY_WEIGHTS,
    MODELS,
    PARAMETER_TYPES,
    USER_AGENTS,
    TrafficSpec,
    build_insert_sql,
    build_parameters,
    build_select_sql,
)
from analytics.useragent import classify_user_agent
from tests.conftest import clickhouse_client, make_row, truncate_clickhouse

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

ROWS = 50_000
END = datetime(2026, 3, 10, 15, 30, 0, tzinfo=UTC)
DAYS = 7
ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def generate(**options: Any) -> str:
    """Run the command quietly and return what it printed."""
    arguments = {
        "rows": ROWS,
        "days": DAYS,
        "projects": 3,
        "seed": 42,
        "end": END.isoformat(),
        "verbosity": 0,
    }
    arguments.update(options)
    out = StringIO()
    call_command("generate_traffic", stdout=out, stderr=StringIO(), **arguments)
    return out.getvalue()


def scalar(sql: str, parameters: dict[str, Any] | None = None) -> Any:
    return clickhouse_client().query(sql, parameters=parameters or {}).result_rows[0][0]


def rows(sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in clickhouse_client().query(sql).result_rows]


def share(condition: str) -> float:
    return float(scalar(f"SELECT avg({condition}) FROM gateway_analytics"))  # noqa: S608


def known(family: str) -> str:
    """A ua-parser family as stored: its placeholder "Other" becomes "" (unknown)."""
    return "" if family == "Other" else family


def fingerprint() -> tuple[int, int]:
    """Row count and an order-independent hash of every column of every row."""
    count, digest = rows("SELECT count(), groupBitXor(cityHash64(*)) FROM gateway_analytics")[0]
    return int(count), int(digest)


@pytest.fixture
def demo(module_rows: Any, django_db_blocker: Any) -> Iterator[None]:
    """50,000 rows, seed 42, 7 days ending at END: written once for the module's tests
    that only read them (again after a test that empties the tables)."""
    module_rows(generate)
    with django_db_blocker.unblock():
        yield


# --- rows and determinism -----------------------------------------------------------------


def test_writes_exactly_the_requested_rows_across_uneven_batches(clickhouse: Any) -> None:
    output = generate(rows=12_345, batch_size=5_000)

    assert scalar("SELECT count() FROM gateway_analytics") == 12_345
    assert scalar("SELECT uniqExact(request_id) FROM gateway_analytics") == 12_345
    assert re.search(r"Wrote 12,345 rows in [\d.]+ s \([\d,]+ rows/s\)", output)


def test_same_seed_gives_identical_rows_whatever_the_batch_size(clickhouse: Any) -> None:
    generate(batch_size=50_000)
    first = fingerprint()
    first_ids = rows("SELECT request_id FROM gateway_analytics ORDER BY request_id LIMIT 20")
    truncate_clickhouse()

    generate(batch_size=7_000)

    assert fingerprint() == first
    assert rows("SELECT request_id FROM gateway_analytics ORDER BY request_id LIMIT 20") == (
        first_ids
    )


def test_different_seed_gives_different_rows(clickhouse: Any) -> None:
    generate(seed=42)
    first = fingerprint()
    first_projects = rows("SELECT DISTINCT project_id FROM gateway_analytics ORDER BY 1")
    truncate_clickhouse()

    generate(seed=43)

    assert fingerprint()[0] == first[0]
    assert fingerprint()[1] != first[1]
    assert rows("SELECT DISTINCT project_id FROM gateway_analytics ORDER BY 1") != first_projects


def test_projects_option_sets_the_number_of_projects(clickhouse: Any) -> None:
    generate(rows=20_000, projects=5)

    assert scalar("SELECT uniqExact(project_id) FROM gateway_analytics") == 5
    assert share(f"project_id = '{ZERO_UUID}' OR model_id = '{ZERO_UUID}'") == 0
    assert share(f"endpoint_id = '{ZERO_UUID}'") == 0


# --- distributions ------------------------------------------------------------------------


def test_status_classes_are_mostly_2xx_with_some_4xx_and_5xx(demo: None) -> None:
    assert share("status_code BETWEEN 200 AND 299") >= 0.85
    assert 0.05 <= share("NOT is_blocked AND status_code BETWEEN 400 AND 499") <= 0.08
    assert 0.01 <= share("status_code BETWEEN 500 AND 599") <= 0.03
    codes = {row[0] for row in rows("SELECT DISTINCT status_code FROM gateway_analytics")}
    assert {200, 400, 401, 403, 404, 429, 500, 502, 503, 504} <= codes


def test_errors_carry_an_error_type_and_successes_none(demo: None) -> None:
    assert share("(status_code = 200) = (error_type = '')") == 1.0


def test_blocked_rows_are_403_with_a_reason_and_a_rule(demo: None) -> None:
    assert 0.02 <= share("is_blocked") <= 0.04
    reasons = rows(
        "SELECT block_reason, uniqExact(block_rule_id), min(status_code), max(status_code) "
        "FROM gateway_analytics WHERE is_blocked GROUP BY block_reason ORDER BY block_reason"
    )
    assert [r[0] for r in reasons] == [
        "country_blocked",
        "ip_blocked",
        "rate_limit",
        "user_agent_blocked",
    ]
    assert all(r[2] == r[3] == 403 for r in reasons)
    assert scalar("SELECT uniqExact(block_rule_id) FROM gateway_analytics WHERE is_blocked") <= 6
    assert share(f"NOT is_blocked AND (block_reason != '' OR block_rule_id != '{ZERO_UUID}')") == 0
    assert share(f"is_blocked AND block_rule_id = '{ZERO_UUID}'") == 0


def test_about_five_percent_of_requests_come_from_bots(demo: None) -> None:
    assert 0.04 <= share("is_bot") <= 0.06
    assert share("is_bot != (device_type = 'bot')") == 0
    assert share("is_bot AND client_id != ''") == 0  # crawlers carry no API key


def test_about_three_percent_of_requests_have_unknown_geography(demo: None) -> None:
    assert 0.02 <= share("country_code = ''") <= 0.04
    assert share("country_code = '' AND (region != '' OR city != '' OR latitude != 0)") == 0


def test_countries_are_iso_codes_with_coordinates_of_their_cities(demo: None) -> None:
    present = {row[0] for row in rows("SELECT DISTINCT country_code FROM gateway_analytics")}
    expected = {city.country_code for city in CITIES}
    assert present == expected
    assert len(expected - {""}) >= 15
    for code in present - {""}:
        assert pycountry.countries.get(alpha_2=code) is not None, code
    by_city = {city.city: city for city in CITIES if city.city}
    stored = rows(
        "SELECT DISTINCT country_code, city, latitude, longitude FROM gateway_analytics "
        "WHERE country_code != ''"
    )
    assert len(stored) >= 25
    for country, city, latitude, longitude in stored:
        assert by_city[city].country_code == country
        assert latitude == pytest.approx(by_city[city].latitude, abs=1e-4)
        assert longitude == pytest.approx(by_city[city].longitude, abs=1e-4)


def test_timestamps_lie_in_the_window_with_a_daily_cycle(demo: None) -> None:
    start, end = END - timedelta(days=DAYS), END
    oldest, newest = rows("SELECT min(timestamp), max(timestamp) FROM gateway_analytics")[0]
    assert start <= oldest < start + timedelta(hours=1)
    assert end - timedelta(hours=1) < newest < end
    hourly = dict(rows("SELECT toHour(timestamp), count() FROM gateway_analytics GROUP BY 1"))
    assert len(hourly) == 24
    assert max(hourly.values()) > 3 * min(hourly.values())
    days = dict(rows("SELECT toDate(timestamp), count() FROM gateway_analytics GROUP BY 1"))
    assert len(days) == DAYS + 1  # a window ending mid-afternoon spans eight calendar dates


def test_each_utc_hour_gets_its_share_of_the_daily_cycle(demo: None) -> None:
    # Stratified by row number, so the shares are the weights up to a row or two per hour.
    hourly = dict(rows("SELECT toHour(timestamp), count() FROM gateway_analytics GROUP BY 1"))
    total = sum(HOURLY_WEIGHTS)
    for hour, weight in enumerate(HOURLY_WEIGHTS):
        assert hourly[hour] / ROWS == pytest.approx(weight / total, abs=0.0005), hour


def row_times(spec: TrafficSpec, offset: int, count: int) -> list[tuple[int, datetime]]:
    """(row number, timestamp) of rows ``offset .. offset + count - 1`` as the INSERT would
    write them, read from its SELECT in row-number order."""
    sql = build_select_sql(["number", "out_timestamp"]) + " ORDER BY number"
    parameters = {**build_parameters(spec), "offset": offset, "count": count}
    return [tuple(row) for row in clickhouse_client().query(sql, parameters).result_rows]


def test_time_follows_the_row_number_so_a_batch_covers_one_slice_of_the_window(
    clickhouse: Any,
) -> None:
    spec = TrafficSpec(rows=ROWS, days=90, projects=3, seed=42, end=END)
    start, end = spec.window
    times = [ts for _, ts in row_times(spec, 0, ROWS)]
    assert times == sorted(times)
    assert start <= times[0] < start + timedelta(hours=1)
    assert end - timedelta(hours=1) < times[-1] < end
    # A batch of a tenth of the rows covers about a tenth of the window (9 days), not all
    # of it: the rollup views see few 15-minute buckets per batch.
    tenth = times[ROWS // 10 * 4 : ROWS // 10 * 5]
    assert timedelta(days=8) < tenth[-1] - tenth[0] < timedelta(days=10)
    assert start + timedelta(days=35) < tenth[0] < start + timedelta(days=37)


def test_first_row_adds_new_rows_over_the_whole_window_to_the_same_projects(
    clickhouse: Any,
) -> None:
    generate(rows=5_000)
    first_projects = rows("SELECT DISTINCT project_id FROM gateway_analytics ORDER BY 1")
    generate(rows=5_000, first_row=5_000, batch_size=1_500)

    assert scalar("SELECT count() FROM gateway_analytics") == 10_000
    assert scalar("SELECT uniqExact(request_id) FROM gateway_analytics") == 10_000
    assert rows("SELECT DISTINCT project_id FROM gateway_analytics ORDER BY 1") == first_projects
    start = END - timedelta(days=DAYS)
    # Both runs span the window: each day holds about a seventh of each run's rows.
    per_day = (
        clickhouse_client()
        .query(
            "SELECT intDiv(toUnixTimestamp(timestamp) - {start:Int64}, 86400) AS day, count() "
            "FROM gateway_analytics GROUP BY day ORDER BY day",
            parameters={"start": int(start.timestamp())},
        )
        .result_rows
    )
    assert [day for day, _ in per_day] == list(range(DAYS))
    assert all(abs(n - 10_000 / DAYS) <= 10 for _, n in per_day)


def test_total_tokens_is_input_plus_output_and_only_successes_cost(demo: None) -> None:
    assert share("total_tokens != input_tokens + output_tokens") == 0
    assert share("cost > 0 AND status_code != 200") == 0
    assert share("output_tokens > 0 AND status_code != 200") == 0
    assert share("path = '/v1/chat/completions' AND status_code = 200 AND output_tokens = 0") == 0
    assert share("path = '/v1/embeddings' AND output_tokens > 0") == 0


def test_cost_follows_each_models_token_prices(demo: None) -> None:
    # Gateway cache hits cost nothing; prompt-cache reads are billed at the cached price.
    priced = rows(
        "SELECT model_name, input_tokens, output_tokens, cached_input_tokens, cost "
        "FROM gateway_analytics WHERE status_code = 200 AND total_tokens > 0 "
        "AND routing_decision != 'cached' "
        "ORDER BY request_id LIMIT 2 BY model_name, cached_input_tokens > 0"
    )
    prices = {model.name: model for model in MODELS}
    assert len(priced) >= 10
    assert any(row[3] > 0 for row in priced)
    for name, tokens_in, tokens_out, cached_in, cost in priced:
        model = prices[name]
        expected = (
            (tokens_in - cached_in) * model.input_per_million / 1e6
            + cached_in * (model.cached_input_per_million or 0.0) / 1e6
            + tokens_out * model.output_per_million / 1e6
            + model.per_request
        )
        assert cost == pytest.approx(expected, rel=1e-6, abs=1e-8), name


def test_chat_latency_has_a_long_tail(demo: None) -> None:
    p50, p99 = rows(
        "SELECT quantile(0.5)(response_time_ms), quantile(0.99)(response_time_ms) "
        "FROM gateway_analytics WHERE path = '/v1/chat/completions' AND status_code = 200"
    )[0]
    assert 1_000 < p50 < 10_000
    assert p99 > 4 * p50
    assert share("gateway_processing_ms > response_time_ms") == 0
    assert scalar("SELECT quantile(0.5)(gateway_processing_ms) FROM gateway_analytics") < 10


def test_routes_methods_and_ids_look_like_the_openai_api(demo: None) -> None:
    methods = dict(rows("SELECT path, any(method) FROM gateway_analytics GROUP BY path"))
    assert methods["/v1/chat/completions"] == "POST"
    assert methods["/v1/embeddings"] == "POST"
    assert methods["/v1/models"] == "GET"
    assert {"/v1/completions", "/v1/audio/transcriptions", "/v1/images/generations"} <= set(methods)
    model_paths = [p for p in methods if p.startswith("/v1/models/")]
    assert model_paths
    assert all(re.fullmatch(r"/v1/models/[0-9a-f-]{36}", p) for p in model_paths)
    assert any(re.fullmatch(r"/v1/files/file-[0-9a-f]{16}", p) for p in methods)
    assert share("client_ip = ''") == 0
    assert 0.05 < share("position(client_ip, ':') > 0") < 0.35  # some IPv6
    assert scalar("SELECT uniqExact(client_id) FROM gateway_analytics WHERE NOT is_bot") > 100


def test_device_browser_and_os_are_what_ua_parser_reads(demo: None) -> None:
    stored = rows(
        "SELECT DISTINCT user_agent, device_type, browser, browser_version, os, os_version, "
        "is_bot FROM gateway_analytics"
    )
    assert len(stored) == len(USER_AGENTS)
    kinds = set()
    for agent, device_type, browser, browser_version, os, os_version, is_bot in stored:
        parsed = parse(agent).with_defaults()
        # ua-parser's placeholder "Other" is stored as "", the column's "unknown".
        assert browser == known(parsed.user_agent.family), agent
        assert os == known(parsed.os.family), agent
        assert browser_version.split(".")[0] == (parsed.user_agent.major or ""), agent
        assert os_version.split(".")[0] == (parsed.os.major or ""), agent
        assert is_bot == (parsed.device.family == "Spider"), agent
        assert (device_type, browser, browser_version, os, os_version, is_bot) == tuple(
            classify_user_agent(agent)
        )
        kinds.add(device_type)
    assert kinds == {"desktop", "mobile", "tablet", "bot", "other"}
    by_agent = {row[0]: row[1] for row in stored}
    assert by_agent[next(ua.string for ua in USER_AGENTS if "iPad" in ua.string)] == "tablet"
    assert by_agent[next(ua.string for ua in USER_AGENTS if "iPhone" in ua.string)] == "mobile"
    assert by_agent[next(ua.string for ua in USER_AGENTS if "Googlebot" in ua.string)] == "bot"
    assert by_agent["curl/8.5.0"] == "other"


# --- options ------------------------------------------------------------------------------


def test_if_empty_leaves_a_table_with_rows_unchanged(clickhouse: Any) -> None:
    clickhouse([make_row(), make_row()])
    before = fingerprint()

    output = generate(if_empty=True)

    assert fingerprint() == before == (2, before[1])
    assert "nothing written" in output


def test_if_empty_writes_into_an_empty_table(clickhouse: Any) -> None:
    generate(rows=1_000, if_empty=True)

    assert scalar("SELECT count() FROM gateway_analytics") == 1_000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rows": 0}, "rows must be positive"),
        ({"rows": -5}, "rows must be positive"),
        ({"days": 0}, "days must be positive"),
        ({"days": -1}, "days must be positive"),
        ({"projects": 0}, "projects must be between"),
        ({"batch_size": 0}, "batch size must be positive"),
        ({"seed": -1}, "seed must be between"),
        ({"first_row": -1}, "first row must be between"),
        ({"end": "last tuesday"}, "--end must be an ISO 8601"),
    ],
)
def test_bad_arguments_are_a_command_error(
    clickhouse: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        generate(**options)

    assert scalar("SELECT count() FROM gateway_analytics") == 0


def test_sql_text_holds_no_values_only_placeholders() -> None:
    sql = build_insert_sql()

    for value in [ua.string for ua in USER_AGENTS] + [c.city for c in CITIES if c.city]:
        assert value not in sql
    assert "Mozilla" not in sql
    assert "gpt-4o" not in sql
    placeholders = set(re.findall(r"\{(\w+):[^}]+\}", sql))
    assert placeholders == set(PARAMETER_TYPES) | {"offset", "count"}


# --- LLM serving (issue 14) ---------------------------------------------------------------

CHAT_ROUTES = "path IN ('/v1/chat/completions', '/v1/completions') AND method = 'POST'"
NON_CHAT = "path IN ('/v1/embeddings', '/v1/audio/transcriptions', '/v1/images/generations')"
GENERATION = "is_streaming AND ttft_ms > 0 AND response_time_ms > ttft_ms"


def test_chat_calls_mostly_stream_and_other_routes_never_do(demo: None) -> None:
    streamed = scalar(
        "SELECT avg(is_streaming) FROM gateway_analytics WHERE path = '/v1/chat/completions' "
        "AND status_code = 200 AND routing_decision != 'cached'"
    )
    assert 0.7 <= streamed <= 0.86
    assert share(f"{NON_CHAT} AND (is_streaming OR ttft_ms > 0 OR finish_reason != '')") == 0
    assert share("is_streaming AND status_code != 200") == 0
    assert share("is_streaming != (ttft_ms > 0)") == 0  # TTFT exactly on streamed rows
    assert share("is_streaming AND ttft_ms >= response_time_ms") == 0
    assert share("is_streaming AND ttft_ms <= gateway_processing_ms") == 0


def test_ttft_and_tokens_per_second_depend_on_the_model(demo: None) -> None:
    by_model = {
        name: (p50_ttft, tokens_per_second)
        for name, p50_ttft, tokens_per_second, n in rows(
            "SELECT model_name, quantileExactIf(0.5)(ttft_ms, is_streaming AND ttft_ms > 0), "  # noqa: S608
            "sumIf(output_tokens, " + GENERATION + ") "
            "/ (sumIf(response_time_ms - ttft_ms, " + GENERATION + ") / 1000), "
            "countIf(" + GENERATION + ") FROM gateway_analytics GROUP BY model_name"
        )
        if n > 200
    }
    assert len(by_model) >= 4
    for p50_ttft, tokens_per_second in by_model.values():
        assert 100 < p50_ttft < 1500
        assert 20 < tokens_per_second < 200
    speeds = sorted(speed for _, speed in by_model.values())
    assert speeds[-1] > 2 * speeds[0]  # a fast small model against a slow large one
    if "gpt-4o-mini" in by_model and "meta-llama/Llama-3.1-70B-Instruct" in by_model:
        assert by_model["gpt-4o-mini"][1] > 2 * by_model["meta-llama/Llama-3.1-70B-Instruct"][1]


def test_routing_follows_upstream_errors_and_fallbacks_mostly_rescue(demo: None) -> None:
    decisions = dict(rows("SELECT routing_decision, count() FROM gateway_analytics GROUP BY 1"))
    assert set(decisions) == {"", "primary", "fallback", "cached", "retry"}
    routed = sum(n for decision, n in decisions.items() if decision)
    assert 0.02 <= decisions["fallback"] / routed <= 0.08
    assert 0.04 <= decisions["cached"] / routed <= 0.12
    rescued = scalar(
        "SELECT avg(status_code < 400) FROM gateway_analytics WHERE routing_decision = 'fallback'"
    )
    assert 0.6 <= rescued <= 0.9
    # Attempts: one call for primary, two or three for fallbacks and retries, none cached.
    attempts = dict(
        rows("SELECT routing_decision, groupUniqArray(attempts) FROM gateway_analytics GROUP BY 1")
    )
    assert attempts["primary"] == [1]
    assert sorted(attempts["fallback"]) == sorted(attempts["retry"]) == [2, 3]
    assert attempts["cached"] == attempts[""] == [0]
    # Not routed: blocked, bots, the gateway's own 401/404, listing models and files.
    assert (
        share(
            "routing_decision = '' AND NOT (is_blocked OR is_bot OR status_code IN (401, 404) "
            "OR method != 'POST')"
        )
        == 0
    )
    assert share("routing_decision != '' AND (is_blocked OR is_bot)") == 0
    # Upstream 5xx errors all reached a provider and most were tried elsewhere first.
    failed = scalar(
        "SELECT avg(routing_decision IN ('fallback', 'retry')) FROM gateway_analytics "
        "WHERE status_code >= 500 AND routing_decision != ''"
    )
    assert 0.6 <= failed <= 0.9


def test_rescued_requests_are_slower_than_first_time_successes(demo: None) -> None:
    rescued, primary = rows(
        "SELECT quantileExactIf(0.5)(response_time_ms, routing_decision = 'fallback'), "
        "quantileExactIf(0.5)(response_time_ms, routing_decision = 'primary') "
        "FROM gateway_analytics WHERE status_code = 200 AND path = '/v1/chat/completions'"
    )[0]
    assert rescued > primary


def test_cached_answers_are_fast_free_and_never_streamed(demo: None) -> None:
    cached = "routing_decision = 'cached'"
    assert share(f"{cached} AND (cost != 0 OR status_code != 200 OR is_streaming)") == 0
    p95_cached, p50_primary = rows(
        "SELECT quantileExactIf(0.95)(response_time_ms, routing_decision = 'cached'), "
        "quantileExactIf(0.5)(response_time_ms, routing_decision = 'primary') "
        "FROM gateway_analytics WHERE path IN ('/v1/chat/completions', '/v1/embeddings') "
        "AND status_code = 200"
    )[0]
    assert p95_cached < 60
    assert p50_primary > 10 * p95_cached
    assert (
        share(
            f"{cached} AND path NOT IN ('/v1/chat/completions', '/v1/completions', "
            "'/v1/embeddings')"
        )
        == 0
    )


def test_finish_reasons_are_mostly_stop_and_only_on_text_generation(demo: None) -> None:
    reasons = dict(
        rows(
            "SELECT finish_reason, count() FROM gateway_analytics WHERE finish_reason != '' "
            "GROUP BY 1"
        )
    )
    assert set(reasons) == {"stop", "length", "tool_call", "content_filter", "error", "unknown"}
    total = sum(reasons.values())
    assert reasons["stop"] / total >= 0.8
    assert 0.03 <= reasons["length"] / total <= 0.09
    assert reasons["content_filter"] / total <= 0.02
    assert share(f"finish_reason != '' AND NOT ({CHAT_ROUTES})") == 0
    assert share("finish_reason = 'error' AND status_code < 500") == 0
    assert (
        share(
            f"{CHAT_ROUTES} AND status_code = 200 AND NOT is_blocked AND NOT is_bot "
            "AND finish_reason = ''"
        )
        == 0
    )
    # 'length' marks the longest answers.
    length_p50, stop_p50 = rows(
        "SELECT quantileExactIf(0.5)(output_tokens, finish_reason = 'length'), "
        "quantileExactIf(0.5)(output_tokens, finish_reason = 'stop') FROM gateway_analytics "
        "WHERE path = '/v1/chat/completions'"
    )[0]
    assert length_p50 > 3 * stop_p50


def test_model_versions_belong_to_their_models(demo: None) -> None:
    expected = {m.name: {v for v, _ in m.versions} or {m.name} for m in MODELS}
    stored = rows(
        "SELECT model_name, groupUniqArray(model_version) FROM gateway_analytics "
        "WHERE model_version != '' GROUP BY 1"
    )
    assert len(stored) >= 5
    for name, versions in stored:
        assert set(versions) <= expected[name], name
    assert any(len(versions) == 2 for _, versions in stored)
    assert share("model_version != '' AND (status_code != 200 OR routing_decision = '')") == 0


def test_prompt_cache_reads_only_on_caching_providers_and_cost_less(demo: None) -> None:
    caching = [m.name for m in MODELS if m.cached_input_per_million is not None]
    assert 0.02 <= share("cached_input_tokens > 0") <= 0.2
    assert share("cached_input_tokens > input_tokens") == 0
    assert share("cached_input_tokens > 0 AND input_tokens < 1024") == 0
    assert (
        scalar(
            "SELECT countIf(cached_input_tokens > 0 AND NOT has({caching:Array(String)}, "
            "model_name)) FROM gateway_analytics",
            {"caching": caching},
        )
        == 0
    )


def test_tags_are_skewed_labels_and_some_rows_have_none(demo: None) -> None:
    keys = dict(
        rows("SELECT arrayJoin(mapKeys(tags)) AS k, count() FROM gateway_analytics GROUP BY k")
    )
    assert set(keys) == {"env", "team", "feature"}
    untagged = share("empty(tags)")
    assert 0.2 <= untagged <= 0.5
    assert share("is_bot AND notEmpty(tags)") == 0
    envs = dict(
        rows(
            "SELECT tags['env'], count() FROM gateway_analytics WHERE tags['env'] != '' GROUP BY 1"
        )
    )
    assert set(envs) == {"prod", "staging", "dev"}
    assert envs["prod"] > 3 * envs["staging"] > 0
    # env and team are the API key's labels: one value per key.
    assert (
        scalar(
            "SELECT max(n) FROM (SELECT uniqExact(tags['env'], tags['team']) AS n "
            "FROM gateway_analytics WHERE notEmpty(tags) GROUP BY client_id)"
        )
        == 1
    )
    assert (
        scalar("SELECT countIf(v = '') FROM gateway_analytics ARRAY JOIN mapValues(tags) AS v") == 0
    )
