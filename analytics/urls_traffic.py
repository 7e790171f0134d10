from django.urls import path

from analytics import traffic_views

urlpatterns = [
    path("top-routes", traffic_views.TopRoutesView.as_view(), name="gateway-top-routes"),
    path(
        "client-analytics",
        traffic_views.ClientAnalyticsView.as_view(),
        name="gateway-client-analytics",
    ),
]
