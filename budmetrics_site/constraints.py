"""Constraint errors that say what to change: Django reports a violated check constraint as
'Constraint "name" is violated.', which tells staff nothing about the form in front of
them. Models name, per constraint, a message in the admin form's own terms."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import router


def validate_constraints_readably(
    instance: Any, exclude: Collection[str] | None, messages: Mapping[str, str]
) -> None:
    """``Model.validate_constraints`` with the error of each constraint named in
    ``messages`` replaced by that message (a non-field error: the constraint spans
    several fields, and not every form shows all of them)."""
    using = router.db_for_write(type(instance), instance=instance)
    errors: dict[str, list[ValidationError]] = {}
    for model_class, constraints in instance.get_constraints():
        for constraint in constraints:
            try:
                constraint.validate(model_class, instance, exclude=exclude, using=using)
            except ValidationError as violated:
                readable = messages.get(constraint.name)
                error = violated if readable is None else ValidationError(readable)
                errors = error.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)
