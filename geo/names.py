"""Country and region names from pycountry (ISO 3166), never hand-written tables."""

from __future__ import annotations

from functools import lru_cache

import pycountry

UNKNOWN = "Unknown"


@lru_cache(maxsize=1024)
def country_name(code: str) -> str:
    """The common English name of an ISO 3166-1 alpha-2 code ("Taiwan", not "Taiwan,
    Province of China"); ``Unknown`` for no code; the code itself when ISO does not know it
    (gateways use a few private codes such as XK)."""
    if not code:
        return UNKNOWN
    country = pycountry.countries.get(alpha_2=code.upper())
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name


@lru_cache(maxsize=8192)
def region_name(country_code: str, region: str) -> str:
    """The name of an ISO 3166-2 subdivision code (``CA`` in ``US`` → California); a
    region the gateway already stored as a name is returned as it is."""
    if not region:
        return UNKNOWN
    if country_code and len(region) <= 3:
        subdivision = pycountry.subdivisions.get(code=f"{country_code.upper()}-{region.upper()}")
        if subdivision is not None:
            return subdivision.name
    return region
