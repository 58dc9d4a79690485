"""The `tapproxy` command: wiring of the parts, exit codes, one-line errors.

One module per group of commands; importing them registers their commands on `app`, in
the order `tapproxy --help` lists them.
"""
# isort: skip_file

from tapproxy.cli.app import app, main
from tapproxy.cli import record, reading, explain  # noqa: F401 - registers the commands

__all__ = ["app", "main"]
