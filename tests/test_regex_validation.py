"""Regex validation agrees with ClickHouse's own RE2 (embedded chDB), both ways.

What passes ``regex_problem`` compiles and runs in ClickHouse's ``match()``; what
ClickHouse accepts passes ``regex_problem`` — except two deliberate refusals, each asserted
with what ClickHouse would have done instead: ``{,n}`` (RE2 matches it as text) and a stray
``)`` (ClickHouse cuts the pattern short there without compiling it). Then the patterns of
issue 10 through the API: POST /gateway/analytics and blocking-rule create."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.query.regex import (
    MAX_PATTERN_LENGTH,
    InvalidRegexError,
    regex_problem,
    validate_regex,
)
from blocking.validation import validate_rule_config
from budmetrics_site.clickhouse.client import error_code, get_client
from tests.conftest import make_row

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

CANNOT_COMPILE_REGEXP = 427

# Valid RE2: ClickHouse compiles them, validation lets them through.
VALID = [
    r"\p{L}",  # unicode classes
    r"\pL",
    r"\p{Greek}+",
    r"\PL",
    r"\x{41}",  # hex escapes
    r"\x41",
    r"\Qa.b\E",  # quoted literal
    r"\Q{,3}\E",
    "^/v1/(chat|embed)$",  # anchors, alternation
    r"\A/v1\z",
    r"\bprobe\b",
    "[a-z]+",  # classes
    "[^]a]",
    "[]a]",
    r"[\d\s]",
    "[[:alpha:]]",
    "[[:word:]]+",
    "[[:^digit:]]",
    "[a{,3}]",
    r"\d+\.\d+",
    "(?i)PROBE",  # flags
    "(?i:pro)be",
    "(?s).",
    "(?m)^a$",
    "(?U)a+",
    "(?-i)a",
    "p.*?e",  # lazy quantifiers
    "x{2,3}?",
    "a+?b??",
    "((a)(b(c)))",  # nested groups
    "(?:a|b)+",
    "(?P<n>x)",  # named groups
    "(?<n>x)",
    "a{1000}",  # repetition limit
    "a{0,1000}",
    "a{1,}",
    "",  # empty: matches everything (callers refuse it separately)
    "a|",
    "()",
    r"\{,3}",  # an escaped brace is the literal text, on purpose
    "a{x}",
    "a{ 1}",
    r"\0",
    r"\01",
    "a\x00b",
    r"\C",
    "é+",
    r"\/",
    "'; DROP TABLE gateway_analytics; --",
    "a" * MAX_PATTERN_LENGTH,
    "^*",
]

# Invalid RE2: ClickHouse refuses them (code 427), validation says why.
INVALID = {
    "a{1001}": "1000",  # repetition limits
    "a{1000,1001}": "1000",
    "(a{100}){100}": "multiply",
    "a{2,1}": "minimum",
    r"x\Z": r"\z",  # invalid escapes
    r"\y": "not an RE2 escape",
    r"\u0041": r"\x{0041}",
    r"\N{DIGIT ONE}": r"\x{0041}",
    r"\e": r"\x1B",
    r"\cA": "control",
    r"\h": "not an RE2 escape",
    r"\R": "line break",
    r"\X": "not an RE2 escape",
    r"[\Q]\E]": "inside [",
    "\\": "lone backslash",
    "a*+": "possessive",  # possessive / doubled repetition
    "a++": "possessive",
    "a**": "cannot be repeated",
    "a{2}{3}": "cannot be repeated",
    "*": "nothing before it",
    "+a": "nothing before it",
    "(?#c)": "comments",  # perl operators RE2 lacks
    "a(?=b)": "look-around",  # lookarounds
    "a(?!b)": "look-around",
    "(?<=a)b": "look-around",
    "(?<!a)b": "look-around",
    r"(a)\1": "back-references",  # backreferences
    r"\8": "back-references",
    "(?P<n>a)(?P=n)": "back-references",
    "(?>a)": "atomic",
    "(?x) a": "flags are i, m, s and U",
    "(?": "flags are i, m, s and U",
    "(": "never closed",  # unbalanced
    "(a": "never closed",
    "((a)": "never closed",
    "(?:": "never closed",
    "[a": "never closed",
    "a(?P<n>x": "never closed",
    "[[:foo:]]": "[:foo:]",  # classes
    "[z-a]": "z-a",
    r"\p{Foo}": r"\p{Foo}",
    "(?P<a-b>x)": "group name",
    r"\pL{1000}": "too large",  # program size (8 MiB, as ClickHouse)
    "((((\\pL{10}){10}){10}))": "too large",
}

# Deliberate refusals: ClickHouse takes them but reads something other than what was meant.
LITERAL_BRACES = {"a{,3}": "{0,3}", r"\pN{,2}": "{0,2}", "(ab){,}": "*", "x{,10}y": "{0,10}"}
STRAY_PARENS = {")": "/anything", "a)": "a", "pro)x": "probe", r"pro\.)x": "pro."}


def clickhouse_match(pattern: str, subject: str = "probe") -> bool:
    """``match(subject, pattern)`` in ClickHouse, both bound as parameters (as the API binds
    them); raises for a pattern ClickHouse refuses."""
    result = get_client().query(
        "SELECT match({s:String}, {p:String})", parameters={"s": subject, "p": pattern}
    )
    return bool(result.result_rows[0][0])


def clickhouse_refuses(pattern: str) -> bool:
    try:
        clickhouse_match(pattern)
    except Exception as exc:  # noqa: BLE001 - only a regex compile error counts, checked below
        failure = exc
    else:
        return False
    assert error_code(failure) == CANNOT_COMPILE_REGEXP, failure
    return True


@pytest.mark.parametrize("pattern", VALID)
def test_valid_re2_passes_validation_and_runs_in_clickhouse(pattern: str) -> None:
    assert regex_problem(pattern) is None
    assert validate_regex(pattern) == pattern
    assert not clickhouse_refuses(pattern)


@pytest.mark.parametrize(("pattern", "reason"), INVALID.items())
def test_what_clickhouse_refuses_fails_validation_saying_why(pattern: str, reason: str) -> None:
    assert clickhouse_refuses(pattern)
    problem = regex_problem(pattern)
    assert problem is not None
    assert reason in problem
    with pytest.raises(InvalidRegexError) as caught:
        validate_regex(pattern)
    assert caught.value.message == problem


@pytest.mark.parametrize(("pattern", "instead"), LITERAL_BRACES.items())
def test_brace_without_minimum_is_refused_because_re2_reads_it_as_text(
    pattern: str, instead: str
) -> None:
    piece = pattern[pattern.index("{,") : pattern.index("}", pattern.index("{,")) + 1]
    literal_text = pattern.replace(r"\pN", "7").replace("(ab)", "ab")
    # What ClickHouse does: the braces are text, so no repetition ever matches.
    assert clickhouse_match(pattern, literal_text)
    assert not clickhouse_match(pattern, literal_text.replace(piece, ""))
    problem = regex_problem(pattern)
    assert problem is not None
    assert f"write {instead}" in problem
    assert "\\" + piece in problem


@pytest.mark.parametrize(("pattern", "subject"), STRAY_PARENS.items())
def test_stray_closing_paren_is_refused_because_clickhouse_cuts_the_pattern_there(
    pattern: str, subject: str
) -> None:
    # RE2 refuses these, but ClickHouse's substring pre-analysis never hands them to RE2:
    # everything from the ")" on is ignored, so "pro)x" matches "probe".
    assert clickhouse_match(pattern, subject)
    problem = regex_problem(pattern)
    assert problem is not None
    assert "has no matching (" in problem


def test_overlong_and_non_unicode_patterns_are_refused() -> None:
    problem = regex_problem("a" * (MAX_PATTERN_LENGTH + 1))
    assert problem == f"at most {MAX_PATTERN_LENGTH} characters are allowed, got 1001"
    assert "lone surrogate" in (regex_problem("\ud800") or "")


# Same options as ClickHouse: same answers, not only same acceptance (dot matches newline,
# no multi-line anchors by default, case-sensitive, UTF-8 classes).
SEMANTICS = [
    ("p.e", "p\ne", True),
    ("^b", "a\nb", False),
    ("(?m)^b", "a\nb", True),
    ("PROBE", "probe", False),
    ("(?i)PROBE", "probe", True),
    (r"^\p{L}+$", "Résumé", True),
    (r"^\p{L}+$", "bot-1", False),
    (r"^.$", "é", True),
    (r"\x{41}", "A", True),
    (r"\x{41}", "a", False),
    (r"\Qa.b\E", "a.b", True),
    (r"\Qa.b\E", "axb", False),
    (r"\bprobe\b", "a probe!", True),
    ("", "anything", True),
    ("a\x00b", "a", False),
    ("a\x00b", "a\x00b", True),
    (r"[[:alpha:]]+\d", "ab1", True),
    ("a{,3}", "aa", False),
]


@pytest.mark.parametrize(("pattern", "subject", "expected"), SEMANTICS)
def test_validation_engine_reads_patterns_as_clickhouse_does(
    pattern: str, subject: str, expected: bool
) -> None:
    options = re2.Options()
    options.log_errors = False
    options.dot_nl = True
    assert bool(re2.compile(pattern, options).search(subject)) is expected
    assert clickhouse_match(pattern, subject) is expected


_ALPHABET = [*"ab()[]{},*+?|^$.:-=!<>PpLxQEZzd019i ", "\\", "\\p{L}", "{,2}", "(?"]


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(parts=st.lists(st.sampled_from(_ALPHABET), max_size=8))
def test_generated_patterns_get_the_same_verdict_from_both(parts: list[str]) -> None:
    pattern = "".join(parts)
    problem = regex_problem(pattern)
    refused = clickhouse_refuses(pattern)
    if problem is None:
        assert not refused, pattern
    elif not refused:
        # Only the deliberate refusals may disagree with ClickHouse.
        assert "is not a repetition in RE2" in problem or "has no matching (" in problem, (
            pattern,
            problem,
        )


# --- Through the API ------------------------------------------------------------------------

WINDOW = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"}
AT = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

# issue 10's list: the answer each now gets.
API_REFUSED = {
    "a{1001}": "1000",
    r"x\Z": r"\z",
    "a*+": "possessive",
    "(?#c)": "comments",
    "a{,3}": "{0,3}",
    "a(?=b)": "look-around",
    "(": "never closed",
    "a)": "has no matching (",
}
# pattern, paths in ClickHouse, paths the filter must select.
API_ANSWERED = [
    (r"^/\p{L}+$", ["/abc", "/é", "/123", "/a1"], {"/abc", "/é"}),
    (r"\x{41}", ["/A", "/a"], {"/A"}),
    (r"\Qa.b\E", ["/a.b", "/axb"], {"/a.b"}),
    ("^/v1/(?P<kind>chat|embed)", ["/v1/chat", "/v1/embed", "/v2/chat"], {"/v1/chat", "/v1/embed"}),
    ("^/a{0,3}$", ["/", "/aaa", "/aaaa"], {"/", "/aaa"}),  # {0,n}, as the message suggests
]


def _analytics(client: Any, pattern: Any) -> Any:
    body = {
        **WINDOW,
        "metrics": ["total_requests"],
        "group_by": ["path"],
        "filters": {"path": {"op": "regex", "value": pattern}},
    }
    # json.dumps escapes non-ASCII, so a lone surrogate travels as a JSON "\ud800" escape.
    return client.post("/gateway/analytics", json.dumps(body), content_type="application/json")


@pytest.mark.parametrize(("pattern", "reason"), API_REFUSED.items())
def test_analytics_regex_filter_refuses_with_a_message(
    superuser_client: Any, pattern: str, reason: str
) -> None:
    response = _analytics(superuser_client, pattern)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "filters.path" in error["details"]
    assert "Not a valid regular expression" in error["message"]
    assert reason in error["message"]


def test_analytics_regex_filter_refuses_empty_and_overlong(superuser_client: Any) -> None:
    for pattern in ("", "a" * (MAX_PATTERN_LENGTH + 1)):
        response = _analytics(superuser_client, pattern)
        assert response.status_code == 400, response.content
        assert "filters.path" in response.json()["error"]["details"]
    # A lone surrogate is not valid JSON text: the parser refuses the body before any field.
    response = _analytics(superuser_client, "\ud800")
    assert response.status_code == 400, response.content
    assert "surrogate" in response.json()["error"]["message"].lower()


@pytest.mark.parametrize(("pattern", "paths", "selected"), API_ANSWERED)
def test_analytics_regex_filter_selects_the_rows_re2_matches(
    superuser_client: Any, clickhouse: Any, pattern: str, paths: list[str], selected: set[str]
) -> None:
    clickhouse([make_row(timestamp=AT, path=path) for path in paths])
    response = _analytics(superuser_client, pattern)
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["summary"]["total_requests"] == len(selected)
    groups = {
        point["groups"]["path"]
        for point in data["time_series"]
        if point["metrics"]["total_requests"]
    }
    assert groups == selected


RULES_URL = "/gateway/blocking-rules"
P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")


def _create_rule(client: Any, patterns: list[str]) -> Any:
    return client.post(
        RULES_URL,
        {
            "name": f"ua-{uuid.uuid4().hex[:8]}",
            "rule_type": "user_agent_blocking",
            "rule_config": {"patterns": patterns, "match_type": "regex"},
            "project_id": str(P1),
        },
        format="json",
    )


@pytest.mark.parametrize(("pattern", "reason"), API_REFUSED.items())
def test_blocking_rule_with_a_bad_regex_is_400_with_the_reason(
    superuser_client: Any, pattern: str, reason: str
) -> None:
    response = _create_rule(superuser_client, [pattern])
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "rule_config.patterns" in error["details"]
    assert "is not a valid regex" in error["message"]
    assert reason in error["message"]


def test_blocking_rules_with_valid_re2_match_in_clickhouse(
    superuser_client: Any, clickhouse: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Rules made of the RE2 the old check refused are accepted and then target exactly
    the user agents RE2 matches (blocking-stats effectiveness runs them in ClickHouse):
    each rule's match was blocked and its near miss was not, so 1.0 means no near miss
    was targeted."""
    cases = {r"^\p{L}+$": ("Résumé", "bot-1"), r"^\x{41}gent": ("Agent/1", "agent/1")}
    cases[r"\Qa.b\E"] = ("ua a.b", "ua axb")
    rule_ids = {}
    with django_capture_on_commit_callbacks(execute=True):
        for pattern in cases:
            response = _create_rule(superuser_client, [pattern])
            assert response.status_code == 201, response.content
            data = response.json()["data"]
            assert data["rule_config"] == {"patterns": [pattern], "match_type": "regex"}
            rule_ids[pattern] = data["id"]
    rows = []
    for pattern, (hit, miss) in cases.items():
        rows.append(
            make_row(
                timestamp=AT,
                project_id=P1,
                user_agent=hit,
                is_blocked=True,
                block_rule_id=uuid.UUID(rule_ids[pattern]),
            )
        )
        rows.append(make_row(timestamp=AT, project_id=P1, user_agent=miss))
    clickhouse(rows)
    response = superuser_client.get("/gateway/blocking-stats", WINDOW)
    assert response.status_code == 200, response.content
    by_id = {entry["rule_id"]: entry for entry in response.json()["data"]["blocking_rules"]}
    for pattern, rule_id in rule_ids.items():
        assert by_id[rule_id]["match_count"] == 1, pattern
        assert by_id[rule_id]["effectiveness"] == 1.0, pattern


def test_rule_config_validation_uses_the_same_check() -> None:
    config = {"patterns": [r"\p{L}", r"\x{41}", r"\Qa.b\E"], "match_type": "regex"}
    assert validate_rule_config("user_agent_blocking", config) == config
    # Substring patterns are text, never compiled: "a{,3}" is a fine substring.
    substring = {"patterns": ["a{,3}", "(?#c)"], "match_type": "substring"}
    assert validate_rule_config("user_agent_blocking", substring) == substring
