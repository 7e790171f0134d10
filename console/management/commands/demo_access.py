"""``manage.py demo_access``: a staff login and an API key for the demo projects, printed
once, so a first run (``make run``) can look at its data in the console and over the API
at once. Each run sets a new random password and a new key; nothing is fixed."""

from __future__ import annotations

import json
import secrets
import shlex
import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from analytics.access.models import ApiClient, ProjectAccess
from analytics.demo.generator import project_layout

DEMO_USER = "demo-staff"
DEMO_CLIENT = "demo-api-key"


def demo_projects(seed: int, projects: int) -> list[str]:
    """The project ids ``generate_traffic --seed --projects`` writes (deterministic)."""
    return project_layout(seed, projects).project_ids


@transaction.atomic
def demo_access(projects: list[str]) -> tuple[str, str, str]:
    """(username, new password, new API key): the demo staff user (console permission,
    access to ``projects``) and the demo API client (the same projects), created or reset."""
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=DEMO_USER)
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    user.is_staff = True
    user.is_active = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="view_traffic_console"))
    client = ApiClient.objects.filter(name=DEMO_CLIENT).first()
    if client is None:
        client, key = ApiClient.create_with_key(DEMO_CLIENT)
    else:
        key = client.set_new_key()
        client.is_active = True
        client.save()
    for project in projects:
        project_id = uuid.UUID(project)
        ProjectAccess.objects.get_or_create(user=user, project_id=project_id)
        ProjectAccess.objects.get_or_create(api_client=client, project_id=project_id)
    return user.get_username(), password, key


class Command(BaseCommand):
    help = (
        "Create (or reset) a demo staff login and a demo API key that read the demo "
        "projects, and print them once with copy-paste API calls."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--projects", type=int, default=3, help="as generate_traffic")
        parser.add_argument("--seed", type=int, default=42, help="as generate_traffic")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="where the server listens"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        projects = demo_projects(options["seed"], options["projects"])
        username, password, key = demo_access(projects)
        base = options["base_url"].rstrip("/")
        out = self.stdout.write
        out("Demo projects: " + " ".join(projects))
        out(f"Console: {base}/admin/traffic/  user {username}  password {password}")
        out(f"API key (shown only now): {key}")
        out("Try it (times relative to now):")
        body = json.dumps(
            {
                "project_ids": [projects[0]],
                "start_time": "$START",
                "end_time": "$END",
                "time_bucket": "1h",
                "metrics": ["total_requests", "error_rate", "p95_response_time"],
            }
        ).replace('"', '\\"')  # inside a double-quoted shell word, so $START expands
        iso = "+%Y-%m-%dT%H:%M:%SZ"
        out(f"  START=$(date -u -d '-24 hours' {iso}) END=$(date -u {iso})")
        auth = shlex.quote(f"Authorization: Bearer {key}")
        out(
            f"  curl -s {base}/gateway/analytics -H {auth} "
            f'-H "Content-Type: application/json" -d "{body}"'
        )
        out(f"  curl -s '{base}/gateway/dashboards/overview?project_id={projects[0]}' -H {auth}")
        out(f"  curl -s '{base}/gateway/top-routes?limit=5' -H {auth}")
