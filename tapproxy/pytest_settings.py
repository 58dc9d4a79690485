"""The pytest plugin's options, checked before any test runs (one line, exit 4).

A bad value must stop the run before it starts, not end it in a traceback after every
test ran: a control API URL, a capture path, how many captures to keep, the names of
services started outside the fixtures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tapproxy.capture.runs import reserve_run
from tapproxy.errors import UsageError
from tapproxy.supervisor.options import ServiceSpec, parse_service

__all__ = ["KEEP", "Settings", "read_settings"]

KEEP = 20  # captures kept in .tapproxy/ by default


@dataclass(frozen=True, slots=True)
class Settings:
    """The plugin's options, checked before any test runs."""

    capture: Path
    reserved: bool  # a `.tapproxy/` name taken for this run (kept to the last `keep`)
    keep: int
    services: tuple[ServiceSpec, ...]


def read_settings(config: pytest.Config) -> Settings:
    """The checked options (UsageError naming the option); a default capture's name is
    taken here, once, by the process that merges (an xdist controller hands it on)."""
    url = config.getoption("tapproxy_url")
    if url:
        _check_url(url)
    keep = config.getoption("tapproxy_keep")
    if keep is None:
        ini = str(config.getini("tapproxy_keep")).strip()
        if not ini.isdigit():
            raise UsageError(f"bad ini tapproxy_keep {ini!r}: expected a count (0: all)")
        keep = int(ini)
    elif keep < 0:
        raise UsageError(f"bad --tapproxy-keep {keep}: expected a count (0: all)")
    services = (*_services(config.getini("tapproxy_services"), "ini tapproxy_services"),
                *_services(config.getoption("tapproxy_service"), "--tapproxy-service"))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "tapproxy_capture" in workerinput:
        return Settings(Path(workerinput["tapproxy_capture"]), False, keep, services)
    given = config.getoption("tapproxy_capture")
    if given:
        path = Path(given).absolute()
        _check_directory(path.parent, f"--tapproxy-capture {given}")
        if path.is_dir():
            raise UsageError(f"--tapproxy-capture {given}: is a directory, not a file")
        return Settings(path, False, keep, services)
    directory = config.rootpath / ".tapproxy"
    _check_directory(directory, "the capture directory")
    return Settings(reserve_run(directory), True, keep, services)


def _services(specs: Sequence[str], where: str) -> tuple[ServiceSpec, ...]:
    try:
        return tuple(parse_service(s) for s in specs)
    except UsageError as e:  # the parser names `record --service`, whose syntax it is
        raise UsageError(str(e).replace("--service", where, 1)) from None


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None \
            or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"bad --tapproxy-url {url!r}: expected http://HOST:PORT "
                         "(a control API)")


def _check_directory(directory: Path, what: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"{what}: {directory} is not a directory") from None
    except OSError as e:
        raise UsageError(f"{what}: cannot create {directory}: {e.strerror}") from None
