"""Reading a contract file (YAML or JSON) with the line and column of every value.

Errors and SARIF results point at the contract's own lines, so the document is kept as
YAML nodes beside the plain data; `Document.location` finds a JSON pointer's node.
JSON is read by the same parser (YAML is a superset of JSON's syntax as used in specs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from tapproxy.contract.model import Location
from tapproxy.errors import ContractError

__all__ = ["Document", "read_document"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed contract file: `data` as plain Python values, positions on request."""

    path: Path
    data: object
    root: yaml.Node | None

    def location(self, pointer: str = "") -> Location:
        """Where the value at JSON pointer `pointer` starts (or its nearest ancestor)."""
        node = self.root
        best = node
        for token in (pointer.split("/")[1:] if pointer else ()):
            key = _unescape(token)
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and key.isdigit() \
                    and int(key) < len(node.value):
                node = node.value[int(key)]
            else:
                node = None
            if node is None:
                break
            best = node
        if best is None:
            return Location(self.path)
        mark = best.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def error(self, pointer: str, reason: str) -> ContractError:
        """A ContractError naming file, line, column and `reason`."""
        return ContractError(f"{self.location(pointer)}: {reason}")


def _one_line(text: str | None) -> str:
    # PyYAML's messages can span lines and name "<unicode string>" for the file.
    return " ".join((text or "malformed").replace(' in "<unicode string>"', "").split())


def read_document(path: Path, text: str | None = None) -> Document:
    """Parse `path` as YAML or JSON; ContractError with file:line:column when it is neither."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ContractError(f"{path}: not UTF-8 text (byte {e.start})") from None
        except OSError as e:
            raise ContractError(f"{path}: cannot read: {e.strerror or e}") from None
    if text.lstrip().startswith(("{", "[")):
        return _read_json(path, text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ContractError(f"{where}: {_one_line(e.problem or e.context)}") from None
    except yaml.YAMLError as e:
        raise ContractError(f"{path}: not YAML or JSON: {_one_line(str(e))}") from None
    finally:
        loader.dispose()
    return Document(path, data, root)


def _read_json(path: Path, text: str) -> Document:
    # JSON by its own parser: PyYAML refuses some valid JSON (surrogate-pair escapes, which
    # Python's json.dumps writes by default; a raw DEL). Positions still come from the
    # YAML node tree when PyYAML can read the file, else the file alone is named.
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ContractError(f"{path}:{e.lineno}:{e.colno}: not JSON: {e.msg}") from None
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError:
        root = None
    finally:
        loader.dispose()
    return Document(path, data, root)
