"""Who may open the console, and which projects its picker offers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from django.conf import settings
from rest_framework.exceptions import APIException

from analytics.access.scope import access_list, reads_all_projects
from analytics.endpoints import ENDPOINTS, answer_audited
from console.models import PERMISSION

logger = structlog.get_logger(__name__)


def may_use_console(user: Any) -> bool:
    """Active staff holding ``console.view_traffic_console`` (superusers hold every one)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PERMISSION)
    )


def picker_projects(user: Any) -> list[str]:
    """The projects the picker offers: the user's access list; for a superuser, also every
    project with traffic in the longest range a query may ask for. That list is asked of
    the analytics endpoint as the user (grouped by project), so the console reads no data
    the endpoint would not give the same user."""
    projects = {str(p) for p in access_list(user)}
    if reads_all_projects(user):
        end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        params = {
            "start_time": (end - timedelta(days=settings.MAX_QUERY_TIME_RANGE)).isoformat(),
            "end_time": end.isoformat(),
            "metrics": ["total_requests"],
            "group_by": ["project_id"],
            "time_bucket": "1w",
            "fill_gaps": False,
        }
        try:
            body = answer_audited(ENDPOINTS["analytics"], params, user).payload
        except APIException as exc:  # the page still opens; its charts show the error
            logger.warning("console_project_list_failed", error=str(exc.detail)[:200])
            return sorted(projects)
        for point in orjson.loads(body)["data"]["time_series"]:
            project = point["groups"].get("project_id")
            if project and project != str(uuid.UUID(int=0)):
                projects.add(project)
    return sorted(projects)
