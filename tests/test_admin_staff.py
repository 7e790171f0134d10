"""The admin as staff expect it (issue 12, item 5): HTML error pages under /admin/ (JSON
stays for the API), the "BudMetrics staff" group of the data migration, and constraint
errors that say what to change in the form's own terms."""

from __future__ import annotations

import importlib
import uuid

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.db import connection
from django.test import RequestFactory

from analytics.access.models import ApiClient, ProjectAccess
from analytics.saved_queries import SavedQuery
from blocking.models import BlockingRule
from budmetrics_site import errors

pytestmark = pytest.mark.django_db

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
staff_group_migration = importlib.import_module("blocking.migrations.0003_staff_group")

# The documented permission set (README "Staff access"): manage the four models, view users.
EXPECTED_STAFF_PERMISSIONS = sorted(
    [
        (app, f"{action}_{model}")
        for app, model in (
            ("blocking", "blockingrule"),
            ("analytics", "apiclient"),
            ("analytics", "projectaccess"),
            ("analytics", "savedquery"),
        )
        for action in ("add", "change", "delete", "view")
    ]
    + [("auth", "view_user")]
)


@pytest.fixture
def plain_staff(client, django_user_model):
    user = django_user_model.objects.create_user(username="plain", password="pw", is_staff=True)
    client.force_login(user)
    return client


# --- Error pages ----------------------------------------------------------------------------


def test_admin_permission_denied_is_an_html_page_saying_what_staff_need(plain_staff):
    response = plain_staff.get("/admin/blocking/blockingrule/")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "“BudMetrics staff” group" in page
    assert '<a href="/admin/">' in page  # the admin's own chrome, not a bare page


def test_unknown_admin_page_is_an_html_404(plain_staff):
    response = plain_staff.get("/admin/nope/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "There is no admin page at /admin/nope/." in response.content.decode()


def test_api_and_health_errors_stay_json(plain_staff):
    for path in ("/gateway/nope", "/api/nope", "/nope"):
        response = plain_staff.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found", path


def test_server_error_is_html_under_admin_and_json_elsewhere():
    factory = RequestFactory()
    admin_page = errors.handler_500(factory.get("/admin/blocking/blockingrule/"))
    assert admin_page.status_code == 500
    assert b"<h1>Server error (500)</h1>" in admin_page.content
    api = errors.handler_500(factory.get("/gateway/analytics"))
    assert api.status_code == 500
    assert api["Content-Type"] == "application/json"


def test_staff_without_permissions_are_told_how_to_get_them(plain_staff):
    page = plain_staff.get("/admin/").content.decode()
    assert 'id="staff-access-hint"' in page
    assert "“BudMetrics staff” group" in page


# --- The staff group ------------------------------------------------------------------------


def _run_staff_group_migration() -> Group:
    with connection.schema_editor() as editor:
        staff_group_migration.create_staff_group(django_apps, editor)
    return Group.objects.get(name="BudMetrics staff")


def test_staff_group_holds_exactly_the_documented_permissions():
    group = _run_staff_group_migration()
    held = sorted(group.permissions.values_list("content_type__app_label", "codename"))
    assert held == EXPECTED_STAFF_PERMISSIONS
    # Running it again (re-applied migration) changes nothing.
    assert group == _run_staff_group_migration()
    assert group.permissions.count() == len(EXPECTED_STAFF_PERMISSIONS)


def test_staff_in_the_group_open_their_pages_and_no_others(client, django_user_model):
    user = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    user.groups.add(_run_staff_group_migration())
    client.force_login(user)
    allowed = [
        "/admin/",
        "/admin/blocking/blockingrule/",
        "/admin/blocking/blockingrule/add/",
        "/admin/analytics/apiclient/",
        "/admin/analytics/apiclient/add/",
        "/admin/analytics/projectaccess/",
        "/admin/analytics/projectaccess/add/",
        "/admin/analytics/savedquery/",
        "/admin/analytics/savedquery/add/",
        # the project-access form's user picker
        "/admin/autocomplete/?app_label=analytics&model_name=projectaccess&field_name=user",
    ]
    for path in allowed:
        assert client.get(path).status_code == 200, path
    refused = [
        "/admin/analytics/queryaudit/",
        "/admin/auth/group/",
        "/admin/auth/user/add/",
        f"/admin/auth/user/{user.pk}/delete/",
    ]
    for path in refused:
        response = client.get(path)
        assert response.status_code == 403, path
        assert response["Content-Type"].startswith("text/html"), path


# --- Constraint errors in the form's terms --------------------------------------------------


def _form_errors(response) -> list[str]:
    assert response.status_code == 200, response.status_code  # the form came back
    return list(response.context["adminform"].form.non_field_errors())


def _access_form(**fields):
    data = {"user": "", "api_client": "", "project_id": str(P1), "note": ""}
    data.update(fields)
    return data


def test_project_access_constraint_messages_name_the_form_fields(admin_client, admin_user):
    api_client, _ = ApiClient.create_with_key("budapp")
    url = "/admin/analytics/projectaccess/add/"
    one = "Fill in exactly one of “User” and “Api client” (who may read the project)"
    for fields in ({}, {"user": admin_user.pk, "api_client": api_client.pk}):
        [message] = _form_errors(admin_client.post(url, _access_form(**fields)))
        assert message.startswith(one), message
        assert "is violated" not in message
    ProjectAccess.objects.create(user=admin_user, project_id=P1)
    ProjectAccess.objects.create(api_client=api_client, project_id=P1)
    assert _form_errors(admin_client.post(url, _access_form(user=admin_user.pk))) == [
        "This user already has access to this project: change “User” or “Project id”, or "
        "edit the existing entry."
    ]
    assert _form_errors(admin_client.post(url, _access_form(api_client=api_client.pk))) == [
        "This API client already has access to this project: change “Api client” or "
        "“Project id”, or edit the existing entry."
    ]


def _saved_query_form(**fields):
    data = {
        "name": "daily",
        "owner": "",
        "owner_client": "",
        "endpoint": "top-routes",
        "params": "{}",
        "time_window": "last_24h",
        "refresh_interval": "0",
    }
    data.update(fields)
    return data


def test_saved_query_constraint_messages_name_the_form_fields(admin_client, admin_user):
    api_client, _ = ApiClient.create_with_key("budapp")
    url = "/admin/analytics/savedquery/add/"
    one = "Fill in exactly one of “Owner” (a user) and “Owner client” (an API client)"
    for fields in ({}, {"owner": admin_user.pk, "owner_client": api_client.pk}):
        [message] = _form_errors(admin_client.post(url, _saved_query_form(**fields)))
        assert message.startswith(one), message
    SavedQuery.objects.create(name="daily", owner=admin_user, endpoint="top-routes")
    SavedQuery.objects.create(name="daily", owner_client=api_client, endpoint="top-routes")
    assert _form_errors(admin_client.post(url, _saved_query_form(owner=admin_user.pk))) == [
        "This owner already has a saved query with this name: change “Name” (or “Owner”)."
    ]
    assert _form_errors(admin_client.post(url, _saved_query_form(owner_client=api_client.pk))) == [
        "This API client already has a saved query with this name: change “Name” "
        "(or “Owner client”)."
    ]


def _rule_form(**fields):
    data = {
        "name": "scanners",
        "description": "",
        "rule_type": "country_blocking",
        "status": "active",
        "reason": "",
        "priority": "100",
        "project_id": "",
        "endpoint_id": "",
        "expires_at_0": "",
        "expires_at_1": "",
        "ip_addresses": "",
        "countries": "RU",
        "patterns": "",
        "match_type": "substring",
        "threshold": "",
        "window_seconds": "",
    }
    data.update(fields)
    return data


def test_blocking_rule_constraint_messages_name_the_form_fields(admin_client):
    rule = {
        "name": "scanners",
        "rule_type": "country_blocking",
        "rule_config": {"countries": ["RU"]},
    }
    BlockingRule.objects.create(**rule, project_id=P1)
    BlockingRule.objects.create(**rule)
    url = "/admin/blocking/blockingrule/add/"
    assert _form_errors(admin_client.post(url, _rule_form(project_id=str(P1)))) == [
        "A rule with this name already exists in this project: change “Name” (or “Project id”)."
    ]
    assert _form_errors(admin_client.post(url, _rule_form())) == [
        "A global rule (empty “Project id”) with this name already exists: change “Name”, or "
        "set “Project id” to make it a project rule."
    ]
