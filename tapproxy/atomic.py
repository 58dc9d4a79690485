"""Output files that appear whole or not at all, readable by their owner only.

Every file the CLI writes (HAR, OTLP/JSON) goes to a hidden temporary file beside its
destination and is renamed over it once complete, so a failed or interrupted export
leaves the previous file as it was, never a cut-off one. They are created 0600, like
mitmproxy's CA key: they hold recorded payloads.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["OUTPUT_MODE", "atomic_output"]

OUTPUT_MODE = 0o600


def _special(path: Path) -> bool:
    """Whether `path` exists as something other than a regular file (/dev/stdout, a FIFO)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """A file to write whose content replaces `path` only if the block completes.

    A device or FIFO at `path` is written directly: renaming over it would replace it
    with a regular file. Raises OSError when the file cannot be created or written.
    """
    path = Path(path)
    mode, encoding = ("wb", None) if binary else ("w", "utf-8")
    if _special(path):
        with open(path, mode, encoding=encoding) as f:
            yield f
        return
    # mkstemp creates the file 0600 whatever the umask.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
