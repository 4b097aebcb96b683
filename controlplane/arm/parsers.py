"""Request input every view may trust: JSON bodies and URL text that Postgres can store."""

from __future__ import annotations

import re

from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser

# DRF's own exception, not arm.errors: the exception handler answers it as an ARM error
# (ValidationError), and arm.errors imports rest_framework.views, whose APIView imports this
# parser from the settings.

# Postgres text and jsonb hold no NUL character, and a lone UTF-16 surrogate is not a
# character at all (it cannot be encoded as UTF-8); JSON's \u escapes can carry both.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def check_text(text: str, target: str | None, what: str = "The value") -> None:
    """Refuse ``text`` with a 400 naming ``target`` when Postgres could not store it."""
    found = UNSTORABLE.search(text)
    if found is None:
        return
    character = found.group()
    kind = "a NUL character" if character == "\x00" else "a lone surrogate"
    where = f"{what} of '{target}'" if target else what
    message = f"{where} contains {kind} (U+{ord(character):04X}), which is not allowed."
    raise ValidationError({target: [message]} if target else [message])


def check_document(document) -> None:
    """Every object key and string in a parsed JSON body, checked by ``check_text``; each is
    named by its path (``tags``, ``properties.properties.k``, ``x[0]``)."""
    pending = [(document, "")]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            check_text(value, path or None)
        elif isinstance(value, dict):
            for key, item in value.items():
                check_text(key, path or None, what="A key")
                pending.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]") for index, item in enumerate(value))


class ArmJSONParser(JSONParser):
    """DRF's JSON parser, refusing what Postgres cannot store before any view reads it."""

    def parse(self, stream, media_type=None, parser_context=None):
        document = super().parse(stream, media_type, parser_context)
        check_document(document)
        return document
