from django.urls import path  # noqa: F401 - blocking endpoints are added by the blocking issue

urlpatterns: list = []
