"""Rollups: pre-aggregated 15-minute copies of ``gateway_analytics`` the planner may read.

A rollup row holds, per 15-minute UTC bucket (its ``timestamp`` column: the bucket start),
project and rollup dimensions, one ``-State`` column ("atom") per mergeable part of the
registry metrics. A materialized view fills it on every insert into the raw table; the
raw edges of a request are aggregated with the very same state expressions, so both
sources have identical ``AggregateFunction`` types and ``UNION ALL`` of them merges with
``-Merge`` to exactly what raw rows give (counts and integer sums to the last unit).

Every IANA offset in use is a multiple of 15 minutes, so 15-minute UTC buckets serve
15-minute or coarser buckets in any zone (Kolkata +5:30, Kathmandu +5:45, DST days).
The identifiers here are code constants; no request value ever reaches this module's SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from django.conf import settings

from analytics.query.registry import (
    HAS_GENERATION,
    HAS_TTFT,
    SKETCH_BOUNDS,
    TABLE,
    ZERO_UUID,
)
from analytics.query.tree import Condition, FilterLeaf

ROLLUP_BUCKET_SECONDS = 900
# The 15-minute UTC bucket of a raw row, typed like the rollup's ``timestamp`` column.
BUCKET_15M = "toDateTime(toStartOfFifteenMinutes(timestamp), 'UTC')"

_RT_LEVELS = (0.5, 0.9, 0.95, 0.99)
_TTFT_LEVELS = (0.5, 0.95, 0.99)


def quantile_levels_sql(levels: tuple[float, ...]) -> str:
    """The parameters of a ``quantiles*`` function: "0.5, 0.95"."""
    return ", ".join(str(level) for level in levels)


# Percentile states: quantileTiming over the time in 10 ms units. A state of few values is
# a plain array (exact), a larger one a fixed histogram; both merge fast (a few hundred
# nanoseconds a state, against microseconds for hash-map sketches). Units of 10 ms move
# its 30,000-unit ceiling to 300 s. Bound in the registry (SKETCH_BOUNDS).
QUANTILE_UNIT_MS = 10
_RT_QUANTILES = f"quantilesTiming({quantile_levels_sql(_RT_LEVELS)})"
_TTFT_QUANTILES = f"quantilesTimingIf({quantile_levels_sql(_TTFT_LEVELS)})"


@dataclass(frozen=True)
class Atom:
    """One ``-State`` column of aggregate ``function`` (with its parameters, if any) over
    ``args`` of ``arg_types``. ``state`` aggregates raw rows (in the view and on the raw
    edges of a query); ``type`` is exactly the type ``state`` returns (tested)."""

    name: str
    function: str  # "sumIf" or "quantilesTiming(0.5, 0.9)"
    args: str
    arg_types: str = ""

    def _split(self) -> tuple[str, str]:
        head, _, params = self.function.partition("(")
        return head, f"({params}" if params else ""

    @property
    def state(self) -> str:
        head, params = self._split()
        return f"{head}State{params}({self.args})"

    @property
    def column(self) -> str:
        """Its rollup column: prefixed, so no atom shadows a raw column (``cost``)."""
        return f"s_{self.name}"

    @property
    def merge(self) -> str:
        head, params = self._split()
        return f"{head}Merge{params}({self.column})"

    @property
    def merge_state(self) -> str:
        """Its states merged into one state of the same type (a coarser tier's view)."""
        head, params = self._split()
        return f"{head}MergeState{params}({self.column})"

    @property
    def type(self) -> str:
        types = f", {self.arg_types}" if self.arg_types else ""
        return f"AggregateFunction({self.function}{types})"


def _count_if(name: str, condition: str, arg_type: str = "UInt8") -> Atom:
    return Atom(name, "countIf", condition, arg_type)


def _sum(name: str, column: str) -> Atom:
    return Atom(name, "sum", f"toUInt64({column})", "UInt64")


_ATOMS = (
    Atom("n", "count", ""),
    _count_if("errors", "status_code >= 400"),
    _count_if("blocked", "is_blocked", "Bool"),
    _count_if("bots", "is_bot", "Bool"),
    _sum("rt_sum", "response_time_ms"),
    Atom("rt_min", "min", "response_time_ms", "UInt32"),
    Atom("rt_max", "max", "response_time_ms", "UInt32"),
    Atom("rt_q", _RT_QUANTILES, f"intDiv(response_time_ms, {QUANTILE_UNIT_MS})", "UInt32"),
    _sum("gp_sum", "gateway_processing_ms"),
    _sum("tok", "total_tokens"),
    _sum("tok_in", "input_tokens"),
    _sum("tok_out", "output_tokens"),
    _sum("tok_cached", "cached_input_tokens"),
    Atom("cost", "sum", "cost", "Float64"),
    Atom("users", "uniqCombined64If", "client_id, client_id != ''", "String, UInt8"),
    Atom("ips", "uniqCombined64If", "client_ip, client_ip != ''", "String, UInt8"),
    _count_if("ttft_n", HAS_TTFT, "Bool"),
    Atom("ttft_sum", "sumIf", f"toUInt64(ttft_ms), {HAS_TTFT}", "UInt64, Bool"),
    Atom(
        "ttft_q",
        _TTFT_QUANTILES,
        f"intDiv(ttft_ms, {QUANTILE_UNIT_MS}), {HAS_TTFT}",
        "UInt32, Bool",
    ),
    Atom(
        "gen_ms",
        "sumIf",
        f"toInt64(response_time_ms) - toInt64(ttft_ms), {HAS_GENERATION}",
        "Int64, Bool",
    ),
    Atom("gen_out", "sumIf", f"toUInt64(output_tokens), {HAS_GENERATION}", "UInt64, Bool"),
    _count_if("routed", "routing_decision != ''"),
    _count_if("fallback", "routing_decision = 'fallback'"),
    _count_if("cached", "routing_decision = 'cached'"),
    _count_if("rescued", "routing_decision = 'fallback' AND status_code < 400"),
    _count_if("finished", "finish_reason != ''"),
    _count_if("truncated", "finish_reason = 'length'"),
    _count_if("filtered", "finish_reason = 'content_filter'"),
)
ATOMS: Mapping[str, Atom] = MappingProxyType({a.name: a for a in _ATOMS})


def _m(name: str) -> str:
    return ATOMS[name].merge


def _ratio(numerator: str, denominator: str) -> str:
    return f"if({_m(denominator)} = 0, NULL, {numerator} / {_m(denominator)})"


def _quantile(atom: str, levels: tuple[float, ...], level: float, guard: str) -> str:
    value = f"{_m(atom)}[{levels.index(level) + 1}] * {QUANTILE_UNIT_MS}"
    return f"if({_m(guard)} = 0, NULL, {value})"


# Metric name -> (expression over merged atoms, atoms it reads). NULL exactly where the
# registry's raw expression is NULL (no rows, no recorded field).
_METRIC_SQL: dict[str, str] = {
    "total_requests": _m("n"),
    "error_count": _m("errors"),
    "error_rate": _ratio(_m("errors"), "n"),
    "success_rate": _ratio(f"({_m('n')} - {_m('errors')})", "n"),
    "blocked_requests": _m("blocked"),
    "block_rate": _ratio(_m("blocked"), "n"),
    "avg_response_time": _ratio(_m("rt_sum"), "n"),
    "min_response_time": f"if({_m('n')} = 0, NULL, {_m('rt_min')})",
    "max_response_time": f"if({_m('n')} = 0, NULL, {_m('rt_max')})",
    "p50_response_time": _quantile("rt_q", _RT_LEVELS, 0.5, "n"),
    "p90_response_time": _quantile("rt_q", _RT_LEVELS, 0.9, "n"),
    "p95_response_time": _quantile("rt_q", _RT_LEVELS, 0.95, "n"),
    "p99_response_time": _quantile("rt_q", _RT_LEVELS, 0.99, "n"),
    "avg_gateway_processing_time": _ratio(_m("gp_sum"), "n"),
    "total_tokens": _m("tok"),
    "input_tokens": _m("tok_in"),
    "output_tokens": _m("tok_out"),
    "avg_tokens_per_request": _ratio(_m("tok"), "n"),
    "total_cost": _m("cost"),
    "unique_users": _m("users"),
    "unique_ips": _m("ips"),
    "bot_requests": _m("bots"),
    "avg_ttft": _ratio(_m("ttft_sum"), "ttft_n"),
    "p50_ttft": _quantile("ttft_q", _TTFT_LEVELS, 0.5, "ttft_n"),
    "p95_ttft": _quantile("ttft_q", _TTFT_LEVELS, 0.95, "ttft_n"),
    "p99_ttft": _quantile("ttft_q", _TTFT_LEVELS, 0.99, "ttft_n"),
    "output_tokens_per_second": (
        f"if({_m('gen_ms')} = 0, NULL, {_m('gen_out')} / ({_m('gen_ms')} / 1000))"
    ),
    "fallback_rate": _ratio(_m("fallback"), "routed"),
    "rescued_requests": _m("rescued"),
    "cache_hit_rate": _ratio(_m("cached"), "routed"),
    "cached_input_tokens": _m("tok_cached"),
    "truncation_rate": _ratio(_m("truncated"), "finished"),
    "content_filter_rate": _ratio(_m("filtered"), "finished"),
    "cost_per_1k_tokens": f"if({_m('tok')} = 0, NULL, {_m('cost')} / {_m('tok')} * 1000)",
}


@dataclass(frozen=True)
class Rollup:
    """One rollup table: what it covers and how to read it.

    Each rollup column is the registry dimension of the same name (``dimensions``);
    ``metrics`` maps each
    covered metric to its expression over merged atoms; ``approximate`` names the metrics
    that come from a sketch, with their error bound (from the registry)."""

    name: str
    table: str
    columns: tuple[tuple[str, str], ...]  # (column, type) of the rollup dimensions
    metrics: Mapping[str, str]
    atoms: tuple[Atom, ...]
    bucket_seconds: int = ROLLUP_BUCKET_SECONDS
    # A coarser tier is fed from the finer rollup's table (a chained view), not from raw.
    fed_from: Rollup | None = None
    # A partial rollup: its view keeps only rows matching ``where`` (SQL over raw
    # columns), and the planner offers it only to queries whose ``Rows.filters`` carry
    # ``requires`` (the same restriction as a registry filter) as a top-level conjunct.
    # A tier reads the partial rollup it is fed from, so its view needs no ``where``.
    where: str = ""
    requires: FilterLeaf | None = None
    # The same for a code-written condition: the planner offers the rollup only to rows
    # whose conditions are exactly this one (any other condition is not covered).
    requires_condition: Condition | None = None
    # A day tier: rows hold the local days of this IANA zone (``ROLLUP_DAY_ZONES``), 23 to
    # 25 hours long; "" for the UTC tiers, whose intervals are ``bucket_seconds`` long.
    zone: str = ""

    def start_sql(self, column: str = "timestamp") -> str:
        """The start of this tier's interval holding ``column``, typed like ``timestamp``."""
        if self.zone:
            return f"toDateTime(toStartOfDay({column}, '{self.zone}'), 'UTC')"
        return tier_start_sql(self.bucket_seconds, column)

    def end_sql(self, column: str = "timestamp") -> str:
        """The end of the interval starting at ``column`` (a row's ``timestamp``). A local
        day lasts 23 to 25 hours, so 26 hours on is inside the next one."""
        if self.zone:
            return self.start_sql(f"{column} + toIntervalHour(26)")
        return f"{column} + toIntervalSecond({self.bucket_seconds})"

    def floor(self, moment: datetime) -> datetime:
        """The start of this tier's interval holding ``moment``."""
        if not self.zone:
            return floor_to(moment, self.bucket_seconds)
        zone = ZoneInfo(self.zone)
        day = moment.astimezone(zone).date()
        start = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
        if start > moment:  # a day starting after midnight (a DST change at 00:00)
            start = datetime.combine(day - timedelta(days=1), time(), tzinfo=zone)
        return start.astimezone(UTC)

    def ceil(self, moment: datetime) -> datetime:
        """The start of the first of this tier's intervals starting at or after ``moment``."""
        if not self.zone:
            return ceil_to(moment, self.bucket_seconds)
        floored = self.floor(moment)
        return floored if floored == moment else self.floor(floored + timedelta(hours=26))

    @property
    def dimensions(self) -> Mapping[str, tuple[str, ...]]:
        """Each covered registry dimension and the rollup column(s) its SQL reads."""
        return MappingProxyType({column: (column,) for column, _ in self.columns})

    @property
    def approximate(self) -> dict[str, str]:
        return {m: SKETCH_BOUNDS[m] for m in self.metrics if m in SKETCH_BOUNDS}

    @property
    def key_columns(self) -> tuple[str, ...]:
        """project_id first (the tenant guard reads a key prefix), then the bucket."""
        return ("project_id", "timestamp", *(c for c, _ in self.columns if c != "project_id"))

    def atoms_for(self, metric_names: list[str]) -> tuple[Atom, ...]:
        """The atoms the given metrics' expressions read (column pruning)."""
        texts = [self.metrics[m] for m in metric_names]
        return tuple(a for a in self.atoms if any(f"({a.column})" in t for t in texts))

    def state_select_sql(self, source: str) -> str:
        """The view's SELECT: rows of ``source`` (raw rows, or for a tier the rows of the
        rollup it is fed from) into rows of this rollup."""
        keys = ", ".join(self.key_columns)
        dims = ", ".join(c for c, _ in self.columns)
        where = ""
        if self.fed_from is None:
            bucket = (
                BUCKET_15M
                if self.bucket_seconds == ROLLUP_BUCKET_SECONDS
                else tier_start_sql(self.bucket_seconds)
            )
            states = ",\n    ".join(f"{a.state} AS {a.column}" for a in self.atoms)
            where = f"\nWHERE {self.where}" if self.where else ""
        else:
            bucket = self.start_sql()
            states = ",\n    ".join(f"{a.merge_state} AS {a.column}" for a in self.atoms)
        return (
            f"SELECT {bucket} AS timestamp, {dims},\n    {states}\n"
            f"FROM {source}{where}\nGROUP BY {keys}"
        )

    @property
    def base(self) -> Rollup:
        """The finest rollup of this tier's family, fed from raw rows (itself, for one)."""
        return self if self.fed_from is None else self.fed_from.base


def floor_to(moment: datetime, step: int) -> datetime:
    seconds = moment.timestamp()
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def ceil_to(moment: datetime, step: int) -> datetime:
    floored = floor_to(moment, step)
    return floored if floored == moment else floored + timedelta(seconds=step)


def tier_start_sql(seconds: int, column: str = "timestamp") -> str:
    """The start of the UTC ``seconds``-long interval holding ``column`` (a rollup
    bucket start), typed like a rollup's ``timestamp``."""
    return f"toDateTime(toStartOfInterval({column}, INTERVAL {int(seconds)} SECOND), 'UTC')"


# Coarser tiers of every 15-minute rollup: 1 hour, 6 hours, 1 day (UTC), each a multiple of
# the one before, so a tier interval is whole intervals of every finer tier. A long range
# reads few coarse rows (a 90-day UTC series in 1d buckets: one row per key and day), and a
# zone whose days start at :30 or :45 still reads whole hours and quarter days inside each
# of its buckets, with 15-minute rows only around the bucket edges (planner.tiling).
TIER_SECONDS = (3600, 6 * 3600, 86400)
_SUFFIX = {ROLLUP_BUCKET_SECONDS: "15m", 3600: "1h", 6 * 3600: "6h", 86400: "1d"}


def tiers_of(base: Rollup) -> tuple[Rollup, ...]:
    """``base`` and its coarser tiers, finest first; each fed from the one before."""
    own = f"_{_SUFFIX[base.bucket_seconds]}"
    family, table = base.name.removesuffix(own), base.table.removesuffix(own)
    chain = [base]
    for seconds in (s for s in TIER_SECONDS if s > base.bucket_seconds):
        suffix = _SUFFIX[seconds]
        chain.append(
            replace(
                base,
                name=f"{family}_{suffix}",
                table=f"{table}_{suffix}",
                bucket_seconds=seconds,
                fed_from=chain[-1],
            )
        )
    return tuple(chain)


def day_tier(base: Rollup, zone: str) -> Rollup:
    """``base``'s tier of the local days of ``zone``, fed from ``base`` (15 minutes: every
    zone's days are whole quarter hours; its UTC hours and quarter days are not whole days
    of a zone at :30 or :45)."""
    family, table = base.name.removesuffix("_15m"), base.table.removesuffix("_15m")
    slug = zone.lower().replace("/", "_").replace("-", "_").replace("+", "plus")
    return replace(
        base,
        name=f"{family}_1d_{slug}",
        table=f"{table}_1d_{slug}",
        bucket_seconds=86400,
        fed_from=base,
        zone=zone,
    )


# The series rollup serves POST /gateway/analytics and the dashboards built on it (the
# overview: per project; the LLM view: per model). Its dimensions are the ones those group
# and filter by: project, model (id, name, provider) and endpoint, which move together (an
# endpoint serves one model), so a 15-minute bucket holds about one row per project and
# model whatever the traffic: at 100 requests/s that is a few hundred times fewer rows than
# raw. Status codes, blocking, countries, paths, clients and tags are left out: each would
# multiply the rows (status and blocked by 5-10, the others towards one row per request),
# and the metrics that need them (error and block counts and rates) are states already.
SERIES = Rollup(
    name="series_15m",
    table=f"{TABLE}_series_15m",
    columns=(
        ("project_id", "UUID"),
        ("model_id", "UUID"),
        ("endpoint_id", "UUID"),
        ("model_name", "LowCardinality(String)"),
        ("model_provider", "LowCardinality(String)"),
    ),
    metrics=MappingProxyType(_METRIC_SQL),
    atoms=_ATOMS,
)

# --- client-analytics and blocking-stats rollups (issue 11, helper C) -------------------
# Measured on the demo traffic (1M rows over 30 days, 5 projects, 300 API keys): keyed by
# every attribute client-analytics counts (client_id, client_ip, user_agent, device_type,
# browser, os, country_code) a 15-minute bucket held 938,044 distinct keys for 950,221
# identified rows (0.99 of raw: each key has ~54 IPs, 19 agents and 19 countries, and the
# combinations multiply). So the client rollup is keyed by client_id alone and counts each
# attribute's values in an exact count map (sumMap state): one row per client and bucket
# (343,633 at that size; at most clients x buckets whatever the traffic).

# The row's own time. In the view and on the raw edges the bucket is aliased ``timestamp``,
# which an identifier ``timestamp`` in the same SELECT would resolve to; the COLUMNS
# matcher reads the source's column instead.
_ROW_TIME = "COLUMNS('^timestamp$')"
_ROW_TIME_TYPE = "DateTime64(3, 'UTC')"


class PlainAtom(Atom):
    """An atom kept as a plain value (``SimpleAggregateFunction``): ``state`` is the
    aggregate itself and ``merge`` applies it again. For count maps: a ``sumMap`` state
    column took 366 ms only to deserialize 355k rows, a ``Map`` value 13 ms, and merging
    per client 458 ms against 73 ms (demo traffic, 1M rows)."""

    @property
    def state(self) -> str:
        return f"{self.function}({self.args})"

    @property
    def merge(self) -> str:
        return f"{self.function}({self.column})"

    @property
    def merge_state(self) -> str:
        return self.merge  # a plain value merges into a plain value

    @property
    def type(self) -> str:
        return f"SimpleAggregateFunction({self.function}, {self.arg_types})"


def _count_map(name: str, column: str) -> Atom:
    """Exact count of each value of ``column`` (its '' included, filtered when read)."""
    return PlainAtom(
        name, "sumMap", f"map(CAST({column}, 'String'), toUInt64(1))", "Map(String, UInt64)"
    )


_CLIENT_ATOMS = (
    ATOMS["n"],
    ATOMS["errors"],
    ATOMS["rt_sum"],
    ATOMS["tok"],
    ATOMS["cost"],
    ATOMS["cached"],
    ATOMS["routed"],
    Atom("last_seen", "max", _ROW_TIME, _ROW_TIME_TYPE),
    _count_map("ip_counts", "client_ip"),
    _count_map("agent_counts", "user_agent"),
    _count_map("device_counts", "device_type"),
    _count_map("browser_counts", "browser"),
    _count_map("os_counts", "os"),
    _count_map("country_counts", "country_code"),
)
_CLIENT_ATOM_MAP = {a.name: a for a in _CLIENT_ATOMS}

# Rollup-local measures (not registry metrics): the first stage of client-analytics.
_CLIENT_METRIC_SQL: dict[str, str] = {
    "client_requests": _m("n"),
    "client_errors": _m("errors"),
    "client_response_time_sum": _m("rt_sum"),
    "client_tokens": _m("tok"),
    "client_cost": _m("cost"),
    "client_cached": _m("cached"),
    "client_routed": _m("routed"),
    **{
        f"client_{name}": _CLIENT_ATOM_MAP[name].merge
        for name in (
            "last_seen",
            "ip_counts",
            "agent_counts",
            "device_counts",
            "browser_counts",
            "os_counts",
            "country_counts",
        )
    },
}

# Client analytics (GET /gateway/client-analytics) without search or device/browser/os
# filters (code-written conditions: raw rows) and without model/endpoint filters (not
# dimensions here: a client's requests spread over the project's endpoints).
# Hourly from raw rows, with no 15-minute rollup: client analytics has no time buckets,
# so an hour-aligned middle (raw rows for under an hour at each end) serves any range
# exactly, and the six count maps made this the costliest view on insert; a 15-minute
# table under it cost 36% of the family's insert time and its largest table
# (bench/rollup_inserts.py).
CLIENTS = Rollup(
    name="clients_1h",
    table=f"{TABLE}_clients_1h",
    bucket_seconds=3600,
    columns=(("project_id", "UUID"), ("client_id", "String")),
    metrics=MappingProxyType(_CLIENT_METRIC_SQL),
    atoms=_CLIENT_ATOMS,
)

# Blocking stats (GET /gateway/blocking-stats): blocked rows are a small share of traffic
# (3.1% of the demo traffic), so this rollup keeps only them (its view's WHERE), keyed by
# what the blocked-IP and reason lists group by plus the id filters every endpoint takes;
# totals and the blocked-vs-total series come from SERIES (its n and blocked atoms).
# Rows attributed to a rule (block_rule_id) are not necessarily blocked in the table's
# schema, so per-rule match counts come from RULES below; per-rule targeted counts
# (arbitrary IP ranges and user-agent patterns over all rows) stay on raw rows.
BLOCKED_ONLY = FilterLeaf("is_blocked", "eq", True)
BLOCKED = Rollup(
    name="blocked_15m",
    table=f"{TABLE}_blocked_15m",
    columns=(
        ("project_id", "UUID"),
        ("is_blocked", "Bool"),
        ("block_reason", "LowCardinality(String)"),
        ("client_ip", "String"),
        ("model_id", "UUID"),
        ("endpoint_id", "UUID"),
    ),
    metrics=MappingProxyType(
        {
            "blocked_rows": _m("n"),
            "blocked_first_seen": "minMerge(s_first_seen)",
            "blocked_last_seen": "maxMerge(s_last_seen)",
        }
    ),
    atoms=(
        ATOMS["n"],
        Atom("first_seen", "min", _ROW_TIME, _ROW_TIME_TYPE),
        _CLIENT_ATOM_MAP["last_seen"],
    ),
    where="is_blocked",
    requires=BLOCKED_ONLY,
)

# Rule matches (blocking-stats' per-rule match count and last match): rows attributed to a
# rule (``block_rule_id`` set), blocked or not, keyed by rule and the id filters every
# endpoint takes. A bucket holds a row per rule, model and endpoint that matched, so a
# 30-day range reads a few hundred thousand rows at most: no coarser tiers (each would be
# one more view on every insert). The raw query reads ``block_rule_id`` over every row of
# the range (grows with traffic: half of blocking-stats' time at 5M rows).
RULE_ATTRIBUTED = Condition.of("block_rule_id != {zero_uuid:UUID}", zero_uuid=ZERO_UUID)
RULES = Rollup(
    name="rules_15m",
    table=f"{TABLE}_rules_15m",
    columns=(
        ("project_id", "UUID"),
        ("block_rule_id", "UUID"),
        ("model_id", "UUID"),
        ("endpoint_id", "UUID"),
    ),
    metrics=MappingProxyType(
        {"rule_matches": _m("n"), "rule_last_matched": "maxMerge(s_last_seen)"}
    ),
    atoms=(ATOMS["n"], _CLIENT_ATOM_MAP["last_seen"]),
    where=f"block_rule_id != toUUID('{ZERO_UUID}')",
    requires_condition=RULE_ATTRIBUTED,
)

# --- Geography and routes (issue 11, helper B) ------------------------------------------
# Shaped for GET /gateway/geographical-stats and GET /gateway/top-routes. Neither keeps
# model_id / endpoint_id: each would multiply the rows by the models a place or route
# serves (3-6 per project), so a request filtered by model_ids or endpoint_ids reads raw
# rows. Both reuse the series atoms (identical state types, so the same raw-edge states).

_HAS_COORDINATES = "latitude != 0 OR longitude != 0"
_LOCATED = _count_if("located", _HAS_COORDINATES)
_LAT_SUM = Atom("lat_sum", "sumIf", f"toFloat64(latitude), {_HAS_COORDINATES}", "Float64, UInt8")
_LON_SUM = Atom("lon_sum", "sumIf", f"toFloat64(longitude), {_HAS_COORDINATES}", "Float64, UInt8")
_GEO_ATOMS = (
    *(ATOMS[name] for name in ("n", "errors", "rt_sum", "rt_q", "tok", "users")),
    _LOCATED,
    _LAT_SUM,
    _LON_SUM,
)


_RT_PARAMS, _TTFT_PARAMS = quantile_levels_sql(_RT_LEVELS), quantile_levels_sql(_TTFT_LEVELS)
# The levels of the percentile states, for queries merging the states they read.
RT_QUANTILE_LEVELS = _RT_LEVELS
TTFT_QUANTILE_LEVELS = _TTFT_LEVELS
# Rollup-local measures (not registry metrics) the traffic endpoints' queries read:
# merged values, and merged states for a later stage to merge again (``-MergeState``).
_RT_STATES = f"quantilesTimingMergeState({_RT_PARAMS})(s_rt_q)"

# A 15-minute bucket holds one row per project and place (country, region, city): a few
# dozen to a few thousand, whatever the traffic. The endpoint's query reads merged values
# and states per place, then rolls them up per level; registry metrics are listed too, so
# analytics requests grouped or filtered by place may read it.
GEO = Rollup(
    name="geo_15m",
    table=f"{TABLE}_geo_15m",
    columns=(
        ("project_id", "UUID"),
        ("country_code", "LowCardinality(String)"),
        ("region", "LowCardinality(String)"),
        ("city", "LowCardinality(String)"),
    ),
    metrics=MappingProxyType(
        {
            **{
                name: _METRIC_SQL[name]
                for name in (
                    "total_requests",
                    "error_count",
                    "error_rate",
                    "avg_response_time",
                    "p95_response_time",
                    "total_tokens",
                    "unique_users",
                )
            },
            "located": _LOCATED.merge,
            "latitude_sum": _LAT_SUM.merge,
            "longitude_sum": _LON_SUM.merge,
            "response_time_sum": _m("rt_sum"),
            "response_time_percentiles": _RT_STATES,
            "unique_users_sketch": "uniqCombined64IfMergeState(s_users)",
        }
    ),
    atoms=_GEO_ATOMS,
)

# Routes: one row per project, raw path and method a bucket. A route template
# (``analytics.paths.template_sql``) merges several raw paths, so the rollup read keeps
# the percentile states of each path (``-MergeState``: rollup-local measures) and the
# query above it merges them per template; the registry states their bound
# (SKETCH_BOUNDS "response_time_percentiles", "ttft_percentiles").
_ROUTE_ATOMS = tuple(
    ATOMS[name] for name in ("n", "errors", "rt_sum", "rt_q", "tok", "ttft_n", "ttft_q")
)
ROUTES_ROLLUP = Rollup(
    name="routes_15m",
    table=f"{TABLE}_routes_15m",
    columns=(
        ("project_id", "UUID"),
        ("path", "String"),
        ("method", "LowCardinality(String)"),
    ),
    metrics=MappingProxyType(
        {
            **{
                name: _METRIC_SQL[name]
                for name in ("total_requests", "error_count", "total_tokens")
            },
            "response_time_sum": _m("rt_sum"),
            "response_time_percentiles": _RT_STATES,
            "ttft_count": _m("ttft_n"),
            "ttft_percentiles": f"quantilesTimingIfMergeState({_TTFT_PARAMS})(s_ttft_q)",
        }
    ),
    atoms=_ROUTE_ATOMS,
)

# Each family: its 15-minute rollup, then its tiers. The planner picks a family by its
# 15-minute rollup (families in this order: fewest rows first) and reads its tiers.
FAMILIES: Mapping[str, tuple[Rollup, ...]] = MappingProxyType(
    {
        **{
            rollup.name: tiers_of(rollup)
            for rollup in (SERIES, BLOCKED, ROUTES_ROLLUP, GEO, CLIENTS)
        },
        RULES.name: (RULES,),
    }
)
# The series family's day tiers, by zone (``ROLLUP_DAY_ZONES``): a 90-day dashboard in
# Kolkata days reads one row per key and day instead of 12 (two 15-minute rows, five hours,
# three quarter days and two more 15-minute rows around each UTC midnight). Only the series
# rollup has them: the other families serve requests without time buckets.
DAY_TIERS: Mapping[str, Mapping[str, Rollup]] = MappingProxyType(
    {SERIES.name: MappingProxyType({z: day_tier(SERIES, z) for z in settings.ROLLUP_DAY_ZONES})}
)
# Every rollup table, families' tiers finest first (what migrations, rebuilds and
# retention walk: a tier comes after the rollup it is fed from).
ROLLUPS: Mapping[str, Rollup] = MappingProxyType(
    {
        tier.name: tier
        for name, chain in FAMILIES.items()
        for tier in (*chain, *DAY_TIERS.get(name, {}).values())
    }
)
