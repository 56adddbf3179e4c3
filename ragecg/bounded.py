"""JSON from outside the process (a `ragecg serve` client, an LLM server's answer), parsed with a size
and a nesting-depth limit: deeply nested input makes `json.loads` and everything that walks the
result (jsonschema) recurse until RecursionError, which would end the server or the command.
"""
from __future__ import annotations

import json

MAX_JSON_DEPTH = 64           # ragecg's own messages nest 4-6 levels; an LLM answer 3-4


class JsonLimitError(ValueError):
    """The text is too long, too deeply nested or not JSON (a ValueError, as json.loads raises)."""


def depth(obj) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, `[]` is 1), computed without recursion."""
    deepest, stack = 0, [(obj, 0)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, d + 1) for v in value.values())
            deepest = max(deepest, d + 1)
        elif isinstance(value, list):
            stack.extend((v, d + 1) for v in value)
            deepest = max(deepest, d + 1)
    return deepest


def loads(text: str | bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH):
    """`json.loads` with limits: JsonLimitError (a ValueError) when `text` is longer than `max_bytes`,
    nested deeper than `max_depth` or not JSON."""
    if len(text) > max_bytes:
        raise JsonLimitError(f"JSON text longer than {max_bytes} bytes")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise JsonLimitError(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JsonLimitError(f"not JSON ({type(exc).__name__})") from None
    if depth(obj) > max_depth:
        raise JsonLimitError(f"JSON nested deeper than {max_depth} levels")
    return obj
