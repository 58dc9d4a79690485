"""The call tree of each test case in the terminal, from spans."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from tapproxy.report.printable import printable
from tapproxy.spans.infer import INFERENCE
from tapproxy.spans.model import Finding, Span

__all__ = ["print_span_tree"]

_WIDTH = 80


def _ms(s: Span) -> str:
    return f"{(s.end - s.start) / 1e6:.1f} ms"


def _status(s: Span) -> Text:
    code = s.attributes.get("http.response.status_code",
                            s.attributes.get("rpc.response.status_code"))
    err = s.attributes.get("error.type")
    label = str(code) if code is not None else str(err or "")
    style = "red" if s.status == "error" else "green" if code is not None else "dim"
    return Text(printable(label), style=style)


def _label(s: Span, server: Span | None) -> Text:
    t = Text()
    if s.kind == "internal" and s.parent_span_id is None and "test.case.name" in s.attributes:
        t.append(printable(s.name), style="bold")
        result = s.attributes.get("test.case.result.status")
        if result:
            t.append(f"  {printable(str(result))}",
                     style="bold red" if s.status == "error" else "green")
        t.append(f"  {_ms(s)}", style="dim")
        return t
    if s.kind == "client" and server is not None:
        t.append(f"{printable(s.service)} → {printable(server.service)}", style="bold")
        path = str(server.attributes.get("url.path", ""))
        if "rpc.method" in server.attributes:
            t.append(f"  {printable(server.name)}  ")
        else:
            t.append(f"  {printable(server.name.split(' ')[0])} {printable(path)}  ")
    else:
        t.append(printable(s.service), style="bold")
        t.append(f"  {s.kind.upper()} {printable(s.name)}  ")
    t.append_text(_status(s if server is None else (s if s.status == "error" else server)))
    t.append(f"  {_ms(s)}", style="dim")
    how = s.attributes.get(INFERENCE)
    if how and how not in ("exchange",):
        t.append(f"  [{printable(str(how))}]", style="yellow" if how == "ambiguous" else "dim")
    if not s.synthesized:
        t.append("  (sent by the service)", style="cyan")
    for e in s.events:
        if e.name == "tapproxy.context_lost":
            t.append("  context lost", style="bold yellow")
    t.no_wrap, t.overflow = True, "ellipsis"  # one line per call, cut with … at 80
    return t


def print_span_tree(spans: Iterable[Span], findings: Iterable[Finding], console: Console) -> None:
    """Each root and its descendants; a call's CLIENT and SERVER halves on one line."""
    spans = sorted(spans, key=lambda s: (s.start, s.kind != "internal"))
    ids = {s.span_id for s in spans}
    children: dict[int, list[Span]] = {}
    for s in spans:
        if s.parent_span_id in ids:
            children.setdefault(s.parent_span_id, []).append(s)

    def add(node: Tree, s: Span) -> None:
        kids = children.get(s.span_id, [])
        # The server half of the same exchange folds into its client line.
        server = next((k for k in kids if k.kind == "server" and k.exchange_id is not None
                       and k.exchange_id == s.exchange_id), None) if s.kind == "client" else None
        if server is None and s.kind == "client" and len(kids) == 1 and kids[0].kind == "server":
            server = kids[0]  # the callee's own (received) server span
        branch = node.add(_label(s, server))
        for k in kids:
            if k is not server:
                add(branch, k)
        if server is not None:
            for k in children.get(server.span_id, []):
                add(branch, k)

    roots = [s for s in spans if s.parent_span_id not in ids]
    for root in roots:
        tree = Tree(Text(""), hide_root=True, guide_style="dim")
        add(tree, root)
        console.print(tree, soft_wrap=False, width=_WIDTH)
    for f in findings:
        text = textwrap.fill(f"! {printable(f.message)}", _WIDTH, subsequent_indent="  ",
                             break_on_hyphens=False, break_long_words=False)
        console.print(Text(text, style="bold yellow"))
