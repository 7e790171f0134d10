from django.urls import path  # noqa: F401 - geo endpoints are added by the geo issue

urlpatterns: list = []
