"""No half-done writes (issue 12, item 1): a rule change is stored with its publication
queued in one transaction; with the gateway's Redis really stopped the API and the admin
answer normally with the rule ``pending``, and once a real Redis is back the publisher
delivers what the gateway reads (the key and the change message)."""

from __future__ import annotations

import json
import logging
import math
import socket
import subprocess
import uuid
from datetime import timedelta

import pytest
import redis
from django.apps import apps
from django.contrib.auth.models import Permission
from django.utils import timezone

from blocking import publishing, tasks
from blocking.apps import publishing_configured_check
from blocking.models import BlockingRule, BlockingRuleOutbox
from budmetrics_site.celery import BEAT_SCHEDULE
from budmetrics_site.jobs import run_due_jobs

pytest_plugins = ["tests.access_fixtures"]
# Real commits: the publisher runs after the change's transaction, as in production.
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
P2 = uuid.UUID("22222222-2222-2222-2222-222222222222")
URL = "/gateway/blocking-rules"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own, on a free port, stopped and started for real."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments, test-owned server
            [  # noqa: S607 - redis-server from PATH, as .ci/services starts it
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):  # wait until it accepts connections
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                try:
                    self.process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                raise RuntimeError("redis-server exited at start-up") from None
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def gateway_redis(settings):
    """The Redis the gateway reads rules from, owned by this test."""
    server = RedisServer()
    server.start()
    settings.BLOCKING_RULES_REDIS_URL = server.url
    yield server
    server.stop()


def _document(server: RedisServer, project_id):
    raw = server.client().get(publishing.project_key(project_id))
    return None if raw is None else json.loads(raw)


def _rule_body(name: str, project_id=P1) -> dict:
    return {
        "name": name,
        "rule_type": "ip_blocking",
        "rule_config": {"ip_addresses": ["203.0.113.7"]},
        "project_id": str(project_id),
    }


def _subscribe(server: RedisServer):
    pubsub = server.client().pubsub()
    pubsub.subscribe(publishing.changes_channel())
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    return pubsub


def _messages(pubsub, count: int) -> list[str]:
    out = []
    for _ in range(count):
        message = pubsub.get_message(timeout=5)
        assert message is not None, f"only {out} arrived"
        out.append(message["data"].decode())
    return out


def test_api_changes_with_redis_stopped_are_stored_pending_then_delivered(
    gateway_redis, superuser_client
):
    kept = superuser_client.post(URL, _rule_body("kept"), format="json")
    assert kept.status_code == 201, kept.content
    assert kept.json()["data"]["publication"] == "published"
    gone = superuser_client.post(URL, _rule_body("gone", P2), format="json").json()["data"]
    assert {r["id"] for r in _document(gateway_redis, P1)["rules"]} == {kept.json()["data"]["id"]}

    gateway_redis.stop()
    created = superuser_client.post(URL, _rule_body("new"), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["data"]["publication"] == "pending"
    # A client retrying the create (it may not have seen the answer) gets no second rule:
    # names are unique per project, so the retry is refused naming the field.
    retried = superuser_client.post(URL, _rule_body("new"), format="json")
    assert retried.status_code == 400
    assert "name" in retried.json()["error"]["details"]
    changed = superuser_client.patch(
        f"{URL}/{kept.json()['data']['id']}", {"status": "inactive"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["data"]["publication"] == "pending"
    deleted = superuser_client.delete(f"{URL}/{gone['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["data"] == {"id": gone["id"], "deleted": True, "publication": "pending"}

    assert set(BlockingRule.objects.values_list("name", flat=True)) == {"kept", "new"}
    assert BlockingRule.objects.get(name="kept").status == "inactive"
    listed = superuser_client.get(URL).json()["data"]["results"]
    assert {r["name"]: r["publication"] for r in listed} == {"kept": "pending", "new": "pending"}
    queued = list(BlockingRuleOutbox.objects.order_by("id"))
    assert [row.project_id for row in queued] == [P1, P1, P2]
    assert all(row.attempts >= 1 and "ConnectionError" in row.last_error for row in queued)

    gateway_redis.start()  # a fresh, empty Redis, as after a crash without persistence
    pubsub = _subscribe(gateway_redis)
    assert tasks.deliver_rule_publications.apply().get() == {"published": 3, "pending": 0}
    assert _messages(pubsub, 2) == [str(P1), str(P2)]  # in the order the changes were made
    new_id = created.json()["data"]["id"]
    assert [r["id"] for r in _document(gateway_redis, P1)["rules"]] == [new_id]
    assert _document(gateway_redis, P2) is None  # its only rule was deleted
    assert not BlockingRuleOutbox.objects.exists()
    assert superuser_client.get(f"{URL}/{new_id}").json()["data"]["publication"] == "published"
    # Delivering again is harmless: nothing is pending, nothing is rewritten.
    assert publishing.deliver_pending() == {"published": 0, "pending": 0}


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="blocking"))
    client.force_login(user)
    return client


def _admin_form(name: str) -> dict:
    return {
        "name": name,
        "description": "",
        "rule_type": "country_blocking",
        "status": "active",
        "reason": "",
        "priority": "100",
        "project_id": str(P1),
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


def test_admin_save_with_redis_stopped_is_pending_until_the_inprocess_job_delivers(
    gateway_redis, staff_client
):
    gateway_redis.stop()
    response = staff_client.post("/admin/blocking/blockingrule/add/", _admin_form("geo"))
    assert response.status_code == 302, response.content
    rule = BlockingRule.objects.get(name="geo")
    page = staff_client.get("/admin/blocking/blockingrule/").content.decode()
    assert "1 rule change not yet published to the gateway's Redis" in page
    assert '<td class="field-publication">pending</td>' in page

    gateway_redis.start()
    pubsub = _subscribe(gateway_redis)
    # The in-process schedule (make run), with only the publication retry due.
    others = {name: math.inf for name in BEAT_SCHEDULE if name != "deliver-rule-publications"}
    assert run_due_jobs(others, 0.0) == ["deliver-rule-publications"]
    assert _messages(pubsub, 1) == [str(P1)]
    assert [r["id"] for r in _document(gateway_redis, P1)["rules"]] == [str(rule.id)]
    page = staff_client.get(f"/admin/blocking/blockingrule/{rule.id}/change/").content.decode()
    assert "published" in page
    assert 'id="publication-banner"' not in page


def test_readyz_reports_a_publication_backlog_as_degraded(gateway_redis, client, settings):
    gateway_redis.stop()
    BlockingRule.objects.create(
        name="r", rule_type="country_blocking", rule_config={"countries": ["RU"]}, project_id=P1
    )
    fresh = client.get("/readyz").json()["data"]
    assert fresh["status"] == "ready"
    assert fresh["blocking_rules_publication"]["pending"] == 1
    settings.BLOCKING_PUBLICATION_MAX_LAG = 30
    BlockingRuleOutbox.objects.update(created_at=timezone.now() - timedelta(seconds=31))
    response = client.get("/readyz")
    assert response.status_code == 200  # this instance still serves; the backlog is reported
    report = response.json()["data"]
    assert report["status"] == "degraded"
    assert report["blocking_rules_publication"]["status"] == "degraded"
    assert report["blocking_rules_publication"]["oldest_pending_seconds"] >= 31


def test_without_publishing_configured_it_is_said_at_start_up_and_on_the_admin_pages(
    settings, staff_client, superuser_client, caplog
):
    settings.BLOCKING_RULES_REDIS_URL = ""
    with caplog.at_level(logging.WARNING):
        apps.get_app_config("blocking").ready()
    assert any(
        "blocking_rules_not_published" in str(record.msg) and record.levelno == logging.WARNING
        for record in caplog.records
    )
    assert [w.id for w in publishing_configured_check()] == ["blocking.W001"]
    created = superuser_client.post(URL, _rule_body("local"), format="json")
    assert created.status_code == 201
    assert created.json()["data"]["publication"] == "pending"
    for url in ("/admin/blocking/blockingrule/", "/admin/blocking/blockingrule/add/"):
        page = staff_client.get(url).content.decode()
        assert "Blocking rules are not published" in page, url
    assert publishing.deliver_pending() == {"published": 0, "pending": 1}
    settings.BLOCKING_RULES_REDIS_URL = "redis://127.0.0.1:6379/0"
    assert publishing_configured_check() == []
