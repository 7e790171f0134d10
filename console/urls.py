"""``/admin/traffic/``: the console pages and the data view their charts read."""

from django.urls import path, register_converter

from analytics.endpoints import ENDPOINTS
from console import views


class _Choice:
    def __init__(self, choices: list[str]) -> None:
        self.regex = "|".join(choices)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class PageConverter(_Choice):
    def __init__(self) -> None:
        super().__init__(list(views.PAGES))


class EndpointConverter(_Choice):
    def __init__(self) -> None:
        super().__init__(list(ENDPOINTS))


register_converter(PageConverter, "console_page")
register_converter(EndpointConverter, "console_endpoint")

app_name = "console"
urlpatterns = [
    path("", views.page, name="overview"),
    path("<console_page:name>/", views.page, name="page"),
    path("data/<console_endpoint:endpoint>/", views.ConsoleDataView.as_view(), name="data"),
]
