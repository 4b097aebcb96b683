"""Booleans and integers as ARM reads them: strictly by JSON type. DRF's own fields take
``0``, ``"true"`` and ``"yes"`` for booleans and ``"5"`` or ``5.0`` for integers; ARM answers
a mismatched JSON type with a 400, and so does Weir. Every serializer uses these (ruff bans
DRF's, see pyproject.toml)."""

from __future__ import annotations

from rest_framework import serializers

# The swagger's integers are int32 unless it says int64.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def json_type(value) -> str:
    """The JSON type of a parsed value, as a message names it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else type(value).__name__


class BooleanField(serializers.BooleanField):  # noqa: TID251 - the strict one
    default_error_messages = {"invalid": "Must be true or false, not {input_type}."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input_type=json_type(data))
        return data


class IntegerField(serializers.IntegerField):  # noqa: TID251 - the strict one
    """A JSON integer (no fraction, not a string), int32 unless ``int64``."""

    default_error_messages = {"invalid": "Must be an integer, not {input_type}."}

    def __init__(self, *, int64: bool = False, **kwargs):
        kwargs.setdefault("min_value", INT64_MIN if int64 else INT32_MIN)
        kwargs.setdefault("max_value", INT64_MAX if int64 else INT32_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", input_type=json_type(data))
        return data
