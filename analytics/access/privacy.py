"""Client IPs in responses: masked to their network when ``ANONYMIZE_IPS`` is on. Every
endpoint that returns an IP passes it through ``present_ip``."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def mask_ip(value: str) -> str:
    """IPv4 → last octet 0 (``203.0.113.7`` → ``203.0.113.0``); IPv6 → its /48
    (``2001:db8:1:2::5`` → ``2001:db8:1::``). Anything else is returned unchanged."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return value
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def present_ip(value: str | None) -> str | None:
    """An IP for a response: null when unknown, masked when ``ANONYMIZE_IPS`` is on.
    Every endpoint that returns client IPs passes them through here."""
    if not value:
        return None
    return mask_ip(value) if settings.ANONYMIZE_IPS else value
