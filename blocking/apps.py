from django.apps import AppConfig


class BlockingConfig(AppConfig):
    name = "blocking"
    verbose_name = "Blocking rules"

    def ready(self) -> None:
        from blocking import services  # noqa: F401 - connects the publishing signals
