"""`orchestrator definitions ...`: check definition files, apply them (register new versions),
list the registered definitions and show one version.

`check` reads only the files: it needs no database. The others read DATABASE_URL like every
process, and open only the definitions' store: unlike a process that starts, they do not apply
DEFINITIONS_DIR's files first."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml
from eventsourcing.persistence import PersistenceError

from api.cli_format import table
from application.definitions import DefinitionNotFound, Definitions, Version
from application.definitions_files import load_definition_text
from domain.definitions import Definition, DefinitionInvalid, compile_definition
from infrastructure.settings import SettingsError, load

FILES = click.Path(exists=True, dir_okay=False, path_type=Path)


@contextmanager
def _registry() -> Iterator[Definitions]:
    """The definitions' store of DATABASE_URL, and nothing else: no views, no worker, and
    (unlike a starting process) no DEFINITIONS_DIR applied, so that a command registers
    exactly the files it is given."""
    from infrastructure.bootstrap import definitions_env, schema_lock, store_env

    try:
        settings = load()
        with schema_lock(settings):
            registry = Definitions(env=definitions_env(settings, store_env(settings)))
    except SettingsError as e:
        raise click.UsageError(str(e)) from None
    except (OSError, sqlite3.Error, PersistenceError) as e:
        raise click.UsageError(f"DATABASE_URL: cannot open the store ({e})") from None
    except Exception as e:  # psycopg's, by name: this layer knows no driver
        if type(e).__name__ not in ("OperationalError", "InterfaceError"):
            raise
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise click.UsageError(f"DATABASE_URL: cannot reach the store ({first})") from None
    try:
        yield registry
    finally:
        registry.close()


def _compile(path: Path) -> tuple[dict[str, Any] | None, Definition | None, list[str]]:
    """The file's document and its compiled definition, or every error as `path: message`."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None, None, ["(document): not UTF-8 text"]
    try:
        document = load_definition_text(text)
        return document, compile_definition(document), []
    except DefinitionInvalid as e:
        return None, None, [str(error) for error in e.errors]


def _compile_all(files: tuple[Path, ...]) -> tuple[list[tuple[Path, dict[str, Any], Definition]],
                                                    list[str]]:
    compiled, errors = [], []
    for path in files:
        document, definition, found = _compile(path)
        errors += [f"{path}: {error}" for error in found]
        if document is not None and definition is not None:
            compiled.append((path, document, definition))
    return compiled, errors


@click.group()
def definitions() -> None:
    """Workflow definitions: check, apply, list and show."""


@definitions.command("check")
@click.argument("files", nargs=-1, required=True, type=FILES)
def check(files: tuple[Path, ...]) -> None:
    """Validates definition files (YAML or JSON) without registering anything: every error
    with its path, and exit 1 if there is one."""
    compiled, errors = _compile_all(files)
    for path, _, definition in compiled:
        click.echo(f"{path}: {definition.name} is valid ({len(definition.flat_steps)} steps; "
                   f"participants {', '.join(definition.participants)})")
    for error in errors:
        click.echo(error)
    if errors:
        raise SystemExit(1)


@definitions.command("apply")
@click.argument("files", nargs=-1, required=True, type=FILES)
def apply(files: tuple[Path, ...]) -> None:
    """Registers each file's definition as its next version (a file whose content is the
    latest version already changes nothing). When any file is invalid, nothing is registered:
    every error is printed and the exit code is 1. New workflows take the new version at
    once; running ones keep theirs."""
    compiled, errors = _compile_all(files)
    if errors:
        for error in errors:
            click.echo(error, err=True)
        click.echo("nothing was registered", err=True)
        raise SystemExit(1)
    with _registry() as registry:
        for _, document, definition in compiled:
            done = registry.register(document)
            click.echo(f"{definition.name}  version {done.version}"
                       + ("" if done.created else "  unchanged"))


@definitions.command("list")
def list_() -> None:
    """Every registered definition: its latest version and its description."""
    with _registry() as registry:
        rows = []
        for name in registry.names():
            latest = registry.get(name)
            rows.append((name, latest.version, latest.definition.description))
    click.echo(table(("NAME", "VERSION", "DESCRIPTION"), rows))


@definitions.command("show")
@click.argument("name")
@click.option("--version", "number", type=click.IntRange(min=1), default=None,
              help="this version rather than the latest")
@click.option("--json", "as_json", is_flag=True,
              help="one JSON document, as GET /definitions/{name} answers")
def show(name: str, number: int | None, as_json: bool) -> None:
    """A definition's version (the latest by default): its document and every version."""
    with _registry() as registry:
        try:
            versions: list[Version] = registry.versions(name)
        except DefinitionNotFound as e:
            raise click.ClickException(str(e)) from None
    if number is not None and number > len(versions):
        raise click.ClickException(f"no definition {name} version {number} "
                                   f"(it has {len(versions)})")
    chosen = versions[-1 if number is None else number - 1]
    described = [{"version": v.version, "sha256": v.sha256, "registeredAt": v.registered_at}
                 for v in versions]
    if as_json:
        click.echo(json.dumps({"name": name, **described[chosen.version - 1],
                               "definition": chosen.definition.document,
                               "versions": described}, indent=2, ensure_ascii=False))
        return
    click.echo(f"definition {name}  version {chosen.version} of {len(versions)}  "
               f"sha256 {chosen.sha256}  registered {chosen.registered_at}\n")
    click.echo(table(("VERSION", "SHA256", "REGISTERED"),
                      [(v["version"], v["sha256"], v["registeredAt"]) for v in described]))
    click.echo("")
    click.echo(yaml.safe_dump(dict(chosen.definition.document), sort_keys=False,
                              allow_unicode=True, width=100).rstrip())

