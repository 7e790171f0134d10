from django.urls import path

from analytics import views

urlpatterns = [
    path("analytics", views.AnalyticsView.as_view(), name="gateway-analytics"),
    path("analytics/schema", views.AnalyticsSchemaView.as_view(), name="gateway-analytics-schema"),
]
