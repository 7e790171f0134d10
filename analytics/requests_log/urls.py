from django.urls import path

from analytics.requests_log import views

urlpatterns = [
    path("requests", views.RequestLogView.as_view(), name="gateway-requests"),
    path(
        "requests/<uuid:request_id>",
        views.RequestDetailView.as_view(),
        name="gateway-request-detail",
    ),
    path("exports", views.ExportListView.as_view(), name="gateway-exports"),
    path("exports/<uuid:id>", views.ExportDetailView.as_view(), name="gateway-export"),
    path(
        "exports/<uuid:id>/download",
        views.ExportDownloadView.as_view(),
        name="gateway-export-download",
    ),
]
