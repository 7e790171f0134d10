"""The Django admin for blocking rules and access, through the test client as staff."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from django_redis import get_redis_connection

from analytics.access.models import ApiClient, QueryAudit
from blocking import publishing
from blocking.models import BlockingRule, RuleStatus
from tests.conftest import make_row

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
ADD_URL = "/admin/blocking/blockingrule/add/"
LIST_URL = "/admin/blocking/blockingrule/"


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user(username="staff", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label__in=["blocking", "analytics"])
    )
    client.force_login(user)
    return client


def _form(**fields):
    data = {
        "name": "scanners",
        "description": "",
        "rule_type": "ip_blocking",
        "status": "active",
        "reason": "scanner",
        "priority": "100",
        "project_id": str(P1),
        "endpoint_id": "",
        "expires_at_0": "",
        "expires_at_1": "",
        "ip_addresses": "",
        "countries": "",
        "patterns": "",
        "match_type": "substring",
        "threshold": "",
        "window_seconds": "",
    }
    data.update(fields)
    return data


def published_ids(project_id):
    raw = get_redis_connection("default").get(publishing.project_key(project_id))
    return set() if raw is None else {r["id"] for r in json.loads(raw)["rules"]}


def test_add_ip_rule_through_the_form_stores_normalised_config_and_publishes(staff):
    response = staff.post(ADD_URL, _form(ip_addresses="203.0.113.7\n 10.0.0.0/8 \n\n2001:DB8::/32"))
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = BlockingRule.objects.get()
    assert rule.rule_config == {"ip_addresses": ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"]}
    assert rule.created_by.username == "staff"
    assert published_ids(P1) == {str(rule.id)}


def test_bad_cidr_error_is_shown_on_the_ip_field(staff):
    response = staff.post(ADD_URL, _form(ip_addresses="10.0.0.1/8\nnot-an-ip"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any("did you mean 10.0.0.0/8" in e for e in errors["ip_addresses"])
    assert any('"not-an-ip"' in e for e in errors["ip_addresses"])
    assert not BlockingRule.objects.exists()


def test_bad_country_error_is_shown_on_the_countries_field(staff):
    response = staff.post(ADD_URL, _form(rule_type="country_blocking", countries="RU, XX"))
    assert response.status_code == 200
    assert '"XX" is not an ISO' in response.context["adminform"].form.errors["countries"][0]


def test_bad_regex_error_is_shown_on_the_patterns_field(staff):
    response = staff.post(
        ADD_URL, _form(rule_type="user_agent_blocking", patterns="([a-z", match_type="regex")
    )
    assert response.status_code == 200
    assert "not a valid regex" in response.context["adminform"].form.errors["patterns"][0]


def test_rate_rule_needs_positive_threshold_and_window(staff):
    response = staff.post(
        ADD_URL, _form(rule_type="rate_based_blocking", threshold="0", window_seconds="")
    )
    errors = response.context["adminform"].form.errors
    assert "greater than 0" in errors["threshold"][0]
    assert "required" in errors["window_seconds"][0]


def test_duplicate_name_in_project_is_a_form_error(staff):
    BlockingRule.objects.create(
        name="scanners",
        rule_type="country_blocking",
        rule_config={"countries": ["RU"]},
        project_id=P1,
    )
    response = staff.post(ADD_URL, _form(ip_addresses="203.0.113.7"))
    assert response.status_code == 200
    assert "already exists" in str(response.context["adminform"].form.errors)


def test_edit_form_shows_config_readably_and_saves_changes(staff):
    rule = BlockingRule.objects.create(
        name="ua",
        rule_type="user_agent_blocking",
        rule_config={"patterns": ["curl/", "wget"], "match_type": "substring"},
        project_id=P1,
    )
    url = f"/admin/blocking/blockingrule/{rule.id}/change/"
    page = staff.get(url)
    assert page.status_code == 200
    assert page.context["adminform"].form["patterns"].initial == "curl/\nwget"
    response = staff.post(
        url,
        _form(name="ua", rule_type="user_agent_blocking", patterns="^Go-http", match_type="regex"),
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.rule_config == {"patterns": ["^Go-http"], "match_type": "regex"}


def test_change_page_shows_recent_match_count_from_clickhouse(staff, clickhouse):
    rule = BlockingRule.objects.create(
        name="ip", rule_type="ip_blocking", rule_config={"ip_addresses": ["203.0.113.7"]}
    )
    now = timezone.now()
    clickhouse(
        [
            make_row(timestamp=now - timedelta(hours=1), is_blocked=True, block_rule_id=rule.id),
            make_row(timestamp=now - timedelta(hours=2), is_blocked=True, block_rule_id=rule.id),
            make_row(timestamp=now - timedelta(days=3), is_blocked=True, block_rule_id=rule.id),
            make_row(timestamp=now - timedelta(hours=1), is_blocked=True),
        ]
    )
    page = staff.get(f"/admin/blocking/blockingrule/{rule.id}/change/")
    assert "2 in the last 24 hours" in page.content.decode()


def test_bulk_deactivate_and_activate_publish(staff):
    rules = [
        BlockingRule.objects.create(
            name=f"r{i}",
            rule_type="country_blocking",
            rule_config={"countries": ["RU"]},
            project_id=P1,
        )
        for i in range(3)
    ]
    ids = [str(r.id) for r in rules]
    assert published_ids(P1) == set(ids)
    response = staff.post(
        LIST_URL, {"action": "deactivate", "_selected_action": ids[:2]}, follow=True
    )
    assert response.status_code == 200
    assert "Deactivated 2 rule(s)." in response.content.decode()
    assert set(
        BlockingRule.objects.filter(status=RuleStatus.INACTIVE).values_list("name", flat=True)
    ) == {
        "r0",
        "r1",
    }
    assert published_ids(P1) == {ids[2]}
    staff.post(LIST_URL, {"action": "activate", "_selected_action": ids})
    assert published_ids(P1) == set(ids)


def test_activating_an_expired_rule_keeps_it_expired(staff):
    rule = BlockingRule.objects.create(
        name="old",
        rule_type="country_blocking",
        rule_config={"countries": ["RU"]},
        project_id=P1,
        status=RuleStatus.INACTIVE,
        expires_at=timezone.now() - timedelta(days=1),
    )
    staff.post(LIST_URL, {"action": "activate", "_selected_action": [str(rule.id)]})
    rule.refresh_from_db()
    assert rule.status == RuleStatus.EXPIRED
    assert published_ids(P1) == set()


def test_changelist_filters_and_search(staff):
    BlockingRule.objects.create(
        name="alpha",
        rule_type="country_blocking",
        rule_config={"countries": ["RU"]},
        project_id=P1,
    )
    BlockingRule.objects.create(
        name="beta",
        rule_type="ip_blocking",
        rule_config={"ip_addresses": ["10.0.0.1"]},
    )
    by_type = staff.get(LIST_URL, {"rule_type__exact": "ip_blocking"})
    assert [r.name for r in by_type.context["cl"].result_list] == ["beta"]
    global_only = staff.get(LIST_URL, {"project_id__isempty": "1"})
    assert [r.name for r in global_only.context["cl"].result_list] == ["beta"]
    searched = staff.get(LIST_URL, {"q": "alp"})
    assert [r.name for r in searched.context["cl"].result_list] == ["alpha"]


def test_changelist_query_count_is_flat(staff, django_assert_max_num_queries):
    for i in range(30):
        BlockingRule.objects.create(
            name=f"r{i}", rule_type="country_blocking", rule_config={"countries": ["RU"]}
        )
    with django_assert_max_num_queries(12):
        assert staff.get(LIST_URL).status_code == 200


def _shown_keys(response) -> list[str]:
    return re.findall(r'<code class="api-key">([^<]+)</code>', response.content.decode())


def _assert_key_kept_out(key, responses, test_client, caplog):
    """Not in any Set-Cookie of the flow, the client's cookie jar, or any log record."""
    for response in responses:
        assert key not in response.cookies.output(), response
    assert key not in test_client.cookies.output()
    assert key not in caplog.text
    assert all(key not in str(record.msg) for record in caplog.records)


def test_a_new_api_key_is_shown_once_never_in_a_cookie_or_a_log_line(staff, caplog):
    # Contract change (issue 12, item 4): the key used to travel in the messages cookie;
    # it is now rendered into the answer to the POST itself.
    with caplog.at_level(logging.DEBUG):
        opened = staff.get("/admin/analytics/apiclient/add/")
        added = staff.post(
            "/admin/analytics/apiclient/add/",
            {
                "name": "budapp",
                "is_active": "on",
                "all_projects": "on",
                "project_access-TOTAL_FORMS": "0",
                "project_access-INITIAL_FORMS": "0",
            },
        )
        client = ApiClient.objects.get(name="budapp")
        later = [
            staff.get("/admin/analytics/apiclient/"),
            staff.get(f"/admin/analytics/apiclient/{client.pk}/change/"),
        ]
    assert added.status_code == 200
    assert "no-store" in added["Cache-Control"]
    [key] = _shown_keys(added)
    assert ApiClient.from_key(key) == client
    assert added.content.decode().count(key) == 1  # shown exactly once
    for page in later:
        assert key not in page.content.decode()
    _assert_key_kept_out(key, [opened, added, *later], staff, caplog)


def test_rotated_keys_are_shown_once_never_in_a_cookie_or_a_log_line(staff, caplog):
    first, old_key = ApiClient.create_with_key("a")
    second, _ = ApiClient.create_with_key("b")
    with caplog.at_level(logging.DEBUG):
        rotated = staff.post(
            "/admin/analytics/apiclient/",
            {"action": "rotate_keys", "_selected_action": [str(first.pk), str(second.pk)]},
        )
        after = staff.get("/admin/analytics/apiclient/")
    assert rotated.status_code == 200
    keys = _shown_keys(rotated)
    assert sorted(ApiClient.from_key(k).name for k in keys) == ["a", "b"]
    assert ApiClient.from_key(old_key) is None
    for key in keys:
        assert rotated.content.decode().count(key) == 1
        assert key not in after.content.decode()
        _assert_key_kept_out(key, [rotated, after], staff, caplog)


def test_query_audit_is_read_only_in_the_admin(staff, superuser):
    entry = QueryAudit.objects.create(
        principal="user:x",
        endpoint="e",
        duration_ms=1,
        rows_returned=0,
        status_code=200,
        outcome="ok",
    )
    assert staff.get("/admin/analytics/queryaudit/").status_code == 200
    assert staff.get("/admin/analytics/queryaudit/add/").status_code == 403
    detail = staff.get(f"/admin/analytics/queryaudit/{entry.pk}/change/")
    assert detail.status_code == 200
    assert b'name="endpoint"' not in detail.content  # shown, not editable
    assert (
        staff.post(f"/admin/analytics/queryaudit/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert QueryAudit.objects.filter(pk=entry.pk).exists()
