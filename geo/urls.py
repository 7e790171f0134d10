from django.urls import path

from geo import views

urlpatterns = [
    path("geographical-stats", views.GeoStatsView.as_view(), name="gateway-geographical-stats"),
]
