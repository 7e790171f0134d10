from django.urls import path

from analytics.requests_log import views

urlpatterns = [
    path("requests", views.RequestLogView.as_view(), name="gateway-requests"),
    path(
        "requests/<uuid:request_id>",
        views.RequestDetailView.as_view(),
        name="gateway-request-detail",
    ),
]
