"""The `tapproxy` command: wiring of the parts, exit codes, one-line errors.

One module per group of commands; importing them registers their commands on `app`, in
the order `tapproxy --help` lists them. They are imported only once `main` has taken
over Ctrl-C: typer takes a while to import, and a Ctrl-C in that time would otherwise
end in a traceback. Each command imports what it needs (rich, asyncio, mitmproxy, …)
when it runs, so that the others start without it (tests/cli/test_startup_imports.py).
"""

from __future__ import annotations

import signal
import sys

# The typer app is `tapproxy.cli.app.app`, with every command once `_commands()` ran
# (`tapproxy.cli.app` is that module: a package attribute cannot also be the app).
__all__ = ["Interrupted", "interrupted_before", "main", "on_interrupt"]


class Interrupted(BaseException):
    """Ctrl-C while no command handles SIGINT itself; `main` makes it one line, exit 130.

    A BaseException, as KeyboardInterrupt is, so no `except Exception` swallows it; not
    KeyboardInterrupt itself, which typer turns into a silent exit 130.
    """


_raised: list[str] = []  # every Interrupted raised, caught by its code or not


def on_interrupt(message: str = "interrupted") -> None:
    """From now on, Ctrl-C raises Interrupted(message) (`tapproxy: MESSAGE`, exit 130)."""

    def interrupt(signum: int, frame: object) -> None:
        _raised.append(message)
        raise Interrupted(message)

    signal.signal(signal.SIGINT, interrupt)


def interrupted_before() -> bool:
    """Whether Ctrl-C was pressed already, even if the exception it raised was lost (a
    bare `except:` in whatever code it landed in would swallow it)."""
    return bool(_raised)


def main() -> None:
    """Entry point: TapproxyError becomes one line and exit 2, Ctrl-C one line and 130."""
    on_interrupt()
    try:
        _commands()
        from tapproxy.cli.app import main as run

        run()
    except Interrupted as e:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the line
        print(f"tapproxy: {e}", file=sys.stderr, flush=True)
        sys.exit(130)


def _commands() -> None:
    # isort: off
    from tapproxy.cli import record, reading, explain, check, report, compare, replay, merge  # noqa: F401
    # isort: on
    from tapproxy.cli import contract  # noqa: F401 - the `contract` group, after the rest

