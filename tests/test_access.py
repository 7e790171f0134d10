"""API keys, project access lists, the audit trail and throttling."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from analytics.access.audit import record_query
from analytics.access.models import ApiClient, ProjectAccess, QueryAudit
from analytics.access.principals import ApiClientPrincipal
from analytics.access.scope import NoProjectAccess, resolve_project_scope
from analytics.query.printer import Binder, guard_clauses
from analytics.query.scope import ProjectScope
from analytics.query.tree import Rows

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
P2 = uuid.UUID("22222222-2222-2222-2222-222222222222")
P3 = uuid.UUID("33333333-3333-3333-3333-333333333333")
STATS_URL = "/gateway/blocking-stats"
WINDOW = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}


def _request_as(user: object) -> Request:
    request = Request(APIRequestFactory().get("/gateway/x"))
    request.user = user
    return request


# --- Keys ----------------------------------------------------------------------------------


def test_created_key_is_returned_once_and_only_its_hash_is_stored():
    client, key = ApiClient.create_with_key(name="budapp")
    client.refresh_from_db()
    assert key.startswith(f"bm_{client.key_prefix}_")
    assert key not in (client.key_hash, client.key_prefix)
    assert len(client.key_hash) == 64
    assert ApiClient.from_key(key) == client


def test_wrong_secret_with_a_valid_prefix_is_rejected():
    _client, key = ApiClient.create_with_key(name="budapp")
    forged = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    assert ApiClient.from_key(forged) is None


def test_rotating_the_key_invalidates_the_old_one():
    client, old_key = ApiClient.create_with_key(name="budapp")
    new_key = client.set_new_key()
    client.save()
    assert ApiClient.from_key(old_key) is None
    assert ApiClient.from_key(new_key) == client


def test_request_without_credentials_is_401_json_with_www_authenticate(anonymous_client):
    response = anonymous_client.get(STATS_URL, WINDOW)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "not_authenticated"


def test_bad_key_is_401_not_anonymous(clickhouse):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer bm_deadbeef_not-a-real-key")
    response = client.get(STATS_URL, WINDOW)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_inactive_client_key_is_401(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    ApiClient.objects.filter(pk=client.api_client.pk).update(is_active=False)
    assert client.get(STATS_URL, WINDOW).status_code == 401


def test_a_cached_key_lookup_runs_no_sql(api_client_factory):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    key = api_client_factory([P1]).api_key
    with CaptureQueriesContext(connection) as first:
        assert ApiClient.from_key(key) is not None
    with CaptureQueriesContext(connection) as second:
        assert ApiClient.from_key(key) is not None
    assert len(first) == 1
    assert len(second) == 0


def test_deactivating_a_cached_client_applies_at_once(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    assert client.get(STATS_URL, WINDOW).status_code == 200  # now cached
    record = ApiClient.objects.get(pk=client.api_client.pk)
    record.is_active = False
    record.save()
    assert client.get(STATS_URL, WINDOW).status_code == 401


def test_rotating_a_cached_clients_key_stops_the_old_key_at_once(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    assert client.get(STATS_URL, WINDOW).status_code == 200
    record = ApiClient.objects.get(pk=client.api_client.pk)
    new_key = record.set_new_key()
    record.save(update_fields=["key_prefix", "key_hash"])
    assert client.get(STATS_URL, WINDOW).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {new_key}")
    assert client.get(STATS_URL, WINDOW).status_code == 200


def test_deleting_a_cached_client_applies_at_once(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    assert client.get(STATS_URL, WINDOW).status_code == 200
    ApiClient.objects.get(pk=client.api_client.pk).delete()
    assert client.get(STATS_URL, WINDOW).status_code == 401


def test_key_accepted_in_x_api_key_header(api_client_factory, clickhouse):
    bearer = api_client_factory([P1])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=bearer.api_key)
    response = client.get(STATS_URL, WINDOW)
    assert response.status_code == 200, response.json()


def test_key_use_is_recorded_on_the_client(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    assert client.get(STATS_URL, WINDOW).status_code == 200
    client.api_client.refresh_from_db()
    assert client.api_client.last_used_at is not None


# --- Scope resolution -----------------------------------------------------------------------


def test_superuser_without_projects_gets_every_project(superuser):
    assert resolve_project_scope(_request_as(superuser), []) == ProjectScope.all_projects()


def test_superuser_requesting_projects_gets_exactly_those(superuser):
    scope = resolve_project_scope(_request_as(superuser), [P2, P1])
    assert scope == ProjectScope.only([P1, P2])


def test_user_without_projects_gets_their_access_list(user_client_factory):
    user = user_client_factory([P1, P2]).user
    assert resolve_project_scope(_request_as(user), []) == ProjectScope.only([P1, P2])


def test_user_with_no_access_rows_is_refused_saying_so(user_client_factory):
    user = user_client_factory([]).user
    with pytest.raises(NoProjectAccess) as caught:
        resolve_project_scope(_request_as(user), [])
    assert "has no project access" in str(caught.value.detail)
    assert user.get_username() in str(caught.value.detail)


def test_an_empty_scope_still_matches_nothing():
    scope = ProjectScope.only([])
    assert guard_clauses(Rows(scope, timezone.now(), timezone.now()), Binder())[0] == "0"


def test_requesting_a_foreign_project_is_denied_naming_it(user_client_factory):
    user = user_client_factory([P1]).user
    with pytest.raises(exceptions.PermissionDenied) as caught:
        resolve_project_scope(_request_as(user), [P1, P3])
    assert str(P3) in str(caught.value.detail)
    assert str(P1) not in str(caught.value.detail)


def test_api_client_scope_comes_from_its_own_access_rows(api_client_factory, user_client_factory):
    user_client_factory([P2])  # another principal's access must not leak
    client = api_client_factory([P1]).api_client
    request = _request_as(ApiClientPrincipal(client))
    assert resolve_project_scope(request, []) == ProjectScope.only([P1])
    with pytest.raises(exceptions.PermissionDenied):
        resolve_project_scope(request, [P2])


def test_all_projects_api_client_is_unrestricted(api_client_factory):
    client = api_client_factory([], all_projects=True).api_client
    request = _request_as(ApiClientPrincipal(client))
    assert resolve_project_scope(request, []) == ProjectScope.all_projects()
    assert resolve_project_scope(request, [P3]) == ProjectScope.only([P3])


def test_access_row_needs_exactly_one_principal(api_client_factory, user_client_factory):
    from django.core.exceptions import ValidationError

    user = user_client_factory([]).user
    client = api_client_factory([]).api_client
    with pytest.raises(ValidationError):
        ProjectAccess(user=user, api_client=client, project_id=P1).full_clean()
    with pytest.raises(ValidationError):
        ProjectAccess(project_id=P1).full_clean()


def test_foreign_project_over_http_is_403_in_the_envelope(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    response = client.get(STATS_URL, {**WINDOW, "project_ids": f"{P1},{P2}"})
    assert response.status_code == 403
    body = response.json()
    assert body["success"] is False
    assert str(P2) in body["error"]["message"]
    assert body["error"]["details"]["project_ids"] == [str(P2)]


def test_session_user_reaches_data_endpoint(user_client_factory, clickhouse):
    client = user_client_factory([P1])
    assert client.get(STATS_URL, WINDOW).status_code == 200


# --- Audit ---------------------------------------------------------------------------------


def test_record_query_writes_normalised_params(user_client_factory):
    user = user_client_factory([P1]).user
    request = _request_as(user)
    start = timezone.now().replace(microsecond=0)
    record_query(
        request,
        endpoint="blocking-stats",
        params={"project_ids": [P2, P1], "start_time": start, "limit": 5},
        duration_ms=12.3456,
        rows=7,
        status_code=200,
    )
    audit = QueryAudit.objects.get()
    assert audit.user == user
    assert audit.api_client is None
    assert audit.principal == f"user:{user.username}"
    assert audit.params == {
        "limit": 5,
        "project_ids": [str(P1), str(P2)],
        "start_time": start.isoformat().replace("+00:00", "Z"),
    }
    assert (audit.rows_returned, audit.status_code, audit.outcome) == (7, 200, "ok")
    assert audit.duration_ms == pytest.approx(12.346)


def test_data_endpoint_audits_success_and_denial(api_client_factory, clickhouse):
    client = api_client_factory([P1])
    assert client.get(STATS_URL, {**WINDOW, "project_ids": str(P1)}).status_code == 200
    assert client.get(STATS_URL, {**WINDOW, "project_ids": str(P2)}).status_code == 403
    audits = list(QueryAudit.objects.order_by("created_at", "id"))
    assert [(a.endpoint, a.status_code, a.outcome) for a in audits] == [
        ("blocking-stats", 200, "ok"),
        ("blocking-stats", 403, "denied"),
    ]
    assert all(a.api_client_id == client.api_client.pk for a in audits)
    assert audits[0].params["project_ids"] == [str(P1)]
    assert audits[0].params["start_time"] == "2025-01-15T00:00:00Z"


def test_unauthenticated_requests_are_not_audited_as_anyone(anonymous_client):
    anonymous_client.get(STATS_URL, WINDOW)
    assert QueryAudit.objects.count() == 0


def test_cleanup_audit_deletes_only_rows_past_retention(settings, superuser):
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    for age in (31, 29):
        QueryAudit.objects.create(
            created_at=now - timedelta(days=age),
            principal="user:x",
            endpoint="e",
            duration_ms=1,
            rows_returned=0,
            status_code=200,
            outcome="ok",
        )
    call_command("cleanup_audit")
    remaining = list(QueryAudit.objects.values_list("created_at", flat=True))
    assert remaining == [now - timedelta(days=29)]


# --- Throttling ----------------------------------------------------------------------------


def test_requests_over_the_rate_get_429_with_retry_after(settings, api_client_factory, clickhouse):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": "3/min", "anon": "3/min"},
    }
    client = api_client_factory([P1])
    statuses = [client.get(STATS_URL, WINDOW).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get(STATS_URL, WINDOW)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "throttled"


def test_rate_limit_is_per_client(settings, api_client_factory, clickhouse):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": "1/min", "anon": "1/min"},
    }
    first, second = api_client_factory([P1]), api_client_factory([P1])
    assert first.get(STATS_URL, WINDOW).status_code == 200
    assert first.get(STATS_URL, WINDOW).status_code == 429
    assert second.get(STATS_URL, WINDOW).status_code == 200


@pytest.mark.django_db(databases=["default", "clickhouse"], transaction=True)
def test_batched_audit_rows_are_written_off_the_request_path(superuser_client, settings):
    import time as _time

    from analytics.audit_writer import writer

    settings.AUDIT_WRITE_MODE = "batched"
    settings.AUDIT_FLUSH_SECONDS = 3600  # only a full batch or an explicit flush writes
    settings.AUDIT_BATCH_SIZE = 3
    writer.flush()
    body = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"}
    for _ in range(2):
        assert superuser_client.post("/gateway/analytics", body, format="json").status_code == 200
    assert QueryAudit.objects.count() == 0
    assert writer.pending() == 2
    assert writer.flush() == 2
    assert QueryAudit.objects.filter(endpoint="analytics", outcome="ok").count() == 2
    for _ in range(3):  # a full batch wakes the writer thread
        superuser_client.post("/gateway/analytics", body, format="json")
    deadline = _time.monotonic() + 10
    while QueryAudit.objects.count() < 5 and _time.monotonic() < deadline:
        _time.sleep(0.05)
    assert QueryAudit.objects.count() == 5


def test_a_request_ending_in_a_500_is_audited_too(api_client_factory, clickhouse, monkeypatch):
    """A bug below the view (simulated: the selector's query function raises) answers the
    JSON 500 and still leaves its audit row, as every authenticated data request does."""
    import analytics.endpoints

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not a client error")

    monkeypatch.setattr(analytics.endpoints, "geo_stats", broken)
    client = api_client_factory([P1])
    client.raise_request_exception = False
    response = client.get("/gateway/geographical-stats", {**WINDOW, "project_ids": str(P1)})
    assert response.status_code == 500
    assert response.json()["success"] is False
    (audit,) = QueryAudit.objects.all()
    assert (audit.endpoint, audit.status_code, audit.outcome) == (
        "geographical-stats",
        500,
        "error",
    )
    assert audit.params["project_ids"] == [str(P1)]
