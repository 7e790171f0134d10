"""Route templates: request paths that differ only by identifiers are grouped as one route.

``/v1/models/3f2a9c1e-…`` and ``/v1/files/file-abc123`` become ``/v1/models/{id}`` and
``/v1/files/{id}``, so top routes rank endpoints rather than individual objects.

The rules, applied to the path without its query string or fragment (``?…``/``#…``), one
whole ``/``-separated segment at a time (a segment is replaced only if it matches entirely):

1. a UUID, with or without hyphens (``3f2a9c1e-7b1d-4e8a-9c3b-2d5e6f708192``);
2. a run of digits (``42``);
3. a hex string of 16 characters or more (object hashes, hyphenless ids);
4. a known API object prefix (``file``, ``chatcmpl``, ``cmpl``, ``batch``, ``ftjob``,
   ``ftckpt``, ``ft``, ``run``, ``asst``, ``thread``, ``msg``, ``step``, ``vs``, ``resp``,
   ``req``, ``upload``, ``part``, ``modr``, ``embd``, ``call``, ``toolu``, ``msgbatch``)
   joined by ``-`` or ``_`` to an id that has a digit or is 12+ letters/digits long
   (``file-abc123``, ``chatcmpl-9xYz``, ``batch_abc123``; but not ``batch-jobs``).

Grouping happens in ClickHouse: ``template_sql`` is a constant ``replaceRegexpAll`` over the
column (no user input), applied twice because a match consumes the ``/`` after a segment,
so of two adjacent id segments the first pass replaces only the first. ``template_path``
is the Python twin with the same patterns; tests check both agree.
"""

from __future__ import annotations

import re

PLACEHOLDER = "{id}"

_UUID = r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}"
_NUMBER = r"[0-9]+"
_HEX = r"[0-9A-Fa-f]{16,}"
ID_PREFIXES = (
    "file", "chatcmpl", "cmpl", "batch", "ftjob", "ftckpt", "ft", "run", "asst", "thread",
    "msg", "step", "vs", "resp", "req", "upload", "part", "modr", "embd", "call", "toolu",
    "msgbatch",
)  # fmt: skip
_PREFIXED = (
    r"(?:" + "|".join(ID_PREFIXES) + r")[-_]"
    r"(?:[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*|[A-Za-z0-9]{12,})"
)
# One whole path segment that is an identifier (no "/" can occur in any alternative).
ID_SEGMENT = rf"(?:{_UUID}|{_NUMBER}|{_HEX}|{_PREFIXED})"

# RE2 (ClickHouse): "$" is the end of the text. Python: "\Z" is ("$" would also match
# before a final newline).
_SQL_SEGMENT_PATTERN = rf"/{ID_SEGMENT}(/|$)"
_SQL_QUERY_PATTERN = r"[?#][\s\S]*$"
_PY_SEGMENT = re.compile(rf"/{ID_SEGMENT}(/|\Z)")
_PY_QUERY = re.compile(r"[?#][\s\S]*\Z")
_REPLACEMENT = "/" + PLACEHOLDER + r"\1"


def _sql_literal(text: str) -> str:
    """A ClickHouse string literal for one of the constant patterns above."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def template_sql(column: str = "path") -> str:
    """ClickHouse expression giving the route template of ``column`` (a trusted column
    name, never user input)."""
    stripped = f"replaceRegexpOne({column}, {_sql_literal(_SQL_QUERY_PATTERN)}, '')"
    pattern = _sql_literal(_SQL_SEGMENT_PATTERN)
    replacement = _sql_literal(_REPLACEMENT)
    once = f"replaceRegexpAll({stripped}, {pattern}, {replacement})"
    return f"replaceRegexpAll({once}, {pattern}, {replacement})"


def template_path(path: str) -> str:
    """The route template of one path, exactly as ``template_sql`` computes it."""
    stripped = _PY_QUERY.sub("", path, count=1)
    once = _PY_SEGMENT.sub(_REPLACEMENT, stripped)
    return _PY_SEGMENT.sub(_REPLACEMENT, once)
