"""The embedded proxy's control (`BackgroundProxy.control`): tests opened and closed in
the harness's own process, with what the control API gives (exchanges attributed, the
test case recorded after them with its outcome, the request count, the same errors),
and the API itself still seeing the same open tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tapproxy.capture import Exchange, TestCase, open_capture
from tapproxy.errors import ProxyError
from tapproxy.proxy.embedded import BackgroundProxy, EmbeddedControl
from tapproxy.supervisor.options import Address, RecordOptions
from tests.conftest import free_port
from tests.proxy.test_clients import echo_app


@pytest.fixture
def embedded(tmp_path: Path, confdir: Path) -> Iterator[BackgroundProxy]:
    proxy = BackgroundProxy(RecordOptions(
        output=tmp_path / "run.tap", listen=Address("127.0.0.1", free_port()),
        control=Address("127.0.0.1", 0), confdir=confdir))
    proxy.start()
    yield proxy
    proxy.stop()


def test_a_test_opened_in_process_owns_its_exchanges_and_is_recorded(embedded, services):
    echo = services.start("echo", echo_app())
    control = embedded.control
    assert isinstance(control, EmbeddedControl)
    s = requests.Session()
    s.proxies = {"http": f"http://{embedded.listen}"}
    assert s.get(f"{echo.url}/before", timeout=10).status_code == 200
    control.start_test("t1")
    assert requests.get(f"{control.url}/tests", timeout=10).json() == {"open": ["t1"]}
    for i in range(3):
        assert s.post(f"{echo.url}/during/{i}", data=b"x", timeout=10).status_code == 201
    assert control.end_test("t1", "failed") == 3
    assert requests.get(f"{control.url}/tests", timeout=10).json() == {"open": []}
    control.start_test("t2")
    assert control.end_test("t2", "") == 0  # no outcome: recorded as none
    embedded.stop()

    with open_capture(embedded.capture) as r:
        records = list(r)
    cases = [r for r in records if isinstance(r, TestCase)]
    assert [(c.name, c.outcome) for c in cases] == [("t1", "failed"), ("t2", None)]
    by_path = {r.request.path: r for r in records if isinstance(r, Exchange)}
    for i in range(3):
        x = by_path[f"/during/{i}"]
        assert (x.test, x.test_source) == ("t1", "control")
        assert cases[0].started <= x.timing.request_start <= x.timing.end <= cases[0].ended
        assert records.index(x) < records.index(cases[0])
    assert by_path["/before"].test is None


def test_in_process_errors_are_the_apis(embedded):
    control = embedded.control
    control.start_test("a")
    with pytest.raises(ProxyError, match=r"/tests/start: 409 test 'a' is already open$"):
        control.start_test("a")
    with pytest.raises(ProxyError, match=r"/tests/end: 404 test 'never' is not open$"):
        control.end_test("never", "passed")
    # Opened in process, closed through the API: one set of open tests.
    r = requests.post(f"{control.url}/tests/end", json={"name": "a"}, timeout=10)
    assert r.status_code == 200
    with pytest.raises(ProxyError, match="404"):
        control.end_test("a", "passed")
