"""What a recording proxy's start-up loads: what recording needs, not the rest.

Every module left out is start-up time saved for `tapproxy record` and `pytest
--tapproxy`: mitmproxy's built-in addons tapproxy does not run bring flask, ldap3 and
werkzeug; the OpenTelemetry SDK is for a proxy that receives spans; failure stories
and reports are read after the run. Each start runs in a fresh interpreter, so that
what the test session itself imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

START = """
import json, sys
from pathlib import Path

import requests

from tapproxy.proxy.certs import ca_cert_path
from tapproxy.proxy.embedded import BackgroundProxy
from tapproxy.supervisor.fronting import free_loopback_port
from tapproxy.supervisor.options import Address, RecordOptions

receive = sys.argv[3] == "receive"
opts = RecordOptions(output=Path(sys.argv[1]), confdir=Path(sys.argv[2]),
                     listen=Address("127.0.0.1", free_loopback_port()),
                     control=Address("127.0.0.1", 0),
                     otlp_receive=Address("127.0.0.1", free_loopback_port()) if receive
                     else None)
ca_cert_path(opts.confdir)  # made, and checked by tapproxy: the rest is mitmproxy's
ca_reads = []
sys.addaudithook(lambda event, args: event == "open" and
                 str(args[0]).endswith("mitmproxy-ca.pem") and ca_reads.append(1))
proxy = BackgroundProxy(opts)
proxy.start()
# The proxy works: its control API answers through a request it records.
status = requests.get(proxy.control.url + "/stats",
                      proxies={"http": f"http://{opts.listen}"}, timeout=10).status_code
loaded = sorted(sys.modules)
proxy.stop()
import mitmproxy.addons  # a user's script may still want the package whole

print(json.dumps({"status": status, "loaded": loaded, "ca_reads": len(ca_reads),
                  "defaults": [type(a).__name__ for a in mitmproxy.addons.default_addons()]}))
"""

LEFT_OUT = ["flask", "ldap3", "werkzeug", "mitmproxy.addons.onboarding",
            "mitmproxy.addons.proxyauth", "mitmproxy.addons.save",
            "opentelemetry.sdk", "tapproxy.spans.otlp", "tapproxy.analysis.failure",
            "tapproxy.report.stats", "tapproxy.noise.model"]


def _start(tmp_path: Path, confdir: Path, receive: str = "no") -> dict:
    out = subprocess.run([sys.executable, "-c", START, str(tmp_path / "run.tap"),
                          str(confdir), receive], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_a_proxy_starts_without_what_recording_does_not_use(tmp_path, confdir):
    started = _start(tmp_path, confdir)
    assert started["status"] == 403  # the API refuses what came through the proxy
    assert [m for m in LEFT_OUT if m in started["loaded"]] == []
    assert "mitmproxy.addons.next_layer" in started["loaded"]
    # mitmproxy's package is whole once asked for: all 31 of its default addons.
    assert len(started["defaults"]) == 31
    assert "ProxyAuth" in started["defaults"]
    # mitmproxy loads the CA (checking its RSA key, tens of ms) once, not again as it
    # starts running.
    assert started["ca_reads"] == 1


def test_a_proxy_that_receives_spans_loads_the_receiver(tmp_path, confdir):
    started = _start(tmp_path, confdir, "receive")
    assert "tapproxy.spans.otlp" in started["loaded"]
