from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Gateway analytics"

    def ready(self) -> None:
        from django.conf import settings

        if settings.INPROCESS_JOBS:
            from budmetrics_site.jobs import start_inprocess_scheduler

            start_inprocess_scheduler()
