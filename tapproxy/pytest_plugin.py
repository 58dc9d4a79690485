"""pytest plugin: record a test run through tapproxy and explain failing tests.

    pytest --tapproxy                     an embedded recording proxy for the session
    pytest --tapproxy-url http://H:8081   a running tapproxy, through its control API
    --tapproxy-capture PATH               the capture (default .tapproxy/<timestamp>.tap)
    --tapproxy-keep N                     keep the last N captures in .tapproxy/ (0: all)
    --tapproxy-service NAME=HOST[:PORT]   name a service started outside the fixtures
    --tapproxy-contract [SERVICE=]FILE    check each test's calls against a contract
    --tapproxy-contract-strict            a passing test whose calls broke it errors
    --tapproxy-replay CAPTURE             serve the services from a capture instead
                                          (tapproxy.pytest_replay); with
    --tapproxy-record-missing             what it lacks goes to the started services

Without --tapproxy, `tapproxy_service` still starts the services, plainly, so a suite
runs and fails as it would without tapproxy; the `tapproxy` fixture is then an error.

Glue only: the proxy (`tapproxy.proxy.embedded`), services and their logs and resources
(`proxy.fronting`, `proxy.servicewatch`), merging (`capture.merge`) and the failure
section (`report.section`) are the parts'. Under pytest-xdist each worker records its
own capture and the controller merges them into the one named capture.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tapproxy.errors import TapproxyError
from tapproxy.pytest_settings import KEEP

if TYPE_CHECKING:
    from tapproxy.pytest_handles import Tapproxy, TapproxyService
    from tapproxy.pytest_session import Session

__all__ = ["Tapproxy", "TapproxyService"]

_PLUGIN = "tapproxy-session"


def __getattr__(name: str) -> Any:
    # The handles load on first use: every pytest run imports this module, and only a
    # recorded one needs them (PEP 562).
    if name in __all__:
        from tapproxy import pytest_handles

        return getattr(pytest_handles, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tapproxy", "tapproxy: record the run, explain failing tests")
    group.addoption("--tapproxy", action="store_true",
                    help="Record every test's HTTP exchanges through an embedded proxy.")
    group.addoption("--tapproxy-url", metavar="URL",
                    help="Use the running tapproxy whose control API is at URL instead.")
    group.addoption("--tapproxy-capture", metavar="PATH",
                    help="Capture to write (default .tapproxy/<timestamp>.tap).")
    group.addoption("--tapproxy-confdir", metavar="DIR",
                    help="Where the interception CA lives (default ~/.mitmproxy).")
    group.addoption("--tapproxy-no-process-names", action="store_true",
                    help="Do not name local services by the process behind a socket "
                         "(callers and callees are then named by proxy user or address).")
    group.addoption("--tapproxy-workers", metavar="N",
                    help="Recording processes behind the proxy's port, as `tapproxy "
                         "record --workers` (a number or 'auto'; default 1).")
    group.addoption("--tapproxy-keep", metavar="N", type=int,
                    help=f"Keep the last N captures in .tapproxy/ (default {KEEP}; 0: all).")
    group.addoption("--tapproxy-service", metavar="NAME=HOST[:PORT]", action="append",
                    default=[], help="Name a service started outside the fixtures, as "
                                     "`tapproxy record --service` does (repeatable).")
    group.addoption("--tapproxy-contract", metavar="[SERVICE=]FILE", action="append",
                    default=[], help="Check each test's calls against this contract, as "
                                     "`tapproxy check --contract` does (repeatable).")
    group.addoption("--tapproxy-contract-strict", action="store_true",
                    help="A passing test whose calls broke a contract errors.")
    group.addoption("--tapproxy-otlp-receive", action="store_true",
                    help="Take OTLP spans from instrumented services: the fixtures' "
                         "services get OTEL_EXPORTER_OTLP_ENDPOINT naming the receiver.")
    group.addoption("--tapproxy-inject-traceparent", action="store_true",
                    help="Give requests without trace context a traceparent, so "
                         "instrumented services join each test's trace.")
    group.addoption("--tapproxy-replay", metavar="CAPTURE",
                    help="Serve every tapproxy_service from CAPTURE instead of starting "
                         "it; a request the capture cannot answer fails its test.")
    group.addoption("--tapproxy-record-missing", action="store_true",
                    help="With --tapproxy-replay: start the services too and send them "
                         "what the capture lacks, recorded to CAPTURE-missing.tap.")
    parser.addini("tapproxy_workers", "Recording processes (a number or 'auto'; "
                  "default 1).", default="1")
    parser.addini("tapproxy_keep", f"Captures kept in .tapproxy/ (default {KEEP}; 0: all).",
                  default=str(KEEP))
    parser.addini("tapproxy_services", "NAME=HOST[:PORT] lines naming services started "
                  "outside the fixtures.", type="linelist", default=[])
    parser.addini("tapproxy_contracts", "[SERVICE=]FILE lines: contracts to check each "
                  "test's calls against (relative to the ini file).", type="linelist",
                  default=[])
    parser.addini("tapproxy_contract_strict", "A passing test whose calls broke a "
                  "contract errors.", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("tapproxy_replay") or config.getoption("tapproxy_record_missing"):
        _configure_replay(config)
        return
    if not (config.getoption("tapproxy") or config.getoption("tapproxy_url")):
        if config.getoption("tapproxy_contract") or config.getoption(
                "tapproxy_contract_strict"):  # checks that would silently not happen
            raise pytest.UsageError("tapproxy: --tapproxy-contract checks recorded calls: "
                                    "run with --tapproxy (or --tapproxy-url URL)")
        return  # fixtures run without a proxy: see tapproxy_service
    if config.getoption("collectonly"):
        return  # nothing runs: no proxy, no capture
    from tapproxy.pytest_session import Session
    from tapproxy.pytest_settings import read_settings

    try:
        settings = read_settings(config)
    except TapproxyError as e:
        raise pytest.UsageError(f"tapproxy: {e}") from None
    config.pluginmanager.register(Session(config, settings), _PLUGIN)


def _configure_replay(config: pytest.Config) -> None:
    from tapproxy.pytest_replay import ReplaySession

    capture = config.getoption("tapproxy_replay")
    if not capture:
        raise pytest.UsageError("tapproxy: --tapproxy-record-missing goes with "
                                "--tapproxy-replay CAPTURE")
    if config.getoption("tapproxy") or config.getoption("tapproxy_url") \
            or config.getoption("tapproxy_contract"):
        raise pytest.UsageError("tapproxy: --tapproxy-replay serves a capture; it does not "
                                "go with --tapproxy, --tapproxy-url or --tapproxy-contract")
    if config.getoption("collectonly"):
        return
    config.pluginmanager.register(ReplaySession(
        config, Path(capture).absolute(), config.getoption("tapproxy_record_missing")),
        _PLUGIN)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.pluginmanager.get_plugin(_PLUGIN)
    if session is not None and getattr(session, "settings", None) and session.settings.reserved:
        with contextlib.suppress(OSError):  # the name held for a run that wrote nothing
            if session.capture.stat().st_size == 0:
                session.capture.unlink()


# -- fixtures ------------------------------------------------------------------------------


def _session(config: pytest.Config) -> Session | None:
    session = config.pluginmanager.get_plugin(_PLUGIN)
    if session is not None and getattr(session, "replaying", False):
        return session
    return session if session is not None and session.control is not None else None


def _worker_index(config: pytest.Config) -> int:
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


@pytest.fixture(scope="session")
def tapproxy(pytestconfig: pytest.Config) -> Tapproxy:
    """The session's recording proxy: url, env, and the running test's exchanges."""
    session = _session(pytestconfig)
    if session is None:  # an error, not a skip: a run without the flag must not pass
        pytest.fail("the tapproxy fixture needs a proxy: run pytest with --tapproxy "
                    "(or --tapproxy-url URL)", pytrace=False)
    from tapproxy.pytest_handles import Tapproxy

    return Tapproxy(session)


class _ServiceStarter:
    """tapproxy_service(name, argv=… | app='module:factory', port=None, env=None)."""

    def __init__(self, config: pytest.Config, session: Session | None) -> None:
        self._config = config
        self._session = session
        self.services: dict[str, TapproxyService] = (
            session.services if session is not None else {})

    def worker_port(self, base: int) -> int:
        """`base` plus the pytest-xdist worker's number (gw0 → base, gw1 → base + 1; no
        xdist → base): a port= that each worker can listen on, as its own services do."""
        return base + _worker_index(self._config)

    def __call__(self, name: str, argv: Sequence[str] | str | None = None, *,
                 app: str | None = None, port: int | None = None,
                 env: dict[str, str] | None = None) -> TapproxyService:
        if name in self.services:
            raise ValueError(f"service {name!r} is already started")
        if (argv is None) == (app is None):
            raise ValueError("give either argv or app")
        if app is not None:
            argv = [sys.executable, "-m", "aiohttp.web", "-H", "127.0.0.1", "-P", "{port}", app]
        elif isinstance(argv, str):
            argv = shlex.split(argv)
        from tapproxy.pytest_handles import TapproxyService

        try:
            svc = TapproxyService(self._session, name, list(argv), port, env)
        except TapproxyError as e:
            pytest.fail(f"tapproxy: {e}", pytrace=False)
        self.services[name] = svc
        return svc

    def stop(self) -> None:
        for svc in reversed(self.services.values()):
            with contextlib.suppress(Exception):
                svc.stop()
        self.services.clear()


@pytest.fixture(scope="session")
def tapproxy_service(pytestconfig: pytest.Config) -> Iterator[_ServiceStarter]:
    """start(name, argv=… | app='module:factory', port=None, env=None) → TapproxyService.

    `argv` (a list, or a string split like a shell) names where to listen with `{port}`;
    `app` is an aiohttp application factory run with `python -m aiohttp.web`. The service
    runs until the session ends, with the proxy environment (its calls named `name`) and
    its address named `name`; its output lines and resources are recorded. Without
    --tapproxy it runs plainly (on port= itself when given). `worker_port(P)` gives each
    pytest-xdist worker a port= of its own.
    """
    starter = _ServiceStarter(pytestconfig, _session(pytestconfig))
    yield starter
    starter.stop()
