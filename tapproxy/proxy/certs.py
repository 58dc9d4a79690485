"""The interception CA, and the environment a client needs to go through the proxy."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from tapproxy.errors import ProxyError, UsageError
from tapproxy.supervisor.clientenv import ecosystem_exports
from tapproxy.supervisor.options import Address, check_caller_name

__all__ = ["ca_cert_path", "check_ca_bundle", "env_exports", "loopback_cert"]


# The CA files checked in this process, with what they were then: loading the CA
# checks its RSA key, 30-50 ms a time (more on a busy machine), and a test session asked
# once for the proxy and once per caller's environment.
_checked: dict[Path, tuple[int, int, int]] = {}


def _ca_state(confdir: Path) -> tuple[int, int, int] | None:
    try:
        st = (confdir / "mitmproxy-ca.pem").stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def ca_cert_path(confdir: Path) -> Path:
    """mitmproxy's CA certificate (PEM) in `confdir`, created on first use (read once a
    process while its files stay as they were)."""
    key = confdir.absolute()
    state = _ca_state(key)
    if state is None or _checked.get(key) != state:
        try:
            confdir.mkdir(parents=True, exist_ok=True)
            if state is None:
                from mitmproxy.certs import CertStore

                CertStore.from_store(str(confdir), "mitmproxy", 2048)
            else:
                _parse_ca(key / "mitmproxy-ca.pem")
        except OSError as e:
            raise ProxyError(f"{confdir}: cannot create the proxy's CA there: "
                             f"{e.strerror}") from e
        state = _ca_state(key)
        if state is not None:
            _checked[key] = state
    return confdir / "mitmproxy-ca-cert.pem"


def _parse_ca(path: Path) -> None:
    """Read the CA's key and certificate as mitmproxy will, without the check of the RSA
    key's arithmetic (30 ms and more): the proxy's mitmproxy makes that check itself when
    it loads the CA, and a proxy's start-up should not pay for it twice."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    raw = path.read_bytes()
    serialization.load_pem_private_key(raw, None, unsafe_skip_rsa_key_validation=True)
    x509.load_pem_x509_certificates(raw)


def loopback_cert(confdir: Path, work: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by the CA in `confdir`: its PEM
    certificate and private key, written into `work`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from mitmproxy.certs import CertStore

    store = CertStore.from_store(str(confdir), "mitmproxy", 2048)
    entry = store.get_cert("127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")])
    cert, key = work / "echo-cert.pem", work / "echo-key.pem"
    cert.write_bytes(entry.cert.to_pem())
    key.write_bytes(entry.privatekey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert, key


def check_ca_bundle(path: Path) -> None:
    """Raise UsageError unless `path` is a PEM file with at least one readable certificate
    (else mitmproxy would fail only at the first upstream TLS handshake, or not at all)."""
    from cryptography import x509

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: --upstream-ca file not found") from None
    except OSError as e:
        raise UsageError(f"{path}: --upstream-ca cannot be read: {e.strerror}") from e
    problem = None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        problem = "no '-----BEGIN CERTIFICATE-----' in it"
    else:
        try:
            x509.load_pem_x509_certificates(data)  # every certificate in it must parse
        except ValueError:
            problem = "a certificate in it is damaged"
    if problem:
        raise UsageError(f"{path}: --upstream-ca is not a PEM file of CA certificates "
                         f"({problem})")


def env_exports(listen: Address, confdir: Path, caller: str | None = None) -> dict[str, str]:
    """Variables that send a process's HTTP(S) through the proxy and make it trust the CA.

    Both spellings of the proxy variables: curl reads only lower-case `http_proxy`.
    Node, Java and wget get their own (tapproxy.supervisor.clientenv).
    NO_PROXY is set empty so an inherited one (often `localhost`) cannot bypass the tap.
    The caller's password is ignored by tapproxy; it is there because requests sends no
    Proxy-Authorization for a user without one. gRPC's C core (Python, C++, Ruby, PHP…)
    reads `grpc_proxy` before the others, `no_grpc_proxy` before `no_proxy`, and its trusted
    roots from GRPC_DEFAULT_SSL_ROOTS_FILE_PATH.
    The caller is percent-encoded (`x/y` → `x%2Fy`): clients decode it before sending,
    so the proxy reads `x/y` (UsageError for a name that cannot survive the trip).
    """
    host = "127.0.0.1" if listen.host in ("0.0.0.0", "::") else listen.host
    if caller:
        check_caller_name(caller, "caller name")
    user = f"{quote(caller, safe='')}:tap@" if caller else ""
    proxy = f"http://{user}{Address(host, listen.port)}"
    ca = str(ca_cert_path(confdir))
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = env[name.lower()] = proxy
    env["grpc_proxy"] = proxy
    env["NO_PROXY"] = env["no_proxy"] = env["no_grpc_proxy"] = ""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
                 "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"):
        env[name] = ca
    env.update(ecosystem_exports(Address(host, listen.port), Path(ca)))
    return env
