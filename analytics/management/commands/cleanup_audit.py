from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from analytics.access.audit import audit_cleanup


class Command(BaseCommand):
    help = "Delete query audit rows older than AUDIT_RETENTION_DAYS."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = audit_cleanup()
        self.stdout.write(
            f"Deleted {deleted} audit row(s) older than {settings.AUDIT_RETENTION_DAYS} days."
        )
