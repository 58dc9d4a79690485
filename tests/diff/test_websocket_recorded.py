"""`tapproxy diff` and `tapproxy replay --against` on WebSocket conversations with a
real aiohttp service, recorded through the real proxy (fixtures: conftest.py): two
recordings of one deterministic run report nothing; a changed message is named by its
pointer, an extra or missing one as added or removed, a binary one by size and hash, a
changed close code as such."""

from __future__ import annotations

import json

from tapproxy.capture import WebSocketEnd, open_capture
from tests.cli.test_diff_cli import assert_fits
from tests.conftest import run_cli
from tests.diff.test_websocket import described

ROUTE = "chat GET /chat"


def changes_of(stdout: str) -> list[dict]:
    items = [json.loads(line) for line in stdout.splitlines()]
    return [c for i in items if i["kind"] != "summary" for c in i.get("changes", ())]


def lines_starting(text: str, *prefixes: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip().startswith(prefixes)]


def test_two_recordings_of_one_deterministic_run_report_no_difference(record_chat) -> None:
    a, b = record_chat("a"), record_chat("b")
    out = run_cli("diff", a, b)
    assert out.returncode == 0, out.stdout + out.stderr
    last = out.stdout.splitlines()[-1]
    assert last.startswith("no differences: 2 paired exchanges equal; ignored as noise: ")
    # per conversation at least: the session id, two times, two random seqs
    assert int(last.split(": ")[-1].split()[0]) >= 10
    # the random seq is noise only because a repeated conversation showed it to be
    js = run_cli("diff", a, b, "--show-noise", "--format", "json")
    learned = json.loads(js.stdout.splitlines()[-1])["learned_noise"]
    assert {"route": ROUTE, "pointer": "/*/seq"} in learned
    noise = [c for line in js.stdout.splitlines()[:-1]
             for c in json.loads(line)["noise"]]
    assert {c["part"] for c in noise} == {"response.messages"}
    assert {c["path"] for c in noise} >= {"/0/session", "/0/at", "/0/seq", "/1/seq",
                                          "/2 line 2"}


def test_a_changed_field_of_a_server_message_is_named_by_its_pointer(
        record_chat, behaviour) -> None:
    a = record_chat("a")
    behaviour.price = 6
    b = record_chat("b")
    out = run_cli("diff", a, b)
    assert out.returncode == 1, out.stdout + out.stderr
    assert_fits(out.stdout)
    lines = out.stdout.splitlines()
    assert [line.endswith(" → chat  GET /chat") for line in lines
            if line.startswith("≠")] == [True, True]
    assert lines_starting(out.stdout, "msg") == [["msg", "/1/price", "5", "6"]] * 2
    assert lines[-1].startswith("2 of 2 paired exchanges differ, 0 removed, 0 added; ")

    js = run_cli("diff", a, b, "--format", "json")
    assert js.returncode == 1
    assert changes_of(js.stdout) == [{"part": "response.messages", "path": "/1/price",
                                      "kind": "changed", "expected": 5, "actual": 6}] * 2
    # --ignore names a field of every message as it names one of a body
    assert run_cli("diff", a, b, "--ignore", "/*/price").returncode == 0


def test_an_extra_message_is_added_and_a_missing_one_removed(record_chat, behaviour) -> None:
    a = record_chat("a")
    behaviour.extra = True
    b = record_chat("b")
    notice = {"type": "notice", "text": "maintenance"}
    out = run_cli("diff", a, b, "--format", "json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert changes_of(out.stdout) == [{"part": "response.messages", "path": "/1",
                                       "kind": "added", "actual": notice}] * 2
    back = run_cli("diff", b, a)
    assert back.returncode == 1
    assert_fits(back.stdout)
    assert lines_starting("\n".join(back.stdout.splitlines()[2:]), "msg", "expected:",
                          "actual:") == [
        ["msg", "/1"], ["expected:", '{"type":"notice","text":"maintenance"}'],
        ["actual:", "(absent)"]] * 2


def test_a_binary_message_a_text_line_and_the_close_code(record_chat, behaviour) -> None:
    a = record_chat("a")
    behaviour.blob, behaviour.status, behaviour.close_code = b"\x00\x01\x02\x04", "slow", 4001
    b = record_chat("b")
    out = run_cli("diff", a, b, "--format", "json")
    assert out.returncode == 1, out.stdout + out.stderr
    old, new = (described(blob).split(":")[1]
                for blob in (b"\x00\x01\x02\x03", b"\x00\x01\x02\x04"))
    assert changes_of(out.stdout) == [
        {"part": "response.messages", "path": "/2 line 3", "kind": "changed",
         "expected": "status ok", "actual": "status slow"},
        {"part": "response.messages", "path": "/3", "kind": "changed",
         "expected": f"4 bytes sha256:{old}", "actual": f"4 bytes sha256:{new}"},
        {"part": "close", "path": "", "kind": "changed", "expected": 4000, "actual": 4001},
    ] * 2
    text = run_cli("diff", a, b)
    assert_fits(text.stdout)
    shown = "\n".join(text.stdout.splitlines()[2:])  # the captures' paths aside
    assert lines_starting(shown, "msg", "close", "expected:", "actual:") == [
        ["msg", "/2", "line", "3", "status", "ok", "status", "slow"],
        ["msg", "/3"], ["expected:", "4", "bytes", f"sha256:{old}"],
        ["actual:", "4", "bytes", f"sha256:{new}"],
        ["close", "4000", "4001"]] * 2


# --- replay --against: the recorded conversations had again with the live service -----

def against(capture, chat, capsys, **kw) -> tuple[int, str]:
    from tapproxy.cli.compare import run_against

    code = run_against(capture, f"chat={chat.url}", **kw)
    return code, capsys.readouterr().out


def test_against_the_unchanged_service_nothing_differs(record_chat, chat, capsys) -> None:
    a = record_chat("a")
    code, out = against(a, chat, capsys)
    assert code == 0, out
    assert out.splitlines()[-1].startswith(
        "no differences: 2 re-sent exchanges to chat equal; ignored as noise: ")
    code, out = against(a, chat, capsys, output_format="json", show_noise=True)
    pairs = [json.loads(line) for line in out.splitlines()[:-1]]
    # what the live service said was heard: its noise, message by message
    assert [sorted({c["path"] for c in p["noise"]}) for p in pairs] == [
        ["/0/at", "/0/seq", "/0/session", "/1/seq", "/2 line 2"]] * 2


def test_against_a_service_whose_websocket_behaviour_changed(
        record_chat, chat, behaviour, capsys) -> None:
    a = record_chat("a")
    behaviour.price, behaviour.extra, behaviour.close_code = 7, True, 4001
    code, out = against(a, chat, capsys)
    assert code == 1, out
    assert_fits(out)
    lines = out.splitlines()
    assert lines[:2] == [f"expected: {a} (recorded chat)", f"actual:   {chat.url} (live)"]
    assert lines_starting("\n".join(lines[2:]), "msg", "expected:", "actual:",
                          "close") == [
        ["msg", "/1"], ["expected:", "(absent)"],
        ["actual:", '{"type":"notice","text":"maintenance"}'],
        ["msg", "/1/price", "5", "7"], ["close", "4000", "4001"]] * 2
    assert lines[-1].startswith("2 of 2 re-sent exchanges to chat differ; ")
    cli = run_cli("replay", a, "--against", f"chat={chat.url}", "--format", "json")
    assert (cli.returncode, cli.stderr) == (1, "")
    assert json.loads(cli.stdout.splitlines()[-1])["differing"] == 2


def test_against_a_service_that_says_less_is_waited_for_then_reported(
        record_chat, chat, behaviour, capsys) -> None:
    behaviour.extra = True
    b = record_chat("b")  # recorded with the extra message
    behaviour.extra = False
    code, out = against(b, chat, capsys, output_format="json", timeout=1.0)
    assert code == 1, out
    assert changes_of(out) == [{"part": "response.messages", "path": "/1",
                                "kind": "removed",
                                "expected": {"type": "notice", "text": "maintenance"}}] * 2


def test_against_a_service_that_is_down(record_chat, chat, capsys, services) -> None:
    a = record_chat("a")
    services.stop_all()
    code, out = against(a, chat, capsys)
    assert code == 1
    assert lines_starting(out, "error") == [["error", "(none)", "refused"]] * 2


def test_two_conversations_of_one_capture(record_chat, behaviour) -> None:
    def change() -> None:
        behaviour.blob = b"\x09"

    a = record_chat("a", between=change)
    out = run_cli("diff", a, "--exchange", "1", "--exchange", "2", "--format", "json")
    assert out.returncode == 1, out.stdout + out.stderr
    assert json.loads(out.stdout)["changes"] == [
        {"part": "response.messages", "path": "/3", "kind": "changed",
         "expected": described(b"\x00\x01\x02\x03"), "actual": described(b"\x09")}]


def test_against_a_conversation_the_client_closed(record_chat, chat, behaviour,
                                                 capsys) -> None:
    a = record_chat("a", said=("ping", "blob"))  # then the client closes (1000)
    with open_capture(a) as reader:
        ends = [r.close_code for r in reader if isinstance(r, WebSocketEnd)]
    assert ends == [1000, 1000]
    code, out = against(a, chat, capsys)
    assert code == 0, out
    behaviour.blob = b"\x05"
    code, out = against(a, chat, capsys, output_format="json")
    assert code == 1, out
    assert [c["path"] for c in changes_of(out)] == ["/2"] * 2


def test_against_a_service_that_no_longer_upgrades(record_chat, chat, behaviour,
                                                  capsys) -> None:
    a = record_chat("a")
    behaviour.upgrade = False
    code, out = against(a, chat, capsys)
    assert code == 1, out
    assert lines_starting(out, "status") == [["status", "101", "404"]] * 2
