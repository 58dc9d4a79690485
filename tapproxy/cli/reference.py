"""The command-line reference (docs/cli.md), generated from the typer app itself.

    .venv/bin/python -m tapproxy.cli.reference > docs/cli.md

One section per command, in the order `tapproxy --help` lists them: the usage line, the
help text, then each argument and option as `--help` shows it (declaration and type),
with its help and what `--help` adds in brackets (default, required, range). Nothing
depends on the terminal, the directory or the user: no wrapping, no expanded paths.
tests/cli/test_reference.py fails when docs/cli.md is not what this prints.
"""

from __future__ import annotations

import re
import sys

import typer

__all__ = ["reference"]

COMMAND = ".venv/bin/python -m tapproxy.cli.reference > docs/cli.md"

# Markdown would take these as emphasis, HTML tags, links or table cells.
_SPECIAL = re.compile(r"([\\*_<>\[\]|])")


def _text(help_text: str) -> str:
    """Help text as Markdown: paragraphs kept, each on one line, code spans as written."""
    paragraphs = [" ".join(p.split()) for p in help_text.split("\n\n") if p.strip()]
    return "\n\n".join(_escape(p) for p in paragraphs)


def _escape(text: str) -> str:
    parts = text.split("`")
    # Even parts are outside `code spans`: escaped; odd ones are code, shown as written.
    return "`".join(_SPECIAL.sub(r"\\\1", p) if i % 2 == 0 else p for i, p in enumerate(parts))


def _param_line(param, ctx) -> str | None:
    """`- `DECL`: help `[extras]`` for one argument or option, as `--help` shows it."""
    record = param.get_help_record(ctx)
    if record is None:  # hidden
        return None
    decl, shown = record
    help_text = param.help or ""
    # What --help appends to the help text: [default: …], [required], a range.
    extras = shown[len(help_text):].strip() if shown.startswith(help_text) else ""
    line = f"- `{decl}`"
    if help_text:
        line += f": {_text(help_text)}"
    if extras:
        line += f" `{extras}`"
    return line


def _section(path: str, cmd, ctx) -> list[str]:
    usage = " ".join([path, *cmd.collect_usage_pieces(ctx)])
    lines = [f"## `{path}`", "", "```text", usage, "```", ""]
    if cmd.help:
        lines += [_text(cmd.help), ""]
    params = [p for p in cmd.params if not p.hidden]
    for title, kind in (("Arguments", "argument"), ("Options", "option")):
        entries = [_param_line(p, ctx) for p in params if p.param_type_name == kind]
        entries = [e for e in entries if e]
        if entries:
            lines += [f"**{title}**", "", *entries, ""]
    subcommands = _subcommands(cmd, ctx)
    if subcommands:
        lines += ["**Commands**", "", *(f"- [`{path} {name}`](#{_anchor(f'{path} {name}')})"
                                        for name, _ in subcommands), ""]
    return lines


def _subcommands(cmd, ctx) -> list[tuple[str, object]]:
    if not isinstance(cmd, typer.core.TyperGroup):
        return []
    found = [(name, cmd.get_command(ctx, name)) for name in cmd.list_commands(ctx)]
    return [(name, sub) for name, sub in found if sub is not None and not sub.hidden]


def _anchor(path: str) -> str:
    return path.replace(" ", "-")  # GitHub's anchor of the heading "`tapproxy x y`"


def _walk(path: str, cmd, ctx):
    yield path, cmd, ctx
    for name, sub in _subcommands(cmd, ctx):
        yield from _walk(f"{path} {name}", sub, typer.Context(
            sub, info_name=name, parent=ctx))


def reference() -> str:
    """docs/cli.md: the Markdown reference of every `tapproxy` command."""
    from tapproxy.cli import _commands
    from tapproxy.cli.app import app

    _commands()
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="tapproxy")
    commands = list(_walk("tapproxy", root, ctx))
    lines = [
        "# tapproxy command-line reference",
        "",
        "Generated from the commands themselves: edit their help in `tapproxy/cli/`, then",
        f"run `{COMMAND}`",
        "(tests/cli/test_reference.py fails while this file is out of date).",
        "",
        "Every command also takes `--help`, which prints its section of this page.",
        "",
    ]
    for path, cmd, sub_ctx in commands:
        lines += _section(path, cmd, sub_ctx)
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
