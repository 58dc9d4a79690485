"""One process, one name, both ways: the naming rules over what the lookup helper found."""

from __future__ import annotations

from tapproxy.supervisor.process_names import ProcessNames


def facts(pid: int, exe: str = "python3.12", service: str | None = None,
          rule: str | None = None, started: str = "100") -> dict:
    return {"pid": pid, "started": started, "exe": exe, "command": f"{exe} app.py",
            "service": service, "rule": rule}


def test_a_started_service_wins_then_its_proxy_user_then_a_rule_then_the_executable():
    names = ProcessNames()
    started = facts(1, service="orders", rule="x")
    names.called_as(started, "someone-else")
    assert (names.callee(started).name, names.callee(started).source) == ("orders", "service")
    user = facts(2, rule="billing")
    names.called_as(user, "payments")
    assert (names.callee(user).name, names.caller(user).source) == ("payments", "proxy-user")
    ruled = facts(3, rule="billing")
    assert (names.callee(ruled).name, names.callee(ruled).source) == ("billing", "rule")
    plain = facts(4, exe="node")
    named = names.callee(plain)
    assert (named.name, named.source, named.pid, named.command) == (
        "node", "process", 4, "node app.py")


def test_the_same_name_as_caller_and_as_callee():
    names = ProcessNames()
    leaf = facts(10)
    assert names.callee(leaf).name == names.caller(leaf).name == "python3.12"
    worker = facts(11, exe="node")
    before = names.callee(worker).name
    assert names.caller(worker).name == before == "node"
    names.called_as(worker, "gateway")  # once its proxy user is known, both ways
    assert names.caller(worker).name == names.callee(worker).name == "gateway"


def test_services_sharing_an_executable_get_distinct_names():
    names = ProcessNames()
    a, b, c = facts(20), facts(21), facts(22)
    assert [names.callee(p).name for p in (a, b, c)] == [
        "python3.12", "python3.12#2", "python3.12#3"]
    assert names.callee(b).name == "python3.12#2"  # settled: the same again


def test_a_reused_pid_or_port_is_a_new_process():
    names = ProcessNames()
    first = names.callee(facts(30, started="1")).name
    again = names.callee(facts(30, started="2")).name  # the PID reused by a new process
    assert (first, again) == ("python3.12", "python3.12#2")


def test_clients_that_never_answer_share_their_executable_but_never_a_services():
    names = ProcessNames()
    assert {names.caller(facts(40 + i, exe="curl")).name for i in range(3)} == {"curl"}
    client, server = facts(50), facts(51)
    assert names.caller(client).name == "python3.12"
    # The server's name is its own: the client keeps the plain one it was seen with.
    assert names.callee(server).name == "python3.12#2"
    assert names.caller(facts(52)).name == "python3.12"
    # Once a server holds the plain name, a new client does not get it.
    names2 = ProcessNames()
    assert names2.callee(facts(60)).name == "python3.12"
    assert names2.caller(facts(61)).name == "python3.12#2"


def test_a_client_that_becomes_a_server_leaves_the_shared_name():
    names = ProcessNames()
    one, two = facts(70), facts(71)
    assert names.caller(one).name == names.caller(two).name == "python3.12"
    assert names.callee(two).name == "python3.12#2"
    assert names.caller(two).name == "python3.12#2"


def test_the_proxys_own_process_is_no_callee_and_its_proxy_users_name_nothing():
    names = ProcessNames(own_pid=99)
    own = facts(99, service="tests")
    assert names.callee(own) is None
    names.called_as(own, "checkout")
    assert names.caller(own).name == "tests"


def test_a_process_calling_as_two_users_is_named_by_neither():
    names = ProcessNames()
    both = facts(80)
    names.called_as(both, "alice")
    assert names.callee(both).name == "alice"
    names.called_as(both, "bob")
    assert (names.callee(both).name, names.callee(both).source) == ("python3.12", "process")
    names.called_as(both, "alice")
    assert names.callee(both).source == "process"


def test_a_process_that_has_not_called_yet_is_named_by_its_own_proxy_setting():
    names = ProcessNames()
    leaf = {**facts(90), "env_user": "payments"}
    assert (names.callee(leaf).name, names.callee(leaf).source) == ("payments", "proxy-user")
    names.called_as(leaf, "billing")  # what it really calls as wins
    assert names.callee(leaf).name == "billing"
    names.called_as(leaf, "other")  # two users: neither, nor its setting
    assert names.callee(leaf).source == "process"
