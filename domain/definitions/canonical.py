"""Canonical JSON of a definition document, its SHA-256, and what keeps a value from being JSON.

Canonical here means: keys sorted, no whitespace, non-ASCII written as itself, UTF-8. It is
stable under key order and formatting (YAML or JSON, comments, indentation), not under a
change of number spelling (5 and 5.0 differ).
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from domain.definitions.errors import Path
from domain.definitions.language import MAX_DEPTH


def canonical_json(document: Any) -> str:
    """`document` as canonical JSON text (ValueError/TypeError if it is not JSON)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def sha256_of(document: Any) -> str:
    """The hex SHA-256 of the document's canonical JSON, encoded as UTF-8."""
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def json_problems(document: Any) -> list[tuple[Path, str]]:
    """Where `document` is not plain JSON (a non-string key, a date, NaN, text no UTF-8 can
    carry) or nests deeper than
    MAX_DEPTH levels. Iterative, so a deep document cannot exhaust the stack."""
    found: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            found.append((path, f"nested deeper than {MAX_DEPTH} levels"))
        elif isinstance(value, dict):
            for name, item in value.items():
                if not isinstance(name, str):
                    found.append(((*path, str(name)), "a key must be a string"))
                elif not _encodable(name):
                    found.append(((*path, name.encode("utf-8", "replace").decode()), UNSTORABLE))
                else:
                    stack.append(((*path, name), item))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in enumerate(value))
        elif isinstance(value, str) and not _encodable(value):
            found.append((path, UNSTORABLE))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append((path, f"{value} is not a JSON number"))
        elif not (value is None or isinstance(value, (str, int, float, bool))):
            found.append((path, f"a {type(value).__name__} is not a JSON value"))
    return found


# A lone surrogate is a valid JSON escape, but no UTF-8 can carry it: it could be neither
# hashed nor stored.
UNSTORABLE = "must be valid Unicode text (no lone surrogates)"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
