"""An independent Python model of the analytics semantics, used to check the API's numbers
against the very rows a test inserted. It shares no code with the query builder."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import ZERO_UUID, make_row

PROJECTS = [uuid.UUID(f"00000000-0000-4000-8000-00000000000{i}") for i in (1, 2, 3)]
MODELS = [uuid.UUID(f"00000000-0000-4000-9000-00000000000{i}") for i in (1, 2, 3, 4)]
MODEL_NAMES = {MODELS[0]: "gpt-4o", MODELS[1]: "llama-3", MODELS[2]: "mistral", MODELS[3]: ""}
PROVIDERS = {"gpt-4o": "openai", "llama-3": "meta", "mistral": "mistral", "": ""}
ENDPOINTS = [uuid.UUID(f"00000000-0000-4000-a000-00000000000{i}") for i in (1, 2)] + [ZERO_UUID]
GEO = [
    ("US", "California", "San Francisco"),
    ("DE", "Berlin", "Berlin"),
    ("IN", "Karnataka", "Bengaluru"),
    ("", "", ""),
    ("FR", "Île-de-France", "Paris"),
]
DEVICES = [
    ("desktop", "Chrome", "Windows"),
    ("mobile", "Mobile Safari", "iOS"),
    ("bot", "Googlebot", "Other"),
    ("other", "Python Requests", "Other"),
    ("", "", ""),
]
PATHS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", '/v1/models/abc\'s "quoted"'),
    ("POST", "/v1/ünïcode/路径"),
]
STATUSES = [200] * 14 + [201, 301, 400, 401, 404, 429, 500, 502, 503]
BLOCK_REASONS = ["rate_limit", "ip_blocked", "country_blocked"]
CLIENTS = ["key-a", "key-b", "key-c", "key-d", ""]

LEVELS = {
    "p50_response_time": 0.5,
    "p90_response_time": 0.9,
    "p95_response_time": 0.95,
    "p99_response_time": 0.99,
}
TTFT_LEVELS = {"p50_ttft": 0.5, "p95_ttft": 0.95, "p99_ttft": 0.99}

ROUTING = ["primary"] * 6 + ["fallback", "fallback", "cached", "retry", ""]
FINISH = ["stop"] * 6 + ["length", "length", "tool_call", "content_filter", "error", "unknown", ""]
MODEL_VERSIONS = ["2024-08-06", "v3.1", ""]
# Tag values include what would break SQL if it were spliced in: quotes, brackets, braces
# (placeholder syntax), backslashes, NUL-free unicode.
HOSTILE_TAG_VALUE = "x'] = '' OR 1=1; DROP TABLE gateway_analytics; -- {f1:String} \\ ü"
TAG_VALUES = {
    "env": ["prod"] * 5 + ["staging", "dev"],
    "team": ["search", "search", "ads", HOSTILE_TAG_VALUE, "ünïcode 路径"],
    "feature": ["chat", "summarize", "100%_off", ""],
    "cost.center-id": ["cc-1", "cc-2"],
}


def llm_fields(rnd: random.Random, response_time_ms: int) -> dict[str, Any]:
    """The LLM columns of one row: about a quarter of rows record none of them (written
    before the columns existed, or by a gateway that does not send them), the rest a mix
    that includes every "absent" case the metrics must leave out: streamed without a
    first token, a first token on a non-streamed row, a first token after the end."""
    if rnd.random() < 0.25:
        return {}
    streaming = rnd.random() < 0.6
    ttft = 0
    if streaming and rnd.random() < 0.9:
        ttft = rnd.randint(1, max(1, int(response_time_ms * 1.2)))
    elif not streaming and rnd.random() < 0.1:
        ttft = rnd.randint(1, 500)  # recorded on a non-streamed row: never a TTFT
    tags = {key: rnd.choice(values) for key, values in TAG_VALUES.items() if rnd.random() < 0.6}
    return {
        "is_streaming": streaming,
        "ttft_ms": ttft,
        "routing_decision": rnd.choice(ROUTING),
        "attempts": rnd.randint(0, 3),
        "finish_reason": rnd.choice(FINISH),
        "cached_input_tokens": rnd.choice([0, 0, rnd.randint(1, 1500)]),
        "model_version": rnd.choice(MODEL_VERSIONS),
        "tags": tags,
    }


def dataset(start: datetime, hours: int, count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic varied rows over [start, start + hours)."""
    rnd = random.Random(seed)
    # The LLM columns draw from their own generator, so every other field is what it was
    # before they existed (tests written against those rows keep their meaning).
    llm_rnd = random.Random(seed * 1000 + 14)
    rows = []
    span = hours * 3600 * 1000
    for _ in range(count):
        model = rnd.choice(MODELS)
        name = MODEL_NAMES[model]
        country, region, city = rnd.choice(GEO)
        device, browser, os_name = rnd.choice(DEVICES)
        method, path = rnd.choice(PATHS)
        blocked = rnd.random() < 0.06
        status = 403 if blocked else rnd.choice(STATUSES)
        input_tokens = rnd.randint(0, 2000)
        output_tokens = rnd.randint(0, 1000)
        response_time_ms = int(rnd.lognormvariate(5, 1))
        rows.append(
            make_row(
                timestamp=start + timedelta(milliseconds=rnd.randrange(span)),
                project_id=rnd.choice(PROJECTS),
                model_id=model,
                endpoint_id=rnd.choice(ENDPOINTS),
                model_name=name,
                model_provider=PROVIDERS[name],
                client_id=rnd.choice(CLIENTS),
                client_ip=rnd.choice(["10.0.0.1", "10.0.0.2", "2001:db8::1", ""]),
                country_code=country,
                region=region,
                city=city,
                device_type=device,
                browser=browser,
                os=os_name,
                is_bot=device == "bot",
                method=method,
                path=path,
                status_code=status,
                response_time_ms=response_time_ms,
                gateway_processing_ms=rnd.randint(0, 50),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
                cost=round(rnd.random() / 100, 6),
                is_blocked=blocked,
                block_reason=rnd.choice(BLOCK_REASONS) if blocked else "",
                error_type="upstream" if status >= 500 else ("client" if status >= 400 else ""),
                **llm_fields(llm_rnd, response_time_ms),
            )
        )
    return rows


def dimension_value(row: dict[str, Any], name: str) -> Any:
    """A row's dimension value as the API renders it (empty → None)."""
    if name == "status_class":
        return f"{row['status_code'] // 100}xx"
    if name.startswith("tag:"):
        return row["tags"].get(name[4:], "") or None
    value = row[name]
    if isinstance(value, uuid.UUID):
        return None if value == ZERO_UUID else str(value)
    if value == "":
        return None
    return value


def metric(rows: list[dict[str, Any]], name: str, seconds: float = 1.0) -> Any:
    n = len(rows)
    times = sorted(r["response_time_ms"] for r in rows)
    if name == "total_requests":
        return n
    if name == "error_count":
        return sum(r["status_code"] >= 400 for r in rows)
    if name == "error_rate":
        return None if n == 0 else sum(r["status_code"] >= 400 for r in rows) / n
    if name == "success_rate":
        return None if n == 0 else sum(r["status_code"] < 400 for r in rows) / n
    if name == "blocked_requests":
        return sum(r["is_blocked"] for r in rows)
    if name == "block_rate":
        return None if n == 0 else sum(r["is_blocked"] for r in rows) / n
    if name == "avg_response_time":
        return None if n == 0 else sum(times) / n
    if name == "min_response_time":
        return times[0] if times else None
    if name == "max_response_time":
        return times[-1] if times else None
    if name in LEVELS:
        return times[int(LEVELS[name] * n)] if n else None
    if name == "avg_gateway_processing_time":
        return None if n == 0 else sum(r["gateway_processing_ms"] for r in rows) / n
    if name in ("total_tokens", "input_tokens", "output_tokens"):
        return sum(r[name] for r in rows)
    if name == "avg_tokens_per_request":
        return None if n == 0 else sum(r["total_tokens"] for r in rows) / n
    if name == "total_cost":
        return sum(r["cost"] for r in rows)
    if name == "unique_users":
        return len({r["client_id"] for r in rows if r["client_id"]})
    if name == "unique_ips":
        return len({r["client_ip"] for r in rows if r["client_ip"]})
    if name == "bot_requests":
        return sum(r["is_bot"] for r in rows)
    if name == "requests_per_second":
        return n / seconds
    return llm_metric(rows, name)


def within_sketch_bound(rows: list[dict[str, Any]], name: str, value: Any) -> bool:
    """Whether a rollup's sketch ``value`` of metric ``name`` holds the bound the registry
    states: a percentile within 210 ms of the exact one; a distinct count within 1%."""
    exact = metric(rows, name)
    if exact is None or value is None:
        return exact is None and value is None
    if name in LEVELS or name in TTFT_LEVELS:
        return abs(value - exact) <= 210
    return abs(value - exact) <= 0.01 * exact


def has_ttft(row: dict[str, Any]) -> bool:
    return bool(row["is_streaming"]) and row["ttft_ms"] > 0


def _share(rows: list[dict[str, Any]], field: str, value: str) -> float | None:
    recorded = [r for r in rows if r[field] != ""]
    return sum(r[field] == value for r in recorded) / len(recorded) if recorded else None


def llm_metric(rows: list[dict[str, Any]], name: str) -> Any:
    """The issue-14 metrics, from their definitions: absent fields are left out."""
    ttfts = sorted(r["ttft_ms"] for r in rows if has_ttft(r))
    if name == "avg_ttft":
        return sum(ttfts) / len(ttfts) if ttfts else None
    if name in TTFT_LEVELS:
        return ttfts[int(TTFT_LEVELS[name] * len(ttfts))] if ttfts else None
    if name == "output_tokens_per_second":
        generating = [r for r in rows if has_ttft(r) and r["response_time_ms"] > r["ttft_ms"]]
        ms = sum(r["response_time_ms"] - r["ttft_ms"] for r in generating)
        return sum(r["output_tokens"] for r in generating) / (ms / 1000) if ms else None
    if name == "fallback_rate":
        return _share(rows, "routing_decision", "fallback")
    if name == "rescued_requests":
        return sum(r["routing_decision"] == "fallback" and r["status_code"] < 400 for r in rows)
    if name == "cache_hit_rate":
        return _share(rows, "routing_decision", "cached")
    if name == "cached_input_tokens":
        return sum(r["cached_input_tokens"] for r in rows)
    if name == "truncation_rate":
        return _share(rows, "finish_reason", "length")
    if name == "content_filter_rate":
        return _share(rows, "finish_reason", "content_filter")
    if name == "cost_per_1k_tokens":
        tokens = sum(r["total_tokens"] for r in rows)
        return sum(r["cost"] for r in rows) / tokens * 1000 if tokens else None
    raise KeyError(name)


def local_bucket(ts: datetime, bucket: str, zone: str = "UTC") -> datetime:
    """Bucket start on the local wall clock of ``zone`` (fold kept, so DST repeats stay
    distinct), as an aware UTC datetime."""
    local = ts.astimezone(ZoneInfo(zone))
    if bucket == "1w":
        day = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
        monday = day.date() - timedelta(days=day.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(zone))
    elif bucket == "1d":
        start = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(zone))
    elif bucket.endswith("h"):
        hours = int(bucket[:-1])
        start = local.replace(
            hour=local.hour - local.hour % hours, minute=0, second=0, microsecond=0
        )
    else:
        minutes = int(bucket[:-1])
        start = local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)
    return start.astimezone(UTC)


def iso(ts: datetime, zone: str = "UTC") -> str:
    text = ts.astimezone(ZoneInfo(zone)).isoformat()
    return text.replace("+00:00", "Z") if text.endswith("+00:00") else text


START_2024 = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
