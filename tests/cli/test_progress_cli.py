"""Long commands show a progress bar on a terminal's stderr, and nothing in a pipe.

Each command runs twice on the same large capture: stderr a pipe, then stderr a
terminal (a pty). The terminal shows the bar; stdout is the same byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TAPPROXY
from tests.report.test_report_browser import _generated_capture

pytestmark = pytest.mark.slow  # ten commands, each twice on 4,000 exchanges

_CONTRACT = "tapproxy: 1\ninteractions:\n  - request: {path: /api/payments/3}\n    count: any\n"

# (command line after `tapproxy`, the bar's label); {cap} the capture, {dir} the folder.
_COMMANDS = [
    ("show {cap}", "reading"),
    ("show {cap} --json --errors", "reading"),
    ("show {cap} --logs", "reading"),
    ("export {cap} --har {dir}/out.har", "exporting"),
    ("import {dir}/in.har -o {dir}/imported.tap", "importing"),
    ("spans {cap} --tree", "reading"),
    ("why {cap}", "reading"),
    ("stats {cap}", "reading"),
    ("check {cap} --contract {dir}/c.yaml", "checking"),
    ("report {cap} -o {dir}/r.html", "reading"),
]


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    """A folder with a capture of 4,000 exchanges, its HAR and a contract."""
    folder = tmp_path_factory.mktemp("large")
    assert _generated_capture(folder / "run.tap", 400, 10) == 4000
    r = subprocess.run([*TAPPROXY, "export", str(folder / "run.tap"), "--har",
                        str(folder / "in.har")], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (folder / "c.yaml").write_text(_CONTRACT)
    return folder


def _args(line: str, folder: Path) -> list[str]:
    return line.format(cap=folder / "run.tap", dir=folder).split()


def _on_terminal(args: list[str]) -> tuple[int, bytes, bytes]:
    """Exit code, stdout (a pipe) and what a terminal on stderr showed."""
    main, side = os.openpty()
    # stdout to a file: a full pipe nobody reads while the terminal is read would stall.
    out_file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    try:
        proc = subprocess.Popen([*TAPPROXY, *args], stdout=out_file, stderr=side,
                                env={**os.environ, "COLUMNS": "80"})
        os.close(side)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            shown += chunk
        proc.wait(timeout=120)
        out_file.seek(0)
        out = out_file.read()
    finally:
        os.close(main)
        out_file.close()
    return proc.returncode, out, shown


@pytest.mark.parametrize(("line", "label"), _COMMANDS, ids=[c[0].split()[0] + str(i)
                                                             for i, c in enumerate(_COMMANDS)])
def test_a_bar_on_a_terminal_and_nothing_in_a_pipe(large, line, label) -> None:
    args = _args(line, large)
    piped = subprocess.run([*TAPPROXY, *args], capture_output=True, timeout=120)
    assert piped.returncode in (0, 1), piped.stderr
    assert label.encode() not in piped.stderr and b"\x1b[" not in piped.stderr
    assert "━".encode() not in piped.stderr

    code, out, shown = _on_terminal(args)
    assert code == piped.returncode
    assert out == piped.stdout  # the bar never touches stdout
    assert label.encode() in shown and "━".encode() in shown, shown[-400:]


def test_the_bar_is_gone_when_the_command_ends(large) -> None:
    # transient: the last thing on the terminal is the command's own line, not a bar.
    code, out, shown = _on_terminal(_args("spans {cap} --out {dir}/o.json", large))
    assert code == 0 and out == b""
    last = shown.rsplit(b"\x1b[2K", 1)[-1]  # after the bar's line was last erased
    assert b" spans for 400 tests" in last and "━".encode() not in last


def test_ctrl_c_erases_the_bar_and_says_one_line(tmp_path) -> None:
    # Large enough that reading it is still under way when the first bar is drawn.
    capture = tmp_path / "big.tap"
    _generated_capture(capture, 2000, 10)
    main, side = os.openpty()
    try:
        proc = subprocess.Popen([*TAPPROXY, "stats", str(capture)],
                                stdout=subprocess.DEVNULL, stderr=side)
        os.close(side)
        shown, sent = b"", False
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
            if not sent and "━".encode() in shown:
                proc.send_signal(signal.SIGINT)
                sent = True
        proc.wait(timeout=120)
    finally:
        os.close(main)
    assert proc.returncode == 130
    last = shown.rsplit(b"\x1b[2K", 1)[-1]
    assert last == b"tapproxy: interrupted\r\n", shown[-300:]
