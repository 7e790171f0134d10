from django.urls import path  # noqa: F401 - top routes / client analytics endpoints

urlpatterns: list = []
