"""Which kind of contract a file is, told by its content, and loading it.

`SERVICE=FILE` binds a contract to one callee (its traffic that matches no interaction is
then unexpected); a bare FILE applies wherever its interactions match.
"""

from __future__ import annotations

from pathlib import Path

from tapproxy.contract.model import Contract
from tapproxy.contract.source import Document, read_document
from tapproxy.errors import ContractError

__all__ = ["detect_kind", "load_contract", "load_contracts"]

# What protoc's descriptor sets are usually called (buf writes .binpb).
_DESCRIPTOR_SUFFIXES = (".desc", ".pb", ".binpb", ".protoset", ".dsc")
_KINDS = "a tapproxy expectation file, OpenAPI 3 document, Pact file or protobuf descriptor"


def _is_descriptor_set(raw: bytes) -> bool:
    # A FileDescriptorSet's only field is 1 (file), length-delimited: tag byte 0x0a. A
    # short set can be valid UTF-8, so this is asked before the bytes are read as text.
    if raw[:1] != b"\x0a":
        return False
    from tapproxy.contract.grpc.schema import parse_descriptor_set

    return parse_descriptor_set(raw) is not None


def detect_kind(path: Path, raw: bytes) -> tuple[str, Document | None]:
    """("tapproxy" | "openapi" | "pact" | "proto" | "descriptor", the parsed document)."""
    if path.suffix == ".proto":
        return "proto", None
    if _is_descriptor_set(raw):
        return "descriptor", None
    if path.suffix in _DESCRIPTOR_SUFFIXES:
        raise ContractError(f"{path}: not a protobuf descriptor set "
                            "(protoc --descriptor_set_out=FILE --include_imports)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not {_KINDS} (binary, not a descriptor set)") from None
    doc = read_document(path, text)
    data = doc.data
    if isinstance(data, dict):
        if "tapproxy" in data:
            return "tapproxy", doc
        if isinstance(data.get("openapi"), str):
            return "openapi", doc
        if "swagger" in data:
            raise ContractError(f"{doc.location('/swagger')}: Swagger 2.0 is not supported; "
                                "convert it to OpenAPI 3 (e.g. swagger2openapi)")
        if "interactions" in data and ("consumer" in data or "provider" in data):
            return "pact", doc
    raise ContractError(f"{path}: not {_KINDS} (expected a top-level `tapproxy`, `openapi` "
                        "or `interactions` key)")


def load_contract(spec: str | Path) -> Contract:
    """Load `[SERVICE=]FILE` as whichever kind of contract its content says it is."""
    service, path = None, Path(spec)
    text = str(spec)
    if "=" in text and not Path(text).exists():
        name, _, file = text.partition("=")
        service, path = (name or None), Path(file)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ContractError(f"{path}: cannot read: {e.strerror or e}") from None
    kind, doc = detect_kind(path, raw)
    if kind == "tapproxy":
        from tapproxy.contract.own.format import load
        return load(doc, service=service)
    if kind == "openapi":
        from tapproxy.contract.openapi.contract import load
        return load(doc, service=service)
    if kind == "pact":
        from tapproxy.contract.pact.contract import load
        return load(doc, service=service)
    from tapproxy.contract.grpc.contract import load
    return load(path, raw, kind=kind, service=service)


def load_contracts(specs: list[str] | tuple[str, ...]) -> list[Contract]:
    """Every `--contract` value, loaded; the first bad one is a ContractError."""
    return [load_contract(s) for s in specs]
