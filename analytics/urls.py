from django.urls import path  # noqa: F401 - endpoints are added by the analytics issues

urlpatterns: list = []
