"""tapproxy: record, trace and explain the HTTP exchanges of an integration test."""

from tapproxy.errors import TapproxyError

__all__ = ["TapproxyError", "__version__"]
__version__ = "0.1.0"
