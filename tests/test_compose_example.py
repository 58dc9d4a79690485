"""compose/ checked without a Docker engine: the file against the Compose Specification's
own JSON Schema (vendored: compose/schema/SOURCE.md), every caller's proxy environment,
the ports and volumes, and the image's entry point through the real CLI parser."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from tapproxy.errors import TapproxyError
from tests.conftest import ROOT

COMPOSE_DIR = ROOT / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
SCHEMA = COMPOSE_DIR / "schema" / "compose-spec.json"


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # merge keys (<<:) resolved, as compose does


def _cli_params(command: str, args: list[str]) -> dict:
    """`tapproxy COMMAND ARGS` through the CLI's own parser (click, as typer builds it),
    without running it: the parameters it would be called with."""
    import typer

    from tapproxy.cli import _commands
    from tapproxy.cli.app import app

    _commands()  # registers every command on the app
    group = typer.main.get_command(app)
    cmd = group.get_command(group.context_class(group), command)
    assert cmd is not None, f"no command {command!r}"
    return cmd.make_context(command, list(args)).params


def _record(args: list[str]) -> dict:
    """`tapproxy record ARGS` parsed, then its values through the parsers record applies."""
    from tapproxy.supervisor.options import parse_address, parse_listen

    params = _cli_params("record", args)
    unnamed, listeners = parse_listen(params["listen"] or ())
    return {"output": str(params["output"]), "listen": str(unnamed), "listeners": listeners,
            "control": str(parse_address(params["control"], "--control")),
            "otlp_receive": str(parse_address(params["otlp_receive"], "--otlp-receive")),
            "inject_traceparent": params["inject_traceparent"],
            "confdir": str(params["confdir"])}


def _dockerfile_instruction(name: str, text: str | None = None) -> list[str]:
    """The exec (JSON) form of the Dockerfile's last `name` instruction."""
    text = (text or DOCKERFILE.read_text()).replace("\\\n", " ")
    found = re.findall(rf"^{name}\s+(\[.*\])\s*$", text, re.M)
    assert found, f"no {name} in exec form in {DOCKERFILE}"
    return json.loads(found[-1])


def _image_command(text: str | None = None) -> list[str]:
    return _dockerfile_instruction("ENTRYPOINT", text) + _dockerfile_instruction("CMD", text)


def _sidecar() -> dict:
    argv = _image_command()
    assert argv[:2] == ["tapproxy", "record"], argv
    return _record(argv[2:])


# -- the file as Compose reads it ---------------------------------------------------------


def test_the_file_is_valid_by_the_compose_specification_schema(spec):
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(spec)


@pytest.mark.parametrize("mistake", [
    lambda s: s["services"]["shop"]["depends_on"]["catalog"].update(condition="started"),
    lambda s: s["services"]["tapproxy"].update(ports="127.0.0.1:8081:8081"),  # no list
    lambda s: s["services"]["tests"].update(volume=["x:/x"]),  # a key Compose lacks
])
def test_a_mistake_in_the_file_is_caught_by_the_schema(spec, mistake):
    broken = copy.deepcopy(spec)
    mistake(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(broken)


# -- who calls whom, and through what ------------------------------------------------------


def _listen_port(service: dict) -> int | None:
    """The port a demo service's command listens on."""
    argv = [*service.get("entrypoint", ()), *service.get("command", ())]
    if "-P" in argv:  # python -m aiohttp.web -H HOST -P PORT
        return int(argv[argv.index("-P") + 1])
    numbers = [a for a in argv if a.isdigit()]
    return int(numbers[0]) if numbers else None


def _calls(spec: dict, name: str) -> list[tuple[str, int]]:
    """(service, port) of every other service `name`'s environment points it at."""
    env = spec["services"][name].get("environment", {})
    out = []
    for key, value in env.items():
        if "proxy" in key.lower() or key.startswith("OTEL_"):
            continue
        m = re.fullmatch(r"(?:https?://)?([\w-]+):(\d+)/?", str(value))
        if m and m.group(1) in spec["services"]:
            out.append((m.group(1), int(m.group(2))))
    return out


def test_every_caller_names_itself_to_the_sidecar_in_its_proxy_url(spec):
    forward = int(_sidecar()["listen"].rsplit(":", 1)[1])
    callers = {name for name in spec["services"] if _calls(spec, name)}
    assert callers == {"shop", "tests"}
    for name in callers:
        env = spec["services"][name]["environment"]
        assert env["HTTP_PROXY"] == env["http_proxy"], name
        url = urlsplit(env["HTTP_PROXY"])
        assert (url.username, url.hostname, url.port) == (name, "tapproxy", forward), name
        assert not env.get("NO_PROXY") and not env.get("no_proxy"), name  # nothing around
    # gRPC's C core reads grpc_proxy before http_proxy: the shop's gRPC calls too.
    assert spec["services"]["shop"]["environment"]["grpc_proxy"] == \
        spec["services"]["shop"]["environment"]["HTTP_PROXY"]


def test_every_call_goes_to_a_port_its_callee_listens_on(spec):
    for name in spec["services"]:
        for callee, port in _calls(spec, name):
            assert _listen_port(spec["services"][callee]) == port, (name, callee)


def test_the_instrumented_service_sends_its_spans_straight_to_the_receiver(spec):
    receiver = int(_sidecar()["otlp_receive"].rsplit(":", 1)[1])
    env = spec["services"]["payments"]["environment"]
    url = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (url.hostname, url.port) == ("tapproxy", receiver)
    # Through the proxy the receiver answers 403: its host is left out of the proxy.
    assert env["NO_PROXY"] == env["no_proxy"] == "tapproxy"
    assert _sidecar()["inject_traceparent"]  # so its spans join each test's trace


def test_published_ports_are_loopback_and_listened_on(spec):
    control = int(_sidecar()["control"].rsplit(":", 1)[1])
    published = {}
    for name, service in spec["services"].items():
        for p in service.get("ports", ()):
            host, _, target = str(p).rpartition(":")
            assert host.startswith("127.0.0.1:"), (name, p)  # not on every interface
            published[name] = int(target)
    assert published == {"tapproxy": control, "jaeger": 16686}
    assert "8081" in spec["services"]["tapproxy"]["healthcheck"]["test"][-1]


# -- volumes and what reads the capture ----------------------------------------------------


def _mounts(service: dict) -> dict[str, str]:
    """target → source of a service's short-syntax volumes."""
    out = {}
    for v in service.get("volumes", ()):
        source, target, *_ = v.split(":")
        out[target] = source
    return out


def test_the_capture_is_on_the_volume_every_reader_mounts(spec):
    output = Path(_sidecar()["output"])
    mounts = _mounts(spec["services"]["tapproxy"])
    assert mounts[str(output.parent)] == "captures"
    assert mounts[_sidecar()["confdir"]] == "ca"
    assert set(spec["volumes"]) == {"captures", "ca"}
    readers = [n for n, s in spec["services"].items()
               if s.get("command", [None])[0] in ("spans", "report", "why", "check")]
    assert set(readers) == {"spans", "report", "traces"}
    for name in readers:
        argv = spec["services"][name]["command"]
        assert argv[1] == str(output), name
        assert _mounts(spec["services"][name])[str(output.parent)] == "captures", name
        params = _cli_params(argv[0], argv[1:])  # the options exist and parse
        for spec_ in params.get("contract") or ():  # in the image: /src is the package's
            _, _, path = spec_.rpartition("=")
            assert path.startswith("/src/"), path
            assert (ROOT / path.removeprefix("/src/")).is_file(), path


def test_bind_mounts_and_modules_exist(spec):
    for name, service in spec["services"].items():
        for source in _mounts(service).values():
            if source.startswith("."):
                assert (COMPOSE_DIR / source).is_file(), (name, source)
        argv = service.get("entrypoint", [])
        if argv[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(argv[2]) is not None, (name, argv[2])
        if "aiohttp.web" in argv:
            module, factory = argv[-1].split(":")
            assert callable(getattr(importlib.import_module(module), factory))


def test_the_jaeger_profile_is_optional(spec):
    optional = {n for n, s in spec["services"].items() if "jaeger" in s.get("profiles", ())}
    assert optional == {"jaeger", "traces"}
    assert spec["services"]["traces"]["command"][-1] == "http://jaeger:4318"
    for name, service in spec["services"].items():
        if name not in optional:  # the default run needs nothing from the profile
            assert not set(service.get("depends_on", {})) & optional, name


# -- the image ------------------------------------------------------------------------------


def test_the_image_runs_tapproxy_record_with_options_that_exist():
    assert _sidecar() == {
        "output": "/captures/run.tap", "listen": "0.0.0.0:8080", "listeners": (),
        "control": "0.0.0.0:8081", "otlp_receive": "0.0.0.0:4318",
        "inject_traceparent": True, "confdir": "/ca"}
    exposed = re.search(r"^EXPOSE\s+(.*)$", DOCKERFILE.read_text(), re.M).group(1).split()
    assert sorted(map(int, exposed)) == [4318, 8080, 8081]


@pytest.mark.parametrize("mistake", [
    ('"--listen"', '"--lisen"'),  # an option the command does not have
    ('"0.0.0.0:8081"', '"0.0.0.0:80x1"'),  # a value its parser refuses
    ('"-o", "/captures/run.tap", ', ''),  # a required option left out
])
def test_a_mistyped_image_command_would_be_caught(mistake):
    text = DOCKERFILE.read_text()
    assert mistake[0] in text
    argv = _image_command(text.replace(*mistake))
    # typer raises its own copy of click's usage errors (see tapproxy.cli.app.main).
    with pytest.raises(Exception) as e:
        _record(argv[2:])
    assert isinstance(e.value, TapproxyError) or type(e.value).__name__ in (
        "NoSuchOption", "UsageError", "BadOptionUsage", "MissingParameter"), e.value


def test_what_the_image_copies_is_in_its_build_context(spec):
    build = spec["services"]["tapproxy"]["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    for line in re.findall(r"^COPY\s+(.*)$", DOCKERFILE.read_text(), re.M):
        *sources, _ = shlex.split(line)
        for s in sources:
            assert (context / s).exists(), s
