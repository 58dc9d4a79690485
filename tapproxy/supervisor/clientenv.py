"""What each language's clients need, beyond HTTP(S)_PROXY, to go through the proxy.

Node, Java and wget read none of the variables most clients share, so each gets its own:
Node ≥ 22.21 / 24.5 honours the proxy variables only with NODE_USE_ENV_PROXY=1; the JVM
reads JAVA_TOOL_OPTIONS (system properties for the proxy and a PKCS12 truststore);
wget reads its CA from a wgetrc. The files (truststore, wgetrc) are written beside the
CA, once, and rewritten when the CA changes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tapproxy.errors import ProxyError
from tapproxy.supervisor.options import Address

__all__ = ["TRUSTSTORE_PASSWORD", "ecosystem_exports", "java_options", "java_truststore",
           "wgetrc"]

# A truststore holds only public certificates; Java wants a password to check its MAC.
TRUSTSTORE_PASSWORD = "tapproxy"


def ecosystem_exports(proxy: Address, ca: Path) -> dict[str, str]:
    """NODE_USE_ENV_PROXY, JAVA_TOOL_OPTIONS and WGETRC for a proxy and its CA (PEM)."""
    return {
        "NODE_USE_ENV_PROXY": "1",
        "JAVA_TOOL_OPTIONS": java_options(proxy, java_truststore(ca)),
        "WGETRC": str(wgetrc(ca)),
    }


def java_options(proxy: Address, truststore: Path) -> str:
    """JVM system properties that send http and https through `proxy`, loopback included.

    The JDK's default `http.nonProxyHosts` is `localhost|127.*|[::1]`, and a non-empty
    value gets those appended; only an empty one proxies everything (sun.net.spi.
    DefaultProxySelector). The JVM splits JAVA_TOOL_OPTIONS on blanks and strips single
    or double quotes, so `-Dhttp.nonProxyHosts=` and `-Dhttp.nonProxyHosts=""` both give
    the empty value; `https.nonProxyHosts` does not exist: the http one governs both.
    """
    words = [
        f"-Dhttp.proxyHost={proxy.host}", f"-Dhttp.proxyPort={proxy.port}",
        f"-Dhttps.proxyHost={proxy.host}", f"-Dhttps.proxyPort={proxy.port}",
        "-Dhttp.nonProxyHosts=",
        f"-Djavax.net.ssl.trustStore={truststore}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
        f"-Djavax.net.ssl.trustStorePassword={TRUSTSTORE_PASSWORD}",
    ]
    return " ".join(_java_quote(w) for w in words)


def _java_quote(word: str) -> str:
    # The JVM honours double quotes in JAVA_TOOL_OPTIONS to keep a blank inside one option.
    return f'"{word}"' if any(c.isspace() for c in word) else word


def java_truststore(ca: Path) -> Path:
    """A PKCS12 truststore holding the CA, beside it (`tapproxy-ca-truststore.p12`).

    mitmproxy's own `mitmproxy-ca-cert.p12` does not serve: Java trusts a certificate in a
    PKCS12 file only when it carries Oracle's trusted-key-usage attribute, which
    `serialize_java_truststore` adds.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    def store() -> bytes:
        try:
            cert = x509.load_pem_x509_certificate(_read(ca))
        except ValueError as e:
            raise ProxyError(f"{ca}: not a PEM certificate: {e}") from None
        return pkcs12.serialize_java_truststore(
            [pkcs12.PKCS12Certificate(cert, b"tapproxy-ca")],
            BestAvailableEncryption(TRUSTSTORE_PASSWORD.encode()),
        )

    return _write_if_newer(ca.with_name("tapproxy-ca-truststore.p12"), ca, store)


def wgetrc(ca: Path) -> Path:
    """A wgetrc naming the CA, beside it (`tapproxy-wgetrc`): wget reads no CA variable.

    WGETRC replaces ~/.wgetrc (wget still reads the system-wide /etc/wgetrc).
    """
    return _write_if_newer(ca.with_name("tapproxy-wgetrc"), ca,
                           lambda: f"ca_certificate = {ca}\n".encode())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ProxyError(f"{path}: cannot read the proxy's CA: {e.strerror}") from None


def _write_if_newer(path: Path, source: Path, content: Callable[[], bytes]) -> Path:
    """Write `content()` to `path` unless it is already there and newer than `source`.

    Written to a temporary file and renamed, so concurrent `tapproxy env` calls (one per
    xdist worker) never see half a file.
    """
    try:
        if path.exists() and path.stat().st_mtime >= source.stat().st_mtime:
            return path
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise ProxyError(f"{path}: cannot write: {e.strerror}") from None
    return path
