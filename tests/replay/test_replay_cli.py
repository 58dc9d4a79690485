"""`tapproxy replay` as a user runs it: what it prints, its exit codes, bad input."""

from __future__ import annotations

import signal
import socket
import subprocess

import httpx

from tapproxy.capture import CaptureWriter, TestCase, new_header
from tests.conftest import TAPPROXY, free_port, run_cli, wait_for


def _script(urls):
    httpx.post(f"{urls['orders']}/orders", json={"sku": "tea", "qty": 2})
    httpx.get(f"{urls['orders']}/orders/1")
    httpx.get(f"{urls['stock']}/stock/tea")


class Running:
    def __init__(self, *args, until: str = "  stock"):
        self.until = until
        self.proc = subprocess.Popen([*TAPPROXY, "replay", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        wait_for(self._ready, what="the replay to start")

    def _ready(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"replay exited: {self.proc.wait()} {self.proc.stderr.read()}")
        self.lines.append(line.rstrip("\n"))
        return self.lines[-1].startswith(self.until)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


def test_cli_serves_each_service_on_consecutive_ports_and_counts(record_shop):
    capture = record_shop(_script)
    first = free_port()
    run = Running(capture, "--first-port", first)
    assert run.lines[0] == f"replaying {capture} (3 exchanges)"
    assert run.lines[1].split() == ["orders", f"http://127.0.0.1:{first}"]
    assert run.lines[2].split() == ["stock", f"http://127.0.0.1:{first + 1}"]
    assert httpx.get(f"http://127.0.0.1:{first}/orders/1").json()["data"]["id"] == 1
    assert httpx.get(f"http://127.0.0.1:{first}/nowhere").status_code == 502
    code, out, err = run.stop()
    assert code == 0
    assert out.splitlines()[-2:] == [
        "replayed: 1 matched, 1 unmatched, 2 of 3 recordings unused, accuracy 50.0 %",
        "unused: #1, #3"]
    assert "no recorded answer for GET /nowhere to orders" in err


def test_only_the_served_services_recordings_count_as_unused(record_shop):
    # Serving stock alone: orders' recordings could not have been asked for.
    capture = record_shop(_script)
    port = free_port()
    run = Running(capture, "--service", f"stock@{port}")
    assert httpx.get(f"http://127.0.0.1:{port}/stock/tea").status_code == 200
    code, out, _ = run.stop()
    assert code == 0
    assert out.splitlines()[-1] == \
        "replayed: 1 matched, 0 unmatched, 0 of 1 recordings unused, accuracy 100.0 %"


def test_strict_exits_1_on_a_miss_or_an_unused_recording(record_shop):
    capture = record_shop(_script)
    port, other = free_port(), free_port()
    run = Running(capture, "--service", f"orders@{port}", "--service", f"stock@{other}",
                  "--strict")
    httpx.post(f"http://127.0.0.1:{port}/orders", json={"sku": "tea", "qty": 2})
    httpx.get(f"http://127.0.0.1:{port}/orders/1")
    code, out, err = run.stop()
    assert code == 1
    assert err.strip().splitlines()[-1] == "tapproxy: --strict: 1 unused"
    # Every recording used, nothing missed: 0.
    run = Running(capture, "--service", f"orders@{port}", "--service", f"stock@{other}",
                  "--strict")
    httpx.post(f"http://127.0.0.1:{port}/orders", json={"sku": "tea", "qty": 2})
    httpx.get(f"http://127.0.0.1:{port}/orders/1")
    httpx.get(f"http://127.0.0.1:{other}/stock/tea")
    code, out, err = run.stop()
    assert code == 0, err
    assert "accuracy 100.0 %" in out


def test_bad_input_is_one_line_exit_2_and_nothing_started(record_shop, tmp_path):
    capture = record_shop(_script)
    empty = tmp_path / "empty.tap"
    w = CaptureWriter(empty, new_header())
    w.write(TestCase("t", 1, 2, "passed"))
    w.close()
    r = run_cli("replay", empty)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"tapproxy: error: {empty}: no exchanges to replay\n"

    r = run_cli("replay", capture, "--service", "payments@0")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("tapproxy: error: --service payments: no exchange to payments in "
                        "the capture (recorded: orders, stock)\n")

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = held.getsockname()[1]
        free = free_port()
        r = run_cli("replay", capture, "--service", f"orders@{free}",
                    "--service", f"stock@{busy}")
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == (f"tapproxy: error: --service stock: cannot listen on "
                            f"127.0.0.1:{busy}: address already in use\n")
        # Nothing started: the port bound before the busy one was let go.
        with socket.socket() as s:
            s.bind(("127.0.0.1", free))

    r = run_cli("replay", tmp_path / "nope.tap")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such file" in r.stderr

    r = run_cli("replay", capture, "--match", "method,colour")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "colour" in r.stderr


def test_an_ignore_that_is_not_a_pointer_glob_is_one_line(record_shop):
    capture = record_shop(_script)
    r = run_cli("replay", capture, "--ignore", "items.updatedAt")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("tapproxy: error: --ignore: bad JSON pointer glob "
                               "'items.updatedAt'")
    assert r.stderr.count("\n") == 1


def test_cli_forward_proxy_answers_curl_through_http_proxy(record_shop, confdir):
    import os

    urls = {}

    def script(u):
        urls.update(u)
        _script(u)

    capture = record_shop(script)
    listen = free_port()
    run = Running(capture, "--first-port", 0, "--listen", listen, "--confdir", confdir,
                  until="  clients")
    assert run.lines[2].split()[1] != "http://127.0.0.1:1"  # --first-port 0: free ports
    assert run.lines[-2].split() == ["forward", "proxy", f"http://127.0.0.1:{listen}"]
    assert run.lines[-1] == (f'  clients: eval "$(tapproxy env --listen 127.0.0.1:{listen} '
                             f'--confdir {confdir})"')
    env = {**os.environ, "http_proxy": f"http://127.0.0.1:{listen}", "NO_PROXY": "",
           "no_proxy": ""}
    out = subprocess.run(["curl", "-sS", f"{urls['orders']}/orders/1"], env=env,
                         capture_output=True, text=True, check=True)
    assert '"sku": "tea"' in out.stdout
    code, out, _ = run.stop()
    assert code == 0 and "1 matched, 0 unmatched" in out


def test_a_bad_record_missing_is_one_line(record_shop):
    capture = record_shop(_script)
    r = run_cli("replay", capture, "--record-missing", "orders=ftp://x")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("tapproxy: error: bad --record-missing 'orders=ftp://x': expected "
                        "[NAME=]URL, e.g. orders=http://127.0.0.1:5001\n")


def test_a_replay_that_saw_no_request_says_so_and_fails(record_shop):
    capture = record_shop(_script)
    run = Running(capture, "--first-port", 0)
    code, out, err = run.stop()
    assert code == 1
    assert "0 matched, 0 unmatched, 3 of 3 recordings unused, accuracy -" in out
    assert err.strip().splitlines()[-1] == (
        "tapproxy: replayed nothing: no request reached a listener")
