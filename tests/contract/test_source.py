"""Contract files read with positions: errors are one line naming file, line and column."""

from pathlib import Path

import pytest

from tapproxy.contract.source import read_document
from tapproxy.errors import ContractError


def test_locations_point_at_the_value(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("a:\n  b:\n    - 1\n    - x: 2\n")
    doc = read_document(p)
    assert doc.data == {"a": {"b": [1, {"x": 2}]}}
    assert str(doc.location("/a/b/1/x")) == f"{p}:4:10"
    assert str(doc.location("/a/missing")) == f"{p}:2:3"  # the nearest ancestor


@pytest.mark.parametrize("content, where", [
    (b"a: [1,\n  b: }", ":2:6: "),
    (b"a: \x00b\n", ": not YAML or JSON: unacceptable character"),
])
def test_errors_are_one_line(tmp_path: Path, content: bytes, where: str):
    p = tmp_path / "c.yaml"
    p.write_bytes(content)
    with pytest.raises(ContractError) as e:
        read_document(p)
    assert str(e.value).startswith(str(p) + where)
    assert "\n" not in str(e.value) and "<unicode string>" not in str(e.value)


def test_json_that_yaml_refuses_is_read(tmp_path: Path):
    # Python's json.dumps escapes a non-BMP character as a surrogate pair; PyYAML refuses it.
    p = tmp_path / "c.json"
    p.write_text('{"name": "\\ud83d\\ude00", "del": "a\x7fb",\n "x": {"y": 1}}')
    doc = read_document(p)
    assert doc.data == {"name": "😀", "del": "a\x7fb", "x": {"y": 1}}
    assert str(doc.location("/x/y")).startswith(str(p))


def test_bad_json_names_line_and_column(tmp_path: Path):
    p = tmp_path / "c.json"
    p.write_text('{"a": 1,\n "b": }')
    with pytest.raises(ContractError, match=r"c\.json:2:7: not JSON: Expecting value$"):
        read_document(p)
