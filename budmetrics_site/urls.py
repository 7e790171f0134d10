from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from budmetrics_site import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/traffic/", include("console.urls")),  # before the admin's catch-all
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("gateway/", include("analytics.urls")),
    path("gateway/", include("analytics.routes_clients.urls")),
    path("gateway/", include("analytics.requests_log.urls")),
    path("gateway/", include("geo.urls")),
    path("gateway/", include("blocking.urls")),
]

handler400 = "budmetrics_site.errors.handler_400"
handler403 = "budmetrics_site.errors.handler_403"
handler404 = "budmetrics_site.errors.handler_404"
handler500 = "budmetrics_site.errors.handler_500"
