"""The inner suite's services: plain subprocesses on free loopback ports, each calling
the next through the proxy as its own proxy user, as a compose file or a start script
would start them. Nothing here tells tapproxy which process is which service."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

SERVICES = Path(os.environ["SCENARIO_SERVICES"])
PORTS = Path("ports.json")  # {test name: {service: port}}, read by the outer tests
_PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
               "no_proxy", "ALL_PROXY", "all_proxy", "grpc_proxy", "NODE_USE_ENV_PROXY")


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


class Hops:
    """Starts one test's services; `send` waits until every one listens, then calls."""

    def __init__(self, tapproxy) -> None:
        self.tapproxy = tapproxy
        self.ports: dict[str, int] = {}
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def port(self, name: str, port: int | None = None) -> int:
        if name not in self.ports:
            self.ports[name] = port or _free_port(set(self.ports.values()))
        return self.ports[name]

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}{path}"

    def call(self, name: str, path: str, method: str = "POST") -> dict:
        return {"method": method, "url": self.url(name, path)}

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.procs.append((name, subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)))

    def py(self, name: str, routes: dict, proxy_env: bool = True) -> None:
        """An aiohttp hop (services/hop.py); with proxy_env its calls are named `name`."""
        env = _plain_env()
        if proxy_env:
            env.update(self.tapproxy.env_for(name))
        self._start(name, [sys.executable, str(SERVICES / "hop.py"), str(self.port(name)),
                           json.dumps(routes)], env)

    def node(self, name: str, next_url: str) -> None:
        """The Node hop: its proxy and proxy user are set in its code, not its env."""
        self._start(name, ["node", str(SERVICES / "hop.js"), str(self.port(name)), name,
                           next_url, urlsplit(self.tapproxy.url).netloc], _plain_env())

    def go(self, name: str, next_url: str) -> None:
        """The Go hop: its client's proxy is TAP_PROXY, the proxy URL with its user."""
        proxy = self.tapproxy.url.replace("http://", f"http://{name}:tap@")
        self._start(name, [os.environ["SCENARIO_GO_BIN"], str(self.port(name)), next_url],
                    {**_plain_env(), "TAP_PROXY": proxy})

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        for name, proc in self.procs:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"service {name} exited with {proc.returncode}")
                try:
                    socket.create_connection(("127.0.0.1", self.ports[name]), 0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"service {name} never listened")
                    time.sleep(0.05)

    def send(self, method: str, name: str, path: str) -> requests.Response:
        """The test's own call, through the proxy as `tests`."""
        self._wait()
        proxy = self.tapproxy.env["HTTP_PROXY"]
        return requests.request(method, self.url(name, path), json={"test": True},
                                proxies={"http": proxy}, timeout=30)

    def stop(self) -> None:
        for _, proc in self.procs:
            proc.kill()
        for _, proc in self.procs:
            proc.wait()


@pytest.fixture
def hops(request, tapproxy):
    h = Hops(tapproxy)
    yield h
    h.stop()
    ports = json.loads(PORTS.read_text()) if PORTS.exists() else {}
    ports[request.node.name] = h.ports
    PORTS.write_text(json.dumps(ports))
