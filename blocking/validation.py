"""Per-type ``rule_config`` validation, shared by the model (admin forms) and the API.

One spelling per key, unknown keys rejected: in the original system the writer and the
gateway disagreed on config keys and rules silently did nothing, so a typo must fail
loudly here. Every validator returns the normalised config that is stored and published.

| rule_type             | config                                                          |
|-----------------------|-----------------------------------------------------------------|
| ip_blocking           | {"ip_addresses": ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"]} |
| country_blocking      | {"countries": ["RU", "KP"]}  (ISO 3166-1 alpha-2, upper case)   |
| user_agent_blocking   | {"patterns": ["curl/", "^python-"], "match_type": "substring"|"regex"} |
| rate_based_blocking   | {"threshold": 100, "window_seconds": 60}                        |
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pycountry
from django.core.exceptions import ValidationError

from analytics.fields import json_text, parse_whole_number
from analytics.query.regex import MAX_PATTERN_LENGTH, regex_problem

IP_BLOCKING = "ip_blocking"
COUNTRY_BLOCKING = "country_blocking"
USER_AGENT_BLOCKING = "user_agent_blocking"
RATE_BASED_BLOCKING = "rate_based_blocking"

RULE_TYPES = (IP_BLOCKING, COUNTRY_BLOCKING, USER_AGENT_BLOCKING, RATE_BASED_BLOCKING)
MATCH_TYPES = ("substring", "regex")
MAX_ITEMS = 10_000
MAX_WINDOW_SECONDS = 7 * 24 * 3600


class ConfigErrors:
    """Collects messages per config key so a form can show each one by its field."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        self.by_key.setdefault(key, []).append(message)

    def raise_if_any(self) -> None:
        if self.by_key:
            raise ValidationError({key: msgs for key, msgs in self.by_key.items()})


def _check_keys(
    config: dict[str, Any], required: set[str], optional: set[str], errors: ConfigErrors
) -> None:
    for key in sorted(set(config) - required - optional):
        allowed = ", ".join(sorted(required | optional))
        errors.add(key, f"Unknown key {json_text(key)}; allowed keys: {allowed}.")
    for key in sorted(required - set(config)):
        errors.add(key, "This key is required.")


def _string_list(config: dict[str, Any], key: str, errors: ConfigErrors) -> list[str] | None:
    value = config.get(key)
    if key not in config:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.add(key, "Must be a list of strings.")
        return None
    if not value:
        errors.add(key, "Must contain at least one entry.")
        return None
    if len(value) > MAX_ITEMS:
        errors.add(key, f"At most {MAX_ITEMS} entries are allowed, got {len(value)}.")
        return None
    return [v.strip() for v in value]


def _validate_ip(config: dict[str, Any]) -> dict[str, Any]:
    errors = ConfigErrors()
    _check_keys(config, {"ip_addresses"}, set(), errors)
    items = _string_list(config, "ip_addresses", errors)
    normalised: list[str] = []
    for item in items or []:
        try:
            if "/" in item:
                try:
                    network = ipaddress.ip_network(item, strict=True)
                except ValueError as exc:
                    if "host bits set" in str(exc):
                        loose = ipaddress.ip_network(item, strict=False)
                        errors.add(
                            "ip_addresses",
                            f"{json_text(item)} has host bits set; "
                            f"did you mean {loose.with_prefixlen}?",
                        )
                        continue
                    raise
                normalised.append(network.with_prefixlen)
            else:
                normalised.append(str(ipaddress.ip_address(item)))
        except ValueError:
            errors.add(
                "ip_addresses", f"{json_text(item)} is not an IPv4/IPv6 address or CIDR range."
            )
    errors.raise_if_any()
    return {"ip_addresses": list(dict.fromkeys(normalised))}


def _validate_country(config: dict[str, Any]) -> dict[str, Any]:
    errors = ConfigErrors()
    _check_keys(config, {"countries"}, set(), errors)
    items = _string_list(config, "countries", errors)
    normalised: list[str] = []
    for item in items or []:
        code = item.upper()
        if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
            errors.add("countries", f"{json_text(item)} is not an ISO 3166-1 alpha-2 country code.")
        else:
            normalised.append(code)
    errors.raise_if_any()
    return {"countries": sorted(set(normalised))}


def _validate_user_agent(config: dict[str, Any]) -> dict[str, Any]:
    errors = ConfigErrors()
    _check_keys(config, {"patterns"}, {"match_type"}, errors)
    match_type = config.get("match_type", "substring")
    if match_type not in MATCH_TYPES:
        allowed = ", ".join(MATCH_TYPES)
        errors.add("match_type", f"Must be one of {allowed}, got {json_text(match_type)}.")
    raw = config.get("patterns")
    items = _string_list(config, "patterns", errors)
    patterns: list[str] = []
    for index, _stripped in enumerate(items or []):
        original = raw[index]
        if not original.strip():
            errors.add("patterns", f"Pattern {index + 1} is empty.")
            continue
        if len(original) > MAX_PATTERN_LENGTH:
            errors.add("patterns", f"Pattern {index + 1} is longer than {MAX_PATTERN_LENGTH}.")
            continue
        if match_type == "regex":
            # Checked with RE2 as ClickHouse runs it (blocking stats match these patterns
            # there; the gateway's engine is RE2-style too).
            problem = regex_problem(original)
            if problem is not None:
                errors.add("patterns", f"Pattern {original!r} is not a valid regex: {problem}.")
                continue
        # Substrings keep their spaces: " bot " is a legitimate pattern.
        patterns.append(original)
    errors.raise_if_any()
    return {"patterns": list(dict.fromkeys(patterns)), "match_type": match_type}


def _positive_int(
    config: dict[str, Any], key: str, maximum: int | None, errors: ConfigErrors
) -> int:
    if key not in config:
        return 0
    value = parse_whole_number(config[key])
    if value is None:
        errors.add(key, f"Must be a whole number greater than 0, got {json_text(config[key])}.")
        return 0
    if value <= 0:
        errors.add(key, f"Must be greater than 0, got {value}.")
    elif maximum is not None and value > maximum:
        errors.add(key, f"Must be at most {maximum}, got {value}.")
    return value


def _validate_rate(config: dict[str, Any]) -> dict[str, Any]:
    errors = ConfigErrors()
    _check_keys(config, {"threshold", "window_seconds"}, set(), errors)
    threshold = _positive_int(config, "threshold", None, errors)
    window = _positive_int(config, "window_seconds", MAX_WINDOW_SECONDS, errors)
    errors.raise_if_any()
    return {"threshold": threshold, "window_seconds": window}


VALIDATORS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    IP_BLOCKING: _validate_ip,
    COUNTRY_BLOCKING: _validate_country,
    USER_AGENT_BLOCKING: _validate_user_agent,
    RATE_BASED_BLOCKING: _validate_rate,
}


def validate_rule_config(rule_type: str, config: Any) -> dict[str, Any]:
    """The normalised config for ``rule_type``, or ``ValidationError`` whose
    ``message_dict`` maps each config key to its problems."""
    if rule_type not in VALIDATORS:
        raise ValidationError({"rule_type": [f"Must be one of {', '.join(RULE_TYPES)}."]})
    if not isinstance(config, dict):
        raise ValidationError({"rule_config": ["Must be a JSON object."]})
    return VALIDATORS[rule_type](config)
