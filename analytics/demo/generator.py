"""Demo gateway traffic for ``gateway_analytics``, generated inside ClickHouse.

Why inside ClickHouse: a million rows built in Python and shipped through the driver take
minutes; ``INSERT … SELECT … FROM numbers()`` builds them in the engine in seconds.

Why hashes: every random choice is ``cityHash64(seed, row number, salt)``, so one seed gives
the same rows whatever the batch size, and a row never depends on the rows before it.

Why time follows the row number: a row's timestamp is the inverse of the traffic's
cumulative distribution over the window (``HOURLY_WEIGHTS``) at its row number's place
among the rows written (stratified: one hashed jitter per row), so it is monotone in the row
number and a batch covers one contiguous slice of time. The rollup views aggregate a batch
into few 15-minute buckets, as they do a gateway's inserts of recent rows; batches spread
over the whole window fed them about one rollup row per raw row (over 25 minutes for 10M
rows over 90 days). A timestamp depends on the seed, the row number and the spec's rows,
first row and window, never on the batch size.

Why bound arrays: the catalogues (user agents with the fields ``analytics.useragent``
gives them, which client analytics also uses; cities, models, routes, statuses, blocking
rules) travel as ``{name:Array(T)}`` parameters, and weighted choices are a lookup in a
"slot" array where each index repeats in proportion to its weight. The SQL text holds
only identifiers and constants.
"""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, NamedTuple

from tqdm import tqdm

from analytics.query.registry import TABLE
from analytics.useragent import classify_user_agent

SLOTS = 1000  # resolution of weighted choices: 0.1 %
DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PROJECTS = 100
API_KEYS = 300  # API keys (client_id) shared by the projects, used Zipf-style
USERS = 120  # owners of those keys (user_id)
BOT_SHARE = 0.05
HUMAN_BLOCK_SHARE = 0.012
BOT_BLOCK_SHARE = 0.40  # user-agent and rate rules catch many crawlers
IPV6_PERCENT = 18
MAX_INPUT_TOKENS = 128_000
MAX_OUTPUT_TOKENS = 16_384
MAX_RESPONSE_MS = 600_000
UINT64_MAX = 2**64 - 1


# --- catalogues ---------------------------------------------------------------------------


class UserAgent(NamedTuple):
    string: str
    weight: float  # within its pool (bots or everyone else, as analytics.useragent says)


USER_AGENTS: tuple[UserAgent, ...] = (
    UserAgent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        14,
    ),
    UserAgent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        8,
    ),
    UserAgent(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        5,
    ),
    UserAgent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 3
    ),
    UserAgent("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 2),
    UserAgent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        4,
    ),
    UserAgent(
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        1,
    ),
    UserAgent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        5,
    ),
    UserAgent(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.81 Mobile Safari/537.36",
        4,
    ),
    UserAgent(
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        2,
    ),
    UserAgent(
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
        2,
    ),
    UserAgent(
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36",
        1,
    ),
    UserAgent("OpenAI/Python 1.54.4", 16),
    UserAgent("OpenAI/NodeJS/4.73.0", 6),
    UserAgent("python-requests/2.32.3", 10),
    UserAgent("curl/8.5.0", 5),
    UserAgent("axios/1.7.7", 3),
    UserAgent("Go-http-client/2.0", 2),
    UserAgent("PostmanRuntime/7.42.0", 2),
    UserAgent("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 40),
    UserAgent("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 25),
    UserAgent(
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot)",
        20,
    ),
    UserAgent("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", 15),
)


class City(NamedTuple):
    country_code: str  # ISO 3166-1 alpha-2; '' = unknown
    region: str
    city: str
    latitude: float
    longitude: float
    weight: float  # percent of rows


UNKNOWN_GEO_PERCENT = 3.0
BLOCKED_COUNTRY_CITY = "Moscow"  # where country_blocked rows come from

CITIES: tuple[City, ...] = (
    City("", "", "", 0.0, 0.0, UNKNOWN_GEO_PERCENT),
    City("US", "California", "San Francisco", 37.7749, -122.4194, 9),
    City("US", "New York", "New York", 40.7128, -74.0060, 8),
    City("US", "Washington", "Seattle", 47.6062, -122.3321, 4),
    City("US", "Texas", "Austin", 30.2672, -97.7431, 3),
    City("US", "Illinois", "Chicago", 41.8781, -87.6298, 3),
    City("CA", "Ontario", "Toronto", 43.6532, -79.3832, 3),
    City("GB", "England", "London", 51.5074, -0.1278, 7),
    City("GB", "England", "Manchester", 53.4808, -2.2426, 1.5),
    City("DE", "Berlin", "Berlin", 52.5200, 13.4050, 4),
    City("DE", "Hesse", "Frankfurt am Main", 50.1109, 8.6821, 3),
    City("FR", "Île-de-France", "Paris", 48.8566, 2.3522, 4),
    City("NL", "North Holland", "Amsterdam", 52.3676, 4.9041, 3),
    City("IE", "Leinster", "Dublin", 53.3498, -6.2603, 2),
    City("ES", "Madrid", "Madrid", 40.4168, -3.7038, 2),
    City("SE", "Stockholm County", "Stockholm", 59.3293, 18.0686, 1.5),
    City("IN", "Karnataka", "Bengaluru", 12.9716, 77.5946, 8),
    City("IN", "Maharashtra", "Mumbai", 19.0760, 72.8777, 4),
    City("IN", "Kerala", "Kochi", 9.9312, 76.2673, 2),
    City("SG", "Singapore", "Singapore", 1.3521, 103.8198, 4),
    City("JP", "Tokyo", "Tokyo", 35.6762, 139.6503, 4),
    City("KR", "Seoul", "Seoul", 37.5665, 126.9780, 2),
    City("AE", "Dubai", "Dubai", 25.2048, 55.2708, 2),
    City("AU", "New South Wales", "Sydney", -33.8688, 151.2093, 2.5),
    City("BR", "São Paulo", "São Paulo", -23.5505, -46.6333, 2.5),
    City("ZA", "Gauteng", "Johannesburg", -26.2041, 28.0473, 1),
    City("RU", "Moscow", BLOCKED_COUNTRY_CITY, 55.7558, 37.6173, 0),  # seen only as blocked
)


class Kind(IntEnum):
    """What a model serves; picks the routes it is called on (1-based: ClickHouse arrays)."""

    CHAT = 1
    EMBEDDING = 2
    AUDIO = 3
    IMAGE = 4


class Model(NamedTuple):
    name: str
    provider: str
    kind: Kind
    input_per_million: float  # USD per 1M input tokens
    output_per_million: float  # USD per 1M output tokens
    per_request: float = 0.0  # USD per successful request (image generation)
    # Serving speed against the route's baseline: time to first token, and time per output
    # token (the inverse of tokens/s). Hosted frontier models queue longer; a self-hosted
    # vLLM answers sooner but decodes slower.
    ttft_factor: float = 1.0
    token_ms_factor: float = 1.0
    cached_input_per_million: float | None = None  # prompt-cache reads; None = no prompt cache
    versions: tuple[tuple[str, float], ...] = ()  # (model_version, weight); () = the name


MODELS: tuple[Model, ...] = (
    Model(
        "gpt-4o", "openai", Kind.CHAT, 2.50, 10.00,
        ttft_factor=1.0, token_ms_factor=0.75, cached_input_per_million=1.25,
        versions=(("gpt-4o-2024-08-06", 65), ("gpt-4o-2024-11-20", 35)),
    ),
    Model(
        "gpt-4o-mini", "openai", Kind.CHAT, 0.15, 0.60,
        ttft_factor=0.7, token_ms_factor=0.5, cached_input_per_million=0.075,
        versions=(("gpt-4o-mini-2024-07-18", 1),),
    ),
    Model(
        "claude-3-5-sonnet-20241022", "anthropic", Kind.CHAT, 3.00, 15.00,
        ttft_factor=1.35, token_ms_factor=0.9, cached_input_per_million=0.30,
        versions=(("claude-3-5-sonnet-20241022", 1),),
    ),
    Model(
        "meta-llama/Llama-3.1-70B-Instruct", "vllm", Kind.CHAT, 0.60, 0.60,
        ttft_factor=0.45, token_ms_factor=1.6,
        versions=(("Llama-3.1-70B-Instruct-FP8", 60), ("Llama-3.1-70B-Instruct", 40)),
    ),
    Model(
        "mistral-large-latest", "mistral", Kind.CHAT, 2.00, 6.00,
        ttft_factor=1.15, token_ms_factor=1.3,
        versions=(("mistral-large-2407", 30), ("mistral-large-2411", 70)),
    ),
    Model("text-embedding-3-small", "openai", Kind.EMBEDDING, 0.02, 0.0),
    Model(
        "BAAI/bge-large-en-v1.5", "vllm", Kind.EMBEDDING, 0.01, 0.0,
        versions=(("bge-large-en-v1.5", 1),),
    ),
    Model("whisper-1", "openai", Kind.AUDIO, 0.0, 6.00),
    Model("dall-e-3", "openai", Kind.IMAGE, 0.0, 0.0, per_request=0.04),
)  # fmt: skip


class Route(NamedTuple):
    """A gateway route; ``:model_id`` and ``:file_id`` in the path are filled per row."""

    method: str
    path: str
    kind: Kind
    weight: float  # within its kind
    input_median: float  # tokens (log-normal median); 0 = none
    input_sigma: float
    output_median: float
    output_sigma: float
    latency_median_ms: float  # upstream time before the first token
    latency_sigma: float
    ms_per_output_token: float
    request_bytes: float  # body size besides the prompt (~4 bytes a token)
    response_bytes: float  # body size besides the completion


CHAT, EMBEDDING, AUDIO, IMAGE = Kind.CHAT, Kind.EMBEDDING, Kind.AUDIO, Kind.IMAGE
# method, path, kind, weight, input median/sigma, output median/sigma, latency median/sigma,
# ms per output token, request bytes, response bytes
ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", CHAT, 88, 650, 1.0, 220, 0.9, 420, 0.6, 16, 450, 600),
    Route("POST", "/v1/completions", CHAT, 7, 300, 0.9, 120, 0.9, 350, 0.6, 14, 300, 450),
    Route("GET", "/v1/models", CHAT, 3, 0, 0, 0, 0, 12, 0.4, 0, 0, 4200),
    Route("GET", "/v1/models/:model_id", CHAT, 1, 0, 0, 0, 0, 9, 0.4, 0, 0, 260),
    Route("GET", "/v1/files/file-:file_id", CHAT, 0.6, 0, 0, 0, 0, 25, 0.5, 0, 0, 320),
    Route("DELETE", "/v1/files/file-:file_id", CHAT, 0.4, 0, 0, 0, 0, 30, 0.5, 0, 0, 90),
    Route("POST", "/v1/embeddings", EMBEDDING, 97, 180, 1.1, 0, 0, 85, 0.5, 0, 160, 33_000),
    Route("GET", "/v1/models", EMBEDDING, 3, 0, 0, 0, 0, 12, 0.4, 0, 0, 4200),
    Route("POST", "/v1/audio/transcriptions", AUDIO, 100, 0, 0, 160, 0.8, 1800, 0.5, 4, 8e5, 120),
    Route("POST", "/v1/images/generations", IMAGE, 100, 60, 0.5, 0, 0, 7000, 0.35, 0, 420, 380),
)  # fmt: skip


class Status(NamedTuple):
    code: int
    error_type: str
    weight: float  # percent of requests that are neither blocked nor from bots
    latency_median_ms: float  # upstream time for errors (ignored for 200)
    latency_sigma: float


STATUSES: tuple[Status, ...] = (
    Status(200, "", 94.3, 0, 0),
    Status(400, "invalid_request_error", 1.2, 14, 0.6),
    Status(401, "authentication_error", 0.5, 4, 0.5),
    Status(404, "not_found_error", 0.6, 8, 0.5),
    Status(429, "rate_limit_exceeded", 1.2, 6, 0.5),
    Status(500, "internal_server_error", 0.8, 900, 0.8),
    Status(502, "bad_gateway", 0.5, 1500, 0.7),
    Status(503, "service_unavailable", 0.6, 60, 0.6),
    Status(504, "gateway_timeout", 0.3, 30_000, 0.05),
)
BOT_STATUS = 401  # crawlers carry no API key: rejected unless a rule blocked them first
BLOCKED_STATUS = 403
BLOCKED_ERROR_TYPE = "request_blocked"


class BlockRule(NamedTuple):
    name: str
    reason: str
    human_weight: float
    bot_weight: float


BLOCK_RULES: tuple[BlockRule, ...] = (
    BlockRule("per-key rate limit", "rate_limit", 40, 10),
    BlockRule("per-ip burst limit", "rate_limit", 20, 5),
    BlockRule("abusive ip list", "ip_blocked", 15, 10),
    BlockRule("tor exit nodes", "ip_blocked", 10, 5),
    BlockRule("sanctioned countries", "country_blocked", 15, 5),
    BlockRule("crawler user agents", "user_agent_blocked", 0, 65),
)

# --- LLM serving (issue 14): streaming, routing, gateway cache, finish reasons, tags ------


class Serving(NamedTuple):
    """How the gateway serves a route's model calls; routes not listed never reach a
    provider (listing models, files), so their LLM columns stay "absent"."""

    stream_share: float  # of successful calls, streamed back token by token
    cache_share: float  # of successful calls, answered from the gateway's response cache
    generates: bool  # the provider reports a finish reason (text generation)


SERVING: dict[tuple[str, str], Serving] = {
    ("POST", "/v1/chat/completions"): Serving(0.78, 0.07, True),
    ("POST", "/v1/completions"): Serving(0.35, 0.05, True),
    ("POST", "/v1/embeddings"): Serving(0.0, 0.12, False),
    ("POST", "/v1/audio/transcriptions"): Serving(0.0, 0.0, False),
    ("POST", "/v1/images/generations"): Serving(0.0, 0.0, False),
}
# Statuses the gateway answers itself, before any routing (no key, unknown model).
GATEWAY_STATUSES = (401, 404)
# A successful call whose first provider call failed: another call rescued it.
RESCUE_SHARE = 0.05
RESCUE_RETRY_SHARE = 0.25  # of rescues: the same provider again, not a fallback provider
# A call that ended in an upstream (5xx) error: what the router tried before giving up.
FAILED_FALLBACK_SHARE = 0.55
FAILED_RETRY_SHARE = 0.20  # the rest had no fallback configured (one primary call)
THIRD_ATTEMPT_SHARE = 0.15  # of fallbacks and retries: two failed calls before the last
FAILED_ATTEMPT_MS = (900.0, 0.8)  # log-normal median and sigma of the failed call's time
CACHE_HIT_MS = (6.0, 0.5)  # a gateway cache hit: no provider call at all
TOKEN_SPEED_SIGMA = 0.25  # per-request spread of the time per output token
# Finish reasons of a successful generation: 'length' is drawn from the longest outputs
# (the output draw's top ~6 %), the rest by weight; upstream errors finish with 'error'.
LENGTH_Z = 1.55
FINISH_REASONS: tuple[tuple[str, float], ...] = (
    ("stop", 93.0),
    ("tool_call", 4.5),
    ("content_filter", 1.0),
    ("unknown", 0.5),
)
PROMPT_CACHE_MIN_TOKENS = 1024  # providers cache prompts from this length on
PROMPT_CACHE_SHARE = 0.40  # of long prompts to a caching provider, partly read from cache


class Tag(NamedTuple):
    key: str
    per_key: bool  # a label of the API key (same on all its requests), else per request
    values: tuple[tuple[str, float], ...]  # (value, weight); '' = the tag left out


TAGGED_KEY_PERCENT = 70  # API keys whose callers send tags; the rest send none
TAGS: tuple[Tag, ...] = (
    Tag("env", True, (("prod", 78), ("staging", 15), ("dev", 7))),
    Tag(
        "team",
        True,
        (("search", 38), ("support", 24), ("growth", 16), ("research", 10), ("ml-platform", 5),
         ("", 7)),
    ),
    Tag(
        "feature",
        False,
        (("chat-assistant", 38), ("summarize", 20), ("rag-search", 16), ("code-review", 9),
         ("translate", 5), ("", 12)),
    ),
)  # fmt: skip

# Requests per UTC hour of day (Europe's afternoon meets America's morning). A day's traffic
# is this shape; every day of the window weighs the same.
HOURLY_WEIGHTS: tuple[float, ...] = (
    3.0, 2.5, 2.0, 1.8, 1.8, 2.0, 2.6, 3.5, 4.5, 5.4, 6.0, 6.5,
    7.0, 7.5, 7.8, 7.8, 7.4, 6.8, 6.0, 5.2, 4.6, 4.1, 3.7, 3.3,
)  # fmt: skip


# --- deterministic ids and weighted slots -------------------------------------------------


def stable_uuid(seed: int, *parts: object) -> uuid.UUID:
    """A version-4-shaped UUID that depends only on the seed and the parts."""
    text = ":".join(["budmetrics-demo", str(seed), *map(str, parts)])
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return uuid.UUID(bytes=digest, version=4)


def _stable_int(seed: int, *parts: object) -> int:
    return stable_uuid(seed, "int", *parts).int


def weighted_slots(weights: Sequence[float], size: int = SLOTS) -> list[int]:
    """1-based indices, each repeated in proportion to its weight (largest remainder), so
    the SQL makes a weighted choice with one array lookup instead of a scan."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("weights must have a positive sum")
    exact = [weight / total * size for weight in weights]
    counts = [int(value) for value in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - counts[i], reverse=True)
    for index in by_remainder[: size - sum(counts)]:
        counts[index] += 1
    return [index + 1 for index, count in enumerate(counts) for _ in range(count)]


# --- the request --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficSpec:
    rows: int
    days: int = 7
    projects: int = 3
    seed: int = 42
    batch_size: int = 100_000
    end: datetime | None = None  # default: now (UTC)
    # Row numbers are first_row .. first_row + rows - 1: a later run with the same seed and
    # a first_row past the rows already written adds new rows (new request ids), again
    # spread over the whole window, to the same projects.
    first_row: int = 0

    def __post_init__(self) -> None:
        checks = (
            (self.rows > 0, f"rows must be positive, got {self.rows}"),
            (self.days > 0, f"days must be positive, got {self.days}"),
            (
                0 < self.projects <= MAX_PROJECTS,
                f"projects must be between 1 and {MAX_PROJECTS}, got {self.projects}",
            ),
            (0 <= self.seed <= UINT64_MAX, f"seed must be between 0 and 2**64-1, got {self.seed}"),
            (self.batch_size > 0, f"batch size must be positive, got {self.batch_size}"),
            (
                0 <= self.first_row <= UINT64_MAX - self.rows,
                f"first row must be between 0 and 2**64-1-rows, got {self.first_row}",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        # Resolve "now" once, so the window the rows use is the window reported.
        end = self.end or datetime.now(UTC)
        end = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
        object.__setattr__(self, "end", end.replace(microsecond=end.microsecond // 1000 * 1000))

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC, to the millisecond."""
        end = self.end or datetime.now(UTC)  # always set by __post_init__
        return end - timedelta(days=self.days), end


@dataclass(frozen=True)
class TrafficResult:
    rows: int
    seconds: float
    skipped: bool = False

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# --- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectLayout:
    """Projects and their endpoints (a model deployed in a project), flattened into the
    arrays the SQL indexes: ``endpoint_slots[project]`` lists that project's endpoints."""

    project_ids: list[str]
    project_weights: list[float]
    endpoint_ids: list[str]
    endpoint_model: list[int]  # 1-based index into MODELS
    endpoint_slots: list[list[int]]


def project_layout(seed: int, count: int) -> ProjectLayout:
    """Zipf-weighted projects, each with three chat models, one embedding model and, for
    some, audio and image models; which ones depends on the seed."""
    by_kind = {kind: [i for i, m in enumerate(MODELS) if m.kind is kind] for kind in Kind}
    chat = by_kind[Kind.CHAT]
    layout = ProjectLayout([], [], [], [], [])
    for project in range(count):
        pick = _stable_int(seed, "project-models", project)
        offset = pick % len(chat)
        chosen = [(chat[(offset + k) % len(chat)], w) for k, w in enumerate((45, 20, 10))]
        embedding = by_kind[Kind.EMBEDDING]
        chosen.append((embedding[(pick >> 8) % len(embedding)], 18))
        if (pick >> 16) % 3:
            chosen.append((by_kind[Kind.AUDIO][0], 4))
        if (pick >> 24) % 2:
            chosen.append((by_kind[Kind.IMAGE][0], 3))
        first = len(layout.endpoint_ids) + 1
        for model_index, _ in chosen:
            model = MODELS[model_index].name
            layout.endpoint_ids.append(str(stable_uuid(seed, "endpoint", project, model)))
            layout.endpoint_model.append(model_index + 1)
        slots = weighted_slots([weight for _, weight in chosen])
        layout.endpoint_slots.append([first + slot - 1 for slot in slots])
        layout.project_ids.append(str(stable_uuid(seed, "project", project)))
        layout.project_weights.append(1.0 / (project + 1))
    return layout


def build_parameters(spec: TrafficSpec) -> dict[str, Any]:
    """Every value the INSERT needs, as bound parameters (names match ``PARAMETER_TYPES``)."""
    seed = spec.seed
    start, _ = spec.window
    start_ms = (start - EPOCH) // timedelta(milliseconds=1)  # exact, unlike float seconds
    infos = [classify_user_agent(ua.string) for ua in USER_AGENTS]
    bot_weights = [
        ua.weight if info.is_bot else 0 for ua, info in zip(USER_AGENTS, infos, strict=True)
    ]
    human_weights = [
        0 if info.is_bot else ua.weight for ua, info in zip(USER_AGENTS, infos, strict=True)
    ]
    projects = project_layout(seed, spec.projects)
    route_slots = [
        weighted_slots([r.weight if r.kind is kind else 0 for r in ROUTES]) for kind in Kind
    ]
    city_index = {city.city: i + 1 for i, city in enumerate(CITIES)}
    parameters = {
        "seed": seed,
        "start_ms": start_ms,
        **_time_parameters(spec, start_ms),
        "api_keys": API_KEYS,
        "users": USERS,
        "project_ids": projects.project_ids,
        "project_slots": weighted_slots(projects.project_weights),
        "endpoint_ids": projects.endpoint_ids,
        "endpoint_model": projects.endpoint_model,
        "endpoint_slots": projects.endpoint_slots,
        "model_ids": [str(stable_uuid(seed, "model", m.name)) for m in MODELS],
        "model_names": [m.name for m in MODELS],
        "model_providers": [m.provider for m in MODELS],
        "model_kind": [int(m.kind) for m in MODELS],
        "model_input_price": [m.input_per_million / 1e6 for m in MODELS],
        "model_output_price": [m.output_per_million / 1e6 for m in MODELS],
        "model_request_price": [m.per_request for m in MODELS],
        "route_slots": route_slots,
        "route_methods": [r.method for r in ROUTES],
        "route_paths": [r.path for r in ROUTES],
        "route_input_median": [float(r.input_median) for r in ROUTES],
        "route_input_sigma": [float(r.input_sigma) for r in ROUTES],
        "route_output_median": [float(r.output_median) for r in ROUTES],
        "route_output_sigma": [float(r.output_sigma) for r in ROUTES],
        "route_latency_median": [float(r.latency_median_ms) for r in ROUTES],
        "route_latency_sigma": [float(r.latency_sigma) for r in ROUTES],
        "route_ms_per_token": [float(r.ms_per_output_token) for r in ROUTES],
        "route_request_bytes": [float(r.request_bytes) for r in ROUTES],
        "route_response_bytes": [float(r.response_bytes) for r in ROUTES],
        "bot_share": BOT_SHARE,
        "human_block_share": HUMAN_BLOCK_SHARE,
        "bot_block_share": BOT_BLOCK_SHARE,
        "ua_strings": [ua.string for ua in USER_AGENTS],
        "ua_device_type": [i.device_type for i in infos],
        "ua_browser": [i.browser for i in infos],
        "ua_browser_version": [i.browser_version for i in infos],
        "ua_os": [i.os for i in infos],
        "ua_os_version": [i.os_version for i in infos],
        "ua_is_bot": [i.is_bot for i in infos],
        "bot_ua_slots": weighted_slots(bot_weights),
        "human_ua_slots": weighted_slots(human_weights),
        "geo_slots": weighted_slots([c.weight for c in CITIES]),
        "geo_country": [c.country_code for c in CITIES],
        "geo_region": [c.region for c in CITIES],
        "geo_city": [c.city for c in CITIES],
        "geo_latitude": [c.latitude for c in CITIES],
        "geo_longitude": [c.longitude for c in CITIES],
        "blocked_geo": city_index[BLOCKED_COUNTRY_CITY],
        "status_slots": weighted_slots([s.weight for s in STATUSES]),
        "status_codes": [s.code for s in STATUSES],
        "status_errors": [s.error_type for s in STATUSES],
        "status_latency_median": [float(s.latency_median_ms) for s in STATUSES],
        "status_latency_sigma": [float(s.latency_sigma) for s in STATUSES],
        "bot_status": [s.code for s in STATUSES].index(BOT_STATUS) + 1,
        "blocked_status": BLOCKED_STATUS,
        "blocked_error_type": BLOCKED_ERROR_TYPE,
        "rule_ids": [str(stable_uuid(seed, "block-rule", rule.name)) for rule in BLOCK_RULES],
        "rule_reasons": [rule.reason for rule in BLOCK_RULES],
        "human_rule_slots": weighted_slots([rule.human_weight for rule in BLOCK_RULES]),
        "bot_rule_slots": weighted_slots([rule.bot_weight for rule in BLOCK_RULES]),
        "ipv6_percent": IPV6_PERCENT,
        "max_input_tokens": MAX_INPUT_TOKENS,
        "max_output_tokens": MAX_OUTPUT_TOKENS,
        "max_response_ms": MAX_RESPONSE_MS,
    }
    return parameters | _llm_parameters()


HOUR_MS = 3_600_000
HOUR_LOOKUP_SIZE = 1024  # day-mass cells; every hour holds more than one (checked)


def _time_parameters(spec: TrafficSpec, start_ms: int) -> dict[str, Any]:
    """What maps a row number to its time: the cumulative traffic share of each UTC hour of
    a day (a day's "mass" is 1), a lookup from a cell of mass to the hour it starts in (one
    array read instead of a search per row), and where the window starts in mass."""
    total = float(sum(HOURLY_WEIGHTS))
    weights = [weight / total for weight in HOURLY_WEIGHTS]
    if min(weights) <= 1 / HOUR_LOOKUP_SIZE:
        raise ValueError("every hour needs more than one lookup cell of traffic")
    cumulative = [0.0]
    for weight in weights:
        cumulative.append(cumulative[-1] + weight)
    cumulative[-1] = 1.0
    lookup, hour = [], 0
    for cell in range(HOUR_LOOKUP_SIZE):
        while cumulative[hour + 1] <= cell / HOUR_LOOKUP_SIZE:
            hour += 1
        lookup.append(hour)
    time_of_day = start_ms % DAY_MS
    start_hour = time_of_day // HOUR_MS
    start_mass = cumulative[start_hour] + (time_of_day % HOUR_MS) / HOUR_MS * weights[start_hour]
    return {
        "days": spec.days,
        "total_rows": spec.rows,
        "first_row": spec.first_row,
        "start_day_ms": start_ms - time_of_day,
        "start_mass": start_mass,
        "hour_weights": weights,
        "hour_cumulative": cumulative,
        "hour_lookup": lookup,
    }


def _llm_parameters() -> dict[str, Any]:
    """The LLM serving catalogues (issue 14) as bound parameters."""
    versions: list[str] = []
    version_slots: list[list[int]] = []
    for model in MODELS:
        choices = model.versions or ((model.name, 1.0),)
        first = len(versions) + 1
        versions += [name for name, _ in choices]
        version_slots.append([first + slot - 1 for slot in weighted_slots([w for _, w in choices])])
    serving = [SERVING.get((r.method, r.path)) for r in ROUTES]
    return {
        "model_ttft_factor": [m.ttft_factor for m in MODELS],
        "model_token_ms_factor": [m.token_ms_factor for m in MODELS],
        "model_prompt_cache": [m.cached_input_per_million is not None for m in MODELS],
        "model_cached_input_price": [(m.cached_input_per_million or 0.0) / 1e6 for m in MODELS],
        "model_version_slots": version_slots,
        "version_names": versions,
        "route_routed": [s is not None for s in serving],
        "route_stream_share": [s.stream_share if s else 0.0 for s in serving],
        "route_cache_share": [s.cache_share if s else 0.0 for s in serving],
        "route_generates": [bool(s and s.generates) for s in serving],
        "gateway_statuses": list(GATEWAY_STATUSES),
        "rescue_share": RESCUE_SHARE,
        "rescue_retry_share": RESCUE_RETRY_SHARE,
        "failed_fallback_share": FAILED_FALLBACK_SHARE,
        "failed_retry_share": FAILED_RETRY_SHARE,
        "third_attempt_share": THIRD_ATTEMPT_SHARE,
        "failed_attempt_median": FAILED_ATTEMPT_MS[0],
        "failed_attempt_sigma": FAILED_ATTEMPT_MS[1],
        "cache_hit_median": CACHE_HIT_MS[0],
        "cache_hit_sigma": CACHE_HIT_MS[1],
        "token_speed_sigma": TOKEN_SPEED_SIGMA,
        "length_z": LENGTH_Z,
        "finish_names": [name for name, _ in FINISH_REASONS],
        "finish_slots": weighted_slots([weight for _, weight in FINISH_REASONS]),
        "prompt_cache_min_tokens": PROMPT_CACHE_MIN_TOKENS,
        "prompt_cache_share": PROMPT_CACHE_SHARE,
        "tag_keys": [tag.key for tag in TAGS],
        "tag_values": [[value for value, _ in tag.values] for tag in TAGS],
        "tag_slots": [weighted_slots([weight for _, weight in tag.values]) for tag in TAGS],
        "tagged_key_percent": TAGGED_KEY_PERCENT,
    }


PARAMETER_TYPES: dict[str, str] = {
    "seed": "UInt64",
    "start_ms": "Int64",
    "days": "UInt32",
    "total_rows": "UInt64",
    "first_row": "UInt64",
    "start_day_ms": "Int64",
    "start_mass": "Float64",
    "hour_weights": "Array(Float64)",
    "hour_cumulative": "Array(Float64)",
    "hour_lookup": "Array(UInt8)",
    "api_keys": "UInt32",
    "users": "UInt32",
    "project_ids": "Array(UUID)",
    "project_slots": "Array(UInt16)",
    "endpoint_ids": "Array(UUID)",
    "endpoint_model": "Array(UInt16)",
    "endpoint_slots": "Array(Array(UInt16))",
    "model_ids": "Array(UUID)",
    "model_names": "Array(String)",
    "model_providers": "Array(String)",
    "model_kind": "Array(UInt8)",
    "model_input_price": "Array(Float64)",
    "model_output_price": "Array(Float64)",
    "model_request_price": "Array(Float64)",
    "route_slots": "Array(Array(UInt16))",
    "route_methods": "Array(String)",
    "route_paths": "Array(String)",
    "route_input_median": "Array(Float64)",
    "route_input_sigma": "Array(Float64)",
    "route_output_median": "Array(Float64)",
    "route_output_sigma": "Array(Float64)",
    "route_latency_median": "Array(Float64)",
    "route_latency_sigma": "Array(Float64)",
    "route_ms_per_token": "Array(Float64)",
    "route_request_bytes": "Array(Float64)",
    "route_response_bytes": "Array(Float64)",
    "bot_share": "Float64",
    "human_block_share": "Float64",
    "bot_block_share": "Float64",
    "ua_strings": "Array(String)",
    "ua_device_type": "Array(String)",
    "ua_browser": "Array(String)",
    "ua_browser_version": "Array(String)",
    "ua_os": "Array(String)",
    "ua_os_version": "Array(String)",
    "ua_is_bot": "Array(Bool)",
    "bot_ua_slots": "Array(UInt16)",
    "human_ua_slots": "Array(UInt16)",
    "geo_slots": "Array(UInt16)",
    "geo_country": "Array(String)",
    "geo_region": "Array(String)",
    "geo_city": "Array(String)",
    "geo_latitude": "Array(Float32)",
    "geo_longitude": "Array(Float32)",
    "blocked_geo": "UInt16",
    "status_slots": "Array(UInt16)",
    "status_codes": "Array(UInt16)",
    "status_errors": "Array(String)",
    "status_latency_median": "Array(Float64)",
    "status_latency_sigma": "Array(Float64)",
    "bot_status": "UInt16",
    "blocked_status": "UInt16",
    "blocked_error_type": "String",
    "rule_ids": "Array(UUID)",
    "rule_reasons": "Array(String)",
    "human_rule_slots": "Array(UInt16)",
    "bot_rule_slots": "Array(UInt16)",
    "ipv6_percent": "UInt8",
    "max_input_tokens": "UInt32",
    "max_output_tokens": "UInt32",
    "max_response_ms": "UInt32",
    # LLM serving (issue 14)
    "model_ttft_factor": "Array(Float64)",
    "model_token_ms_factor": "Array(Float64)",
    "model_prompt_cache": "Array(Bool)",
    "model_cached_input_price": "Array(Float64)",
    "model_version_slots": "Array(Array(UInt16))",
    "version_names": "Array(String)",
    "route_routed": "Array(Bool)",
    "route_stream_share": "Array(Float64)",
    "route_cache_share": "Array(Float64)",
    "route_generates": "Array(Bool)",
    "gateway_statuses": "Array(UInt16)",
    "rescue_share": "Float64",
    "rescue_retry_share": "Float64",
    "failed_fallback_share": "Float64",
    "failed_retry_share": "Float64",
    "third_attempt_share": "Float64",
    "failed_attempt_median": "Float64",
    "failed_attempt_sigma": "Float64",
    "cache_hit_median": "Float64",
    "cache_hit_sigma": "Float64",
    "token_speed_sigma": "Float64",
    "length_z": "Float64",
    "finish_names": "Array(String)",
    "finish_slots": "Array(UInt16)",
    "prompt_cache_min_tokens": "UInt32",
    "prompt_cache_share": "Float64",
    "tag_keys": "Array(String)",
    "tag_values": "Array(Array(String))",
    "tag_slots": "Array(Array(UInt16))",
    "tagged_key_percent": "UInt8",
}


# --- SQL ----------------------------------------------------------------------------------


class Salt(IntEnum):
    """One hash stream per random choice; never reuse a value for two choices."""

    API_KEY = 1
    ENDPOINT = 2
    ROUTE = 3
    BOT = 4
    USER_AGENT = 5
    BLOCKED = 6
    RULE = 7
    GEO = 8
    STATUS = 9
    NORMAL_1 = 10  # three Box-Muller pairs
    NORMAL_2 = 11
    NORMAL_3 = 12
    NORMAL_4 = 13
    NORMAL_5 = 14
    NORMAL_6 = 15
    DAY = 16  # retired (time drawn per day and hour); kept so no value is reused
    HOUR = 17  # retired
    POSITION = 18  # a row's place within its stratum of time
    REQUEST_ID_HIGH = 19
    REQUEST_ID_LOW = 20
    IP_VARIANT = 21
    FILE = 22
    ERROR_BYTES = 23
    STREAM = 24
    RESCUE = 25
    CACHE = 26
    ROUTING = 27
    ATTEMPTS = 28
    FINISH = 29
    VERSION = 30
    PROMPT_CACHE = 31
    PROMPT_CACHE_SIZE = 32
    NORMAL_7 = 33  # a fourth Box-Muller pair
    NORMAL_8 = 34
    TAG = 35  # with the tag's index
    # hashed with an API key or user index instead of the row number
    KEY_PROJECT = 101
    KEY_ID_HIGH = 102
    KEY_ID_LOW = 103
    KEY_USER = 104
    USER_ID_HIGH = 105
    USER_ID_LOW = 106
    IP = 107
    IP_V6_LOW = 108
    KEY_TAGGED = 109
    KEY_TAG = 110  # with the tag's index


def _hash(salt: Salt, key: str = "number") -> str:
    return f"cityHash64(seed, {key}, {int(salt)})"


def _uniform(salt: Salt) -> str:
    """Uniform in [0, 1): the top 53 bits of the hash, so the float is exact."""
    return f"(bitShiftRight({_hash(salt)}, 11) / 9007199254740992.0)"


def _pick(slots: str, salt: Salt) -> str:
    return f"{slots}[1 + {_hash(salt)} % length({slots})]"


def _uuid_text(high: str, low: str) -> str:
    """A version-4-shaped UUID string from two UInt64 hashes (generateUUIDv4 is random)."""
    a = f"leftPad(lower(hex({high})), 16, '0')"
    b = f"leftPad(lower(hex({low})), 16, '0')"
    return (
        f"concat(substring({a}, 1, 8), '-', substring({a}, 9, 4), '-4', substring({a}, 14, 3),"
        f" '-', ['8', '9', 'a', 'b'][1 + {low} % 4], substring({b}, 2, 3), '-',"
        f" substring({b}, 5, 12))"
    )


# (target column, expression over the inner query's names), in insert order.
OUTPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "toUUID(request_id_text)"),
    ("timestamp", "fromUnixTimestamp64Milli(start_ms + offset_ms, 'UTC')"),
    ("project_id", "project_ids[project_idx]"),
    ("model_id", "model_id"),
    ("endpoint_id", "endpoint_ids[endpoint_idx]"),
    ("model_name", "model_names[model_idx]"),
    ("model_provider", "model_providers[model_idx]"),
    ("client_id", "client_id"),
    ("user_id", "user_id"),
    ("client_ip", "client_ip"),
    ("country_code", "geo_country[geo_idx]"),
    ("region", "geo_region[geo_idx]"),
    ("city", "geo_city[geo_idx]"),
    ("latitude", "geo_latitude[geo_idx]"),
    ("longitude", "geo_longitude[geo_idx]"),
    ("user_agent", "ua_strings[ua_idx]"),
    ("device_type", "ua_device_type[ua_idx]"),
    ("browser", "ua_browser[ua_idx]"),
    ("browser_version", "ua_browser_version[ua_idx]"),
    ("os", "ua_os[ua_idx]"),
    ("os_version", "ua_os_version[ua_idx]"),
    ("is_bot", "is_bot"),
    ("method", "route_methods[route_idx]"),
    ("path", "path"),
    ("status_code", "status_code"),
    ("response_time_ms", "response_ms"),
    ("gateway_processing_ms", "gateway_ms"),
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("total_tokens", "input_tokens + output_tokens"),
    ("cost", "cost"),
    ("request_size", "request_size"),
    ("response_size", "response_size"),
    ("is_blocked", "is_blocked"),
    ("block_reason", "rule_reasons[rule_idx]"),
    (
        "block_rule_id",
        "if(is_blocked, rule_ids[rule_idx], toUUID('00000000-0000-0000-0000-000000000000'))",
    ),
    ("error_type", "error_type"),
    ("is_streaming", "is_streaming"),
    ("ttft_ms", "ttft_ms"),
    ("routing_decision", "routing_decision"),
    ("attempts", "attempts"),
    ("finish_reason", "finish_reason"),
    ("cached_input_tokens", "cached_input_tokens"),
    ("model_version", "model_version"),
    ("tags", "tags"),
)


NORMAL_PAIRS: tuple[tuple[Salt, Salt], ...] = (
    (Salt.NORMAL_1, Salt.NORMAL_2),
    (Salt.NORMAL_3, Salt.NORMAL_4),
    (Salt.NORMAL_5, Salt.NORMAL_6),
    (Salt.NORMAL_7, Salt.NORMAL_8),
)


def _normal_pairs() -> str:
    """Four Box-Muller pairs: eight independent standard normals z1..z8."""
    lines = []
    for pair, (first, second) in enumerate(NORMAL_PAIRS):
        u1 = f"((bitShiftRight({_hash(first)}, 11) + 1) / 9007199254740992.0)"  # (0, 1]
        u2 = _uniform(second)
        lines += [
            f"sqrt(-2 * log({u1})) AS radius_{pair}",
            f"2 * pi() * {u2} AS angle_{pair}",
            f"radius_{pair} * cos(angle_{pair}) AS z{2 * pair + 1}",
            f"radius_{pair} * sin(angle_{pair}) AS z{2 * pair + 2}",
        ]
    return ",\n        ".join(lines)


def _time_of_row() -> str:
    """``offset_ms`` from the window start, monotone in the row number: the row's place
    among the rows written (stratified, jittered by a hash) read through the inverse of the
    traffic's cumulative distribution over the window (whole days of ``HOURLY_WEIGHTS``)."""
    return f"""(toFloat64(number - first_row) + {_uniform(Salt.POSITION)}) / total_rows
            AS row_position,
        start_mass + row_position * days AS time_mass,
        floor(time_mass) AS mass_day,
        time_mass - mass_day AS day_mass,
        hour_lookup[1 + least(toUInt32(day_mass * {HOUR_LOOKUP_SIZE}), {HOUR_LOOKUP_SIZE - 1})]
            AS lookup_hour,
        toInt64(lookup_hour + (day_mass >= hour_cumulative[lookup_hour + 2])) AS row_hour,
        toInt64(least(greatest(floor((day_mass - hour_cumulative[row_hour + 1])
                                     / hour_weights[row_hour + 1] * {HOUR_MS}), 0),
                      {HOUR_MS - 1})) AS hour_ms,
        least(greatest(start_day_ms + toInt64(mass_day) * {DAY_MS} + row_hour * {HOUR_MS}
                       + hour_ms - start_ms, 0), toInt64(days) * {DAY_MS} - 1) AS offset_ms"""


def _lognormal(median: str, sigma: str, z: str) -> str:
    return f"({median} * exp({sigma} * {z}))"


def build_insert_sql() -> str:
    """The batch INSERT: identifiers, constants and ``{name:Type}`` placeholders only."""
    columns = ", ".join(f"`{name}`" for name, _ in OUTPUT_COLUMNS)
    return f"INSERT INTO `{TABLE}` ({columns})\n{build_select_sql()}"


def build_select_sql(selected: Sequence[str] = ()) -> str:
    """The SELECT the INSERT writes (``out_<column>`` in insert order), or the given names
    of it (code constants, e.g. ``number`` and ``out_timestamp``: tests read how a row's
    number maps to its time)."""
    with_params = ",\n    ".join(
        f"{{{name}:{type_}}} AS {name}" for name, type_ in PARAMETER_TYPES.items()
    )
    key_uuid = _uuid_text(_hash(Salt.KEY_ID_HIGH, "key_idx"), _hash(Salt.KEY_ID_LOW, "key_idx"))
    user_uuid = _uuid_text(
        _hash(Salt.USER_ID_HIGH, "user_idx"), _hash(Salt.USER_ID_LOW, "user_idx")
    )
    ip_hash = f"cityHash64(seed, ip_owner, geo_idx, {_hash(Salt.IP_VARIANT)} % 2, {int(Salt.IP)})"
    ip_low = f"cityHash64(seed, ip_owner, geo_idx, {int(Salt.IP_V6_LOW)})"
    ipv6 = (
        "IPv6NumToString(toFixedString(unhex(concat('2a0', toString(ip_hash % 10),"
        f" leftPad(lower(hex(ip_hash)), 16, '0'), substring(leftPad(lower(hex({ip_low})),"
        " 16, '0'), 1, 12))), 16))"
    )
    ipv4 = "IPv4NumToString(toUInt32(184549376 + ip_hash % 3556769792))"  # 11.0.0.0-222.x
    file_id = (
        f"substring(leftPad(lower(hex(cityHash64(seed, key_idx, {_hash(Salt.FILE)} % 5))),"
        " 16, '0'), 1, 16)"
    )
    input_draw = _lognormal("route_input_median[route_idx]", "route_input_sigma[route_idx]", "z1")
    output_draw = _lognormal(
        "route_output_median[route_idx]", "route_output_sigma[route_idx]", "z2"
    )
    success_latency = _lognormal(
        "route_latency_median[route_idx]", "route_latency_sigma[route_idx]", "z3"
    )
    error_latency = _lognormal(
        "status_latency_median[status_idx]", "status_latency_sigma[status_idx]", "z3"
    )
    gateway_draw = _lognormal("if(is_blocked, 1.2, 3.0)", "0.45", "z5")
    extra_draw = (
        f"if(cached, {_lognormal('cache_hit_median', 'cache_hit_sigma', 'z8')},"
        f" {_lognormal('failed_attempt_median', 'failed_attempt_sigma', 'z8')})"
    )
    request_draw = _lognormal("route_request_bytes[route_idx]", "0.35", "z4")
    response_draw = _lognormal("route_response_bytes[route_idx]", "0.35", "z6")
    # One draw per tag (unrolled: a lambda over the tags costs more than the whole row);
    # a key's labels hash the API key, a request's labels the row.
    tag_draws = ", ".join(
        f"tag_values[{i}][tag_slots[{i}][1 + cityHash64(seed, "
        + ("key_idx" if tag.per_key else "number")
        + f", {i}, {int(Salt.KEY_TAG if tag.per_key else Salt.TAG)}) % length(tag_slots[{i}])]]"
        for i, tag in enumerate(TAGS, start=1)
    )
    inner = f"""
    WITH
    {with_params}
    SELECT
        number,
        toUInt32(floor(exp({_uniform(Salt.API_KEY)} * log(api_keys + 1)))) - 1 AS key_idx,
        project_slots[1 + {_hash(Salt.KEY_PROJECT, "key_idx")} % length(project_slots)]
            AS project_idx,
        endpoint_slots[project_idx] AS project_endpoints,
        project_endpoints[1 + {_hash(Salt.ENDPOINT)} % length(project_endpoints)] AS endpoint_idx,
        endpoint_model[endpoint_idx] AS model_idx,
        model_ids[model_idx] AS model_id,
        route_slots[model_kind[model_idx]] AS kind_routes,
        kind_routes[1 + {_hash(Salt.ROUTE)} % length(kind_routes)] AS route_idx,
        if({_uniform(Salt.BOT)} < bot_share, {_pick("bot_ua_slots", Salt.USER_AGENT)},
           {_pick("human_ua_slots", Salt.USER_AGENT)}) AS ua_idx,
        ua_is_bot[ua_idx] AS is_bot,
        {_uniform(Salt.BLOCKED)} < if(is_bot, bot_block_share, human_block_share) AS is_blocked,
        if(is_blocked, if(is_bot, {_pick("bot_rule_slots", Salt.RULE)},
           {_pick("human_rule_slots", Salt.RULE)}), 0) AS rule_idx,
        if(rule_reasons[rule_idx] = 'country_blocked', blocked_geo,
           {_pick("geo_slots", Salt.GEO)}) AS geo_idx,
        multiIf(is_blocked, 0, is_bot, bot_status, {_pick("status_slots", Salt.STATUS)})
            AS status_idx,
        if(is_blocked, blocked_status, status_codes[status_idx]) AS status_code,
        if(is_blocked, blocked_error_type, status_errors[status_idx]) AS error_type,
        status_code = 200 AS ok,
        {_normal_pairs()},
        toUInt32(least(round({input_draw}), max_input_tokens)) AS prompt_tokens,
        if(ok OR status_code >= 500, prompt_tokens, 0) AS input_tokens,
        if(ok, toUInt32(least(round({output_draw}), max_output_tokens)), 0) AS output_tokens,
        route_routed[route_idx] AND NOT is_blocked AND NOT is_bot
            AND NOT has(gateway_statuses, status_code) AS routed,
        routed AND ok AND {_uniform(Salt.RESCUE)} < rescue_share AS rescued,
        routed AND ok AND NOT rescued
            AND {_uniform(Salt.CACHE)} < route_cache_share[route_idx] AS cached,
        {_uniform(Salt.ROUTING)} AS routing_draw,
        multiIf(NOT routed, '', cached, 'cached',
                rescued, if(routing_draw < rescue_retry_share, 'retry', 'fallback'),
                status_code >= 500, multiIf(routing_draw < failed_fallback_share, 'fallback',
                    routing_draw < failed_fallback_share + failed_retry_share, 'retry',
                    'primary'),
                'primary') AS routing_decision,
        toUInt8(multiIf(routing_decision IN ('fallback', 'retry'),
                        2 + ({_uniform(Salt.ATTEMPTS)} < third_attempt_share),
                        routing_decision = 'primary', 1, 0)) AS attempts,
        routed AND ok AND NOT cached
            AND {_uniform(Salt.STREAM)} < route_stream_share[route_idx] AS is_streaming,
        toUInt32(if(routed AND ok AND NOT cached AND model_prompt_cache[model_idx]
                    AND input_tokens >= prompt_cache_min_tokens
                    AND {_uniform(Salt.PROMPT_CACHE)} < prompt_cache_share,
                    floor(input_tokens * (0.5 + 0.45 * {_uniform(Salt.PROMPT_CACHE_SIZE)})
                          / 128) * 128, 0)) AS cached_input_tokens,
        if(ok AND NOT cached, round((input_tokens - cached_input_tokens)
                                    * model_input_price[model_idx]
                                    + cached_input_tokens * model_cached_input_price[model_idx]
                                    + output_tokens * model_output_price[model_idx]
                                    + model_request_price[model_idx], 8), 0) AS cost,
        toUInt32(greatest(1, round({gateway_draw}))) AS gateway_ms,
        if(cached OR rescued, {extra_draw}, 0) AS extra_ms,
        {success_latency} * model_ttft_factor[model_idx] AS first_token_ms,
        route_ms_per_token[route_idx] * model_token_ms_factor[model_idx]
            * exp(token_speed_sigma * z7) AS ms_per_token,
        multiIf(is_blocked, 0,
                cached, extra_ms,
                ok, extra_ms + first_token_ms + output_tokens * ms_per_token,
                {error_latency}) AS upstream_ms,
        toUInt32(least(gateway_ms + round(upstream_ms), max_response_ms)) AS response_ms,
        toUInt32(if(is_streaming, greatest(1, least(gateway_ms + round(extra_ms + first_token_ms),
                                                    response_ms - 1.0)), 0)) AS ttft_ms,
        multiIf(NOT routed OR NOT route_generates[route_idx], '',
                ok, if(z2 > length_z, 'length', finish_names[{_pick("finish_slots", Salt.FINISH)}]),
                status_code >= 500, 'error', '') AS finish_reason,
        if(routed AND ok, version_names[{_pick("model_version_slots[model_idx]", Salt.VERSION)}],
           '') AS model_version,
        NOT is_bot AND {_hash(Salt.KEY_TAGGED, "key_idx")} % 100 < tagged_key_percent AS tagged,
[{tag_draws}] AS tag_draws,
        if(tagged, mapFromArrays(arrayFilter((k, v) -> v != '', tag_keys, tag_draws),
                                 arrayFilter(v -> v != '', tag_draws)),
           CAST(map(), 'Map(String, String)')) AS tags,
        toUInt32(round({request_draw}) + 4 * prompt_tokens) AS request_size,
        toUInt32(if(ok, round({response_draw}) + 4 * output_tokens,
                    90 + {_hash(Salt.ERROR_BYTES)} % 160)) AS response_size,
        {_uuid_text(_hash(Salt.REQUEST_ID_HIGH), _hash(Salt.REQUEST_ID_LOW))} AS request_id_text,
        {_hash(Salt.KEY_USER, "key_idx")} % users AS user_idx,
        if(is_bot, '', {key_uuid}) AS client_id,
        if(is_bot, '', {user_uuid}) AS user_id,
        if(is_bot, 1000000 + ua_idx, key_idx) AS ip_owner,
        {ip_hash} AS ip_hash,
        if(ip_hash % 100 < ipv6_percent, {ipv6}, {ipv4}) AS client_ip,
        replaceOne(replaceOne(route_paths[route_idx], ':model_id', toString(model_id)),
                   ':file_id', {file_id}) AS path,
        {_time_of_row()}"""
    source = "FROM numbers({offset:UInt64}, {count:UInt64})"
    outputs = ",\n        ".join(
        f"{expression} AS out_{name}" for name, expression in OUTPUT_COLUMNS
    )
    names = ", ".join(selected or [f"out_{name}" for name, _ in OUTPUT_COLUMNS])
    return f"SELECT {names}\nFROM ({inner.rstrip()},\n        {outputs}\n    {source}\n)"


# --- running it ---------------------------------------------------------------------------


def table_row_count(client: Any) -> int:
    # TABLE is the model's db_table, not input.
    return int(client.command(f"SELECT count() FROM `{TABLE}`"))  # noqa: S608


def traffic_generate(
    spec: TrafficSpec,
    client: Any,
    *,
    if_empty: bool = False,
    progress: bool = True,
) -> TrafficResult:
    """Insert ``spec.rows`` demo rows in batches; with ``if_empty``, do nothing when the
    table already holds rows (so ``make run`` can be repeated without piling up data)."""
    if if_empty and table_row_count(client) > 0:
        return TrafficResult(rows=0, seconds=0.0, skipped=True)
    sql = build_insert_sql()
    parameters = build_parameters(spec)
    started = time.perf_counter()
    with tqdm(
        total=spec.rows,
        unit="rows",
        unit_scale=True,
        desc="gateway_analytics",
        file=sys.stderr,
        disable=not progress,
    ) as bar:
        end = spec.first_row + spec.rows
        for offset in range(spec.first_row, end, spec.batch_size):
            count = min(spec.batch_size, end - offset)
            client.command(sql, parameters={**parameters, "offset": offset, "count": count})
            bar.update(count)
    return TrafficResult(rows=spec.rows, seconds=time.perf_counter() - started)
