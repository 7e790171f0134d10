"""Query parameters and response shapes of ``GET /gateway/geographical-stats``."""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from analytics.fields import (
    JsonBooleanField,
    StorageMetaSerializer,
    StrictCharField,
    StrictChoiceField,
    WholeNumberField,
    choice_error,
)
from analytics.window import WindowQuerySerializer
from geo.queries import GEO_ORDER_COLUMNS

GEO_ORDER_BY = tuple(GEO_ORDER_COLUMNS)
_COUNTRY_CODE = re.compile(r"[A-Za-z]{2}")


class GeoStatsQuerySerializer(WindowQuerySerializer):
    limit = WholeNumberField(
        required=False,
        default=50,
        min_value=1,
        max_value=1000,
        help_text="Entries per list (countries, regions, cities).",
    )
    order_by = StrictChoiceField(
        choices=GEO_ORDER_BY,
        required=False,
        default="requests",
        error_messages=choice_error("order_by"),
        help_text="Rank each list by this, highest first.",
    )
    country_code = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=2,
        help_text="ISO 3166-1 alpha-2 code: only this country's requests (drill into its "
        "regions and cities).",
    )

    exact = JsonBooleanField(
        required=False,
        default=False,
        help_text="true: answer from raw rows only, never from the geo_15m rollup (slower; "
        "exact p95_response_time and unique_users). data.meta.source says which storage "
        "answered, data.meta.approximate which values came from a sketch.",
    )

    def validate_country_code(self, value: str) -> str:
        if value and not _COUNTRY_CODE.fullmatch(value):
            raise serializers.ValidationError(
                "Must be an ISO 3166-1 alpha-2 country code such as US or DE."
            )
        return value.upper()


_NULLABLE_CODE = "ISO 3166-1 alpha-2; null for the Unknown entry (requests without geo data)."


class _GeoMetricsSerializer(serializers.Serializer):
    request_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    error_rate = serializers.FloatField(help_text="error_count / request_count, 0..1.")
    avg_response_time = serializers.FloatField(help_text="ms")
    p95_response_time = serializers.IntegerField(
        help_text="ms; exact from raw rows, from the rollup within the bound of "
        "response_time_percentiles in data.meta.approximate."
    )
    total_tokens = serializers.IntegerField()
    unique_users = serializers.IntegerField(
        help_text="Distinct non-empty client_id values; exact from raw rows, from the rollup "
        "within the bound of unique_users_sketch in data.meta.approximate (1%)."
    )
    percent = serializers.FloatField(help_text="Share of all matching requests, 0..1.")


class CountryStatsSerializer(_GeoMetricsSerializer):
    country_code = serializers.CharField(allow_null=True, help_text=_NULLABLE_CODE)
    country_name = serializers.CharField(help_text="From ISO 3166 (pycountry); or Unknown.")


class RegionStatsSerializer(CountryStatsSerializer):
    region = serializers.CharField(help_text="As recorded by the gateway; Unknown if empty.")
    region_name = serializers.CharField(help_text="ISO 3166-2 name when region is a code.")


class CityStatsSerializer(CountryStatsSerializer):
    region = serializers.CharField(help_text="As recorded by the gateway; Unknown if empty.")
    city = serializers.CharField(help_text="As recorded by the gateway; Unknown if empty.")
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)


class GeoSummarySerializer(serializers.Serializer):
    total_countries = serializers.IntegerField(help_text="Known countries (not Unknown).")
    total_regions = serializers.IntegerField(help_text="Known regions (not Unknown).")
    total_cities = serializers.IntegerField(help_text="Known cities (not Unknown).")
    total_requests = serializers.IntegerField(help_text="Every matching request.")
    unknown_requests = serializers.IntegerField(help_text="Requests without a country.")


class GeoStatsDataSerializer(serializers.Serializer):
    countries = CountryStatsSerializer(many=True)
    regions = RegionStatsSerializer(many=True)
    cities = CityStatsSerializer(many=True)
    summary = GeoSummarySerializer()
    meta = StorageMetaSerializer()


class GeoStatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = GeoStatsDataSerializer()


def example_response() -> dict[str, Any]:
    metrics = {
        "request_count": 10000,
        "error_count": 200,
        "error_rate": 0.02,
        "avg_response_time": 250.5,
        "p95_response_time": 610,
        "total_tokens": 500000,
        "unique_users": 42,
        "percent": 0.2,
    }
    us = {"country_code": "US", "country_name": "United States"}
    return {
        "success": True,
        "data": {
            "countries": [{**us, **metrics}],
            "regions": [{**us, "region": "CA", "region_name": "California", **metrics}],
            "cities": [
                {
                    **us,
                    "region": "CA",
                    "city": "San Francisco",
                    "latitude": 37.7749,
                    "longitude": -122.4194,
                    **metrics,
                }
            ],
            "summary": {
                "total_countries": 45,
                "total_regions": 310,
                "total_cities": 1200,
                "total_requests": 50000,
                "unknown_requests": 120,
            },
        },
    }
