"""The pytest plugin's options, checked before any test runs (one line, exit 4).

A bad value must stop the run before it starts, not end it in a traceback after every
test ran: a control API URL, a capture path, how many captures to keep, the names of
services started outside the fixtures, the contracts (loaded here, once a session).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tapproxy.errors import ContractError, UsageError

if TYPE_CHECKING:  # loaded by read_settings: the plugin imports KEEP in every pytest run
    from tapproxy.contract.model import Contract
    from tapproxy.supervisor.options import ServiceSpec

__all__ = ["KEEP", "Settings", "read_settings"]

KEEP = 20  # captures kept in .tapproxy/ by default


@dataclass(frozen=True, slots=True)
class Settings:
    """The plugin's options, checked before any test runs."""

    capture: Path
    reserved: bool  # a `.tapproxy/` name taken for this run (kept to the last `keep`)
    keep: int
    services: tuple[ServiceSpec, ...]
    contracts: tuple[Contract, ...] = ()
    contract_specs: tuple[str, ...] = ()  # as `tapproxy check --contract` takes them
    contract_strict: bool = False


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
    specs, contracts = _contracts(config)
    strict = bool(config.getoption("tapproxy_contract_strict")
                  or config.getini("tapproxy_contract_strict"))
    if strict and not contracts:
        raise UsageError("--tapproxy-contract-strict: no contract to hold the tests to "
                         "(give --tapproxy-contract FILE)")
    rest = (contracts, specs, strict)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "tapproxy_capture" in workerinput:
        return Settings(Path(workerinput["tapproxy_capture"]), False, keep, services, *rest)
    given = config.getoption("tapproxy_capture")
    if given:
        path = Path(given).absolute()
        _check_directory(path.parent, f"--tapproxy-capture {given}")
        if path.is_dir():
            raise UsageError(f"--tapproxy-capture {given}: is a directory, not a file")
        return Settings(path, False, keep, services, *rest)
    directory = config.rootpath / ".tapproxy"
    _check_directory(directory, "the capture directory")
    from tapproxy.capture.runs import reserve_run

    return Settings(reserve_run(directory), True, keep, services, *rest)


def _contracts(config: pytest.Config) -> tuple[tuple[str, ...], tuple[Contract, ...]]:
    """The `[SERVICE=]FILE` specs (an ini file's relative to the ini file) and the
    contracts loaded from them, once for the session."""
    from tapproxy.contract.load import load_contract

    base = config.inipath.parent if config.inipath is not None else config.rootpath
    given = [(s, "ini tapproxy_contracts") for s in (
        _relative_to(s, base) for s in config.getini("tapproxy_contracts"))]
    given += [(s, "--tapproxy-contract") for s in config.getoption("tapproxy_contract")]
    contracts = []
    for spec, where in given:
        try:
            contracts.append(load_contract(spec))
        except ContractError as e:
            raise UsageError(f"{where}: {e}") from None
    return tuple(s for s, _ in given), tuple(contracts)


def _relative_to(spec: str, base: Path) -> str:
    """`[SERVICE=]FILE` with a relative FILE made relative to `base` instead of the
    working directory, as `load_contract` reads the `SERVICE=` prefix."""
    if (base / spec).exists() or "=" not in spec:
        return str(base / spec)
    name, _, file = spec.partition("=")
    return f"{name}={base / file}"


def _services(specs: Sequence[str], where: str) -> tuple[ServiceSpec, ...]:
    from tapproxy.supervisor.options import parse_service

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
