"""The query package: every ClickHouse read goes registry → query tree → planner →
printer (tenant guard) → runner → shaper.

- ``registry``: metrics, dimensions, operators, buckets (feeds validation and OpenAPI too)
- ``tree``: frozen query descriptions (``Rows`` always carries a ``ProjectScope``)
- ``planner``: which storage answers a query (a rollup, ``rollups``, or the raw table)
- ``printer``: the one place SQL text is assembled; the only maker of ``PrintedQuery``
- ``runner``: runs printed queries under limits, maps failures to domain errors
- ``buckets``: time buckets, zones, gap filling and time formatting for every endpoint
- ``series`` + ``shaper``: ``POST /gateway/analytics``

Endpoint modules (``analytics.routes_clients``, ``geo.queries``, ``blocking.queries``)
build trees from their own code-owned column sets and run them with ``runner.execute``.
"""

from analytics.query.buckets import auto_bucket, bucket_count, finest_fitting_bucket
from analytics.query.scope import ProjectScope
from analytics.query.series import AnalyticsQuery, run_analytics
from analytics.query.shaper import AnalyticsResult
from analytics.query.tree import FilterLeaf, FilterNode

__all__ = [
    "AnalyticsQuery",
    "AnalyticsResult",
    "FilterLeaf",
    "FilterNode",
    "ProjectScope",
    "auto_bucket",
    "bucket_count",
    "finest_fitting_bucket",
    "run_analytics",
]
