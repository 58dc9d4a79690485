"""A contract check rendered: terminal report and coverage within 80 columns, JSON,
JUnit XML (a testcase per interaction) and SARIF 2.1.0 (results at the contract's lines).

Pure: these take the `CheckResult` and return text or plain values; the CLI prints.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from tapproxy import __version__
from tapproxy.contract.check import CheckResult
from tapproxy.contract.model import MISMATCH_KINDS, ContractItem, Location, Mismatch
from tapproxy.report.columns import cut_end, cut_middle
from tapproxy.report.printable import printable

__all__ = ["check_json", "check_junit", "check_lines", "check_sarif", "coverage_lines",
           "summary_line"]

WIDTH = 80
_NO_TEST = "(no test)"
_WHOLE_RUN = "the capture as a whole"
#: Kinds that judge a test's (or the capture's) calls together, not one call.
_WHOLE_KINDS = frozenset({"order", "count", "missing-interaction"})


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _labels(result: CheckResult) -> dict[tuple[Path, str], str]:
    return {(c.path, item.id): item.label for c in result.contracts for item in c.items()}


def _item_name(item: ContractItem) -> str:
    """The label, after the id when the file gave one of its own."""
    own = f" {item.id} " not in f" {item.label} "
    return f"{item.id}: {item.label}" if own else item.label


def _edge(m: Mismatch) -> str:
    if m.caller and m.callee:
        return f"{m.caller} → {m.callee}"
    return f"→ {m.callee}" if m.callee else (f"{m.caller} →" if m.caller else "")


def _place(m: Mismatch) -> str | None:
    """Where in the exchange: `response body /qty`, `request header accept`; None for
    what concerns the call as a whole (status, latency, no interaction matches)."""
    if m.exchange_id is None or m.kind in _WHOLE_KINDS:
        return None
    if m.where.startswith(("header ", "query ", "path ")):
        return f"{m.side} {m.where}"
    if m.kind.startswith("body") or m.kind in ("missing-field", "extra-field"):
        return f"{m.side} body {m.where}".rstrip()
    return None


def _what(m: Mismatch) -> str:
    """The kind and the place: `body type or schema: response body /qty`."""
    phrase = MISMATCH_KINDS.get(m.kind, m.kind)
    place = _place(m)
    return f"{phrase}: {place}" if place else phrase


def _groups(result: CheckResult) -> dict[str, dict[tuple[str, str | None], list[Mismatch]]]:
    """test → (heading, exchange) → mismatches; whole-capture ones under their own."""
    labels = _labels(result)
    tests: dict[str, dict[tuple[str, str | None], list[Mismatch]]] = {}
    for m in result.mismatches:
        whole = m.exchange_id is None or m.kind in _WHOLE_KINDS
        if whole and m.test is None:
            test = _WHOLE_RUN
        else:
            test = m.test if m.test is not None else _NO_TEST
        if whole:
            heading = "the test as a whole" if test != _WHOLE_RUN else ""
            tests.setdefault(test, {}).setdefault((heading, None), []).append(m)
            continue
        label = labels.get((m.contract.file, m.item or ""), m.actual).split()
        if "→" in label:  # the item's own edge: the exchange's is shown instead
            label = label[label.index("→") + 2:]
        heading = f"{_edge(m)}  {' '.join(label)}".strip()
        tests.setdefault(test, {}).setdefault((heading, m.exchange_id), []).append(m)
    return tests


def _location(loc: Location, base: Path) -> str:
    path = loc.file
    with contextlib.suppress(ValueError):  # outside `base`: as given
        path = path.resolve().relative_to(base)
    return str(Location(path, loc.line, loc.column))


def _mismatch_lines(m: Mismatch, base: Path, width: int) -> list[str]:
    lines = [cut_end(printable(f"    ✗ {_what(m)}"), width)]
    if m.exchange_id is None or m.kind in _WHOLE_KINDS:  # the message says what
        lines.append(cut_end(printable(f"      {m.message}"), width))
    lines.append(cut_end(printable(f"      expected: {m.expected}"), width))
    lines.append(cut_end(printable(f"      actual:   {m.actual}"), width))
    for line in m.excerpt.splitlines()[:7]:
        lines.append(cut_end(printable(f"      │ {line}"), width))
    lines.append(cut_middle(printable(f"      contract: {_location(m.contract, base)}"),
                            width))
    return lines


def _signature(m: Mismatch) -> tuple:
    """What makes two calls' mismatches the same: kind, place, expectation, contract line
    (the actual value may differ in what does not matter, e.g. an id in the excerpt)."""
    return (m.kind, m.side, m.where, m.expected, m.actual, str(m.contract))


def _wrap_ids(head: str, ids: list[str], width: int, limit: int = 12) -> list[str]:
    words = [i[:8] for i in ids[:limit]] + ([f"… {len(ids) - limit} more"]
                                             if len(ids) > limit else [])
    lines, line = [], head
    for w in words:
        if len(line) + 1 + len(w) > width:
            lines.append(line)
            line = "      " + w
        else:
            line += " " + w
    lines.append(line)
    return [printable(x) for x in lines]


def check_lines(result: CheckResult, capture: str, width: int = WIDTH,
                base: Path | None = None) -> list[str]:
    """The mismatches grouped by test and edge, each with expected, actual, the payload
    around it and where the contract says so; then the coverage table and a summary."""
    base = (base or Path.cwd()).resolve()
    lines: list[str] = []
    groups = _groups(result)
    order = sorted(groups, key=lambda t: (t in (_NO_TEST, _WHOLE_RUN), t == _WHOLE_RUN, t))
    for test in order:
        if lines:
            lines.append("")
        lines.append(cut_middle(printable(test), width))
        # Each call's mismatches first, then what concerns the test's calls together.
        # Calls that broke the contract the same way as an earlier call of the test are
        # named under it rather than told again (a retry loop, a repeated request).
        shown: dict[tuple, list[str]] = {}
        told: list[tuple[tuple, str | None, list[Mismatch]]] = []
        for (heading, exchange), found in sorted(groups[test].items(),
                                                  key=lambda g: g[0][1] is None):
            sig = (heading, *(_signature(m) for m in found))
            if exchange is not None and sig in shown:
                shown[sig].append(exchange)
                continue
            shown[sig] = []
            told.append((sig, heading, found))
        for sig, heading, found in told:
            if heading:
                lines.append(cut_middle(printable(f"  {heading}"), width))
            for m in found:
                lines.extend(_mismatch_lines(m, base, width))
            exchange = found[0].exchange_id
            if heading and exchange is not None and found[0].kind not in _WHOLE_KINDS:
                lines.append(cut_middle(
                    printable(f"    in full: tapproxy show {capture} --exchange "
                              f"{exchange[:8]}"), width))
                again = shown[sig]
                if again:
                    lines.extend(_wrap_ids(
                        f"    the same on {_plural(len(again), 'more call')}:", again, width))
    if lines:
        lines.append("")
    lines.extend(coverage_lines(result, width, base))
    lines.append("")
    lines.append(summary_line(result, width))
    return lines


def _count_cell(n: int) -> str:
    return f"{n:>7}" if n else f"{'missed':>7}"


def coverage_lines(result: CheckResult, width: int = WIDTH, base: Path | None = None
                   ) -> list[str]:
    """Each contract's items with how many calls each matched (`missed` for none), then
    the traffic no contract documents, per edge and route."""
    base = (base or Path.cwd()).resolve()
    room = width - 7 - 4
    lines = [f"{'coverage':<{room + 4}}{'calls':>7}"]
    for i, contract in enumerate(result.contracts):
        name = f"{_location(Location(contract.path), base)} ({contract.kind})"
        lines.append(cut_middle(printable(f"  {name}"), width))
        items = contract.items()
        if not items:
            lines.append("    (no interactions)")
        for item in items:
            label = _item_name(item)
            calls = result.covered[(i, item.id)]
            lines.append(f"    {cut_middle(printable(label), room):<{room}}{_count_cell(calls)}")
    if result.undocumented:
        lines.append(f"  {'traffic no contract documents':<{room + 2}}{'calls':>7}")
        for edge, calls in sorted(result.undocumented.items(),
                                  key=lambda e: (-e[1], e[0].caller, e[0].callee)):
            label = f"{edge.caller} → {edge.callee}  {edge.method} {edge.route}"
            lines.append(f"    {cut_middle(printable(label), room):<{room}}{calls:>7}")
    return lines


def summary_line(result: CheckResult, width: int = WIDTH) -> str:
    """`3 mismatches in 2 tests; 5 of 6 interactions called; 14 exchanges, 12 checked`."""
    items = sum(len(c.items()) for c in result.contracts)
    called = sum(1 for (_, _), n in result.covered.items() if n)
    tests = {m.test for m in result.mismatches if m.test is not None}
    found = _plural(len(result.mismatches), "mismatch").replace("mismatchs", "mismatches")
    if tests:
        found += f" in {_plural(len(tests), 'test')}"
    text = (f"{found}; {called} of {_plural(items, 'item')} called; "
            f"{_plural(result.exchanges, 'exchange')}, {result.checked} checked")
    return cut_end(text, width)


# --- machine-readable --------------------------------------------------------------------


def _location_json(loc: Location) -> dict:
    return {"file": str(loc.file), "line": loc.line, "column": loc.column}


def _mismatch_json(m: Mismatch) -> dict:
    return {"kind": m.kind, "phrase": MISMATCH_KINDS.get(m.kind, m.kind),
            "message": m.message, "contract": _location_json(m.contract), "item": m.item,
            "where": m.where, "side": m.side, "expected": m.expected, "actual": m.actual,
            "exchange_id": m.exchange_id, "test": m.test, "caller": m.caller,
            "callee": m.callee, "excerpt": m.excerpt}


def check_json(result: CheckResult, capture: str) -> dict:
    """Everything the check found, as one JSON object."""
    return {
        "capture": capture,
        "clean": result.clean and result.checked > 0,
        "exchanges": result.exchanges,
        "checked": result.checked,
        "tests": len(result.tests),
        "mismatches": [_mismatch_json(m) for m in result.mismatches],
        "coverage": [
            {"contract": str(c.path), "kind": c.kind,
             "items": [{"id": item.id, "label": item.label,
                        "location": _location_json(item.location),
                        "calls": result.covered[(i, item.id)]} for item in c.items()]}
            for i, c in enumerate(result.contracts)],
        "undocumented": [{"caller": e.caller, "callee": e.callee, "method": e.method,
                          "route": e.route, "calls": n}
                         for e, n in result.undocumented.items()],
    }


def _failure_text(found: Iterable[Mismatch]) -> str:
    out = []
    for m in found:
        head = f"{m.test or _NO_TEST}: {m.message}"
        if m.exchange_id:
            head += f" (exchange {m.exchange_id})"
        out.append(f"{head}\n  contract: {m.contract}")
        out.extend(f"  | {line}" for line in m.excerpt.splitlines())
    return "\n".join(out)


def check_junit(result: CheckResult, capture: str) -> str:
    """JUnit XML: a testsuite per contract, a testcase per item (failed by its
    mismatches, skipped when never called), one for calls no item matched."""
    root = ET.Element("testsuites", name=f"tapproxy check {capture}")
    by_item: dict[tuple[Path, str | None], list[Mismatch]] = {}
    for m in result.mismatches:
        by_item.setdefault((m.contract.file, m.item), []).append(m)
    total = failed = 0
    for i, contract in enumerate(result.contracts):
        suite = ET.SubElement(root, "testsuite", name=str(contract.path))
        cases = [(_item_name(item),
                  item.location, by_item.get((contract.path, item.id), []),
                  result.covered[(i, item.id)]) for item in contract.items()]
        stray = [m for (path, item), ms in by_item.items() if path == contract.path
                 and item is None for m in ms]
        if stray:
            cases.append(("calls no interaction matches", Location(contract.path), stray, 1))
        suite_failed = suite_skipped = 0
        for name, loc, found, calls in cases:
            case = ET.SubElement(suite, "testcase", name=name, classname=str(contract.path),
                                 file=str(loc.file))
            if loc.line is not None:
                case.set("line", str(loc.line))
            if found:
                suite_failed += 1
                more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
                failure = ET.SubElement(case, "failure", type=found[0].kind,
                                        message=found[0].message + more)
                failure.text = _failure_text(found)
            elif not calls:
                suite_skipped += 1
                ET.SubElement(case, "skipped", message="never called in this capture")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(suite_failed))
        suite.set("skipped", str(suite_skipped))
        total, failed = total + len(cases), failed + suite_failed
    if result.exchanges == 0:
        suite = ET.SubElement(root, "testsuite", name=capture, tests="1", failures="0",
                              errors="1")
        case = ET.SubElement(suite, "testcase", name="exchanges checked", classname=capture)
        ET.SubElement(case, "error", message="the capture has no exchanges to check")
        total += 1
    root.set("tests", str(total))
    root.set("failures", str(failed))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode")


_SARIF_SCHEMA = ("https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
                 "sarif-schema-2.1.0.json")


def _uri(path: Path, base: Path) -> str:
    try:
        relative = path.resolve().relative_to(base)
    except ValueError:
        return path.resolve().as_uri()
    return quote(relative.as_posix())


def check_sarif(result: CheckResult, capture: str, base: Path | None = None) -> dict:
    """A SARIF 2.1.0 log: a rule per mismatch kind, a result per mismatch located at
    the contract file's line and column (so CI annotates the contract)."""
    base = (base or Path.cwd()).resolve()
    kinds = sorted({m.kind for m in result.mismatches})
    rules = [{"id": k, "name": "".join(w.title() for w in k.split("-")),
              "shortDescription": {"text": MISMATCH_KINDS.get(k, k)},
              "defaultConfiguration": {"level": "error"}} for k in kinds]
    results = []
    for m in result.mismatches:
        region = {}
        if m.contract.line is not None:
            region["startLine"] = m.contract.line
            if m.contract.column is not None:
                region["startColumn"] = m.contract.column
        physical: dict = {"artifactLocation": {"uri": _uri(m.contract.file, base)}}
        if region:
            physical["region"] = region
        properties = {k: v for k, v in (("test", m.test), ("exchangeId", m.exchange_id),
                                        ("where", m.where), ("expected", m.expected),
                                        ("actual", m.actual), ("caller", m.caller),
                                        ("callee", m.callee)) if v}
        results.append({"ruleId": m.kind, "ruleIndex": kinds.index(m.kind), "level": "error",
                        "message": {"text": (f"{m.test}: " if m.test else "") + m.message},
                        "locations": [{"physicalLocation": physical}],
                        "properties": properties})
    notes = []
    if result.exchanges == 0:
        notes.append({"level": "error",
                      "message": {"text": f"{capture}: no exchanges to check"}})
    invocation: dict = {"executionSuccessful": result.exchanges > 0,
                        "workingDirectory": {"uri": base.as_uri()}}
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "tapproxy", "version": __version__,
                                "rules": rules}},
            "invocations": [invocation],
            "results": results,
            "properties": {"capture": os.fspath(capture), "exchanges": result.exchanges,
                           "checked": result.checked},
        }],
    }
