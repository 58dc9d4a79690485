"""Recording into a small filesystem that fills up: said at once, counted, not silent.

A real 5 MiB tmpfs, the real `tapproxy record` (and `mitmdump -s addons/record.py`), a
real client: the proxy must go on forwarding while the capture has stopped growing.
"""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tapproxy.capture import Exchange, open_capture
from tests.cli.test_record_cli import MITMDUMP, ROOT, confdir, record  # noqa: F401
from tests.conftest import free_port, missing_permission, wait_for

BODY = 100 << 10  # each response; 80 of them are 8 MiB, more than the filesystem holds
COUNT = 80


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 5 MiB tmpfs mounted for this test (skipped where mounting is not allowed)."""
    where = tmp_path / "small"
    where.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(where)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        missing_permission(f"cannot mount a small tmpfs here (needs root): "
                           f"{out.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def payload(i: int) -> bytes:
    return random.Random(i).randbytes(BODY)


@pytest.fixture
def blobs(services):
    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=payload(int(request.match_info["i"])),
                            content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/blob/{i}", blob)
    return services.start("blobs", app)


def fetch_all(proxy_url: str, blobs) -> None:
    """Every response through the proxy arrives whole, disk full or not."""
    with requests.Session() as s:
        s.trust_env, s.proxies = False, {"http": proxy_url}
        for i in range(COUNT):
            r = s.get(f"{blobs.url}/blob/{i}", timeout=30)
            assert (r.status_code, r.content == payload(i)) == (200, True), i


def check_capture(path: Path, written: int) -> None:
    """The capture holds whole records up to the failure, and reads without complaint."""
    with open_capture(path) as reader:
        records = list(reader)
        assert not reader.truncated, reader.problem
    assert len(records) == written
    for x in records:
        assert isinstance(x, Exchange)
        i = int(x.request.path.rsplit("/", 1)[1])
        assert x.response.body == payload(i)


def test_a_full_disk_is_reported_at_once_counted_and_fails_the_run(record, small_fs,  # noqa: F811
                                                                   blobs):
    output = small_fs / "run.tap"
    rec = record("--service", f"blobs=127.0.0.1:{blobs.port}", output=output)
    ctl = rec.control_url
    assert requests.post(f"{ctl}/tests/start", json={"name": "test_big"}, timeout=10).ok

    fetch_all(rec.proxy_url("loader"), blobs)

    stats = wait_for(lambda: (s := requests.get(f"{ctl}/stats", timeout=10).json())
                     ["write_error"] and s, what="the write failure in /stats")
    assert "run.tap: cannot write the capture: No space left on device (ENOSPC)" in (
        stats["write_error"])
    # Said at once on stderr, while the proxy still runs: one line, file and errno.
    assert rec.proc.poll() is None
    err = rec.stderr_path.read_text()
    [line] = [ln for ln in err.splitlines() if "cannot write" in ln]
    assert line.startswith(f"tapproxy: error: {output}: cannot write the capture: "
                           "No space left on device (ENOSPC)")
    assert "Traceback" not in err

    r = requests.post(f"{ctl}/flush", timeout=30)
    assert r.status_code == 507
    flushed = r.json()
    assert "No space left on device" in flushed["error"]
    stats = requests.get(f"{ctl}/stats", timeout=10).json()
    assert stats["exchanges"] == COUNT
    assert stats["records_lost"] > 0
    assert stats["records_written"] + stats["records_lost"] == COUNT
    assert flushed["records_lost"] == stats["records_lost"]

    r = requests.post(f"{ctl}/tests/end", json={"name": "test_big", "outcome": "passed"},
                      timeout=10)
    assert r.status_code == 507
    assert r.json()["closed"] == "test_big" and "No space left" in r.json()["error"]

    # Still forwarding after the failure.
    fetch_all(rec.proxy_url("loader"), blobs)

    code, out, err = rec.stop(signal.SIGINT)
    assert code == 1, err
    assert "Traceback" not in err
    lost = 2 * COUNT + 1 - stats["records_written"]  # both rounds and the test record
    assert out[-1] == (f"# {2 * COUNT} exchanges seen; {stats['records_written']} records "
                       f"written to {output}, {lost} lost")
    assert err.splitlines()[-1].startswith(f"tapproxy: error: {lost} records lost: {output}")
    check_capture(output, stats["records_written"])


def test_mitmdump_addon_reports_a_full_disk_too(tmp_path, confdir, small_fs, blobs):  # noqa: F811
    port, ctl = free_port(), free_port()
    output = small_fs / "addon.tap"
    err_path = tmp_path / "mitmdump.stderr"
    with open(err_path, "w") as stderr:
        proc = subprocess.Popen(
            [MITMDUMP, "-q", "-p", str(port), "-s", ROOT / "addons" / "record.py",
             "--set", f"tapproxy_output={output}",
             "--set", f"tapproxy_control=127.0.0.1:{ctl}", "--set", f"confdir={confdir}"],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path)
    control = f"http://127.0.0.1:{ctl}"
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mitmdump exited {proc.returncode}: {err_path.read_text()}")
            try:
                return requests.get(f"{control}/stats", timeout=5).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, what="mitmdump's control API")
        fetch_all(f"http://127.0.0.1:{port}", blobs)
        r = requests.post(f"{control}/flush", timeout=30)
        assert r.status_code == 507 and "No space left" in r.json()["error"]
        written = requests.get(f"{control}/stats", timeout=10).json()["records_written"]
        assert [ln for ln in err_path.read_text().splitlines() if "cannot write" in ln]
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text()
    assert "Traceback" not in err
    assert f"tapproxy: error: {COUNT - written} records lost: {output}" in err
    assert code == 1
    check_capture(output, written)
