"""The docs site's references, generated from their one source: every key of the ``Config`` (and the options
of ``export:``, ``evaluate:`` and ``push:`` sections) and every command of the Typer app, with its flags.
``docs/hooks.py`` puts them in place of ``<!-- generated: config -->`` and ``<!-- generated: commands -->``
when mkdocs builds the site, so a key or a flag added to the code appears there without editing a page.
Imports nothing heavy (no torch), as ``distill --help`` does not."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

MARKS = {"config": "<!-- generated: config -->", "commands": "<!-- generated: commands -->"}


def fill(markdown: str) -> str:
    """``markdown`` with each generated reference in place of its mark."""
    if MARKS["config"] in markdown:
        markdown = markdown.replace(MARKS["config"], config_reference())
    if MARKS["commands"] in markdown:
        markdown = markdown.replace(MARKS["commands"], command_reference())
    return markdown


def type_name(annotation: Any) -> str:
    """``int``, ``float or null``, ``auto | cls | mean``: a type as a user writes its values."""
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        names = [type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        nullable = type(None) in typing.get_args(annotation)
        return " or ".join(names) + (" or null" if nullable else "")
    if typing.get_origin(annotation) is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (list, dict):
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation))


def default_text(field) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`"
    value = field.default
    return "null" if value is None else f"`{value}`"


def flag_commands() -> dict[str, list[str]]:
    """Each config key, and the commands that take it as a flag."""
    from distill_cli.options import FLAGS_OF

    taken: dict[str, list[str]] = {}
    for command, keys in FLAGS_OF.items():
        for key in keys:
            taken.setdefault(key, []).append(command)
    return taken


def fields_table(model: type[BaseModel], flags: dict[str, list[str]] | None = None) -> str:
    rows = ["| key | type | default | what it sets | flag of |", "|---|---|---|---|---|"]
    for key, field in model.model_fields.items():
        description = clean(field.description or "")
        where = ", ".join(f"`{c}`" for c in (flags or {}).get(key, [])) or "config only"
        if flags is None:
            where = f"`--{key.replace('_', '-')}`"
        rows.append(f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} | {description} | {where} |")
    return "\n".join(rows)


def config_reference() -> str:
    """Every setting (the ``Config``), then the options each command's own section may hold."""
    from distill_cli.config import STEP_OPTIONS, Config

    parts = [
        "Every key of the top level and of every command's section (flags as `--key-name`).\n",
        fields_table(Config, flag_commands()),
    ]
    for command, model in STEP_OPTIONS.items():
        parts += [f"\n### The `{command}:` section\n", (model.__doc__ or "").strip() + "\n", fields_table(model)]
    return "\n".join(parts) + "\n"


def command_reference() -> str:
    """Every command of the Typer app: its help, its usage and a table of its arguments and flags."""
    import click
    import typer

    from distill_cli.cli import app

    group = typer.main.get_command(app)
    ctx = click.Context(group, info_name="distill")
    parts = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = click.Context(command, info_name=name, parent=ctx)
        parts.append(f"### `distill {name}`\n")
        parts.append((command.help or "").strip().replace("\n\n", "\n\n") + "\n")
        parts.append(f"```\n{command.get_usage(sub)}\n```\n")
        parts.append(params_table(command, sub))
    return "\n".join(parts)


def params_table(command, ctx) -> str:
    import click

    rows = ["| argument or flag | default | what it does |", "|---|---|---|"]
    for param in command.get_params(ctx):
        if param.name == "help":
            continue
        if isinstance(param, click.Argument):
            names, text = param.human_readable_name, getattr(param, "help", "") or ""
        else:
            names = ", ".join(param.opts) + "".join(f" / {o}" for o in param.secondary_opts)
            text = param.help or ""
        default = param.default if param.default not in (None, False, ()) and not callable(param.default) else None
        shown = "" if default is None or getattr(param, "show_default", True) is False else f"`{default}`"
        rows.append(f"| `{names}` | {shown} | {clean(text)} |")
    return "\n".join(rows) + "\n"


def clean(text: str) -> str:
    """One table cell: one line, its bars escaped, ``<model>`` shown as written (not read as HTML)."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")
