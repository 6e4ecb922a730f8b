"""Workflow definitions: any saga as a versioned document, validated and compiled once.

`compile_definition(document)` turns a parsed YAML/JSON document into a frozen `Definition`
(or raises `DefinitionInvalid` with every error and its path); an interpreter walks its
`steps` (`Step`, `Parallel`, `Wait`) and renders calls with `CallSpec.render(context)`.
Pure: stdlib, jmespath and jsonschema; no I/O, no clock.
"""
from domain.definitions.canonical import canonical_json, sha256_of
from domain.definitions.compiler import compile_definition
from domain.definitions.errors import DefinitionError, DefinitionInvalid
from domain.definitions.model import (
    CallSpec,
    Definition,
    Node,
    Parallel,
    ParticipantSpec,
    RenderedCall,
    Step,
    Undo,
    Wait,
)

__all__ = [
    "CallSpec", "Definition", "DefinitionError", "DefinitionInvalid", "Node", "Parallel",
    "ParticipantSpec", "RenderedCall", "Step", "Undo", "Wait", "canonical_json",
    "compile_definition", "sha256_of",
]
