"""DRF's JSON parser with the limits the API documents: nesting at most
``MAX_JSON_DEPTH`` levels, finite numbers only, strings that are valid Unicode. Without
them a body nested ~1000 levels deep raised RecursionError (a 500) in the parser or in
the code that walks the data.

The body size is capped before parsing by Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(``MAX_REQUEST_BODY_BYTES``); ``budmetrics_site.errors`` turns that into a 413.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

# Deep enough for every request shape (analytics filters nest 5 boolean levels, about 14
# JSON levels); far below Python's recursion limit.
MAX_JSON_DEPTH = 32


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0, ``[]`` is 1), without recursion.
    Raises UnicodeEncodeError for a string (or key) holding a lone surrogate such as
    ``"\\ud800"``: valid JSON, but no UTF-8 for Postgres, Redis or ClickHouse."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
            continue
        if isinstance(item, Mapping):
            children: Any = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        stack.extend((child, depth) for child in children)
    return deepest


class StrictJSONParser(JSONParser):
    """JSON bodies: strict (no NaN/Infinity, no out-of-range numbers) and at most
    ``MAX_JSON_DEPTH`` levels deep; anything else is a 400 that says why."""

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read()
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"The JSON body is not valid {encoding} text.") from exc
        try:
            data = json.loads(text, parse_constant=json.strict_constant, parse_float=_finite_float)
        except RecursionError as exc:
            raise ParseError(_too_deep()) from exc
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {str(exc)[:200]}") from exc
        try:
            too_deep = json_depth(data) > MAX_JSON_DEPTH
        except UnicodeEncodeError as exc:
            raise ParseError("JSON parse error - a string holds a lone surrogate.") from exc
        if too_deep:
            raise ParseError(_too_deep())
        return data


def _too_deep() -> str:
    return f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels (the limit)."
