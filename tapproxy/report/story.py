"""A failure story as plain text lines (80 columns) and as JSON for tools.

Lines rather than terminal markup, so the same text fits `tapproxy why`, a pytest
failure section and a JUnit property. Recorded text in them is escaped (`printable`).
"""

from __future__ import annotations

from collections.abc import Sequence

from tapproxy.analysis.calltree import CallNode
from tapproxy.analysis.failure import Consequence, Failure, FailureStory, ms
from tapproxy.capture.encoding import body_text
from tapproxy.capture.model import Exchange, Request, Response
from tapproxy.contract.model import Mismatch
from tapproxy.errors import CaptureError
from tapproxy.report.columns import command_lines, cut_middle
from tapproxy.report.parties import party_name
from tapproxy.report.printable import printable

__all__ = ["exchange_ref", "gave_up", "no_root_line", "root_summary", "story_json",
           "story_lines"]

WIDTH = 80
_TAGS = {"propagated": "propagated", "retry": "retry", "same": "same", "independent":
         "independent", "handled": "handled", "unrelated": "unrelated",
         "unplaced": "unplaced", "candidate": "root?"}


def _edge(x: Exchange) -> str:
    return f"{party_name(x.caller)} → {party_name(x.callee)}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# mitmproxy records a caller that hung up before the response (its own timeout, mostly)
# as the error `client_closed` ("Client disconnected."): told in the caller's terms.
_GAVE_UP = "client_closed"


def gave_up(x: Exchange) -> str | None:
    """`orders gave up after 498 ms` for a call its caller abandoned, else None."""
    if x.error is None or x.error.kind != _GAVE_UP:
        return None
    return f"{party_name(x.caller)} gave up after {ms(x.timing.duration_ns)}"


def _label(f: Failure) -> str:
    return "gave up" if f.kind == "transport" and f.label == _GAVE_UP else f.label


def _why(story: FailureStory, x: Exchange) -> str:
    """The root's why, opening with what its caller did when it gave up on it."""
    root, said = story.root, gave_up(x)
    why = root.why
    if said is not None and root.failure.kind == "transport":
        detail = root.failure.detail
        told = f"transport error {root.failure.label}" + (f" ({detail})" if detail else "")
        if why.startswith(told):
            why = said + why[len(told):]
    return why


def _outcome(x: Exchange) -> str:
    if x.error is not None:
        return "gave up" if x.error.kind == _GAVE_UP else x.error.kind
    return str(x.status) if x.status is not None else "-"


def _target(x: Exchange) -> str:
    return f"{x.request.method} {x.route or x.request.path_only}"


def _call_line(node: CallNode, tag: str, width: int) -> str:
    x = node.exchange
    indent = "  " * min(node.depth, 6)
    if not tag and node.inference in ("ambiguous", "inferred", "unplaced"):
        tag = node.inference  # where it hangs is a guess by timing: say so
    right = f" {_outcome(x):>6} {ms(x.timing.duration_ns):>8}  {tag:<10}"
    left = printable(f"{node.number:>3} {indent}{_edge(x)}  "
                     f"{_target(x)}")
    return (_fit(left, width - len(right)).ljust(width - len(right)) + right).rstrip()


def _excerpt(message: Request | Response | None, width: int) -> str:
    if message is None:
        return ""
    try:
        text = body_text(message)
    except CaptureError:
        return f"({message.size} bytes, encoded)"
    text = " ".join(text.split())
    return _fit(text, width) if text else ""


def _shown(story: FailureStory, limit: int) -> set[int]:
    """Calls to print: all of a short test; of a long one the path to the root and every
    failing call, with their callers; and when even those are too many (a chain
    thousands deep), the root, the calls nearest it, the top of its chain and the
    first of the other failing calls."""
    nodes = story.tree.nodes
    if len(nodes) <= limit:
        return {n.number for n in nodes}
    keep: set[int] = set()
    for n in story.failures:  # each failing call and its callers, each chain walked once
        at: int | None = n
        while at is not None and at not in keep:
            keep.add(at)
            at = story.tree.node(at).parent
    if len(keep) <= limit:
        return keep
    pick: list[int] = []
    if story.root is not None:
        chain = story.tree.ancestors(story.root.number)  # the nearest caller first
        pick = [story.root.number, *chain[: limit // 2], *chain[-3:]]
    rest = sorted(keep - set(pick))
    return set(pick) | set(rest[: max(0, limit - len(set(pick)))])


def _skipped(count: int, failing: int) -> str:
    return (f"    … {count} more call{'s' * (count > 1)}, "
            + ("none failed" if not failing else
               "all failing" if failing == count else f"{failing} of them failing"))


def _few(lines: list[str], limit: int) -> list[str]:
    """At most `limit` lines: the first and the last few, with how many are left out."""
    if len(lines) <= limit:
        return lines
    head, tail = limit - 5, 4
    return [*lines[:head], f"  … {len(lines) - head - tail} more like these",
            *lines[-tail:]]


def story_lines(story: FailureStory, width: int = WIDTH, limit: int = 30,
                flag: str = "--service", capture: str | None = None,
                mismatches: Sequence[Mismatch] = ()) -> list[str]:
    """The call tree in time order with the root marked, why, and what followed; `flag`
    is the option that names an address where the root is uncertain; with `capture`
    (its path), the command that shows the root in full; the test's contract
    `mismatches` under the root.

    `#N` counts the test's calls; `show --exchange` numbers the whole capture, so the
    command names the root by its exchange id."""
    tags = {c.number: _TAGS[c.role] for c in (*story.consequences, *story.others)}
    if story.root is not None:
        tags[story.root.number] = "◀ root"
    lines = [_fit(f"{story.test or '(no test)'}  {story.outcome or 'no outcome'}", width)]
    shown = _shown(story, limit)
    skipped = failing = 0
    for node in story.tree.nodes:
        if node.number not in shown:
            skipped += 1
            failing += node.number in story.failures
            continue
        if skipped:
            lines.append(_skipped(skipped, failing))
            skipped = failing = 0
        lines.append(_call_line(node, tags.get(node.number, ""), width))
    if skipped:
        lines.append(_skipped(skipped, failing))
    root = story.root
    command: tuple[int, list[str]] | None = None
    if story.uncertain is not None:
        lines.extend(_uncertain_lines(story, width, flag))
    elif root is None:
        lines.append("no failure to explain" if not story.failures else
                     "no root: every failure was handled or caused nothing")
    else:
        x = story.tree.node(root.number).exchange
        lines.append(_fit(f"root #{root.number} {_edge(x)}  "
                          f"{_target(x)}  {_outcome(x)}", width))
        lines.extend(_wrap(f"why: {_why(story, x)}", width, "  "))
        lines.append(_fit(f"  request:  {x.request.method} {x.request.url}", width))
        body = _excerpt(x.request, width - 12)
        if body:
            lines.append(f"            {body}")
        if x.response is not None:
            lines.append(_fit(f"  response: {_status_line(x.response)}", width))
            body = _excerpt(x.response, width - 12)
            if body:
                lines.append(f"            {body}")
        elif gave_up(x) is not None:
            lines.append(_fit(f"  error:    {gave_up(x)}: it closed the connection "
                              "with no response", width))
        elif x.error is not None:
            lines.append(_fit(f"  error:    {x.error.kind}: {x.error.message}", width))
        if capture is not None:  # added after escaping, whole: a path is not cut
            show = ["tapproxy", "show", printable(capture), "--exchange",
                    printable(exchange_ref(x))]
            command = (len(lines), command_lines(show, width, "  in full:  ", "    "))
    contract = (len(lines), _mismatch_lines(story, mismatches, width))
    if story.consequences:
        lines.append("consequences:")
        lines.extend(_few([_consequence(story, c, width) for c in story.consequences],
                          limit))
        if story.propagation:
            lines.append(_fit(f"  {story.propagation}", width))
    if story.others:
        lines.append("other failures:")
        lines.extend(_few([_consequence(story, c, width) for c in story.others], limit))
    lines = [_fit(printable(line), width) for line in lines]  # recorded text, escaped
    lines[contract[0]:contract[0]] = contract[1]  # escaped already; contract paths whole
    if command is not None:
        lines[command[0]:command[0]] = command[1]
    if story.divergence is not None:
        d = story.divergence
        dx = story.tree.node(d.number).exchange
        lines.extend(_wrap(printable(f"baseline: first differs at #{d.number} "
                                     f"{_edge(dx)} {_target(dx)}: "
                                     f"{d.what}"), width, ""))
    return lines


def _mismatch_lines(story: FailureStory, mismatches: Sequence[Mismatch],
                    width: int) -> list[str]:
    from tapproxy.report.mismatches import mismatch_lines

    numbers = {node.exchange.id: node.number for node in story.tree.nodes}
    root = None if story.root is None else story.tree.node(story.root.number).exchange.id
    return mismatch_lines(mismatches, numbers, root, width)


def _uncertain_lines(story: FailureStory, width: int, flag: str) -> list[str]:
    """Which calls may be the root, why it cannot be told, and what would tell."""
    u = story.uncertain
    assert u is not None
    lines = ["root uncertain: one of"]
    for n in u.candidates:
        x = story.tree.node(n).exchange
        lines.append(_fit(f"  #{n} {_edge(x)}  {_target(x)}  {_outcome(x)}", width))
    lines.extend(_wrap(f"why: {u.reason}", width, "  "))
    if u.settle:
        lines.append("  to settle it (one of):")
        lines.extend(_fit("    " + (f"{flag} {option.removeprefix('--service ')}"
                                     if option.startswith("--service ") else option), width)
                     for option in u.settle)
    return lines


def no_root_line(story: FailureStory, width: int = WIDTH) -> str:
    """One line for a test with no root to name: why there is none (its test name cut in
    the middle if the line would pass `width`)."""
    if not story.failures:
        what = "no call failed: its own checks failed"
    else:
        roles: dict[str, int] = {}
        for c in story.others:
            roles[c.role] = roles.get(c.role, 0) + 1
        what = (f"no call to blame ({len(story.failures)} failed: "
                + ", ".join(f"{count} {role}" for role, count in sorted(roles.items()))
                + ")")
    tail = f"  {story.outcome or 'no outcome'}: {what}"
    return printable(cut_middle(story.test or "(no test)", max(20, width - len(tail))) + tail)


def root_summary(story: FailureStory) -> str | None:
    """The root in one line (`orders → payments POST /charges 500: status 500; …`), for
    the end of a test run and JUnit; None when there is no root."""
    if story.root is None:
        return None
    x = story.tree.node(story.root.number).exchange
    f = story.root.failure
    # A broken contract: the status it came with (the why says the contract broke).
    label = _outcome(x) if f.kind == "contract" else _label(f)
    return printable(f"{_edge(x)} {_target(x)} {label}: {_why(story, x)}")


def exchange_ref(x: Exchange) -> str:
    """What `show --exchange` finds `x` by in any capture it is in (also once merged):
    its id, or enough of it (13 characters: a uuid's first dash, so never a number)."""
    return x.id[:13]


def _status_line(r: Response) -> str:
    return f"{r.status} {r.reason}".rstrip()


def _consequence(story: FailureStory, c: Consequence, width: int) -> str:
    x = story.tree.node(c.number).exchange
    return _fit(f"  #{c.number} {_edge(x)} {_label(c.failure)}: "
                f"{c.reason}", width)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent + "  ")


def _call_json(node: CallNode, story: FailureStory) -> dict:
    x = node.exchange
    f = story.failures.get(node.number)
    return {
        "number": node.number, "exchange_id": x.id, "parent": node.parent,
        "depth": node.depth, "parent_inference": node.inference,
        "caller": x.caller.name, "callee": x.callee.name, "method": x.request.method,
        "path": x.request.path, "route": x.route, "status": x.status,
        "error": x.error.kind if x.error else None, "start_ns": x.timing.request_start,
        "duration_ms": round(x.timing.duration_ns / 1e6, 3),
        "failure": None if f is None else {"kind": f.kind, "label": f.label,
                                           "detail": f.detail},
    }


def _consequence_json(c: Consequence, story: FailureStory) -> dict:
    return {"number": c.number, "exchange_id": story.tree.node(c.number).exchange.id,
            "role": c.role, "reason": c.reason, "cause": c.cause,
            "failure": {"kind": c.failure.kind, "label": c.failure.label}}


def story_json(story: FailureStory, mismatches: Sequence[Mismatch] = ()) -> dict:
    """Everything in the story, with exchange ids to look calls up in the capture, and
    the test's contract `mismatches` (the root's also under `root`)."""
    from tapproxy.report.mismatches import mismatch_json

    root = None
    if story.root is not None:
        r = story.root
        x = story.tree.node(r.number).exchange
        root = {"number": r.number, "exchange_id": x.id, "why": r.why,
                "contract_mismatches": [mismatch_json(m) for m in mismatches
                                        if m.exchange_id == x.id],
                "attempt": r.attempt, "attempts": r.attempts,
                "failure": {"kind": r.failure.kind, "label": r.failure.label,
                            "detail": r.failure.detail},
                "request_excerpt": _excerpt(x.request, 400),
                "response_excerpt": _excerpt(x.response, 400)}
    d = story.divergence
    return {
        "test": story.test, "outcome": story.outcome, "root": root,
        "consequences": [_consequence_json(c, story) for c in story.consequences],
        "others": [_consequence_json(c, story) for c in story.others],
        "propagation": story.propagation or None,
        "divergence": None if d is None else {
            "number": d.number, "exchange_id": story.tree.node(d.number).exchange.id,
            "baseline_exchange_id": d.baseline_id, "what": d.what},
        "calls": [_call_json(n, story) for n in story.tree.nodes],
        "contract_mismatches": [mismatch_json(m) for m in mismatches],
        "uncertain": None if story.uncertain is None else {
            "candidates": list(story.uncertain.candidates),
            "reason": story.uncertain.reason, "settle": list(story.uncertain.settle)},
    }
