"""Blocking rules: per-type validation, the REST API with access control, and what the
gateway reads from Redis after every kind of change."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_redis import get_redis_connection

from blocking import publishing, services
from blocking.models import BlockingRule, RuleStatus
from blocking.validation import validate_rule_config

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
P2 = uuid.UUID("22222222-2222-2222-2222-222222222222")
URL = "/gateway/blocking-rules"


def published(project_id=None):
    """The document the gateway reads for a project (None: global), or None if absent."""
    key = publishing.global_key() if project_id is None else publishing.project_key(project_id)
    raw = get_redis_connection("default").get(key)
    return None if raw is None else json.loads(raw)


def published_ids(project_id=None):
    document = published(project_id)
    return set() if document is None else {r["id"] for r in document["rules"]}


def make_rule(**fields):
    defaults = {
        "name": f"rule-{uuid.uuid4().hex[:6]}",
        "rule_type": "ip_blocking",
        "rule_config": {"ip_addresses": ["203.0.113.7"]},
        "project_id": P1,
    }
    defaults.update(fields)
    return BlockingRule.objects.create(**defaults)


# --- Validation per type ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_type", "config", "expected"),
    [
        (
            "ip_blocking",
            {"ip_addresses": [" 203.0.113.7", "10.0.0.0/8", "2001:DB8::/32", "::1"]},
            {"ip_addresses": ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32", "::1"]},
        ),
        ("country_blocking", {"countries": ["ru", "KP", "RU"]}, {"countries": ["KP", "RU"]}),
        (
            "user_agent_blocking",
            {"patterns": ["curl/", " bot "]},
            {"patterns": ["curl/", " bot "], "match_type": "substring"},
        ),
        (
            "user_agent_blocking",
            {"patterns": ["^python-requests/\\d+"], "match_type": "regex"},
            {"patterns": ["^python-requests/\\d+"], "match_type": "regex"},
        ),
        (
            "rate_based_blocking",
            {"threshold": 100, "window_seconds": 60},
            {"threshold": 100, "window_seconds": 60},
        ),
    ],
)
def test_good_configs_are_accepted_and_normalised(rule_type, config, expected):
    assert validate_rule_config(rule_type, config) == expected


@pytest.mark.parametrize(
    ("rule_type", "config", "key", "fragment"),
    [
        ("ip_blocking", {"ip_addresses": ["300.1.2.3"]}, "ip_addresses", "not an IPv4/IPv6"),
        ("ip_blocking", {"ip_addresses": ["10.0.0.0/33"]}, "ip_addresses", "not an IPv4/IPv6"),
        ("ip_blocking", {"ip_addresses": ["2001:db8::/129"]}, "ip_addresses", "not an IPv4"),
        ("ip_blocking", {"ip_addresses": ["10.0.0.1/8"]}, "ip_addresses", "10.0.0.0/8"),
        ("ip_blocking", {"ip_addresses": []}, "ip_addresses", "at least one"),
        ("ip_blocking", {"ips": ["10.0.0.1"]}, "ips", "Unknown key"),
        ("ip_blocking", {"ips": ["10.0.0.1"]}, "ip_addresses", "required"),
        ("country_blocking", {"countries": ["XX"]}, "countries", '"XX" is not an ISO'),
        ("country_blocking", {"countries": ["USA"]}, "countries", "not an ISO"),
        ("country_blocking", {"countries": "US"}, "countries", "list of strings"),
        ("user_agent_blocking", {"patterns": [""]}, "patterns", "empty"),
        ("user_agent_blocking", {"patterns": ["   "]}, "patterns", "empty"),
        (
            "user_agent_blocking",
            {"patterns": ["(unclosed"], "match_type": "regex"},
            "patterns",
            "not a valid regex",
        ),
        (
            "user_agent_blocking",
            {"patterns": ["a(?=b)"], "match_type": "regex"},
            "patterns",
            "look-around",
        ),
        ("user_agent_blocking", {"patterns": ["x"], "match_type": "glob"}, "match_type", "one of"),
        ("rate_based_blocking", {"threshold": 0, "window_seconds": 60}, "threshold", "greater"),
        (
            "rate_based_blocking",
            {"threshold": 5, "window_seconds": -1},
            "window_seconds",
            "greater",
        ),
        ("rate_based_blocking", {"threshold": "5.5", "window_seconds": 60}, "threshold", "whole"),
        ("rate_based_blocking", {"threshold": True, "window_seconds": 60}, "threshold", "whole"),
        ("rate_based_blocking", {"threshold": 5}, "window_seconds", "required"),
    ],
)
def test_bad_configs_are_rejected_naming_the_key(rule_type, config, key, fragment):
    with pytest.raises(ValidationError) as caught:
        validate_rule_config(rule_type, config)
    assert key in caught.value.message_dict
    assert any(fragment in message for message in caught.value.message_dict[key])


def test_unknown_rule_type_is_rejected():
    with pytest.raises(ValidationError) as caught:
        validate_rule_config("geo_fencing", {})
    assert "rule_type" in caught.value.message_dict


def test_rule_past_expiry_reports_expired_before_the_job_runs():
    rule = make_rule()
    BlockingRule.objects.filter(pk=rule.pk).update(expires_at=timezone.now() - timedelta(1))
    rule.refresh_from_db()
    assert rule.status == RuleStatus.ACTIVE
    assert rule.effective_status == RuleStatus.EXPIRED
    assert not BlockingRule.objects.enforced().filter(pk=rule.pk).exists()


# --- API CRUD -----------------------------------------------------------------------------


def _payload(**fields):
    body = {
        "name": "scanners",
        "rule_type": "ip_blocking",
        "rule_config": {"ip_addresses": ["198.51.100.0/24", "2001:db8::/48"]},
        "reason": "scanner",
        "priority": 10,
        "project_id": str(P1),
    }
    body.update(fields)
    return body


def test_superuser_creates_reads_updates_and_deletes_a_rule(
    superuser_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = superuser_client.post(URL, _payload(), format="json")
    assert created.status_code == 201, created.json()
    rule = created.json()["data"]
    assert rule["status"] == "active"
    assert rule["created_by"] == f"user:{superuser_client.user.username}"
    assert published_ids(P1) == {rule["id"]}

    fetched = superuser_client.get(f"{URL}/{rule['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["data"]["rule_config"] == {
        "ip_addresses": ["198.51.100.0/24", "2001:db8::/48"]
    }

    with django_capture_on_commit_callbacks(execute=True):
        patched = superuser_client.patch(
            f"{URL}/{rule['id']}",
            {"rule_config": {"ip_addresses": ["192.0.2.1"]}},
            format="json",
        )
    assert patched.status_code == 200, patched.json()
    assert published(P1)["rules"][0]["config"] == {"ip_addresses": ["192.0.2.1"]}

    with django_capture_on_commit_callbacks(execute=True):
        deleted = superuser_client.delete(f"{URL}/{rule['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"id": rule["id"], "deleted": True, "publication": "published"}
    assert not BlockingRule.objects.filter(pk=rule["id"]).exists()
    assert published(P1) is None


def test_invalid_config_over_the_api_is_400_naming_the_key(superuser_client):
    response = superuser_client.post(
        URL, _payload(rule_config={"ip_addresses": ["10.0.0.0/99"]}), format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert "rule_config.ip_addresses" in body["error"]["details"]
    assert "10.0.0.0/99" in body["error"]["message"]


def test_changing_the_type_revalidates_the_existing_config(superuser_client):
    rule = make_rule()
    response = superuser_client.patch(
        f"{URL}/{rule.id}", {"rule_type": "country_blocking"}, format="json"
    )
    assert response.status_code == 400
    assert "rule_config.countries" in response.json()["error"]["details"]


def test_duplicate_name_in_a_project_is_400_but_allowed_in_another(superuser_client):
    make_rule(name="dup", project_id=P1)
    clash = superuser_client.post(URL, _payload(name="dup"), format="json")
    assert clash.status_code == 400
    assert "name" in clash.json()["error"]["details"]
    other = superuser_client.post(URL, _payload(name="dup", project_id=str(P2)), format="json")
    assert other.status_code == 201


def test_duplicate_global_name_is_400(superuser_client):
    make_rule(name="g", project_id=None)
    clash = superuser_client.post(URL, _payload(name="g", project_id=None), format="json")
    assert clash.status_code == 400


def test_active_rule_with_past_expiry_is_rejected(superuser_client):
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    response = superuser_client.post(URL, _payload(expires_at=past), format="json")
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["details"]


def test_list_filters_and_paginates(superuser_client):
    for index in range(3):
        make_rule(name=f"ip-{index}", priority=index)
    make_rule(
        name="geo",
        rule_type="country_blocking",
        rule_config={"countries": ["RU"]},
        project_id=P2,
    )
    make_rule(name="off", status=RuleStatus.INACTIVE)
    page = superuser_client.get(
        URL, {"rule_type": "ip_blocking", "status": "active", "page_size": 2}
    )
    body = page.json()["data"]
    assert body["count"] == 3
    assert [r["name"] for r in body["results"]] == ["ip-2", "ip-1"]
    assert body["next"] is not None
    second = superuser_client.get(
        URL, {"rule_type": "ip_blocking", "status": "active", "page_size": 2, "page": 2}
    )
    assert [r["name"] for r in second.json()["data"]["results"]] == ["ip-0"]
    by_project = superuser_client.get(URL, {"project_id": str(P2)}).json()["data"]
    assert [r["name"] for r in by_project["results"]] == ["geo"]
    searched = superuser_client.get(URL, {"search": "GE"}).json()["data"]
    assert [r["name"] for r in searched["results"]] == ["geo"]


def test_bad_list_filter_is_400(superuser_client):
    response = superuser_client.get(URL, {"rule_type": "nonsense"})
    assert response.status_code == 400
    assert "rule_type" in response.json()["error"]["details"]


def test_list_query_count_does_not_grow_with_rules(superuser_client, django_assert_max_num_queries):
    for index in range(20):
        make_rule(name=f"r{index}")
    # session + user, expiry check, count, page: a fixed handful, not one per rule.
    with django_assert_max_num_queries(8):
        response = superuser_client.get(URL)
    assert response.json()["data"]["count"] == 20


# --- Access control -----------------------------------------------------------------------


def test_client_sees_only_its_projects_and_global_rules(api_client_factory):
    mine = make_rule(project_id=P1)
    make_rule(project_id=P2)
    global_rule = make_rule(project_id=None)
    client = api_client_factory([P1])
    names = {r["id"] for r in client.get(URL).json()["data"]["results"]}
    assert names == {str(mine.id), str(global_rule.id)}


def test_other_projects_rule_is_404_for_a_client(api_client_factory):
    other = make_rule(project_id=P2)
    client = api_client_factory([P1], can_manage_blocking_rules=True)
    assert client.get(f"{URL}/{other.id}").status_code == 404
    assert client.delete(f"{URL}/{other.id}").status_code == 404


def test_filtering_by_a_foreign_project_is_403(api_client_factory):
    client = api_client_factory([P1])
    response = client.get(URL, {"project_id": str(P2)})
    assert response.status_code == 403
    assert str(P2) in response.json()["error"]["message"]


def test_client_without_manage_right_cannot_create(api_client_factory):
    client = api_client_factory([P1])
    response = client.post(URL, _payload(), format="json")
    assert response.status_code == 403
    assert not BlockingRule.objects.exists()


def test_managing_client_creates_in_its_project_but_not_elsewhere(api_client_factory):
    client = api_client_factory([P1], can_manage_blocking_rules=True)
    created = client.post(URL, _payload(), format="json")
    assert created.status_code == 201
    assert created.json()["data"]["created_by"] == f"api_client:{client.api_client.name}"
    foreign = client.post(URL, _payload(name="x", project_id=str(P2)), format="json")
    assert foreign.status_code == 403
    assert str(P2) in foreign.json()["error"]["message"]


def test_managing_client_cannot_move_a_rule_to_a_foreign_project(api_client_factory):
    rule = make_rule(project_id=P1)
    client = api_client_factory([P1], can_manage_blocking_rules=True)
    response = client.patch(f"{URL}/{rule.id}", {"project_id": str(P2)}, format="json")
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.project_id == P1


def test_global_rules_are_read_only_for_project_scoped_principals(api_client_factory):
    rule = make_rule(project_id=None)
    client = api_client_factory([P1], can_manage_blocking_rules=True)
    assert client.get(f"{URL}/{rule.id}").status_code == 200
    assert client.patch(f"{URL}/{rule.id}", {"priority": 1}, format="json").status_code == 403
    assert client.delete(f"{URL}/{rule.id}").status_code == 403
    assert client.post(URL, _payload(project_id=None), format="json").status_code == 403


def test_staff_user_needs_the_model_permission_to_write(user_client_factory):
    from django.contrib.auth.models import Permission

    client = user_client_factory([P1], is_staff=True)
    assert client.post(URL, _payload(), format="json").status_code == 403
    client.user.user_permissions.add(Permission.objects.get(codename="add_blockingrule"))
    assert client.post(URL, _payload(), format="json").status_code == 201


def test_anonymous_is_401(anonymous_client):
    assert anonymous_client.get(URL).status_code == 401


# --- Publication to Redis ------------------------------------------------------------------


def test_published_document_matches_the_documented_schema(django_capture_on_commit_callbacks):
    expires = timezone.now() + timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=True):
        rule = make_rule(
            name="geo",
            rule_type="country_blocking",
            rule_config={"countries": ["RU"]},
            reason="sanctions",
            priority=7,
            endpoint_id=P2,
            expires_at=expires,
        )
    document = published(P1)
    assert document["schema_version"] == 1
    assert document["scope"] == "project"
    assert document["project_id"] == str(P1)
    assert document["rules"] == [
        {
            "id": str(rule.id),
            "name": "geo",
            "rule_type": "country_blocking",
            "config": {"countries": ["RU"]},
            "priority": 7,
            "reason": "sanctions",
            "project_id": str(P1),
            "endpoint_id": str(P2),
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
        }
    ]


def test_exactly_the_active_unexpired_rules_are_published(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        active = make_rule(priority=1)
        high = make_rule(priority=9)
        make_rule(status=RuleStatus.INACTIVE)
        make_rule(status=RuleStatus.EXPIRED)
        stale = make_rule(expires_at=timezone.now() + timedelta(hours=1))
        BlockingRule.objects.filter(pk=stale.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        global_rule = make_rule(project_id=None)
        make_rule(project_id=P2, status=RuleStatus.INACTIVE)
    call_command("sync_blocking_rules")
    assert [r["id"] for r in published(P1)["rules"]] == [str(high.id), str(active.id)]
    assert published_ids(None) == {str(global_rule.id)}
    assert published(P2) is None


def test_deactivating_removes_a_rule_and_the_empty_project_key(
    superuser_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        rule = make_rule()
    assert published_ids(P1) == {str(rule.id)}
    with django_capture_on_commit_callbacks(execute=True):
        response = superuser_client.patch(f"{URL}/{rule.id}", {"status": "inactive"}, format="json")
    assert response.status_code == 200
    assert published(P1) is None


def test_moving_a_rule_republishes_both_projects(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        rule = make_rule(project_id=P1)
    with django_capture_on_commit_callbacks(execute=True):
        rule.project_id = P2
        rule.save()
    assert published(P1) is None
    assert published_ids(P2) == {str(rule.id)}


def test_expiry_marks_rules_expired_and_unpublishes_them(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        keep = make_rule(expires_at=timezone.now() + timedelta(days=1))
        lapse = make_rule(expires_at=timezone.now() + timedelta(days=1))
    assert published_ids(P1) == {str(keep.id), str(lapse.id)}
    BlockingRule.objects.filter(pk=lapse.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        call_command("expire_blocking_rules")
    lapse.refresh_from_db()
    assert lapse.status == RuleStatus.EXPIRED
    assert published_ids(P1) == {str(keep.id)}


def test_bulk_status_change_publishes(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        rules = [make_rule(status=RuleStatus.INACTIVE) for _ in range(2)]
    assert published(P1) is None
    with django_capture_on_commit_callbacks(execute=True):
        services.rules_set_status(BlockingRule.objects.all(), RuleStatus.ACTIVE)
    assert published_ids(P1) == {str(r.id) for r in rules}


def _create_then_roll_back() -> None:
    with transaction.atomic():
        make_rule()
        transaction.set_rollback(True)


def test_rolled_back_change_is_never_published():
    _create_then_roll_back()
    assert published(P1) is None
    assert not BlockingRule.objects.exists()


def test_sync_removes_keys_of_projects_that_lost_all_rules(django_capture_on_commit_callbacks):
    stale_key = publishing.project_key(P2)
    get_redis_connection("default").set(stale_key, json.dumps({"rules": [{"id": "gone"}]}))
    call_command("sync_blocking_rules")
    assert published(P2) is None
    assert published(None)["rules"] == []


def test_model_full_clean_validates_the_config_for_its_type():
    rule = BlockingRule(name="x", rule_type="ip_blocking", rule_config={"ip_addresses": ["x"]})
    with pytest.raises(ValidationError) as caught:
        rule.full_clean()
    assert any('"x" is not an IPv4/IPv6' in m for m in caught.value.message_dict["rule_config"])
