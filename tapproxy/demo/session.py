"""The demo's suite run as a real `pytest --tapproxy` session, in a process of its own.

Its files are copied into a temporary directory with an empty pytest.ini, so it is the
rootdir (node ids read `test_shop.py::…`) and no configuration around the user's
current directory applies; the capture is written where the user asked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tapproxy.errors import DemoError

__all__ = ["CONTRACT", "CONTRACT_SPEC", "InnerRun", "run_suite"]

SUITE = Path(__file__).parent / "suite"
CONTRACT = SUITE / "catalog.yaml"
CONTRACT_SPEC = f"catalog={CONTRACT}"  # as --contract takes it
_FILES = ("conftest.py", "test_shop.py")
# What would send the inner run's calls elsewhere, or change its options.
_LEFT_OUT = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
             "all_proxy", "NO_PROXY", "no_proxy", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
_TIMEOUT = 90  # seconds: far above the ~10 s it takes, below a hang nobody notices


@dataclass(frozen=True)
class InnerRun:
    command: list[str]  # as shown to the user (the test file, not the temporary path)
    returncode: int
    output: str  # pytest's stdout and stderr


def run_suite(capture: Path, confdir: Path) -> InnerRun:
    """Run the suite under `pytest --tapproxy`, recording into `capture`."""
    args = ["--tapproxy", f"--tapproxy-capture={capture}", f"--tapproxy-confdir={confdir}",
            "--tapproxy-contract=catalog=catalog.yaml",
            "--tapproxy-otlp-receive", "--tapproxy-inject-traceparent"]
    shown = ["pytest", "--tapproxy", "--tapproxy-contract", "catalog=catalog.yaml",
             "--tapproxy-otlp-receive", "--tapproxy-inject-traceparent", "test_shop.py"]
    env = {k: v for k, v in os.environ.items() if k not in _LEFT_OUT}
    env["COLUMNS"] = "80"  # pytest's own lines, like tapproxy's, within 80 columns
    with tempfile.TemporaryDirectory(prefix="tapproxy-demo-") as tmp:
        for name in _FILES:
            shutil.copyfile(SUITE / name, Path(tmp) / name)
        # The contract beside the tests, as the shown command names it: the failure section
        # then points at catalog.yaml:LINE:COL, not at a long path inside site-packages.
        shutil.copyfile(CONTRACT, Path(tmp) / "catalog.yaml")
        (Path(tmp) / "pytest.ini").write_text("[pytest]\n")
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                   f"--rootdir={tmp}", f"--config-file={tmp}/pytest.ini", "--tb=short",
                   "-ra", *args, "test_shop.py"]
        try:
            done = subprocess.run(command, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise DemoError(f"the demo's pytest session ran over {_TIMEOUT} s") from e
    return InnerRun(shown, done.returncode, done.stdout + done.stderr)
