from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from blocking import services


class Command(BaseCommand):
    help = "Mark active rules past expires_at as expired and republish their projects."

    def handle(self, *args: Any, **options: Any) -> None:
        expired = services.rules_expire_due()
        self.stdout.write(f"Expired {len(expired)} rule(s).")
