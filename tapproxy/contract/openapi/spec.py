"""An OpenAPI 3.0/3.1 document as the checker reads it: valid or a located error, and every
`$ref` (also into other files) followed to the file and JSON pointer it lands on.

Validity is openapi-spec-validator's verdict; its errors carry a path only for the JSON
Schema phase, so its keyword validators are wrapped to note which node each later error
came from, and either becomes the file:line:column of a ContractError.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin

from tapproxy.contract.source import Document, read_document
from tapproxy.errors import ContractError

__all__ = ["Node", "Spec", "escape", "load_spec"]

#: Keys whose values are literal data, never holding a reference to follow.
_LITERAL_KEYS = frozenset({"example", "enum", "const", "default"})
_MAX_REF_HOPS = 64


def escape(token: str) -> str:
    """A JSON-pointer token for `token` (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _plain(value: object) -> object:
    # YAML gives `200:` as an int key and `2024-01-01` as a date; JSON (and every
    # OpenAPI tool) sees strings there.
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class Node:
    """A value of the document and where it is: its file's URI and its JSON pointer."""

    uri: str
    pointer: str
    value: object

    def child(self, *keys: str) -> Node | None:
        """The value under `keys` (no reference followed), None when absent."""
        node = self
        for key in keys:
            v = node.value
            if isinstance(v, dict) and key in v:
                node = Node(node.uri, f"{node.pointer}/{escape(key)}", v[key])
            elif isinstance(v, list) and key.isdigit() and int(key) < len(v):
                node = Node(node.uri, f"{node.pointer}/{key}", v[int(key)])
            else:
                return None
        return node

    def items(self) -> list[tuple[str, Node]]:
        v = self.value
        if isinstance(v, dict):
            return [(k, Node(self.uri, f"{self.pointer}/{escape(k)}", x)) for k, x in v.items()]
        if isinstance(v, list):
            return [(str(i), Node(self.uri, f"{self.pointer}/{i}", x)) for i, x in enumerate(v)]
        return []


class Spec:
    """The root document and the files its references reach, keyed by file URI."""

    def __init__(self, root: Document) -> None:
        self.root_uri = root.path.resolve().as_uri()
        self.documents: dict[str, Document] = {self.root_uri: root}
        self.data: dict[str, object] = {self.root_uri: _plain(root.data)}
        self.version = str(self.root.value.get("openapi", ""))  # type: ignore[union-attr]

    @property
    def root(self) -> Node:
        return Node(self.root_uri, "", self.data[self.root_uri])

    @property
    def is_30(self) -> bool:
        return self.version.startswith("3.0")

    def location(self, uri: str, pointer: str):
        """The file:line:column of `pointer` in the file `uri` (or its nearest ancestor)."""
        return self.documents[uri].location(pointer)

    def error(self, node: Node, reason: str) -> ContractError:
        return ContractError(f"{self.location(node.uri, node.pointer)}: {reason}")

    def _document(self, uri: str, near: Node) -> object:
        if uri not in self.data:
            path = Path(unquote(uri.removeprefix("file://")))
            if not uri.startswith("file://") or not path.is_file():
                raise self.error(near, f"$ref to {uri!r}: no such file "
                                       "(only local files are followed)")
            doc = read_document(path)
            self.documents[uri], self.data[uri] = doc, _plain(doc.data)
        return self.data[uri]

    def target(self, node: Node) -> Node:
        """Where the reference `node.value["$ref"]` points (ContractError if nowhere)."""
        ref = node.value["$ref"]  # type: ignore[index]
        uri, fragment = urldefrag(urljoin(node.uri, ref))
        value = self._document(uri, node)
        pointer = unquote(fragment)
        if pointer and not pointer.startswith("/"):
            raise self.error(node, f"$ref {ref!r}: only JSON-pointer fragments are followed")
        for token in pointer.split("/")[1:] if pointer else ():
            key = _unescape(token)
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                raise self.error(node, f"$ref {ref!r} points to nothing")
        return Node(uri, pointer, value)

    def resolve(self, node: Node | None) -> Node | None:
        """`node` with its Reference Object(s) followed (OpenAPI objects, not schemas)."""
        for _ in range(_MAX_REF_HOPS):
            if node is None or not isinstance(node.value, dict) \
                    or not isinstance(node.value.get("$ref"), str):
                return node
            node = self.target(node)
        raise self.error(node, "$ref chain does not end (a reference cycle)")

    def check_references(self) -> None:
        """Follow every reference once, so a dangling one is reported where it is."""
        seen: set[str] = set()
        stack = [(self.root, "")]
        while stack:
            node, parent_key = stack.pop()
            if isinstance(node.value, dict):
                if isinstance(node.value.get("$ref"), str):
                    target = self.target(node)
                    if target.uri not in seen:
                        seen.add(target.uri)
                        stack.append((Node(target.uri, "", self.data[target.uri]), ""))
                for key, child in node.items():
                    literal = key in _LITERAL_KEYS and not (
                        key == "default" and parent_key == "responses")
                    if not literal and not key.startswith("x-") \
                            and not (key == "examples" and isinstance(child.value, list)):
                        stack.append((child, key))
            elif isinstance(node.value, list):
                stack.extend((child, "") for _, child in node.items())


def _pointer(parts) -> str:
    return "".join(f"/{escape(str(p))}" for p in parts)


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _locating(base: type) -> type:
    """`base` keyword validator whose errors remember the node being validated."""
    from jsonschema_path import SchemaPath

    class Locating(base):  # type: ignore[misc, valid-type]
        def __call__(self, *args, **kwargs):
            at = next((a for a in args if isinstance(a, SchemaPath)), None)
            try:
                for err in super().__call__(*args, **kwargs):
                    if at is not None and getattr(err, "tapproxy_at", None) is None:
                        err.tapproxy_at = tuple(at.parts)
                    yield err
            except Exception as e:  # the validator failing on a node: still located
                if at is not None and getattr(e, "tapproxy_at", None) is None:
                    e.tapproxy_at = tuple(at.parts)
                raise

    return Locating


def _first_invalidity(spec: Spec) -> tuple[str, str] | None:
    """(JSON pointer, reason) of the first way the root document is not valid OpenAPI."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from openapi_spec_validator.schemas import schema_v30, schema_v31
    from openapi_spec_validator.shortcuts import get_validator_cls

    data = spec.data[spec.root_uri]
    cls = get_validator_cls(data)
    located = type("Located" + cls.__name__, (cls,), {"keyword_validators": {
        k: _locating(v) for k, v in cls.keyword_validators.items()}})
    err = next(iter(located(data, base_uri=spec.root_uri).iter_errors()), None)
    if err is None:
        return None
    at = getattr(err, "tapproxy_at", None)
    if at is None:
        # The JSON Schema phase: openapi-spec-validator's fast backend names the node
        # but says little; the reference implementation says what is wrong with it.
        meta = dict(schema_v30 if spec.is_30 else schema_v31)
        best = best_match(validator_for(meta)(meta).iter_errors(data))
        if best is not None:
            return _pointer(best.absolute_path), _short(best.message)
        return _pointer(err.absolute_path), _short(err.message)
    return _pointer((*at, *err.path)), _short(err.message)


def load_spec(doc: Document) -> Spec:
    """The document as a Spec, or a ContractError naming file, line, column and reason."""
    spec = Spec(doc)
    if not (spec.version.startswith("3.0") or spec.version.startswith("3.1")):
        raise doc.error("/openapi", f"OpenAPI {spec.version} is not supported "
                                    "(3.0 and 3.1 are)")
    spec.check_references()
    try:
        found = _first_invalidity(spec)
    except ContractError:
        raise
    except Exception as e:  # the validator's own failure on a node it could not read
        at = getattr(e, "tapproxy_at", None)
        where = doc.location(_pointer(at)) if at is not None else doc.path
        raise ContractError(f"{where}: not valid OpenAPI {spec.version}: "
                            f"{_short(str(e))}") from None
    if found is not None:
        pointer, reason = found
        raise doc.error(pointer, f"not valid OpenAPI {spec.version}: {reason}")
    return spec
