from django.urls import path
from rest_framework.routers import SimpleRouter

from blocking import views

router = SimpleRouter(trailing_slash=False)
router.register("blocking-rules", views.BlockingRuleViewSet, basename="blocking-rule")

urlpatterns = [
    path("blocking-stats", views.BlockingStatsView.as_view(), name="blocking-stats"),
    *router.urls,
]
