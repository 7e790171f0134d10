"""The console's permission. ``TrafficConsole`` has no table (``managed = False``): it
exists so the permission ``console.view_traffic_console`` has a home, and so the admin
index lists a "Traffic" entry for the staff who hold it."""

from __future__ import annotations

from django.db import models

PERMISSION = "console.view_traffic_console"


class TrafficConsole(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_traffic_console", "Can view the traffic console")]
        verbose_name = "Traffic"
        verbose_name_plural = "Traffic"

    def __str__(self) -> str:
        return "Traffic console"
