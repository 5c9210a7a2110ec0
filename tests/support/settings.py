"""What Patron can be told, read from the code itself: the ``Settings`` fields (``dataclasses.fields``),
the ``PATRON_*`` variables the source reads, and the ``patron`` command's options (through click's API);
and the check that an argument list is one ``patron`` accepts. For the settings reference
(docs/deploy.md) and the deployment files that run ``patron``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from patron.cli import main
from patron.config import Settings

SOURCE = Path(__file__).resolve().parents[2] / "src" / "patron"

#: A variable's name in the source (not a placeholder such as ``__PATRON_ORIGIN__``, nor ``PATRON_*``).
VARIABLE = re.compile(r"(?<![A-Za-z0-9_])PATRON_[A-Z0-9]+(?:_[A-Z0-9]+)*(?![A-Za-z0-9_])")


def settings_fields(of: type = Settings, prefix: str = "") -> set[str]:
    """Every field of ``Settings``; a field that is a group of settings (``retention``) by its own
    fields, dotted (``retention.applied_days``)."""
    names: set[str] = set()
    for f in dataclasses.fields(of):
        group = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(group, type) and dataclasses.is_dataclass(group):
            names |= settings_fields(group, f"{prefix}{f.name}.")
        else:
            names.add(f"{prefix}{f.name}")
    return names


def commands(
    group: click.Command = main, path: tuple[str, ...] = ("patron",)
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of ``patron`` with its path (``("patron", "serve")``), the group itself first."""
    yield path, group
    if isinstance(group, click.Group):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):  # as click lists them (the lazy ones imported here)
            command = group.get_command(ctx, name)
            assert command is not None, f"{' '.join(path)} lists {name} and has no such command"
            yield from commands(command, (*path, name))


def options(command: click.Command) -> dict[str, click.Option]:
    """A command's options by their long name (``--port``), ``--help`` and ``--version`` aside."""
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in param.opts
        if name.startswith("--") and name not in ("--help", "--version")
    }


def command_at(path: Sequence[str]) -> click.Command:
    return dict(commands())[tuple(path)]


def envvars() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """Each variable an option reads, with the options (command path, long name) that read it."""
    found: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for path, command in commands():
        for name, option in options(command).items():
            for variable in [option.envvar] if isinstance(option.envvar, str) else option.envvar or []:
                found.setdefault(variable, []).append((path, name))
    return found


def variables_in_source() -> set[str]:
    """Every ``PATRON_*`` variable named in the package's Python source."""
    return {
        match for path in SOURCE.rglob("*.py") for match in VARIABLE.findall(path.read_text(encoding="utf-8"))
    }


def every_variable() -> set[str]:
    """What the source names and what the options read (those made up at run time included)."""
    return variables_in_source() | set(envvars())


def parse(argv: Sequence[str]) -> tuple[str, ...]:
    """Parse ``patron`` arguments as click would, without running anything: raises ``click.UsageError``
    (an unknown option, a missing value, a bad choice...). The path of the command they run."""
    group_options = options(main)
    args = list(argv)
    taken: list[str] = []
    while args and args[0].startswith("-"):
        token = args.pop(0)
        name = token.split("=", 1)[0]
        if name not in group_options:
            raise click.NoSuchOption(name)
        taken.append(token)
        if "=" not in token and not group_options[name].is_flag:
            taken.append(args.pop(0))
    main.make_context("patron", [*taken, "serve"])  # the group's own options, checked by click
    path: tuple[str, ...] = ("patron",)
    command: click.Command = main
    while isinstance(command, click.Group):
        if not args:
            raise click.UsageError(f"{' '.join(path)} needs a command")
        name = args.pop(0)
        if name not in command.commands:
            raise click.UsageError(f"no such command: {' '.join((*path, name))}")
        command, path = command.commands[name], (*path, name)
    command.make_context(" ".join(path), args)
    return path
