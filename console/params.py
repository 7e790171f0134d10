"""The params form of a saved query, described from each endpoint's own input serializer
(field kinds and allowed choices), so the admin's form offers exactly what the endpoint
accepts and the endpoint's serializer still has the last word when the query is saved."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from analytics.endpoints import ENDPOINTS
from analytics.fields import JsonBooleanField, UUIDListField, WholeNumberField

Field = dict[str, Any]


def field_schema(name: str, field: serializers.Field) -> Field:
    """One input: ``kind`` (choice, multi, int, bool, uuids, json, text), its choices and
    help text."""
    described: Field = {"name": name, "help": str(field.help_text or "")}
    child = getattr(field, "child", None)
    if isinstance(field, serializers.ListField) and isinstance(child, serializers.ChoiceField):
        return {**described, "kind": "multi", "choices": list(child.choices)}
    if isinstance(field, serializers.ChoiceField):
        return {**described, "kind": "choice", "choices": list(field.choices)}
    if isinstance(field, UUIDListField):
        return {**described, "kind": "uuids"}
    if isinstance(field, JsonBooleanField | serializers.BooleanField):
        return {**described, "kind": "bool"}
    if isinstance(field, WholeNumberField | serializers.IntegerField):
        return {**described, "kind": "int"}
    if isinstance(field, serializers.JSONField):
        return {**described, "kind": "json"}
    return {**described, "kind": "text"}


def params_schema() -> dict[str, list[Field]]:
    """Every endpoint's inputs, in its serializer's order."""
    return {
        name: [field_schema(key, f) for key, f in endpoint.input_serializer().fields.items()]
        for name, endpoint in ENDPOINTS.items()
    }
