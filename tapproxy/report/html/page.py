"""The report as one HTML document: the template (Jinja2, autoescaped), the page's script
and style inlined, and the view model in `<script type="application/json">` blocks.

A block larger than `COMPRESS_ABOVE` bytes is raw deflate in base64, which the page
inflates with the browser's DecompressionStream: no library, no fetch. Plain JSON is
escaped so that no recorded string can end the script element or start markup (`<`,
`>`, `&` as \\u escapes; U+2028/2029 are escaped by ensure_ascii).
"""

from __future__ import annotations

import base64
import json
import zlib
from importlib import resources

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

__all__ = ["COMPRESS_ABOVE", "embed_json", "render_page"]

COMPRESS_ABOVE = 32_768
_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def embed_json(value: object, compress: bool | None = None) -> tuple[str, str]:
    """(encoding, text) of `value` for a JSON script block: `json` or `deflate-raw+base64`."""
    # ensure_ascii: lone surrogates (undecodable recorded bytes) and U+2028/2029 become
    # \u escapes that JSON.parse reads back.
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    if compress is None:
        compress = len(text) > COMPRESS_ABOVE
    if not compress:
        return "json", text.translate(_ESCAPES)
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = packer.compress(text.encode("ascii")) + packer.flush()
    return "deflate-raw+base64", base64.b64encode(raw).decode("ascii")


def _static(name: str) -> Markup:
    text = resources.files("tapproxy.report.html").joinpath("static", name).read_text("utf-8")
    if "</script" in text.lower() or "</style" in text.lower():  # would end its element
        raise AssertionError(f"static/{name} must not close a script or style element")
    return Markup(text)


def render_page(summary: dict, details: list[dict], title: str) -> str:
    """The whole document."""
    env = Environment(loader=PackageLoader("tapproxy.report.html", "templates"),
                      autoescape=True, keep_trailing_newline=True)
    blocks = []
    for block_id, value in (("tap-summary", summary), ("tap-details", details)):
        encoding, text = embed_json(value)
        blocks.append({"id": block_id, "encoding": encoding, "text": Markup(text)})
    return env.get_template("report.html.j2").render(
        title=title, summary=summary, blocks=blocks, script=_static("report.js"),
        style=_static("report.css"))
