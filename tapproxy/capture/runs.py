"""Captures of successive runs in one directory (`.tapproxy/`): unique names, the last N kept.

A name is taken by creating the file exclusively (O_EXCL), so two runs started in the
same second, or with a clock set back, never share one: the second gets `-2`, and so
on. The empty file holds the name until the run writes its capture over it.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from tapproxy.errors import CaptureError

__all__ = ["prune_runs", "reserve_run"]

_RUN = re.compile(r"\d{8}-\d{6}(-\d+)?\.tap")


def reserve_run(directory: Path) -> Path:
    """A new, empty `<UTC timestamp>[-N].tap` in `directory`, created exclusively."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(1, 10_000):
        path = directory / (f"{stamp}.tap" if n == 1 else f"{stamp}-{n}.tap")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        except OSError as e:
            raise CaptureError(f"{path}: cannot create capture: {e.strerror}") from e
        return path
    raise CaptureError(f"{directory}: 10,000 captures named {stamp}: no free name left")


def prune_runs(directory: Path, keep: int, current: Path) -> list[Path]:
    """Remove all but the `keep` newest run captures (never `current`, nor an empty one:
    the name held by a run still going on); the removed paths. `keep` 0 keeps all."""
    if keep <= 0:
        return []
    runs = []
    for entry in os.scandir(directory):
        if _RUN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            if st.st_size > 0 and Path(entry.path) != current:
                runs.append((st.st_mtime_ns, entry.name, Path(entry.path)))
    runs.sort()
    removed = [p for _, _, p in runs[:max(0, len(runs) - (keep - 1))]]
    for p in removed:
        p.unlink(missing_ok=True)
        p.with_suffix(".html").unlink(missing_ok=True)  # its report (pytest --tapproxy)
    return removed
