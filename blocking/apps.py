from typing import Any

from django.apps import AppConfig
from django.core import checks


class BlockingConfig(AppConfig):
    name = "blocking"
    verbose_name = "Blocking rules"

    def ready(self) -> None:
        from blocking import services  # noqa: F401 - connects the publishing signals

        checks.register(publishing_configured_check, checks.Tags.compatibility)
        _warn_when_not_published()


def _warn_when_not_published() -> None:
    """Said loudly once at start-up (``make run`` has no Redis): rules edited here would
    otherwise silently never reach the gateway."""
    from blocking import publishing

    if not publishing.publishing_configured():
        import structlog

        structlog.get_logger("blocking").warning(
            "blocking_rules_not_published", problem=publishing.NOT_CONFIGURED
        )


def publishing_configured_check(app_configs: Any = None, **kwargs: Any) -> list[checks.Warning]:
    """The same warning in ``manage.py check`` / ``runserver``'s system check output."""
    from blocking import publishing

    if publishing.publishing_configured():
        return []
    return [
        checks.Warning(
            "Blocking rules are not published to the gateway.",
            hint="Set REDIS_URL (or BLOCKING_RULES_REDIS_URL) to the Redis the gateway reads; "
            "until then rule changes are stored and stay pending.",
            id="blocking.W001",
        )
    ]
