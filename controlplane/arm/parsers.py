"""Request input every view may trust: JSON bodies nested no deeper than ARM's services read,
and body and URL text that Postgres can store."""

from __future__ import annotations

import re

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

# DRF's own exceptions, not arm.errors: the exception handler answers them as ARM errors
# (ValidationError, InvalidRequestContent), and arm.errors imports rest_framework.views,
# whose APIView imports this parser from the settings.

# Containers ({} or []) inside each other, the outermost counted: 64 is where the JSON readers
# of ARM's .NET services stop (System.Text.Json's and Json.NET's default MaxDepth).
MAX_DEPTH = 64

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


def too_deep() -> ParseError:
    return ParseError(f"The request body nests objects and arrays deeper than {MAX_DEPTH} levels.")


def check_document(document) -> None:
    """A parsed JSON body nests at most MAX_DEPTH deep, and every object key and string in it
    passes ``check_text``, named by its path (``tags``, ``properties.properties.k``, ``x[0]``).
    Walked with a list, not recursion: the depth is what is being checked."""
    pending = [(document, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if isinstance(value, str):
            check_text(value, path or None)
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise too_deep()
        if isinstance(value, dict):
            for key, item in value.items():
                check_text(key, path or None, what="A key")
                pending.append((item, f"{path}.{key}" if path else key, depth + 1))
        else:
            pending.extend(
                (item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)
            )


class ArmJSONParser(JSONParser):
    """DRF's JSON parser, refusing deep nesting and what Postgres cannot store before any view
    reads the body."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # Python's decoder recurses per level and gives up near its recursion limit
            # (about a thousand levels); shallower documents are measured below.
            raise too_deep() from None
        check_document(document)
        return document


class JsonPatchMediaTypeParser(ArmJSONParser):
    """The same JSON, sent as ``application/json-patch+json``: SDK v1's generated clients
    label every body so (an artifact batch is a plain JSON object all the same)."""

    media_type = "application/json-patch+json"
