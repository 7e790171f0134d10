"""The request log (``GET /gateway/requests``): the rows behind every number, with cursor
paging, drill-down from analytics points, streaming CSV/NDJSON export and background
exports (``/gateway/exports``)."""
