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
from dataclasses import dataclass
from types import MappingProxyType

from analytics.query.registry import (
    HAS_GENERATION,
    HAS_TTFT,
    SKETCH_BOUNDS,
    TABLE,
)

ROLLUP_BUCKET_SECONDS = 900
# The 15-minute UTC bucket of a raw row, typed like the rollup's ``timestamp`` column.
BUCKET_15M = "toDateTime(toStartOfFifteenMinutes(timestamp), 'UTC')"

_RT_LEVELS = (0.5, 0.9, 0.95, 0.99)
_TTFT_LEVELS = (0.5, 0.95, 0.99)


def _levels(levels: tuple[float, ...]) -> str:
    return ", ".join(str(level) for level in levels)


# Percentile states: quantileTiming over the time in 10 ms units. A state of few values is
# a plain array (exact), a larger one a fixed histogram; both merge fast (a few hundred
# nanoseconds a state, against microseconds for hash-map sketches). Units of 10 ms move
# its 30,000-unit ceiling to 300 s. Bound in the registry (SKETCH_BOUNDS).
QUANTILE_UNIT_MS = 10
_RT_QUANTILES = f"quantilesTiming({_levels(_RT_LEVELS)})"
_TTFT_QUANTILES = f"quantilesTimingIf({_levels(_TTFT_LEVELS)})"


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

    ``dimensions`` maps each covered registry dimension to the rollup column(s) its SQL
    reads (``status_class`` is computed from ``status_code``); ``metrics`` maps each
    covered metric to its expression over merged atoms; ``approximate`` names the metrics
    that come from a sketch, with their error bound (from the registry)."""

    name: str
    table: str
    columns: tuple[tuple[str, str], ...]  # (column, type) of the rollup dimensions
    dimensions: Mapping[str, tuple[str, ...]]
    metrics: Mapping[str, str]
    atoms: tuple[Atom, ...]
    bucket_seconds: int = ROLLUP_BUCKET_SECONDS

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
        """The view's SELECT: raw rows of ``source`` into rollup rows."""
        keys = ", ".join(self.key_columns)
        dims = ", ".join(c for c, _ in self.columns)
        states = ",\n    ".join(f"{a.state} AS {a.column}" for a in self.atoms)
        return (
            f"SELECT {BUCKET_15M} AS timestamp, {dims},\n    {states}\n"
            f"FROM {source}\nGROUP BY {keys}"
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
    dimensions=MappingProxyType(
        {
            "project_id": ("project_id",),
            "model_id": ("model_id",),
            "endpoint_id": ("endpoint_id",),
            "model_name": ("model_name",),
            "model_provider": ("model_provider",),
        }
    ),
    metrics=MappingProxyType(_METRIC_SQL),
    atoms=_ATOMS,
)

ROLLUPS: Mapping[str, Rollup] = MappingProxyType({SERIES.name: SERIES})


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


_RT_PARAMS, _TTFT_PARAMS = _levels(_RT_LEVELS), _levels(_TTFT_LEVELS)
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
    dimensions=MappingProxyType(
        {
            "project_id": ("project_id",),
            "country_code": ("country_code",),
            "region": ("region",),
            "city": ("city",),
        }
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
    dimensions=MappingProxyType(
        {"project_id": ("project_id",), "path": ("path",), "method": ("method",)}
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

ROLLUPS = MappingProxyType({**ROLLUPS, GEO.name: GEO, ROUTES_ROLLUP.name: ROUTES_ROLLUP})
