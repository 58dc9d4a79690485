"""A progress bar on stderr for commands that read a large capture (a terminal only).

Every long command uses these two, so a bar looks and behaves the same everywhere:
`reading` wraps the records of an open capture; `progress_bar` gives a callback for
work that reads its capture out of sight (`spans_of_capture`, `write_report`).
When stderr is not a terminal nothing is drawn and the records pass through untouched:
pipes and tests see no stray output.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tapproxy.capture.format import CaptureReader

__all__ = ["progress_bar", "reading"]


_INTERVAL = 0.1  # seconds between redraws: ~10 a second is smooth and costs nothing
_EVERY = 64  # records between looks at the clock: the cost per record stays a counter


def _nothing(done: int) -> None:
    pass


@contextlib.contextmanager
def progress_bar(label: str, total: int | None, unit: str | None = None,
                 ) -> Iterator[Callable[[int], None]]:
    """A callback taking how far the work is (bytes of `total`, or a count of `unit`):
    it draws a bar on stderr when that is a terminal, else does nothing. The bar is
    gone on exit."""
    if not sys.stderr.isatty():
        yield _nothing
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    done = DownloadColumn() if unit is None else TextColumn(f"{{task.completed}} {unit}")
    columns = (TextColumn(label), BarColumn(), done)
    # No refresh thread: the bar is drawn only from the callback, so nothing is written
    # after the command stops (a Ctrl-C's one line is the last thing on the terminal).
    # Output for the same terminal goes above the bar, else it would break the bar's
    # line; output for anywhere else (a pipe, a file) is left alone, byte for byte.
    # soft_wrap: a long line of output it moves above the bar keeps no added breaks.
    console = Console(stderr=True, soft_wrap=True)
    bar = Progress(*columns, console=console, transient=True, auto_refresh=False,
                   redirect_stdout=_same_terminal())
    task = bar.add_task(label, total=total or None)
    shown = time.monotonic()

    def advance(done: int) -> None:
        nonlocal shown
        now = time.monotonic()
        if now - shown >= _INTERVAL:
            shown = now
            bar.update(task, completed=done, refresh=True)

    try:  # not `with bar`: a Ctrl-C inside start() must still undo what it began
        bar.start()
        yield advance
    finally:
        bar.stop()


def _same_terminal() -> bool:
    """Whether stdout is the terminal stderr is."""
    try:
        return sys.stdout.isatty() and os.path.samestat(os.fstat(sys.stdout.fileno()),
                                                         os.fstat(sys.stderr.fileno()))
    except (OSError, ValueError):  # no file descriptor behind one of them
        return False


@contextlib.contextmanager
def reading[T](records: Iterable[T], reader: CaptureReader, label: str = "reading",
               ) -> Iterator[Iterable[T]]:
    """`records` (read from `reader`), drawing on stderr how far into its file the
    reading is, when stderr is a terminal; else `records` themselves."""
    if not sys.stderr.isatty():
        yield records
        return
    try:
        size = reader.path.stat().st_size
    except OSError:
        size = 0
    with progress_bar(label, size) as advance:
        yield _ticking(records, reader, advance)


def _ticking[T](records: Iterable[T], reader: CaptureReader,
                advance: Callable[[int], None]) -> Iterator[T]:
    for n, record in enumerate(records):
        if n % _EVERY == 0:
            advance(reader.position[1])
        yield record
