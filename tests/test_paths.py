"""The route-template normaliser: documented rules, and the SQL and Python twins agree."""

from __future__ import annotations

import re

import pytest

from analytics.paths import template_path, template_sql
from budmetrics_site.clickhouse.client import get_client

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

CASES = [
    ("/v1/models/3f2a9c1e-7b1d-4e8a-9c3b-2d5e6f708192", "/v1/models/{id}"),
    ("/v1/models/3F2A9C1E-7B1D-4E8A-9C3B-2D5E6F708192/versions", "/v1/models/{id}/versions"),
    ("/v1/models/3f2a9c1e7b1d4e8a9c3b2d5e6f708192", "/v1/models/{id}"),
    ("/v1/files/file-123", "/v1/files/{id}"),
    ("/v1/files/file-abc123/content", "/v1/files/{id}/content"),
    ("/v1/chat/completions/chatcmpl-9xYzAbC", "/v1/chat/completions/{id}"),
    ("/v1/batches/batch_abc123", "/v1/batches/{id}"),
    ("/v1/batches/batch_abcdefghijklmnop", "/v1/batches/{id}"),
    (
        "/v1/threads/thread_abc1/runs/run_abc2/steps/step_x3",
        "/v1/threads/{id}/runs/{id}/steps/{id}",
    ),
    ("/v1/users/42", "/v1/users/{id}"),
    ("/v1/a/1/2/3/4/5", "/v1/a/{id}/{id}/{id}/{id}/{id}"),
    ("/1", "/{id}"),
    ("/v1/objects/deadbeefdeadbeef01", "/v1/objects/{id}"),
    ("/v1/users/42?expand=true", "/v1/users/{id}"),
    ("/v1/users/42#frag", "/v1/users/{id}"),
    # Not ids: words, versions, short mixed tokens, model names, unknown prefixes.
    ("/v1/chat/completions", "/v1/chat/completions"),
    ("/v1/batch-jobs", "/v1/batch-jobs"),
    ("/v2/models/gpt-4o", "/v2/models/gpt-4o"),
    ("/v1/x/12a", "/v1/x/12a"),
    ("/v1/x/deadbeef", "/v1/x/deadbeef"),
    ("/v1/files/file-", "/v1/files/file-"),
    ("/v1/files/xfile-123", "/v1/files/xfile-123"),
    ("", ""),
    ("/", "/"),
    ("/v1/users/42/", "/v1/users/{id}/"),
    ("//42//", "//{id}//"),
    ("/v1/ünïcode/42", "/v1/ünïcode/{id}"),
]


@pytest.mark.parametrize(("path", "expected"), CASES)
def test_python_normaliser_templates_documented_id_shapes(path, expected):
    assert template_path(path) == expected


def test_sql_normaliser_gives_the_same_templates_as_python():
    paths = [path for path, _ in CASES] + [
        "/v1/x/42\n",
        "/v1/files/file-1/x/2/y/3",
        "/a'b/42",
        "/back\\slash/7",
    ]
    sql = f"SELECT p, {template_sql('p')} FROM (SELECT arrayJoin({{paths:Array(String)}}) AS p)"  # noqa: S608
    rows = get_client().query(sql, parameters={"paths": paths}).result_rows
    assert len(rows) == len(paths)
    for path, templated in rows:
        assert templated == template_path(path), path


def test_sql_expression_is_constant_and_binds_no_parameters():
    sql = template_sql("path")
    assert sql == template_sql("path")
    assert not re.search(r"\{[A-Za-z_]\w*:", sql)
    assert sql.count("replaceRegexpAll(") == 2
