"""What a test holds in the pytest plugin: the proxy (`Tapproxy`, the `tapproxy`
fixture) and the services it started (`TapproxyService`, from `tapproxy_service`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tapproxy.capture import Exchange
from tapproxy.errors import ProxyError, TapproxyError

if TYPE_CHECKING:
    from tapproxy.pytest_session import Session

__all__ = ["TEST_CALLER", "Tapproxy", "TapproxyService"]

TEST_CALLER = "tests"  # the caller name of requests the tests themselves send


class Tapproxy:
    """What a test needs from the proxy: its URL, the environment, the test's exchanges."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<tapproxy at {self.url}>"

    @property
    def url(self) -> str:
        return f"http://{self._session.listen}"

    @property
    def capture(self) -> Path:
        """The capture the exchanges go to (a running proxy's, with --tapproxy-url)."""
        return self._session.shown_capture

    @property
    def env(self) -> dict[str, str]:
        """HTTP_PROXY/HTTPS_PROXY (the caller named `tests`), NO_PROXY='' and the CA exports."""
        return self._session.env(TEST_CALLER)

    def env_for(self, caller: str) -> dict[str, str]:
        """The same environment for a process whose calls should be named `caller`."""
        return self._session.env(caller)

    def exchanges(self) -> list[Exchange]:
        """The exchanges of the test running now, in the order they started."""
        item = self._session.current
        if item is None:
            return []
        try:
            found = self._session.exchanges(item.nodeid)
        except TapproxyError as e:  # a check that cannot see the calls must not pass
            raise AssertionError(f"tapproxy: cannot get this test's exchanges: {e}") from None
        return sorted(found, key=lambda x: x.timing.request_start)

    def calls(self, caller: str | None = None, callee: str | None = None,
              method: str | None = None, path: str | None = None) -> list[Exchange]:
        """This test's exchanges matching every criterion given."""
        return [x for x in self.exchanges()
                if (caller is None or x.caller.name == caller)
                and (callee is None or x.callee.name == callee)
                and (method is None or x.request.method == method)
                and (path is None or x.request.path_only == path)]

    def assert_called(self, caller: str | None = None, callee: str | None = None,
                      method: str | None = None, path: str | None = None,
                      status: int | None = None) -> Exchange:
        """The first matching exchange; AssertionError listing this test's calls if none."""
        found = [x for x in self.calls(caller, callee, method, path)
                 if status is None or x.status == status]
        if not found:
            want = " ".join(f"{k}={v}" for k, v in (("caller", caller), ("callee", callee),
                            ("method", method), ("path", path), ("status", status)) if v)
            from tapproxy.report.section import call_lines  # a failing check's only

            raise AssertionError(f"no call with {want}; this test's calls:\n"
                                 + "\n".join(call_lines(self.exchanges())))
        return found[0]

    def assert_no_failures(self) -> None:
        """AssertionError listing the failed calls (transport errors, 5xx) if there are any."""
        failed = [x for x in self.exchanges() if x.failed]
        if failed:
            from tapproxy.report.section import call_lines

            raise AssertionError(f"{len(failed)} call{'s' * (len(failed) > 1)} failed:\n"
                                 + "\n".join(call_lines(failed)))


class TapproxyService:
    """A service process started for the session, calling through the proxy as `name`.

    Without a session (no --tapproxy) it runs as it would without tapproxy: on `port`
    itself when given, with no proxy environment, its output passed through.
    """

    def __init__(self, session: Session | None, name: str, argv: Sequence[str],
                 port: int | None, env: dict[str, str] | None) -> None:
        from tapproxy.supervisor.fronting import ServiceProcess
        from tapproxy.supervisor.options import Address
        from tapproxy.supervisor.servicewatch import LogSink, ResourceSampler

        self.name = name
        self._sampler = None
        if getattr(session, "replaying", False):
            self._replayed(session, argv, port, env)
            return
        if session is None:
            self._process = ServiceProcess(name, argv, env=env, private_port=port)
            self._process.start()
            self.port = self._process.private_port
            return
        if port is not None and session.proxy is None:
            raise ProxyError(f"service {name}: port= fronts it with a listener of the "
                             "embedded proxy; with --tapproxy-url start it without port=")
        session.services_started = True
        self._sampler = ResourceSampler(session.journal, name)
        # With port=P it is fronted, as `record --start`: it listens on a private {port},
        # tapproxy on P, so its callers are recorded with no proxy setting of their own.
        self._process = ServiceProcess(
            name, argv, env=env,
            stdout=LogSink(session.journal, name, "stdout"),
            stderr=LogSink(session.journal, name, "stderr"))
        try:
            self._process.start(session.env(name), on_spawn=lambda pid: self._spawned(
                session, pid))
            private = self._process.private_port
            session.control.name_service(name, f"127.0.0.1:{private}")
            if port is not None:
                session.proxy.add_reverse(self._process.reverse(Address("127.0.0.1", port)))
            self.port = private if port is None else port
        except ProxyError as e:
            self.stop()
            if port is not None and session.worker is not None and "in use" in str(e):
                raise ProxyError(f"{e} (each pytest-xdist worker starts its own services: "
                                 "give port=tapproxy_service.worker_port(P))") from None
            raise
        except BaseException:
            self.stop()
            raise

    def _replayed(self, session, argv: Sequence[str], port: int | None,
                  env: dict[str, str] | None) -> None:
        """Served from the capture (pytest --tapproxy-replay); started as well, plainly,
        only where it answers what the capture lacks (--tapproxy-record-missing)."""
        self._process = None
        live = None
        if session.record_missing:
            self._process = session.start_live(self.name, argv, env)
            live = f"http://127.0.0.1:{self._process.private_port}"
        try:
            self.port = session.serve(self.name, port, live)
        except BaseException:
            self.stop()
            raise

    def _spawned(self, session: Session, pid: int) -> None:
        self._sampler.start(pid)
        if session.proxy is not None:  # its calls are `name` even without the proxy env
            session.proxy.add_service_process(pid, self.name)

    @property
    def url(self) -> str:
        """Where its callers reach it: the fronting listener with port=, else itself."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __repr__(self) -> str:
        return f"<tapproxy service {self.name} at {self.url}>"

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        if self._process is not None:
            self._process.stop()
