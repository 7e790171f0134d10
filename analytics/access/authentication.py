"""``Authorization: Bearer <key>`` / ``X-API-Key: <key>`` authentication, and the OpenAPI
security scheme that documents it (drf-spectacular finds the extension when this module is
imported, which ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` does)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from analytics.access.models import ApiClient
from analytics.access.principals import ApiClientPrincipal


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No key → next class
    (session); a wrong or revoked key → 401, never a silent anonymous request."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClientPrincipal, ApiClient] | None:
        key = self._key_from(request)
        if key is None:
            return None
        client = ApiClient.from_key(key)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        client.touch()
        return ApiClientPrincipal(client), client

    def _key_from(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == self.keyword.lower():
                value = value.strip()
                if not value or " " in value:
                    raise exceptions.AuthenticationFailed(
                        "Malformed Authorization header; expected 'Bearer <key>'."
                    )
                return value
        key = request.META.get("HTTP_X_API_KEY", "").strip()
        return key or None

    def authenticate_header(self, request: Request) -> str:
        # Present, so DRF answers unauthenticated requests with 401 instead of 403.
        return f'{self.keyword} realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the two ways to send a key (either one: OR)."""

    target_class = ApiKeyAuthentication
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "Authorization: Bearer <API key> (keys are issued in the admin).",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
