"""`tapproxy env --check`'s verdicts from a client's answers and the proxy's records, and
its refusals. The real clients run in test_client_matrix.py."""

from __future__ import annotations

import pytest

from tapproxy.supervisor.envcheck import (
    BYPASSED,
    FAILED,
    RECORDED,
    Client,
    Seen,
    classify,
    node_honours_env_proxy,
)
from tests.conftest import run_cli

URLS = {"http": "http://127.0.0.1:1/tapproxy-check/x", "https": "https://127.0.0.1:2/tapproxy-check/x"}
JAVA = Client("java HttpClient", "java", ("java",), bypass_hint="JVM hint",
              trust_hint="truststore hint")


@pytest.mark.parametrize(("version", "honours"), [
    ("v20.20.2", False), ("v22.20.0", False), ("v22.21.0", True), ("v22.23.1", True),
    ("v23.11.0", False), ("v24.4.1", False), ("v24.5.0", True), ("v26.0.0", True),
    ("garbage", False)])
def test_node_versions_that_honour_node_use_env_proxy(version, honours):
    assert node_honours_env_proxy(version) is honours


def test_recorded_bypassed_and_untrusted_are_told_apart():
    lines = [f"{URLS['http']} 200",
             f"{URLS['https']} error: javax.net.ssl.SSLHandshakeException: PKIX path building "
             "failed"]
    seen = {"/tapproxy-check/x": Seen("check", "proxy-auth")}
    http, https = classify(JAVA, URLS, lines, seen)
    assert (http.result, http.detail) == (RECORDED, "caller check (proxy-auth)")
    assert (https.result, https.hint) == (FAILED, "truststore hint")
    assert https.detail.startswith("javax.net.ssl.SSLHandshakeException")

    bypassed = classify(JAVA, URLS, [f"{URLS['http']} 200"], {}, failure="exit code 1")
    assert [(o.result, o.detail) for o in bypassed] == [
        (BYPASSED, "status 200, the proxy saw nothing"), (FAILED, "exit code 1")]
    assert bypassed[0].hint.startswith("JVM hint; or front the service (tapproxy record --start")


def test_a_refused_connection_is_a_failure_without_a_trust_hint():
    [o] = classify(JAVA, {"https": URLS["https"]},
                   [f"{URLS['https']} error: java.net.ConnectException: refused"], {})
    assert (o.result, o.hint) == (FAILED, "")


def test_client_names_go_with_check_only():
    out = run_cli("env", "curl")
    assert out.returncode == 2
    assert out.stderr.strip() == ("tapproxy: error: unexpected argument 'curl' "
                                  "(client names go with --check)")


def test_unknown_client_is_one_line(tmp_path):
    out = run_cli("env", "--check", "--confdir", tmp_path, "cobol")
    assert out.returncode == 2
    assert out.stderr.strip() == ("tapproxy: error: unknown client 'cobol': choose from "
                                  "curl, wget, python, node, java, go")


def test_a_check_that_finds_no_client_fails_and_says_so(tmp_path):
    # Nothing checked is not a pass: exit 1, like a client that went around the proxy.
    empty = tmp_path / "bin"
    empty.mkdir()
    out = run_cli("env", "--check", "--confdir", tmp_path / "conf", "curl", "go",
                  env={"PATH": str(empty), "HOME": str(tmp_path)})
    assert out.returncode == 1, out
    assert out.stdout.splitlines() == ["skipped: curl: not found on PATH",
                                       "skipped: go: not found on PATH"]
    assert out.stderr.splitlines() == ["tapproxy: error: no client to check: none was "
                                       "found on PATH"]


def test_the_report_keeps_within_80_columns_and_never_breaks_a_command(capsys):
    from tapproxy.supervisor.envcheck import Outcome, print_report

    hint = ("Node v20.20.2 reads no proxy variable; Node ≥ 22.21 or ≥ 24.5 does with "
            "NODE_USE_ENV_PROXY=1 (exported); or front the service (tapproxy record --start "
            "'NAME@PORT=COMMAND {port}', or --reverse NAME=URL@PORT for one started elsewhere)")
    print_report([Outcome("node fetch", "http", BYPASSED, "status 200", hint)],
                 ["/usr/bin/python3: cannot import requests, httpx, aiohttp"])
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80, lines
    assert lines[1].startswith("            → Node v20.20.2")
    assert all(line.startswith(" " * 14) for line in lines[2:-1])  # under the hint
    assert " ".join(line.strip() for line in lines[1:-1]) == f"→ {hint}"
