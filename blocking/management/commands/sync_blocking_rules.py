from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from blocking import publishing, services


class Command(BaseCommand):
    help = "Expire due rules, then republish every project's enforced blocking rules to Redis."

    def handle(self, *args: Any, **options: Any) -> None:
        if publishing.redis_connection() is None:
            raise CommandError(
                "Neither BLOCKING_RULES_REDIS_URL nor REDIS_URL is set; there is nowhere to "
                "publish rules."
            )
        expired = services.rules_expire_due()
        result = publishing.publish_all()
        self.stdout.write(
            f"Published global rules and {result['projects']} project key(s); "
            f"expired {len(expired)} rule(s)."
        )
