"""`eval "$(tapproxy env)"` is enough for a gRPC client: it goes through the proxy (grpc_proxy)
and trusts the proxy's CA (GRPC_DEFAULT_SSL_ROOTS_FILE_PATH), over TLS and h2c."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli, wait_for

CLIENT = """
import sys, grpc, echo_pb2, echo_pb2_grpc
tls_target, plain_target = sys.argv[1:3]
with grpc.secure_channel(tls_target, grpc.ssl_channel_credentials()) as ch:
    print(echo_pb2_grpc.EchoStub(ch).Unary(echo_pb2.Req(text="tls"), timeout=20).text)
with grpc.insecure_channel(plain_target) as ch:
    print(echo_pb2_grpc.EchoStub(ch).Unary(echo_pb2.Req(text="h2c"), timeout=20).text)
"""


def test_grpc_client_needs_only_the_env_exports(echo, start_echo, start_proxy, grpc_ca,
                                                tmp_path):
    ca = tmp_path / "grpc-ca.pem"
    grpc_ca.cert_pem.write_to_path(str(ca))
    tls, plain = start_echo(tls=True), start_echo()
    proxy = start_proxy(upstream_ca=ca)
    exports = run_cli("env", "--listen", str(proxy.options.listen), "--caller", "grpc-app",
                      "--confdir", proxy.options.confdir)
    assert exports.returncode == 0, exports.stderr
    assert f"export grpc_proxy='{proxy.url_as('grpc-app')}'" in exports.stdout
    assert f"export GRPC_DEFAULT_SSL_ROOTS_FILE_PATH='{proxy.ca_file}'" in exports.stdout

    script = f'eval "$1"; exec "{sys.executable}" -c "$2" {tls.target} {plain.target}'
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(echo.descriptor_set.parent)}
    out = subprocess.run(["bash", "-c", script, "bash", exports.stdout, CLIENT],
                         capture_output=True, text=True, env=env, timeout=60)
    assert (out.returncode, out.stdout) == (0, "echo tls\necho h2c\n"), out.stderr

    xs = wait_for(lambda: len(proxy.exchanges()) >= 2 and proxy.exchanges(),
                  what="both calls recorded")
    assert sorted((x.request.scheme, x.caller.name, x.grpc_status_name) for x in xs) == [
        ("http", "grpc-app", "OK"), ("https", "grpc-app", "OK")]
