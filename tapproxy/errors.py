"""The exception hierarchy: one class per part, all deriving from TapproxyError.

The CLI turns any TapproxyError into one line on stderr and exit code 2.
"""

__all__ = ["CaptureError", "ContractError", "DemoError", "DiffError", "ProxyError",
           "ReplayError", "ReportError", "SpansError", "TapproxyError", "UsageError"]


class TapproxyError(Exception):
    """Base of every error tapproxy reports to a user."""


class CaptureError(TapproxyError):
    """A capture file cannot be read or written (names the file and the record)."""


class ContractError(TapproxyError):
    """A contract file cannot be read or understood (names the file, line and column)."""


class DemoError(TapproxyError):
    """`tapproxy demo` cannot tell its story (a missing tool, an inner run gone wrong)."""


class DiffError(TapproxyError):
    """Captures or exchanges cannot be compared as asked (names the file or exchange)."""


class ProxyError(TapproxyError):
    """The recording proxy cannot start or run as asked (bad spec, port in use)."""


class ReportError(TapproxyError):
    """A report cannot be written (names the output file)."""


class SpansError(TapproxyError):
    """Spans cannot be decoded or exported (names the endpoint, file or record)."""


class UsageError(TapproxyError):
    """A command-line value is malformed."""


class ReplayError(TapproxyError):
    """A capture cannot be replayed as asked (no exchanges, an unknown service, a port)."""
