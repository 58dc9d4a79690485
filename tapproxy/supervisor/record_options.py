"""One mapping from the record options as a user gives them (`tapproxy record`'s flags,
the mitmdump addon's `tapproxy_*` options) to RecordOptions, so both read them alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tapproxy.supervisor.options import (
    RecordOptions,
    ReverseSpec,
    parse_address,
    parse_caller_process,
    parse_host_patterns,
    parse_listen,
    parse_reverse,
    parse_service,
    parse_size,
)

__all__ = ["flag", "record_options", "redaction"]


def flag(name: str) -> str:
    """How `tapproxy record` spells an option: `max_body` → `--max-body`."""
    return "--" + name.replace("_", "-")


def redaction(redact: Sequence[str] | None, redact_header: Sequence[str] | None,
              redact_json: Sequence[str] | None, no_redact: bool) -> dict[str, Any]:
    """The redaction options as RecordOptions' fields: a NAME starting with `$` is a JSON
    path. A bad JSON path is a usage error here, before anything starts."""
    from tapproxy.capture.redact import parse_json_path

    names = tuple(redact or ())
    paths = (*(n for n in names if n.startswith("$")), *(redact_json or ()))
    if not no_redact:
        for p in paths:
            parse_json_path(p)
    return {"redact": not no_redact,
            "redact_names": tuple(n for n in names if not n.startswith("$")),
            "redact_headers": tuple(redact_header or ()), "redact_json": paths}


def record_options(
    output: Path, *, listen: Sequence[str] = (), allow_hosts: Sequence[str] = (),
    ignore_hosts: Sequence[str] = (), reverse: Sequence[str] = (),
    fronted: Sequence[ReverseSpec] = (), service: Sequence[str] = (), control: str = "off",
    redact: Sequence[str] = (), redact_header: Sequence[str] = (),
    redact_json: Sequence[str] = (), no_redact: bool = False, route: Sequence[str] = (),
    confdir: Path | None = None, upstream_ca: Path | None = None, insecure: bool = False,
    idle_timeout: int = 600, otlp: str | None = None, inject_traceparent: bool = False,
    otlp_receive: str | None = None, max_body: str = "1m", process_callers: bool = True,
    caller_process: Sequence[str] = (), workers: str | int = 1,
    spell: Callable[[str], str] = flag,
) -> RecordOptions:
    """RecordOptions from option values as given (UsageError naming the option, spelled
    by `spell`, that is malformed). `fronted`: the reverse listeners of started services;
    `control` is HOST:PORT or 'off'."""
    from tapproxy.supervisor.workers import resolve_workers

    unnamed, listeners = parse_listen(tuple(listen))
    return RecordOptions(
        output=output,
        listen=unnamed,
        listeners=listeners,
        allow_hosts=parse_host_patterns(tuple(allow_hosts), spell("allow_hosts")),
        ignore_hosts=parse_host_patterns(tuple(ignore_hosts), spell("ignore_hosts")),
        reverse=(*(parse_reverse(r) for r in reverse), *fronted),
        services=tuple(parse_service(s) for s in service),
        control=None if control == "off" else parse_address(control, spell("control")),
        **redaction(redact, redact_header, redact_json, no_redact),
        routes=tuple(route),
        **({} if confdir is None else {"confdir": confdir.expanduser()}),
        upstream_ca=upstream_ca,
        insecure=insecure,
        idle_timeout=idle_timeout,
        otlp=_traces_url(otlp) if otlp else None,
        inject_traceparent=inject_traceparent,
        otlp_receive=(parse_address(otlp_receive, spell("otlp_receive")) if otlp_receive
                      else None),
        max_body=parse_size(max_body, spell("max_body")),
        process_callers=process_callers,
        caller_processes=tuple(parse_caller_process(c) for c in caller_process),
        workers=resolve_workers(workers, spell("workers")),
    )


def _traces_url(url: str) -> str:
    # The span exporter's module imports OpenTelemetry (a tenth of a second and more):
    # only a recording that exports spans pays for it.
    from tapproxy.spans.export import traces_url

    return traces_url(url)
