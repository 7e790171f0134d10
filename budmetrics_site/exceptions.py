"""Domain errors of the query layer and its dependencies.

They carry no HTTP: the query package raises them, Celery tasks retry on them, and
``budmetrics_site.errors`` is the one place that maps them to a status and the envelope.
"""

from __future__ import annotations


class DomainError(Exception):
    """An error with a message fit for the client, and a default one."""

    default_message = "The query could not be answered."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class DependencyError(DomainError):
    """Base of the errors a caller may retry later."""

    default_message = "A service BudMetrics depends on is unavailable; try again shortly."


class ServiceUnavailableError(DependencyError):
    """ClickHouse, Postgres or Redis could not be reached."""


class QueryTimeoutError(DependencyError):
    """A query ran past ``QUERY_TIMEOUT``."""

    default_message = (
        "The query took longer than the time limit. Narrow it: a shorter time range, a "
        "coarser time_bucket, fewer group_by dimensions or more filters."
    )


class QueryTooLargeError(DomainError):
    """A query needed more memory or result rows than ClickHouse allows it."""

    default_message = (
        "The query needed more memory or rows than allowed. Narrow it: a shorter time "
        "range, a coarser time_bucket, fewer group_by dimensions or more filters."
    )


class TooManyResultRowsError(QueryTooLargeError):
    """The result passed its row cap (``max_result_rows``): the answer, not the work, is
    too big, which callers may explain in terms of the request."""


class ResultTooLargeError(Exception):
    """The answer would hold more points than ``MAX_RESULT_SIZE``: an input problem, so the
    message names the request field to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
