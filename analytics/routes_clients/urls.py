from django.urls import path

from analytics.routes_clients import views

urlpatterns = [
    path("top-routes", views.TopRoutesView.as_view(), name="gateway-top-routes"),
    path(
        "client-analytics",
        views.ClientAnalyticsView.as_view(),
        name="gateway-client-analytics",
    ),
]
