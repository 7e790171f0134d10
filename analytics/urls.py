from django.urls import path
from rest_framework.routers import SimpleRouter

from analytics import dashboard_views, saved_query_views, views

router = SimpleRouter(trailing_slash=False)
router.register("saved-queries", saved_query_views.SavedQueryViewSet, basename="saved-query")

urlpatterns = [
    path("analytics", views.AnalyticsView.as_view(), name="gateway-analytics"),
    path("analytics/schema", views.AnalyticsSchemaView.as_view(), name="gateway-analytics-schema"),
    path("dashboards", dashboard_views.DashboardListView.as_view(), name="dashboards"),
    path("dashboards/<str:view>", dashboard_views.DashboardView.as_view(), name="dashboard-view"),
    *router.urls,
]
