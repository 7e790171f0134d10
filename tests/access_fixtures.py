"""Authenticated API clients for tests (pytest plugin: ``pytest_plugins =
["tests.access_fixtures"]``). Real users, real hashed keys, real access rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from analytics.access.models import ApiClient, ProjectAccess


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def superuser(django_user_model: Any, db: None) -> Any:
    return django_user_model.objects.create_superuser(
        username=f"root-{uuid.uuid4().hex[:8]}", email="root@example.com", password="pw"
    )


@pytest.fixture
def superuser_client(superuser: Any) -> APIClient:
    """Session-authenticated as a superuser (reads every project)."""
    client = APIClient()
    client.force_login(superuser)
    client.user = superuser
    return client


@pytest.fixture
def api_client_factory(db: None) -> Callable[..., APIClient]:
    """``api_client_factory(["<project uuid>", ...], **api_client_fields)`` → an APIClient
    sending a real key (``Authorization: Bearer``) of a new ApiClient that may read exactly
    those projects. The ApiClient and key are on ``.api_client`` and ``.api_key``."""

    def make(project_ids: Sequence[str | uuid.UUID] = (), **fields: Any) -> APIClient:
        fields.setdefault("name", f"client-{uuid.uuid4().hex[:10]}")
        record, key = ApiClient.create_with_key(**fields)
        ProjectAccess.objects.bulk_create(
            ProjectAccess(api_client=record, project_id=uuid.UUID(str(p))) for p in project_ids
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        client.api_client = record
        client.api_key = key
        return client

    return make


@pytest.fixture
def user_client_factory(django_user_model: Any, db: None) -> Callable[..., APIClient]:
    """``user_client_factory(["<project uuid>"], is_staff=False)`` → session-authenticated
    APIClient for a new non-superuser with access to those projects (``.user``)."""

    def make(project_ids: Sequence[str | uuid.UUID] = (), **fields: Any) -> APIClient:
        user = django_user_model.objects.create_user(
            username=f"user-{uuid.uuid4().hex[:8]}", password="pw", **fields
        )
        ProjectAccess.objects.bulk_create(
            ProjectAccess(user=user, project_id=uuid.UUID(str(p))) for p in project_ids
        )
        client = APIClient()
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture(autouse=True)
def _isolated_blocking_rules_prefix(settings: Any) -> Any:
    """Rules saved in a test publish under a prefix of their own, so test runs never
    touch the real ``budmetrics:blocking_rules:*`` keys or each other's; removed after."""
    prefix = f"budmetrics-test:{uuid.uuid4().hex}:blocking_rules"
    settings.BLOCKING_RULES_KEY_PREFIX = prefix
    yield prefix
    if django_settings.REDIS_URL:
        from django_redis import get_redis_connection
        from redis.exceptions import ConnectionError as RedisConnectionError

        try:
            connection = get_redis_connection("default")
            for key in connection.scan_iter(match=f"{prefix}:*"):
                connection.delete(key)
        except RedisConnectionError:
            pass  # a test pointed the cache at a dead Redis; nothing was published there
