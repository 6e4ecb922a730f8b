"""What an expression at one place of a definition may refer to.

JMESPath answers None for a missing key, silently; so a misspelt step or kept name, or a step
that has not run yet, is found here, when the definition is registered, not at run time.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.expressions import ROOTS, Ref

ANY_FIELD = None  # a wait step's value is a signal's body: any field may be read


@dataclass(frozen=True)
class Scope:
    """The steps whose results exist at this point (name -> kept names, or ANY_FIELD for a
    wait), why each other known step's do not, whether `reason` is set (in an undo only), and
    the input's properties when its schema closes them (None: any)."""

    visible: Mapping[str, frozenset[str] | None]
    hidden: Mapping[str, str]
    in_undo: bool
    input_fields: frozenset[str] | None

    def problem(self, ref: Ref) -> str | None:
        """Why `ref` cannot be read here, or None when it can."""
        if not ref:
            return "refers to the whole context: start with one of " + ", ".join(ROOTS)
        root = ref[0]
        if root not in ROOTS:
            return f"unknown name '{root}': expressions start with one of " + ", ".join(ROOTS)
        if root == "reason" and not self.in_undo:
            return "reason is only known in an undo"
        if root == "input" and len(ref) > 1 and self.input_fields is not None \
                and ref[1] not in self.input_fields:
            return f"input has no property '{ref[1]}'"
        if root != "steps":
            return None
        if len(ref) == 1:
            return "name a step: steps.<step>.<kept name>"
        step = ref[1]
        if step in self.hidden:
            return f"step '{step}' {self.hidden[step]}"
        if step not in self.visible:
            return f"unknown step '{step}'"
        kept = self.visible[step]
        if len(ref) > 2 and kept is not ANY_FIELD and ref[2] not in kept:
            keeps = ", ".join(sorted(kept)) if kept else "nothing"
            return f"step '{step}' keeps no '{ref[2]}' (it keeps {keeps})"
        return None

    def problems(self, refs: tuple[Ref, ...]) -> list[str]:
        """Each distinct problem of `refs`, in order."""
        found = [p for ref in refs if (p := self.problem(ref)) is not None]
        return list(dict.fromkeys(found))
