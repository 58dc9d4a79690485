"""Every command README.md and docs/*.md show runs, as a reader would type it.

The convention the pages follow:

- In a fenced ```console block, a line starting with `$ ` is a command (a line ending
  in `\\`, or leaving a quote open, continues on the next); the other lines are what
  it prints, shown as the tool prints it but not compared (ports, ids and times change
  every run).
- A command exits 0 unless it ends with `# exit N`; one that ends with
  `# not run: REASON` is shown only (it needs Docker, say), and so is a whole block
  after a line `<!-- not run: REASON -->` (the comment does not show on the page).
- A fenced block whose first line is `# file: NAME` is a file the page's commands use:
  it is written to NAME before they run.
- Other blocks (```sh, ```python, ```yaml, plain) are illustration.

Each page's commands run in order in one bash session (so `&`, `$!` and `wait` work
as they do in a terminal) in a fresh temporary directory, with the venv's bin first on
PATH, after a shared set-up: `tapproxy demo` run once, whose outputs (demo.tap,
report.html, spans.json, demo.html) every page finds in its directory. A command that
starts a server runs it in the background and the page itself stops it (`kill -TERM
$!; wait $!`); whatever a page left running is stopped with its process group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
DEMO_OUTPUTS = ("demo.tap", "report.html", "spans.json", "demo.html")
PAGE_TIMEOUT = 60
_EXIT = re.compile(r"#\s*exit (\d+)\s*$")
_NOT_RUN = re.compile(r"#\s*not run:")
_NOT_RUN_BLOCK = re.compile(r"^<!-- not run: .+ -->$")


@dataclass(frozen=True)
class Command:
    line: int  # 1-based line of the `$ ` in the page
    text: str
    exit_code: int


def page_commands(path: Path) -> tuple[list[Command], dict[str, str]]:
    """The commands of the page's console blocks, and the files its `# file:` blocks give."""
    commands: list[Command] = []
    files: dict[str, str] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)", lines[i])
        if not fence:
            i += 1
            continue
        kind, start = fence.group(2), i + 1
        end = start
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        body = lines[start:end]
        if body and body[0].startswith("# file: "):
            files[body[0].removeprefix("# file: ").strip()] = "\n".join(body[1:]) + "\n"
        elif kind == "console" and not (i and _NOT_RUN_BLOCK.match(lines[i - 1])):
            commands.extend(_console_commands(body, start + 1))
        i = end + 1
    return commands, files


def _console_commands(body: list[str], first_line: int) -> list[Command]:
    commands = []
    j = 0
    while j < len(body):
        if not body[j].startswith("$ "):
            j += 1
            continue
        number, parts = first_line + j, [body[j][2:]]
        while (parts[-1].endswith("\\") or _open_quote(parts)) and j + 1 < len(body):
            j += 1
            parts.append(body[j])
        j += 1
        text = "\n".join(parts)
        if _NOT_RUN.search(parts[-1]):
            continue
        code = _EXIT.search(parts[-1])
        commands.append(Command(number, text, int(code.group(1)) if code else 0))
    return commands


def _open_quote(parts: list[str]) -> bool:
    """The command so far leaves a quote open, so it goes on to the next line."""
    try:
        shlex.split("\n".join(parts), comments=True)
    except ValueError:
        return True
    return False


def _script(commands: list[Command]) -> str:
    """One bash session: each command between markers that carry its exit status."""
    out = ["exec 2>&1"]
    for n, command in enumerate(commands):
        out.append(f"printf '\\n@@begin {n}\\n'")
        out.append(command.text)
        out.append(f"printf '\\n@@end {n} %d\\n' $?")
    return "\n".join(out) + "\n"


def _results(output: str) -> dict[int, tuple[int, str]]:
    """Per command index: its exit status and what it printed."""
    found = {}
    for m in re.finditer(r"@@begin (\d+)\n(.*?)\n@@end \1 (\d+)\n", output, re.S):
        found[int(m.group(1))] = (int(m.group(3)), m.group(2))
    return found


@pytest.fixture(scope="module")
def demo_outputs(tmp_path_factory):
    """The shared set-up: `tapproxy demo` run once, as docs/demo.md shows it."""
    require_tool("node", "nodejs")
    where = tmp_path_factory.mktemp("docs-demo")
    done = subprocess.run([str(BIN / "tapproxy"), "demo"], cwd=where, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return where


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("COLUMNS", None)
    return env


def test_the_convention_reads_commands_exits_skips_and_files(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("""text
```console
$ echo one \\
    two
one two
$ false  # exit 1
$ docker compose up  # not run: needs Docker
$ python -c 'print(
    1)'
```
<!-- not run: shown only -->
```console
$ rm -rf /
```
```yaml
# file: a.yaml
k: v
```
```sh
$ not a command of a console block
```
""")
    commands, files = page_commands(page)
    assert [(c.line, c.text, c.exit_code) for c in commands] == [
        (3, "echo one \\\n    two", 0),
        (6, "false  # exit 1", 1),
        (8, "python -c 'print(\n    1)'", 0),
    ]
    assert files == {"a.yaml": "k: v\n"}


def test_the_readme_shows_commands_that_run():
    commands, _ = page_commands(ROOT / "README.md")
    assert any(c.text.startswith("tapproxy record") for c in commands), commands


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if page_commands(p)[0]],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_commands_a_page_shows_run(page, demo_outputs, tmp_path):
    commands, files = page_commands(page)
    for name in DEMO_OUTPUTS:
        shutil.copy(demo_outputs / name, tmp_path / name)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = subprocess.Popen(["bash", "-c", _script(commands)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):  # what the page left running
            os.killpg(proc.pid, signal.SIGKILL)
    results = _results(output)
    where = page.relative_to(ROOT)
    for n, command in enumerate(commands):
        if n not in results:
            pytest.fail(f"{where}:{command.line}: did not finish: {command.text}\n"
                        f"output of the page:\n{output[-4000:]}")
        code, printed = results[n]
        if code != command.exit_code:
            pytest.fail(f"{where}:{command.line}: exit {code}, expected {command.exit_code}:"
                        f" {command.text}\n{printed[-4000:]}")
