"""docs/cli.md is generated from the typer app: it is current, and it names every
command, argument and option the app has."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import typer

from tests.conftest import ROOT

REFERENCE = ROOT / "docs" / "cli.md"
REGENERATE = ".venv/bin/python -m tapproxy.cli.reference > docs/cli.md"


def _generated(tmp_path, columns: str) -> str:
    """The reference as the generator prints it, in an unlike environment: another
    directory, home and terminal width must change nothing."""
    env = {**os.environ, "COLUMNS": columns, "HOME": str(tmp_path), "TERM": "dumb"}
    r = subprocess.run([sys.executable, "-m", "tapproxy.cli.reference"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_committed_reference_is_what_the_generator_prints(tmp_path) -> None:
    narrow, wide = _generated(tmp_path, "37"), _generated(tmp_path, "250")
    assert narrow == wide  # nothing depends on the terminal
    assert REFERENCE.read_text(encoding="utf-8") == wide, (
        f"docs/cli.md is out of date with the CLI: regenerate it with `{REGENERATE}`")


def _commands():
    """(command path, click command) of every command, the root and groups included."""
    from tapproxy.cli import _commands as register
    from tapproxy.cli.app import app

    register()
    root = typer.main.get_command(app)

    def walk(path: str, cmd):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            if not sub.hidden:
                yield from walk(f"{path} {name}", sub)

    return list(walk("tapproxy", root))


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## `(tapproxy[^`]*)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _missing(text: str) -> list[tuple[str, str]]:
    """(command path, name) of each command, argument or option the reference lacks."""
    sections = _sections(text)
    missing = []
    for path, cmd in _commands():
        section = sections.get(path)
        if section is None:
            missing.append((path, "(no section)"))
            continue
        for param in cmd.params:
            if param.hidden:
                continue
            if param.param_type_name == "argument":
                names = [param.metavar or param.name]  # as --help names it
            else:
                names = [*param.opts, *param.secondary_opts]
            missing += [(path, n) for n in names
                        if not re.search(rf"^- `[^`]*{re.escape(n)}(?![\w-])", section,
                                          re.M | re.I)]
    return missing


def test_every_command_argument_and_option_is_in_the_reference() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    commands = _commands()
    assert len(commands) >= 17  # the root, 15 commands, `contract draft`
    # As a set: in this process another test may have imported a command module first,
    # which registers it earlier; the order is the generator's (a fresh process), above.
    assert sorted(_sections(text)) == sorted(path for path, _ in commands)
    assert _missing(text) == []


def test_a_missing_command_or_option_is_found() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    cut = re.sub(r"^- `--start-timeout .*\n", "", text, count=1, flags=re.M)
    cut = re.sub(r"^## `tapproxy merge`$", "## `tapproxy merged`", cut, flags=re.M)
    assert _missing(cut) == [("tapproxy record", "--start-timeout"),
                             ("tapproxy merge", "(no section)")]
