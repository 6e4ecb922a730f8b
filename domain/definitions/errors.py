"""What a refused definition (or a refused input) says: every error, each with its path."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

Path = tuple[str | int, ...]  # ("steps", 1, "undo", "path")

_PLAIN = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def format_path(path: Path, root: str = "(document)") -> str:
    """`steps[1].undo.path`; a key that is not a plain name is quoted (`body["a b"]`);
    the empty path is `root`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text or root


@dataclass(frozen=True)
class DefinitionError:
    """One error: where (`steps[1].undo.path`, `cents`, `skus[3]`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        """The `{path, message}` object of a 422 answer's `errors`."""
        return {"path": self.path, "message": self.message}


class DefinitionInvalid(ValueError):
    """A definition that is refused, with every error found (never only the first)."""

    def __init__(self, errors: list[DefinitionError]) -> None:
        self.errors = list(errors)
        count = f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}"
        super().__init__(f"definition refused, {count}: " + "; ".join(map(str, self.errors)))


def sort_key(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Orders paths as they appear in a document: indexes numerically, names by name."""
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in path)


def collect(found: Iterable[tuple[Path, str]], root: str = "(document)") -> list[DefinitionError]:
    """Errors in document order, each (path, message) once."""
    unique = dict.fromkeys(found)
    ordered = sorted(unique, key=lambda item: sort_key(item[0]))
    return [DefinitionError(format_path(path, root), message) for path, message in ordered]
